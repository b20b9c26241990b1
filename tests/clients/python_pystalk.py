"""pystalk (PyPI) against a running sprout. pystalk reads most replies with
a single recv(), so each reply must arrive in one write. It has no touch,
peek by id, reserve-job or list-tube-used; the rest is checked here."""

import threading
import time
from importlib.metadata import version

from pystalk import BeanstalkClient, BeanstalkError

from report import Checks, eventually, tube_names

checks = Checks("pystalk", version("pystalk"))


def client(**kw):
    return BeanstalkClient(checks.host, checks.port, **kw)


def put(c, data, **kw):
    status, jid = c.put_job(data, **kw)
    assert status == b"INSERTED", status
    return jid


def error_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except BeanstalkError as e:
        return e.message
    raise AssertionError("expected a BeanstalkError")


c = client(auto_decode=True)


@checks("use, watch, ignore, list-tubes")
def _():
    c.use("ps-a")
    c.watch("ps-a")
    c.watch("ps-b")
    assert c.watchlist == {"ps-a", "ps-b"}, c.watchlist
    c.ignore("ps-b")
    assert c.watchlist == {"ps-a"}
    assert {"default", "ps-a"} <= set(c.list_tubes())


@checks("put with priority, delay and TTR, read back by stats-job")
def _():
    jid = put(c, "delayed", pri=42, delay=30, ttr=77)
    st = c.stats_job(jid)
    assert (st["pri"], st["delay"], st["ttr"], st["state"], st["tube"]) == (
        42, 30, 77, "delayed", "ps-a"), st
    assert c.peek_delayed().job_id == jid
    c.delete_job(jid)
    assert error_of(c.stats_job, jid) == "NOT_FOUND"


@checks("tube names read back by stats-job and stats-tube (PyYAML)")
def _():
    try:
        for name, _ in tube_names():
            c.use(name)
            jid = put(c, "x")
            got = (c.stats_job(jid)["tube"], c.stats_tube(name)["name"])
            c.delete_job(jid)
            assert got == (name, name), (name, got)
    finally:
        c.use("ps-a")


@checks("reserve with timeout, delete, put_job_into")
def _():
    assert error_of(c.reserve_job, 0) == "TIMED_OUT"
    a = put(c, "low", pri=5)
    with c.using("ps-a") as inserter:
        status, b = inserter.put_job("high", pri=1)
    job = c.reserve_job(1)
    assert (job.job_id, job.job_data) == (b, "high"), job
    c.delete_job(job)
    other = c.reserve_job(1)
    assert other.job_id == a
    c.delete_job(a)
    assert error_of(c.delete_job, a) == "NOT_FOUND"
    jid = c.put_job_into("ps-into", "elsewhere")[1]
    assert c.stats_job(jid)["tube"] == "ps-into"
    assert c.current_tube == "ps-a"
    c.watch("ps-into")
    assert c.reserve_job(1).job_id == jid
    c.delete_job(jid)
    c.ignore("ps-into")


@checks("release with priority and delay")
def _():
    jid = put(c, "again")
    job = c.reserve_job(1)
    c.release_job(job, pri=7, delay=1)
    st = c.stats_job(jid)
    assert (st["state"], st["pri"], st["releases"]) == ("delayed", 7, 1), st
    eventually(lambda: c.stats_job(jid)["state"] == "ready")
    assert c.peek_ready().job_id == jid
    c.delete_job(jid)


@checks("bury, peek-buried, kick, kick-job")
def _():
    ids = [put(c, f"b{i}") for i in range(3)]
    for _ in ids:
        c.bury_job(c.reserve_job(1), pri=9)
    assert c.peek_buried().job_id == ids[0]
    assert c.stats_job(ids[0])["buries"] == 1
    assert c.kick_jobs(2) == (b"KICKED", 2)
    assert next(c.peek_buried_iter()).job_id == ids[2]
    c.kick_job(ids[2])
    assert error_of(c.kick_job, ids[2]) == "NOT_FOUND"
    assert error_of(c.peek_buried) == "NOT_FOUND"
    for i in ids:
        c.delete_job(i)


@checks("stats and stats-tube through pystalk's YAML loader; pause-tube")
def _():
    st = c.stats()
    assert isinstance(st["pid"], int) and st["pid"] > 0
    for k in ("version", "hostname", "os", "platform", "id"):
        assert isinstance(st[k], str) and st[k], (k, st[k])
    c.pause_tube("ps-a", 2)
    t = c.stats_tube("ps-a")
    assert (t["name"], t["pause"]) == ("ps-a", 2), t
    jid = put(c, "while paused")
    assert error_of(c.reserve_job, 0) == "TIMED_OUT"
    c.unpause_tube("ps-a")
    assert c.reserve_job(1).job_id == jid
    c.delete_job(jid)


@checks("binary body with every byte value")
def _():
    b = client()
    b.use("ps-bin")
    b.watch("ps-bin")
    body = bytes(range(256)) * 4 + b"\r\n\r\n"
    jid = put(b, body)
    job = b.reserve_job(1)
    assert (job.job_id, job.job_data) == (jid, body)
    b.delete_job(jid)
    b.close()


@checks("a body of exactly -z bytes, and one byte more")
def _():
    body = b"z" * checks.max_job_size
    jid = put(c, body)
    assert c.reserve_job(1).job_data == body.decode()
    c.delete_job(jid)
    assert error_of(c.put_job, body + b"z") == "JOB_TOO_BIG"
    c.delete_job(put(c, "after"))


@checks("errors: bad tube name, deadline soon, unknown job")
def _():
    assert error_of(c.stats_tube, "never-made") == "NOT_FOUND"
    assert error_of(c.bury_job, 999999) == "NOT_FOUND"
    assert error_of(c.release_job, 999999) == "NOT_FOUND"
    assert error_of(c.stats_tube, "bad name") == "BAD_FORMAT"
    jid = put(c, "short", ttr=1)
    c.reserve_job(1)
    assert error_of(c.reserve_job, 1) == "DEADLINE_SOON"
    c.delete_job(jid)


@checks("a blocked reserve is woken by a put from another connection")
def _():
    w = client()
    w.watch("ps-wake")
    got = []
    t = threading.Thread(target=lambda: got.append(w.reserve_job(5)))
    t.start()
    time.sleep(0.3)
    jid = client().put_job_into("ps-wake", "wake up")[1]
    t.join(5)
    assert got and got[0].job_id == jid, got
    w.delete_job(jid)
    w.close()


@checks("a reserved job is released when its connection closes")
def _():
    w = client()
    w.watch("ps-close")
    jid = c.put_job_into("ps-close", "held")[1]
    assert w.reserve_job(1).job_id == jid
    assert c.stats_job(jid)["state"] == "reserved"
    w.close()
    eventually(lambda: c.stats_job(jid)["state"] == "ready")
    c.delete_job(jid)


c.close()
checks.done()
