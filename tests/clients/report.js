// What the Node.js client scripts share: argv (HOST PORT MAX_JOB_SIZE) and
// one line per check ("ok - NAME" or "not ok - NAME: why"), read by
// tests/clients.rs. A check that throws is a failure; the script goes on.
'use strict';

const [host, portText, maxText] = process.argv.slice(2);
const port = Number(portText);
const maxJobSize = Number(maxText);
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failed += 1;
    const where = (e && e.stack ? e.stack.split('\n')[1] || '' : '').trim();
    console.log(`not ok - ${name}: ${String(e && e.message ? e.message : e).slice(0, 200)} (${where})`);
  }
}

function same(want, got) {
  const w = JSON.stringify(want);
  const g = JSON.stringify(got);
  if (w !== g) throw new Error(`expected ${w.slice(0, 80)}, got ${g.slice(0, 80)}`);
}

async function rejects(fn, test) {
  try {
    await fn();
  } catch (e) {
    if (test(e)) return;
    throw new Error(`unexpected error: ${e && e.message}`);
  }
  throw new Error('expected an error');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(cond) {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error('condition did not hold in time');
}

function version(pkg) {
  return require(`${pkg}/package.json`).version;
}

function done() {
  process.exit(failed === 0 ? 0 : 1);
}

/** Every byte value, four times, then CRLFs inside the body. */
function binaryBody() {
  const b = Buffer.alloc(1028);
  for (let i = 0; i < 1024; i++) b[i] = i % 256;
  b.write('\r\n\r\n', 1024, 'latin1');
  return b;
}

/** The names in tube_names.txt, which every client reads back. */
function tubeNames() {
  const text = require('fs').readFileSync(require('path').join(__dirname, 'tube_names.txt'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(' ')[0]);
}

module.exports = {
  host, port, maxJobSize, check, same, rejects, sleep, eventually, version, done, binaryBody, tubeNames,
};
