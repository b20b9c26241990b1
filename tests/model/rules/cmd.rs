//! The commands the scripts send, as data and as bytes on the wire.

/// A command, as the generator writes it (and the harness sends it as
/// text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Vec<u8>,
    },
    Use(String),
    Watch(String),
    Ignore(String),
    Reserve,
    ReserveWithTimeout(u32),
    ReserveJob(u64),
    Delete(u64),
    Release {
        id: u64,
        pri: u32,
        delay: u32,
    },
    Bury {
        id: u64,
        pri: u32,
    },
    Touch(u64),
    Kick(u32),
    KickJob(u64),
    Peek(u64),
    PeekReady,
    PeekDelayed,
    PeekBuried,
    StatsJob(u64),
    StatsTube(String),
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube {
        name: String,
        delay: u32,
    },
    Quit,
}

impl Cmd {
    /// The line (and body) on the wire.
    pub fn wire(&self) -> Vec<u8> {
        let line = match self {
            Cmd::Put {
                pri,
                delay,
                ttr,
                body,
            } => {
                let mut v = format!("put {pri} {delay} {ttr} {}\r\n", body.len()).into_bytes();
                v.extend_from_slice(body);
                v.extend_from_slice(b"\r\n");
                return v;
            }
            Cmd::Use(t) => format!("use {t}"),
            Cmd::Watch(t) => format!("watch {t}"),
            Cmd::Ignore(t) => format!("ignore {t}"),
            Cmd::Reserve => "reserve".into(),
            Cmd::ReserveWithTimeout(s) => format!("reserve-with-timeout {s}"),
            Cmd::ReserveJob(id) => format!("reserve-job {id}"),
            Cmd::Delete(id) => format!("delete {id}"),
            Cmd::Release { id, pri, delay } => format!("release {id} {pri} {delay}"),
            Cmd::Bury { id, pri } => format!("bury {id} {pri}"),
            Cmd::Touch(id) => format!("touch {id}"),
            Cmd::Kick(n) => format!("kick {n}"),
            Cmd::KickJob(id) => format!("kick-job {id}"),
            Cmd::Peek(id) => format!("peek {id}"),
            Cmd::PeekReady => "peek-ready".into(),
            Cmd::PeekDelayed => "peek-delayed".into(),
            Cmd::PeekBuried => "peek-buried".into(),
            Cmd::StatsJob(id) => format!("stats-job {id}"),
            Cmd::StatsTube(t) => format!("stats-tube {t}"),
            Cmd::Stats => "stats".into(),
            Cmd::ListTubes => "list-tubes".into(),
            Cmd::ListTubeUsed => "list-tube-used".into(),
            Cmd::ListTubesWatched => "list-tubes-watched".into(),
            Cmd::PauseTube { name, delay } => format!("pause-tube {name} {delay}"),
            Cmd::Quit => "quit".into(),
        };
        format!("{line}\r\n").into_bytes()
    }

    /// The stats counter this command bumps, if stats shows one.
    pub(super) fn counter(&self) -> Option<&'static str> {
        Some(match self {
            Cmd::Put { .. } => "cmd-put",
            Cmd::Use(_) => "cmd-use",
            Cmd::Watch(_) => "cmd-watch",
            Cmd::Ignore(_) => "cmd-ignore",
            Cmd::Reserve => "cmd-reserve",
            Cmd::ReserveWithTimeout(_) => "cmd-reserve-with-timeout",
            Cmd::Delete(_) => "cmd-delete",
            Cmd::Release { .. } => "cmd-release",
            Cmd::Bury { .. } => "cmd-bury",
            Cmd::Touch(_) => "cmd-touch",
            Cmd::Kick(_) => "cmd-kick",
            Cmd::Peek(_) => "cmd-peek",
            Cmd::PeekReady => "cmd-peek-ready",
            Cmd::PeekDelayed => "cmd-peek-delayed",
            Cmd::PeekBuried => "cmd-peek-buried",
            Cmd::StatsJob(_) => "cmd-stats-job",
            Cmd::StatsTube(_) => "cmd-stats-tube",
            Cmd::Stats => "cmd-stats",
            Cmd::ListTubes => "cmd-list-tubes",
            Cmd::ListTubeUsed => "cmd-list-tube-used",
            Cmd::ListTubesWatched => "cmd-list-tubes-watched",
            Cmd::PauseTube { .. } => "cmd-pause-tube",
            // reserve-job and kick-job are counted where stats never looks.
            Cmd::ReserveJob(_) | Cmd::KickJob(_) | Cmd::Quit => return None,
        })
    }
}

/// The counters stats reports, in its order.
pub const COUNTERS: [&str; 22] = [
    "cmd-put",
    "cmd-peek",
    "cmd-peek-ready",
    "cmd-peek-delayed",
    "cmd-peek-buried",
    "cmd-reserve",
    "cmd-reserve-with-timeout",
    "cmd-delete",
    "cmd-release",
    "cmd-use",
    "cmd-watch",
    "cmd-ignore",
    "cmd-bury",
    "cmd-kick",
    "cmd-touch",
    "cmd-stats",
    "cmd-stats-job",
    "cmd-stats-tube",
    "cmd-list-tubes",
    "cmd-list-tube-used",
    "cmd-list-tubes-watched",
    "cmd-pause-tube",
];
