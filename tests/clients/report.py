"""What every Python client script shares: the server's address from argv,
and one line per check ("ok - NAME" or "not ok - NAME: why"), read by
tests/clients.rs. A check that raises is a failure; the script goes on."""

import os
import sys
import time
import traceback


class Checks:
    def __init__(self, client, version):
        # argv: HOST PORT MAX_JOB_SIZE
        self.host = sys.argv[1]
        self.port = int(sys.argv[2])
        self.max_job_size = int(sys.argv[3])
        self.failed = 0
        print(f"client {client} {version}", flush=True)

    def __call__(self, name):
        """Decorator: runs the function at once as the check `name`."""

        def run(fn):
            try:
                fn()
                print(f"ok - {name}", flush=True)
            except Exception as e:  # noqa: BLE001 - any failure is reported
                self.failed += 1
                where = traceback.extract_tb(e.__traceback__)[-1]
                print(
                    f"not ok - {name}: {type(e).__name__}: {e} (line {where.lineno})",
                    flush=True,
                )
            return fn

        return run

    def done(self):
        sys.exit(1 if self.failed else 0)


def expect_raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}")


def eventually(cond, within=3.0):
    """Polls `cond` until it holds, for at most `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition did not hold in time")


def check_yaml_strictly(host, port):
    """stats, stats-job, stats-tube and the list commands through a raw
    socket, parsed by yaml.safe_load: every value must come out typed, and
    no string value may turn into None (an unquoted '#' starts a comment)."""
    import socket

    import yaml

    s = socket.create_connection((host, port))
    f = s.makefile("rb")

    def ask(cmd):
        s.sendall(cmd.encode() + b"\r\n")
        line = f.readline()
        word, *rest = line.split()
        assert word == b"OK", (cmd, line)
        data = f.read(int(rest[0]) + 2)
        return yaml.safe_load(data[:-2])

    s.sendall(b"put 0 0 10 1\r\nx\r\n")
    job_id = int(f.readline().split()[1])
    stats = ask("stats")
    assert isinstance(stats, dict) and len(stats) > 40, stats
    for k, v in stats.items():
        assert v is not None, f"stats {k} parsed as None"
    for k in ("version", "hostname", "os", "platform", "id"):
        assert isinstance(stats[k], str) and stats[k], f"stats {k}: {stats[k]!r}"
    assert isinstance(stats["rusage-utime"], float)
    assert isinstance(stats["current-jobs-ready"], int)
    job = ask(f"stats-job {job_id}")
    assert job["id"] == job_id and job["tube"] == "default" and job["state"] == "ready", job
    assert all(v is not None for v in job.values()), job
    tube = ask("stats-tube default")
    assert tube["name"] == "default" and tube["current-jobs-ready"] >= 1, tube
    assert "default" in ask("list-tubes")
    s.sendall(b"list-tube-used\r\n")
    assert f.readline() == b"USING default\r\n"
    assert ask("list-tubes-watched") == ["default"]
    s.sendall(f"delete {job_id}\r\n".encode())
    assert f.readline() == b"DELETED\r\n"
    s.close()


def tube_names():
    """(name, quoted) for each line of tube_names.txt: the names every
    client reads back, and whether sprout writes them in quotes."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    with open(os.path.join(here, "tube_names.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, how = line.split()
                out.append((name, how == "quoted"))
    return out


def check_tube_names_with_yaml(host, port):
    """stats-job's tube and stats-tube's name, read by yaml.safe_load,
    are each name exactly."""
    import socket

    import yaml

    s = socket.create_connection((host, port))
    f = s.makefile("rb")

    def ask(cmd):
        s.sendall(cmd)
        return f.readline()

    def doc(cmd):
        word, n = ask(cmd).split()
        assert word == b"OK", (cmd, word)
        return yaml.safe_load(f.read(int(n) + 2)[:-2])

    for name, _ in tube_names():
        assert ask(f"use {name}\r\n".encode()) == f"USING {name}\r\n".encode()
        jid = int(ask(b"put 0 0 60 1\r\nx\r\n").split()[1])
        got = (doc(f"stats-job {jid}\r\n".encode())["tube"],
               doc(f"stats-tube {name}\r\n".encode())["name"])
        assert got == (name, name), (name, got)
        assert ask(f"delete {jid}\r\n".encode()) == b"DELETED\r\n"
    s.close()
