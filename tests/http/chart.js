// Loads the status page in headless Chromium (Debian's, driven by
// playwright-core), reads the chart it drew (each line's points and the
// frame they were drawn in), fetches /status.json as the page does, then
// clicks the "ready" heading and reads the tubes' new order. Prints JSON;
// saves a screenshot. Used by tests/http/browser.rs.
// Usage: node chart.js URL SCREENSHOT.png
"use strict";
const { chromium } = require("playwright-core");

function readCharts() {
  return ["chart-jobs", "chart-rates"].map((id) => {
    const svg = document.getElementById(id);
    return {
      id,
      t0: Number(svg.getAttribute("data-t0")),
      t1: Number(svg.getAttribute("data-t1")),
      top: Number(svg.getAttribute("data-top")),
      lines: Array.from(svg.querySelectorAll("polyline")).map((l) => ({
        key: l.getAttribute("data-key"),
        points: l.getAttribute("points").split(" ").filter((p) => p).map((p) => p.split(",").map(Number)),
      })),
    };
  });
}

(async () => {
  const [url, shot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url, { timeout: 20000 });
    await page.waitForSelector("#chart-jobs polyline", { timeout: 20000 });
    const charts = await page.evaluate(readCharts);
    const served = await page.evaluate(() => fetch("/status.json", { cache: "no-store" }).then((r) => r.json()));
    await page.screenshot({ path: shot, fullPage: true });
    await Promise.all([page.waitForNavigation({ timeout: 20000 }), page.click('#tubes thead th a >> text="ready"')]);
    const sorted = await page.evaluate(() => ({
      search: location.search,
      marked: document.querySelector("#tubes th[aria-sort]").textContent,
      tubes: Array.from(document.querySelectorAll("#tubes tbody tr td:first-child")).map((td) => td.textContent),
    }));
    console.log(JSON.stringify({ charts, served, sorted, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
