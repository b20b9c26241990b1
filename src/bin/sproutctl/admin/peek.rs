//! `peek`: a job's stats and body, by id or the next of a state.

use std::io::Write;

use argh::FromArgs;

use super::one_server;
use crate::args::check_tube;
use crate::client::Error;
use crate::output::{self, json_body, json_map, json_str, print};
use crate::{Ctx, exit};

#[derive(FromArgs)]
#[argh(subcommand, name = "peek")]
/// Show a job's stats and body: by id, or the next ready, delayed or
/// buried job of a tube.
pub struct PeekArgs {
    /// the next ready job
    #[argh(switch)]
    ready: bool,
    /// the delayed job next to be ready
    #[argh(switch)]
    delayed: bool,
    /// the next buried job to be kicked
    #[argh(switch)]
    buried: bool,
    /// tube for --ready, --delayed, --buried (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    tube: String,
    /// job id
    #[argh(positional)]
    id: Option<u64>,
}

pub fn peek(ctx: &Ctx, a: PeekArgs) -> i32 {
    let states = [
        (a.ready, "ready"),
        (a.delayed, "delayed"),
        (a.buried, "buried"),
    ];
    let chosen: Vec<&str> = states
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect();
    let command = match (a.id, chosen.as_slice()) {
        (Some(id), []) => format!("peek {id}"),
        (None, [state]) => format!("peek-{state}"),
        _ => return exit::usage("peek wants a job id, or one of --ready, --delayed, --buried"),
    };
    if let Err(s) = check_tube(&a.tube) {
        return s;
    }
    let mut c = match one_server(ctx, "peek") {
        Ok(c) => c,
        Err(s) => return s,
    };
    let found = (|| {
        if a.id.is_none() {
            c.use_tube(&a.tube)?;
        }
        let Some(job) = c.peek(&command)? else {
            return Ok(None);
        };
        // The job may go between the peek and its stats.
        let stats = c.stats_job(job.id)?.unwrap_or_default();
        Ok::<_, Error>(Some((job, stats)))
    })();
    let (job, stats) = match found {
        Ok(Some(j)) => j,
        Ok(None) => {
            match a.id {
                Some(id) => eprintln!("sproutctl: no job {id} on {}", c.addr),
                None => eprintln!("sproutctl: no {} job in tube {}", chosen[0], a.tube),
            }
            return exit::NOT_FOUND;
        }
        Err(e) => return exit::report(&e),
    };
    if ctx.json {
        print(&format!(
            "{{\"server\":{},\"id\":{},\"stats\":{},{}}}\n",
            json_str(&c.addr),
            job.id,
            json_map(&stats),
            json_body(&job.body)
        ));
    } else if output::stdout_is_terminal() {
        print(&output::pairs(&stats));
        print(&format!("\n{}\n", output::escaped(&job.body)));
    } else {
        // Piped: the body byte for byte, the stats beside it on stderr.
        eprint!("{}", output::pairs(&stats));
        let _ = std::io::stdout().write_all(&job.body);
    }
    exit::OK
}
