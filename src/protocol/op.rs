//! The commands `stats` counts (`cmd-*`), by the names it shows.

/// Commands whose use is counted in `stats` (`cmd-*`), plus the two that
/// beanstalkd counts without ever showing the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Reserve,
    ReserveWithTimeout,
    Delete,
    Release,
    Use,
    Watch,
    Ignore,
    Bury,
    Kick,
    Touch,
    Stats,
    StatsJob,
    StatsTube,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
    ReserveJob,
    KickJob,
}

impl Op {
    pub const COUNT: usize = 24;

    /// Every op, in `stats` order, the two it never shows last.
    pub const ALL: [Op; Op::COUNT] = [
        Op::Put,
        Op::Peek,
        Op::PeekReady,
        Op::PeekDelayed,
        Op::PeekBuried,
        Op::Reserve,
        Op::ReserveWithTimeout,
        Op::Delete,
        Op::Release,
        Op::Use,
        Op::Watch,
        Op::Ignore,
        Op::Bury,
        Op::Kick,
        Op::Touch,
        Op::Stats,
        Op::StatsJob,
        Op::StatsTube,
        Op::ListTubes,
        Op::ListTubeUsed,
        Op::ListTubesWatched,
        Op::PauseTube,
        Op::ReserveJob,
        Op::KickJob,
    ];

    /// How many of [`ALL`](Self::ALL) `stats` shows (`cmd-*`).
    pub const SHOWN: usize = 22;

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Peek => "peek",
            Op::PeekReady => "peek-ready",
            Op::PeekDelayed => "peek-delayed",
            Op::PeekBuried => "peek-buried",
            Op::Reserve => "reserve",
            Op::ReserveWithTimeout => "reserve-with-timeout",
            Op::Delete => "delete",
            Op::Release => "release",
            Op::Use => "use",
            Op::Watch => "watch",
            Op::Ignore => "ignore",
            Op::Bury => "bury",
            Op::Kick => "kick",
            Op::Touch => "touch",
            Op::Stats => "stats",
            Op::StatsJob => "stats-job",
            Op::StatsTube => "stats-tube",
            Op::ListTubes => "list-tubes",
            Op::ListTubeUsed => "list-tube-used",
            Op::ListTubesWatched => "list-tubes-watched",
            Op::PauseTube => "pause-tube",
            Op::ReserveJob => "reserve-job",
            Op::KickJob => "kick-job",
        }
    }
}
