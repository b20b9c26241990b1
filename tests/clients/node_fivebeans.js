// fivebeans (npm) against a running sprout. fivebeans writes each command
// as soon as it is called and matches replies in order, so bursts of
// commands sent without waiting are part of what is checked. It has no
// reserve-job.
'use strict';

const fivebeans = require('fivebeans');
const t = require('./report');

/** Calls a fivebeans method; resolves with its results, rejects with the
 * server's error word. */
function call(c, method, ...args) {
  return new Promise((resolve, reject) => {
    c[method](...args, (err, ...rest) => (err ? reject(new Error(String(err))) : resolve(rest)));
  });
}

async function client() {
  const c = new fivebeans.client(t.host, t.port);
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
    c.connect();
  });
  return c;
}

const word = (w) => (e) => e && e.message === w;
const one = async (p) => (await p)[0];

async function main() {
  console.log(`client fivebeans ${t.version('fivebeans')}`);
  const c = await client();

  await t.check('use, watch, ignore and the list commands', async () => {
    t.same('fb-a', await one(call(c, 'use', 'fb-a')));
    t.same('fb-a', await one(call(c, 'list_tube_used')));
    t.same('2', await one(call(c, 'watch', 'fb-a')));
    t.same('1', await one(call(c, 'ignore', 'default')));
    t.same(['fb-a'], await one(call(c, 'list_tubes_watched')));
    await t.rejects(() => call(c, 'ignore', 'fb-a'), word('NOT_IGNORED'));
    const tubes = await one(call(c, 'list_tubes'));
    t.same(true, tubes.includes('default') && tubes.includes('fb-a'));
  });

  await t.check('tube names read back by stats-job and stats-tube (js-yaml)', async () => {
    try {
      for (const name of t.tubeNames()) {
        await call(c, 'use', name);
        const id = await one(call(c, 'put', 0, 0, 60, 'x'));
        const job = await one(call(c, 'stats_job', id));
        const tube = await one(call(c, 'stats_tube', name));
        await call(c, 'destroy', id);
        t.same([name, name], [job.tube, tube.name]);
      }
    } finally {
      await call(c, 'use', 'fb-a');
    }
  });

  await t.check('put with priority, delay and TTR, read back by stats-job', async () => {
    const id = await one(call(c, 'put', 42, 30, 77, 'delayed'));
    const st = await one(call(c, 'stats_job', id));
    t.same([42, 30, 77, 'delayed', 'fb-a'], [st.pri, st.delay, st.ttr, st.state, st.tube]);
    t.same(id, await one(call(c, 'peek_delayed')));
    await call(c, 'destroy', id);
    await t.rejects(() => call(c, 'peek', id), word('NOT_FOUND'));
  });

  await t.check('reserve, reserve with timeout, delete', async () => {
    await t.rejects(() => call(c, 'reserve_with_timeout', 0), word('TIMED_OUT'));
    const low = await one(call(c, 'put', 5, 0, 60, 'low'));
    const high = await one(call(c, 'put', 1, 0, 60, 'high'));
    const [id, body] = await call(c, 'reserve_with_timeout', 1);
    t.same([high, 'high'], [id, body.toString()]);
    await call(c, 'destroy', id);
    t.same(low, await one(call(c, 'reserve')));
    await call(c, 'destroy', low);
    await t.rejects(() => call(c, 'destroy', low), word('NOT_FOUND'));
  });

  await t.check('release with priority and delay; touch', async () => {
    const id = await one(call(c, 'put', 0, 0, 20, 'again'));
    t.same(id, await one(call(c, 'reserve_with_timeout', 1)));
    await t.sleep(1100);
    await call(c, 'touch', id);
    t.same(true, (await one(call(c, 'stats_job', id)))['time-left'] >= 19);
    await call(c, 'release', id, 7, 1);
    const st = await one(call(c, 'stats_job', id));
    t.same(['delayed', 7, 1], [st.state, st.pri, st.releases]);
    await t.eventually(async () => (await one(call(c, 'stats_job', id))).state === 'ready');
    t.same(id, await one(call(c, 'peek_ready')));
    await call(c, 'destroy', id);
  });

  await t.check('bury, peek-buried, kick, kick-job', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await one(call(c, 'put', 0, 0, 60, `b${i}`)));
    for (let i = 0; i < 3; i++) {
      await call(c, 'bury', await one(call(c, 'reserve_with_timeout', 1)), 9);
    }
    t.same(ids[0], await one(call(c, 'peek_buried')));
    const st = await one(call(c, 'stats_job', ids[0]));
    t.same(['buried', 9, 1], [st.state, st.pri, st.buries]);
    t.same('2', await one(call(c, 'kick', 2)));
    t.same(ids[2], await one(call(c, 'peek_buried')));
    await call(c, 'kick_job', ids[2]);
    await t.rejects(() => call(c, 'kick_job', ids[2]), word('NOT_FOUND'));
    await t.rejects(() => call(c, 'peek_buried'), word('NOT_FOUND'));
    for (const id of ids) await call(c, 'destroy', id);
  });

  await t.check('stats and stats-tube parsed by fivebeans (js-yaml); pause-tube', async () => {
    const st = await one(call(c, 'stats'));
    t.same(true, Number.isInteger(st.pid) && st.pid > 0);
    for (const k of ['version', 'hostname', 'os', 'platform', 'id']) {
      if (typeof st[k] !== 'string' || st[k] === '') throw new Error(`stats ${k}: ${st[k]}`);
    }
    await call(c, 'pause_tube', 'fb-a', 2);
    const ts = await one(call(c, 'stats_tube', 'fb-a'));
    t.same(['fb-a', 2], [ts.name, ts.pause]);
    const id = await one(call(c, 'put', 0, 0, 60, 'while paused'));
    await t.rejects(() => call(c, 'reserve_with_timeout', 0), word('TIMED_OUT'));
    await call(c, 'pause_tube', 'fb-a', 0);
    t.same(id, await one(call(c, 'reserve_with_timeout', 1)));
    await call(c, 'destroy', id);
  });

  await t.check('binary body with every byte value', async () => {
    const body = t.binaryBody();
    const id = await one(call(c, 'put', 0, 0, 60, body));
    const [got, data] = await call(c, 'reserve_with_timeout', 1);
    t.same([id, true], [got, Buffer.compare(body, data) === 0]);
    const [, peeked] = await call(c, 'peek', id);
    t.same(true, Buffer.compare(body, peeked) === 0);
    await call(c, 'destroy', id);
  });

  await t.check('a body of exactly -z bytes, and one byte more', async () => {
    const body = Buffer.alloc(t.maxJobSize, 'z');
    const id = await one(call(c, 'put', 0, 0, 60, body));
    const [, data] = await call(c, 'reserve_with_timeout', 1);
    t.same(true, Buffer.compare(body, data) === 0);
    await call(c, 'destroy', id);
    const big = Buffer.alloc(t.maxJobSize + 1, 'z');
    await t.rejects(() => call(c, 'put', 0, 0, 60, big), word('JOB_TOO_BIG'));
    await call(c, 'destroy', await one(call(c, 'put', 0, 0, 60, 'after')));
  });

  await t.check('errors: bad tube name, deadline soon, unknown job', async () => {
    await t.rejects(() => call(c, 'use', 'no spaces allowed'), () => true);
    await t.rejects(() => call(c, 'stats_tube', 'never-made'), word('NOT_FOUND'));
    await t.rejects(() => call(c, 'bury', 999999, 0), word('NOT_FOUND'));
    await t.rejects(() => call(c, 'touch', 999999), word('NOT_FOUND'));
    const id = await one(call(c, 'put', 0, 0, 1, 'short'));
    await call(c, 'reserve_with_timeout', 1);
    await t.rejects(() => call(c, 'reserve_with_timeout', 1), word('DEADLINE_SOON'));
    await call(c, 'destroy', id);
  });

  await t.check('commands sent in a burst, without waiting for replies', async () => {
    // 200 puts written back to back, then one burst of stats-job, reserve
    // and delete for all of them: every reply must match its command.
    const bodies = Array.from({ length: 200 }, (_, i) => `burst ${i} ${'x'.repeat(i)}`);
    const ids = await Promise.all(bodies.map((b, i) => one(call(c, 'put', i, 0, 60, b))));
    const want = ids.map(Number);
    t.same(want, want.slice().sort((a, b) => a - b));
    const stats = await Promise.all(ids.map((id) => one(call(c, 'stats_job', id))));
    t.same(ids.map((_, i) => i), stats.map((s) => s.pri));
    const got = await Promise.all(ids.map(() => call(c, 'reserve_with_timeout', 1)));
    t.same(bodies, got.map(([, body]) => body.toString()));
    await Promise.all(ids.map((id) => call(c, 'destroy', id)));
    await t.rejects(() => call(c, 'peek', ids[0]), word('NOT_FOUND'));
  });

  await t.check('a blocked reserve is woken by a put from another connection', async () => {
    const w = await client();
    await call(w, 'watch', 'fb-wake');
    await call(w, 'ignore', 'default');
    const waiting = call(w, 'reserve_with_timeout', 5);
    await t.sleep(300);
    const p = await client();
    await call(p, 'use', 'fb-wake');
    const id = await one(call(p, 'put', 0, 0, 60, 'wake up'));
    const [got, body] = await waiting;
    t.same([id, 'wake up'], [got, body.toString()]);
    await call(w, 'destroy', id);
    w.end();
    p.end();
  });

  await t.check('a reserved job is released when its connection closes', async () => {
    const w = await client();
    await call(w, 'watch', 'fb-close');
    await call(w, 'ignore', 'default');
    await call(c, 'use', 'fb-close');
    const id = await one(call(c, 'put', 0, 0, 60, 'held'));
    t.same(id, await one(call(w, 'reserve_with_timeout', 1)));
    t.same('reserved', (await one(call(c, 'stats_job', id))).state);
    w.end();
    await t.eventually(async () => (await one(call(c, 'stats_job', id))).state === 'ready');
    await call(c, 'destroy', id);
  });

  c.end();
  t.done();
}

main().catch((e) => {
  console.log(`not ok - the script itself: ${e && e.stack}`);
  process.exit(1);
});
