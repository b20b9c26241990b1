//! What the model found, each kept as the short script that showed it.
//! A script passes when the engine and the model agree at every step.

use crate::rules::Cmd;
use crate::script::Step::{self, Send, Wait};

fn put(pri: u32, delay: u32, body: &str) -> Cmd {
    Cmd::Put {
        pri,
        delay,
        ttr: 10,
        body: body.into(),
    }
}

fn tube(name: &str) -> String {
    name.into()
}

fn agree(script: &[Step]) {
    if let Err(d) = crate::replay(script) {
        panic!("step {} ({}): {}", d.step, script[d.step], d.what);
    }
}

/// Timers due at one instant ran in the wheel's order (as inserted, and
/// shuffled by cascading), so which job a waiting client got depended on
/// which command came first. Now a delay ending goes before a pause
/// ending, as in beanstalkd's tick: the client gets the delayed job.
#[test]
fn a_delay_ending_with_a_pause_hands_out_the_delayed_job() {
    agree(&[
        Send(1, put(0, 0, "in default")),
        Send(
            2,
            Cmd::PauseTube {
                name: tube("default"),
                delay: 1,
            },
        ),
        Send(1, Cmd::Use(tube("a"))),
        Send(1, put(100, 1, "in a")),
        Send(0, Cmd::Watch(tube("a"))),
        Send(0, Cmd::Reserve),
        Wait(1000),
    ]);
}

/// Two pauses ending at one instant end together, then jobs go out: the
/// waiting client gets the better job of the two tubes, whichever tube's
/// pause was set first.
#[test]
fn pauses_ending_together_hand_out_the_best_job() {
    agree(&[
        Send(1, put(50, 0, "default")),
        Send(1, Cmd::Use(tube("a"))),
        Send(1, put(5, 0, "a")),
        Send(
            2,
            Cmd::PauseTube {
                name: tube("default"),
                delay: 1,
            },
        ),
        Send(
            2,
            Cmd::PauseTube {
                name: tube("a"),
                delay: 1,
            },
        ),
        Send(0, Cmd::Watch(tube("a"))),
        Send(0, Cmd::Reserve),
        Wait(1000),
    ]);
}

/// Delays ending at one instant go in id order, each job handed out as
/// it becomes ready (beanstalkd's tick), whatever order the wheel holds
/// them in: here the later job's delay was set first.
#[test]
fn delays_ending_together_go_in_id_order() {
    agree(&[
        Send(1, put(9, 0, "one")),
        Send(1, put(0, 3, "two")),
        Send(1, Cmd::Reserve),
        Wait(1000),
        Send(
            1,
            Cmd::Release {
                id: 1,
                pri: 9,
                delay: 2,
            },
        ),
        Send(0, Cmd::Reserve),
        Wait(2000),
    ]);
}
