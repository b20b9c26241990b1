// Loads the status page in headless Chromium (Debian's, driven by
// playwright-core) and reports the first reserved job's row twice, 2.5 s
// apart, as JSON; saves a screenshot. Used by tests/http/browser.rs.
// Usage: node browser.js URL SCREENSHOT.png
"use strict";
const { chromium } = require("playwright-core");

async function row(page) {
  return page.$eval("#reserved tbody tr", (tr) => ({
    job: tr.querySelector("td.job").textContent,
    worker: tr.querySelector("td.worker").textContent,
    ttr: tr.querySelector("td.ttr").textContent,
  }));
}

(async () => {
  const [url, shot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(url, { timeout: 20000 });
    const before = await row(page);
    await page.waitForTimeout(2500);
    const after = await row(page);
    const stale = await page.$eval("body", (b) => b.classList.contains("stale"));
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ before, after, stale, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
