"""greenstalk (PyPI) against a running sprout: every command it exposes."""

import threading
import time
from importlib.metadata import version

import greenstalk as g

from report import (Checks, check_tube_names_with_yaml, check_yaml_strictly, eventually,
                    expect_raises, tube_names)

checks = Checks("greenstalk", version("greenstalk"))
addr = (checks.host, checks.port)
c = g.Client(addr, use="gs-a", watch=["gs-a", "gs-b"])
raw = g.Client(addr, encoding=None, use="gs-bin", watch="gs-bin")


@checks("use, watch, ignore and the list commands")
def _():
    assert c.using() == "gs-a"
    assert sorted(c.watching()) == ["gs-a", "gs-b"]
    assert c.watch("gs-c") == 3
    assert c.ignore("gs-c") == 2
    assert {"default", "gs-a", "gs-b"} <= set(c.tubes())
    solo = g.Client(addr)
    expect_raises(g.NotIgnoredError, solo.ignore, "default")
    solo.close()


@checks("put with priority, delay and TTR, read back by stats-job")
def _():
    jid = c.put("delayed", priority=42, delay=30, ttr=77)
    st = c.stats_job(jid)
    assert (st["pri"], st["delay"], st["ttr"], st["state"], st["tube"]) == (
        42, 30, 77, "delayed", "gs-a"), st
    assert 28 <= st["time-left"] <= 30, st
    assert c.peek_delayed().id == jid
    c.delete(jid)
    expect_raises(g.NotFoundError, c.peek, jid)


@checks("reserve, reserve with timeout, reserve-job, delete")
def _():
    expect_raises(g.TimedOutError, c.reserve, timeout=0)
    a = c.put("first", priority=2)
    b = c.put("second", priority=1)
    job = c.reserve(timeout=1)
    assert (job.id, job.body) == (b, "second")
    other = c.reserve_job(a)
    assert (other.id, other.body) == (a, "first")
    expect_raises(g.NotFoundError, c.reserve_job, a)  # already reserved
    c.delete(job)
    c.delete(other.id)
    expect_raises(g.NotFoundError, c.delete, a)


@checks("release with priority and delay; touch")
def _():
    jid = c.put("again", ttr=20)
    job = c.reserve(timeout=1)
    assert job.id == jid
    time.sleep(1.1)
    c.touch(job)
    assert c.stats_job(jid)["time-left"] >= 19
    c.release(job, priority=7, delay=1)
    st = c.stats_job(jid)
    assert (st["state"], st["pri"], st["releases"]) == ("delayed", 7, 1), st
    eventually(lambda: c.stats_job(jid)["state"] == "ready")
    assert c.peek_ready().id == jid
    c.delete(jid)


@checks("bury, peek-buried, kick, kick-job")
def _():
    ids = [c.put(f"b{i}") for i in range(3)]
    for i in ids:
        c.bury(c.reserve(timeout=1), priority=9)
    assert c.peek_buried().id == ids[0]
    st = c.stats_job(ids[0])
    assert (st["state"], st["pri"], st["buries"]) == ("buried", 9, 1), st
    assert c.kick(2) == 2
    assert c.peek_buried().id == ids[2]
    c.kick_job(ids[2])
    assert c.stats_job(ids[2])["kicks"] == 1
    expect_raises(g.NotFoundError, c.kick_job, ids[2])  # ready, not kickable
    expect_raises(g.NotFoundError, c.peek_buried)
    for i in ids:
        c.delete(i)


@checks("stats and stats-tube parsed by greenstalk; pause-tube")
def _():
    st = c.stats()
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert isinstance(st["version"], str)
    assert st["current-connections"] >= 2
    c.pause_tube("gs-a", 2)
    t = c.stats_tube("gs-a")
    assert (t["name"], t["pause"]) == ("gs-a", 2), t
    assert 0 < t["pause-time-left"] <= 2
    jid = c.put("while paused")
    expect_raises(g.TimedOutError, c.reserve, timeout=0)
    job = c.reserve(timeout=4)  # the pause ends
    assert job.id == jid
    c.delete(job)
    c.pause_tube("gs-a", 0)


@checks("stats YAML parses strictly with yaml.safe_load")
def _():
    check_yaml_strictly(checks.host, checks.port)


@checks("tube names read back by stats-job and stats-tube")
def _():
    # greenstalk turns a value int() takes into a number and strips the
    # quotes of the rest: every name comes back as it is.
    try:
        for name, _ in tube_names():
            c.use(name)
            jid = c.put("x")
            got = (c.stats_job(jid)["tube"], c.stats_tube(name)["name"])
            c.delete(jid)
            assert got == (name, name), (name, got)
    finally:
        c.use("gs-a")


@checks("tube names read back by yaml.safe_load")
def _():
    check_tube_names_with_yaml(checks.host, checks.port)


@checks("binary body with every byte value")
def _():
    body = bytes(range(256)) * 4 + b"\r\n\r\n"
    jid = raw.put(body)
    job = raw.reserve(timeout=1)
    assert (job.id, job.body) == (jid, body)
    assert raw.peek(jid).body == body
    raw.delete(job)


@checks("a body of exactly -z bytes, and one byte more")
def _():
    body = b"z" * checks.max_job_size
    jid = raw.put(body)
    assert raw.reserve(timeout=1).body == body
    raw.delete(jid)
    expect_raises(g.JobTooBigError, raw.put, body + b"z")
    # The connection goes on after the error.
    raw.delete(raw.put(b"after"))


@checks("errors: bad tube name, deadline soon, unknown job")
def _():
    expect_raises(g.BadFormatError, c.use, "no spaces allowed")
    expect_raises(g.NotFoundError, c.bury, g.Job(999999, ""))
    expect_raises(g.NotFoundError, c.touch, g.Job(999999, ""))
    expect_raises(g.NotFoundError, c.stats_tube, "never-made")
    jid = c.put("short", ttr=1)
    c.reserve(timeout=1)
    expect_raises(g.DeadlineSoonError, c.reserve, timeout=1)
    c.delete(jid)


@checks("a blocked reserve is woken by a put from another connection")
def _():
    w = g.Client(addr, watch="gs-wake")
    got = []
    t = threading.Thread(target=lambda: got.append(w.reserve(timeout=5)))
    t.start()
    time.sleep(0.3)
    p = g.Client(addr, use="gs-wake")
    jid = p.put("wake up")
    t.join(5)
    assert got and got[0].id == jid, got
    w.delete(jid)
    w.close()
    p.close()


@checks("a reserved job is released when its connection closes")
def _():
    w = g.Client(addr, watch="gs-close")
    p = g.Client(addr, use="gs-close")
    jid = p.put("held")
    assert w.reserve(timeout=1).id == jid
    assert p.stats_job(jid)["state"] == "reserved"
    w.close()
    eventually(lambda: p.stats_job(jid)["state"] == "ready")
    p.delete(jid)
    p.close()


c.close()
raw.close()
checks.done()
