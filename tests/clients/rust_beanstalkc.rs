//! The `beanstalkc` crate (crates.io) against a running sprout: every
//! command it exposes (it has no reserve-job).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use beanstalkc::{Beanstalkc, BeanstalkcError};

use super::{MAX_JOB_SIZE, Outcome};

type Check = Result<(), String>;

fn connect(port: u16) -> Result<Beanstalkc, String> {
    Beanstalkc::new()
        .host("127.0.0.1")
        .port(port)
        .connect()
        .map_err(|e| e.to_string())
}

/// Turns a client error into a check failure with its text.
fn ok<T>(r: Result<T, BeanstalkcError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn same<T: PartialEq + std::fmt::Debug>(want: T, got: T) -> Check {
    if want == got {
        Ok(())
    } else {
        let show = |v: &T| format!("{v:?}").chars().take(80).collect::<String>();
        Err(format!("expected {}, got {}", show(&want), show(&got)))
    }
}

/// The command failed with the reply `status` (as beanstalkc names it).
fn fails_with<T>(status: &str, r: Result<T, BeanstalkcError>) -> Check {
    match r {
        Err(BeanstalkcError::CommandFailed(s)) if s == status => Ok(()),
        Err(e) => Err(format!("expected {status}, got {e}")),
        Ok(_) => Err(format!("expected {status}, got success")),
    }
}

fn field(m: &HashMap<String, String>, k: &str) -> String {
    m.get(k).cloned().unwrap_or_default()
}

fn eventually(mut cond: impl FnMut() -> bool) -> Check {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("condition did not hold in time".into())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn run(port: u16) -> Outcome {
    let mut out = Outcome {
        client: "beanstalkc".into(),
        version: "1.0.0".into(),
        passed: Vec::new(),
        failed: Vec::new(),
        trouble: None,
        not_run: None,
    };
    let mut c = match connect(port) {
        Ok(c) => c,
        Err(e) => {
            out.trouble = Some(e);
            return out;
        }
    };
    let mut check = |name: &str, r: Check| match r {
        Ok(()) => out.passed.push(name.to_string()),
        Err(e) => out.failed.push(format!("{name}: {e}")),
    };

    check(
        "use, watch, ignore and the list commands",
        (|| {
            same("rs-a".to_string(), ok(c.use_tube("rs-a"))?)?;
            same("rs-a".to_string(), ok(c.using())?)?;
            same(2, ok(c.watch("rs-a"))?)?;
            same(1, ok(c.ignore("default"))?)?;
            same(vec!["rs-a".to_string()], ok(c.watching())?)?;
            fails_with("NotIgnored", c.ignore("rs-a"))?;
            let tubes = ok(c.tubes())?;
            same(
                true,
                tubes.contains(&"default".into()) && tubes.contains(&"rs-a".into()),
            )
        })(),
    );

    check(
        "tube names read back by stats-job and stats-tube (serde_yaml)",
        (|| {
            for (name, _) in super::tube_names() {
                ok(c.use_tube(name))?;
                let id = ok(c.put(b"x", 0, secs(0), secs(60)))?;
                let job = field(&ok(c.stats_job(id))?, "tube");
                let tube = field(&ok(c.stats_tube(name))?, "name");
                ok(c.delete(id))?;
                same((name.to_string(), name.to_string()), (job, tube))?;
            }
            Ok(())
        })(),
    );
    // Whatever that check met, the others use their own tube.
    let _ = c.use_tube("rs-a");

    check(
        "put with priority, delay and TTR, read back by stats-job",
        (|| {
            let id = ok(c.put(b"delayed", 42, secs(30), secs(77)))?;
            let st = ok(c.stats_job(id))?;
            same(
                ["42", "30", "77", "delayed", "rs-a"]
                    .map(String::from)
                    .to_vec(),
                ["pri", "delay", "ttr", "state", "tube"]
                    .iter()
                    .map(|k| field(&st, k))
                    .collect(),
            )?;
            same(id, ok(c.peek_delayed())?.id())?;
            ok(c.delete(id))?;
            fails_with("NotFound", c.peek(id))
        })(),
    );

    check(
        "reserve, reserve with timeout, delete",
        (|| {
            match c.reserve_with_timeout(secs(0)) {
                Err(BeanstalkcError::CommandFailed(s)) if s == "TimedOut" => {}
                Err(e) => return Err(format!("expected TimedOut, got {e}")),
                Ok(j) => return Err(format!("expected TimedOut, got job {}", j.id())),
            }
            let low = ok(c.put(b"low", 5, secs(0), secs(60)))?;
            let high = ok(c.put(b"high", 1, secs(0), secs(60)))?;
            let mut job = ok(c.reserve_with_timeout(secs(1)))?;
            same(
                (high, b"high".to_vec(), true),
                (job.id(), job.body().to_vec(), job.reserved()),
            )?;
            ok(job.delete())?;
            let mut job = ok(c.reserve())?;
            same(low, job.id())?;
            ok(job.delete())?;
            fails_with("NotFound", c.delete(low))
        })(),
    );

    check(
        "release with priority and delay; touch",
        (|| {
            let id = ok(c.put(b"again", 0, secs(0), secs(20)))?;
            let mut job = ok(c.reserve_with_timeout(secs(1)))?;
            same(id, job.id())?;
            std::thread::sleep(Duration::from_millis(1100));
            ok(job.touch())?;
            let left: u64 = field(&ok(job.stats())?, "time-left").parse().unwrap_or(0);
            same(true, left >= 19)?;
            ok(job.release(7, secs(1)))?;
            let st = ok(c.stats_job(id))?;
            same(
                ["delayed", "7", "1"].map(String::from).to_vec(),
                ["state", "pri", "releases"]
                    .iter()
                    .map(|k| field(&st, k))
                    .collect(),
            )?;
            eventually(|| {
                c.stats_job(id).map(|s| field(&s, "state")).ok() == Some("ready".into())
            })?;
            same(id, ok(c.peek_ready())?.id())?;
            ok(c.delete(id))
        })(),
    );

    check(
        "bury, peek-buried, kick, kick-job",
        (|| {
            let mut ids = Vec::new();
            for i in 0..3 {
                ids.push(ok(c.put(format!("b{i}").as_bytes(), 0, secs(0), secs(60)))?);
            }
            for _ in 0..3 {
                ok(ok(c.reserve_with_timeout(secs(1)))?.bury(9))?;
            }
            same(ids[0], ok(c.peek_buried())?.id())?;
            let st = ok(c.stats_job(ids[0]))?;
            same(
                ("buried".to_string(), "9".to_string()),
                (field(&st, "state"), field(&st, "pri")),
            )?;
            same(2, ok(c.kick(2))?)?;
            let mut last = ok(c.peek_buried())?;
            same(ids[2], last.id())?;
            ok(last.kick())?;
            fails_with("NotFound", c.kick_job(ids[2]))?;
            fails_with("NotFound", c.peek_buried())?;
            for id in ids {
                ok(c.delete(id))?;
            }
            Ok(())
        })(),
    );

    check(
        "stats and stats-tube parsed by beanstalkc (serde_yaml); pause-tube",
        (|| {
            let st = ok(c.stats())?;
            for k in [
                "pid", "version", "hostname", "os", "platform", "id", "uptime",
            ] {
                if field(&st, k).is_empty() {
                    return Err(format!("stats {k} missing or empty ({} keys)", st.len()));
                }
            }
            ok(c.pause_tube("rs-a", secs(2)))?;
            let t = ok(c.stats_tube("rs-a"))?;
            same(
                ("rs-a".to_string(), "2".to_string()),
                (field(&t, "name"), field(&t, "pause")),
            )?;
            let id = ok(c.put(b"while paused", 0, secs(0), secs(60)))?;
            match c.reserve_with_timeout(secs(0)) {
                Err(BeanstalkcError::CommandFailed(s)) if s == "TimedOut" => {}
                _ => return Err("a paused tube gave out a job".into()),
            }
            let mut job = ok(c.reserve_with_timeout(secs(4)))?;
            same(id, job.id())?;
            ok(job.delete())
        })(),
    );

    check(
        "binary body with every byte value",
        (|| {
            let mut body: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
            body.extend_from_slice(b"\r\n\r\n");
            let id = ok(c.put(&body, 0, secs(0), secs(60)))?;
            let mut job = ok(c.reserve_with_timeout(secs(1)))?;
            same((id, body.clone()), (job.id(), job.body().to_vec()))?;
            ok(job.delete())
        })(),
    );

    check(
        "a body of exactly -z bytes, and one byte more",
        (|| {
            let body = vec![b'z'; MAX_JOB_SIZE];
            let id = ok(c.put(&body, 0, secs(0), secs(60)))?;
            let mut job = ok(c.reserve_with_timeout(secs(1)))?;
            same(body.len(), job.body().len())?;
            ok(job.delete())?;
            let mut big = body.clone();
            big.push(b'z');
            fails_with("JobTooBig", c.put(&big, 0, secs(0), secs(60)))?;
            let after = ok(c.put(b"after", 0, secs(0), secs(60)))?;
            // The refused put took no id, as in beanstalkd.
            same(id + 1, after)?;
            ok(c.delete(after))
        })(),
    );

    check(
        "errors: bad tube name, deadline soon, unknown job",
        (|| {
            match c.use_tube("no spaces allowed") {
                Err(_) => {}
                Ok(t) => return Err(format!("a bad tube name was used: {t}")),
            }
            fails_with("NotFound", c.stats_tube("never-made"))?;
            fails_with("NotFound", c.bury(999_999, 0))?;
            fails_with("NotFound", c.touch(999_999))?;
            let id = ok(c.put(b"short", 0, secs(0), secs(1)))?;
            ok(c.reserve_with_timeout(secs(1)).map(|j| j.id()))?;
            match c.reserve_with_timeout(secs(1)) {
                Err(BeanstalkcError::CommandFailed(s)) if s == "DeadlineSoon" => {}
                Err(e) => return Err(format!("expected DeadlineSoon, got {e}")),
                Ok(j) => return Err(format!("expected DeadlineSoon, got job {}", j.id())),
            }
            ok(c.delete(id))
        })(),
    );

    check(
        "a blocked reserve is woken by a put from another connection",
        (|| {
            let waiter = std::thread::spawn(move || -> Result<(u64, Vec<u8>), String> {
                let mut w = connect(port)?;
                ok(w.watch("rs-wake"))?;
                let job = ok(w.reserve_with_timeout(secs(5)))?;
                Ok((job.id(), job.body().to_vec()))
            });
            std::thread::sleep(Duration::from_millis(300));
            let mut p = connect(port)?;
            ok(p.use_tube("rs-wake"))?;
            let id = ok(p.put(b"wake up", 0, secs(0), secs(60)))?;
            let got = waiter.join().map_err(|_| "waiter panicked".to_string())??;
            same((id, b"wake up".to_vec()), got)?;
            ok(p.delete(id))
        })(),
    );

    check(
        "a reserved job is released when its connection closes",
        (|| {
            let mut w = connect(port)?;
            ok(w.watch("rs-close"))?;
            ok(c.use_tube("rs-close"))?;
            let id = ok(c.put(b"held", 0, secs(0), secs(60)))?;
            same(id, ok(w.reserve_with_timeout(secs(1)))?.id())?;
            same(
                "reserved".to_string(),
                field(&ok(c.stats_job(id))?, "state"),
            )?;
            drop(w);
            eventually(|| {
                c.stats_job(id).map(|s| field(&s, "state")).ok() == Some("ready".into())
            })?;
            ok(c.delete(id))
        })(),
    );

    out
}
