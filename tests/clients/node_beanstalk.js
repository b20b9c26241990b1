// node-beanstalk (npm) against a running sprout: every command it exposes.
'use strict';

const { Client } = require('node-beanstalk');
const t = require('./report');

// Bodies go through as raw bytes; the client's own size check is lifted so
// that the server's JOB_TOO_BIG is what a too-big put meets.
const raw = { serialize: (b) => Buffer.from(b), deserialize: (b) => b };
const opts = { host: t.host, port: t.port, serializer: raw, maxPayloadSize: 1 << 20 };
const status = (s) => (e) => e && e.code === s;

async function client() {
  const c = new Client(opts);
  await c.connect();
  return c;
}

async function main() {
  console.log(`client node-beanstalk ${t.version('node-beanstalk')}`);
  const c = await client();

  await t.check('use, watch, ignore and the list commands', async () => {
    t.same('nb-a', await c.use('nb-a'));
    t.same('nb-a', await c.listTubeUsed());
    t.same(2, await c.watch('nb-a'));
    t.same(3, await c.watch('nb-b'));
    t.same(true, await c.ignore('default'));
    t.same(['nb-a', 'nb-b'], (await c.listTubesWatched()).sort());
    await c.ignore('nb-b');
    const tubes = await c.listTubes();
    t.same(true, tubes.includes('default') && tubes.includes('nb-a'));
  });

  await t.check('tube names read back by stats-job and stats-tube (js-yaml)', async () => {
    try {
      for (const name of t.tubeNames()) {
        await c.use(name);
        const { id } = await c.put('x');
        const got = [(await c.statsJob(id)).tube, (await c.statsTube(name)).name];
        await c.delete(id);
        t.same([name, name], got);
      }
    } finally {
      await c.use('nb-a');
    }
  });

  await t.check('put with priority, delay and TTR, read back by stats-job', async () => {
    const put = await c.put('delayed', 77, 42, 30);
    t.same('delayed', put.state);
    const st = await c.statsJob(put.id);
    t.same([42, 30, 77, 'delayed', 'nb-a'], [st.pri, st.delay, st.ttr, st.state, st.tube]);
    t.same(put.id, (await c.peekDelayed()).id);
    t.same(true, await c.delete(put.id));
    t.same(null, await c.peek(put.id));
  });

  await t.check('reserve, reserve with timeout, reserve-job, delete', async () => {
    t.same(null, await c.reserveWithTimeout(0));
    const low = (await c.put('low', 60, 5)).id;
    const high = (await c.put('high', 60, 1)).id;
    const job = await c.reserveWithTimeout(1);
    t.same([high, 'high'], [job.id, job.payload.toString()]);
    const other = await c.reserveJob(low);
    t.same([low, 'low'], [other.id, other.payload.toString()]);
    t.same(null, await c.reserveJob(low)); // already reserved
    await c.delete(high);
    await c.delete(low);
    t.same(false, await c.delete(low));
  });

  await t.check('release with priority and delay; touch', async () => {
    const id = (await c.put('again', 20)).id;
    t.same(id, (await c.reserve()).id);
    await t.sleep(1100);
    t.same(true, await c.touch(id));
    t.same(true, (await c.statsJob(id))['time-left'] >= 19);
    t.same('delayed', await c.release(id, 7, 1));
    const st = await c.statsJob(id);
    t.same(['delayed', 7, 1], [st.state, st.pri, st.releases]);
    await t.eventually(async () => (await c.statsJob(id)).state === 'ready');
    t.same(id, (await c.peekReady()).id);
    await c.delete(id);
  });

  await t.check('bury, peek-buried, kick, kick-job', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await c.put(`b${i}`)).id);
    for (let i = 0; i < 3; i++) t.same(true, await c.bury((await c.reserveWithTimeout(1)).id, 9));
    t.same(ids[0], (await c.peekBuried()).id);
    const st = await c.statsJob(ids[0]);
    t.same(['buried', 9, 1], [st.state, st.pri, st.buries]);
    t.same(2, await c.kick(2));
    t.same(ids[2], (await c.peekBuried()).id);
    t.same(true, await c.kickJob(ids[2]));
    t.same(1, (await c.statsJob(ids[2])).kicks);
    t.same(false, await c.kickJob(ids[2]));
    t.same(null, await c.peekBuried());
    for (const id of ids) await c.delete(id);
  });

  await t.check('stats and stats-tube parsed by node-beanstalk (js-yaml); pause-tube', async () => {
    const st = await c.stats();
    t.same(true, Number.isInteger(st.pid) && st.pid > 0);
    for (const k of ['version', 'hostname', 'os', 'platform', 'id']) {
      if (typeof st[k] !== 'string' || st[k] === '') throw new Error(`stats ${k}: ${st[k]}`);
    }
    t.same(true, await c.pauseTube('nb-a', 2));
    const ts = await c.statsTube('nb-a');
    t.same(['nb-a', 2], [ts.name, ts.pause]);
    const id = (await c.put('while paused')).id;
    t.same(null, await c.reserveWithTimeout(0));
    await c.pauseTube('nb-a', 0);
    t.same(id, (await c.reserveWithTimeout(1)).id);
    await c.delete(id);
  });

  await t.check('binary body with every byte value', async () => {
    const body = t.binaryBody();
    const id = (await c.put(body)).id;
    const job = await c.reserveWithTimeout(1);
    t.same([id, true], [job.id, Buffer.compare(body, job.payload) === 0]);
    t.same(true, Buffer.compare(body, (await c.peek(id)).payload) === 0);
    await c.delete(id);
  });

  await t.check('a body of exactly -z bytes, and one byte more', async () => {
    const body = Buffer.alloc(t.maxJobSize, 'z');
    const id = (await c.put(body)).id;
    t.same(true, Buffer.compare(body, (await c.reserveWithTimeout(1)).payload) === 0);
    await c.delete(id);
    await t.rejects(() => c.put(Buffer.alloc(t.maxJobSize + 1, 'z')), status('JOB_TOO_BIG'));
    await c.delete((await c.put('after')).id);
  });

  await t.check('errors: bad tube name, deadline soon, unknown job', async () => {
    await t.rejects(() => c.use('no spaces allowed'), () => true);
    t.same(null, await c.statsTube('never-made'));
    t.same(false, await c.bury(999999));
    t.same(false, await c.touch(999999));
    t.same(null, await c.release(999999));
    const id = (await c.put('short', 1)).id;
    await c.reserveWithTimeout(1);
    await t.rejects(() => c.reserveWithTimeout(1), status('DEADLINE_SOON'));
    await c.delete(id);
  });

  await t.check('a blocked reserve is woken by a put from another connection', async () => {
    const w = await client();
    await w.watch('nb-wake');
    await w.ignore('default');
    const waiting = w.reserveWithTimeout(5);
    await t.sleep(300);
    const p = await client();
    await p.use('nb-wake');
    const id = (await p.put('wake up')).id;
    const job = await waiting;
    t.same([id, 'wake up'], [job.id, job.payload.toString()]);
    await w.delete(id);
    await w.disconnect();
    await p.disconnect();
  });

  await t.check('a reserved job is released when its connection closes', async () => {
    const w = await client();
    await w.watch('nb-close');
    await w.ignore('default');
    await c.use('nb-close');
    const id = (await c.put('held')).id;
    t.same(id, (await w.reserveWithTimeout(1)).id);
    t.same('reserved', (await c.statsJob(id)).state);
    await w.disconnect(true);
    await t.eventually(async () => (await c.statsJob(id)).state === 'ready');
    await c.delete(id);
  });

  await c.disconnect();
  t.done();
}

main().catch((e) => {
  console.log(`not ok - the script itself: ${e && e.stack}`);
  process.exit(1);
});
