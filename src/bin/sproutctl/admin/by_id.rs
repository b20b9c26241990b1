//! The subcommands that name jobs by id: delete, kick-job.

use argh::FromArgs;

use super::one_server;
use crate::client::{Conn, Error};
use crate::output::{json_str, print};
use crate::{Ctx, exit};

#[derive(FromArgs)]
#[argh(subcommand, name = "delete")]
/// Delete jobs by id.
pub struct DeleteArgs {
    /// job ids
    #[argh(positional)]
    ids: Vec<u64>,
}

pub fn delete(ctx: &Ctx, a: DeleteArgs) -> i32 {
    by_ids(ctx, "delete", &a.ids, "deleted", |c, id| c.delete(id))
}

#[derive(FromArgs)]
#[argh(subcommand, name = "kick-job")]
/// Kick buried or delayed jobs by id.
pub struct KickJobArgs {
    /// job ids
    #[argh(positional)]
    ids: Vec<u64>,
}

pub fn kick_job(ctx: &Ctx, a: KickJobArgs) -> i32 {
    by_ids(ctx, "kick-job", &a.ids, "kicked", |c, id| c.kick_job(id))
}

/// Runs `each` on every id: NOT_FOUND for any is status 3, after the rest.
fn by_ids(
    ctx: &Ctx,
    what: &str,
    ids: &[u64],
    done: &str,
    mut each: impl FnMut(&mut Conn, u64) -> Result<bool, Error>,
) -> i32 {
    if ids.is_empty() {
        return exit::usage(&format!("{what} wants at least one job id"));
    }
    let mut c = match one_server(ctx, what) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let (mut ok, mut missing) = (Vec::new(), Vec::new());
    for &id in ids {
        match each(&mut c, id) {
            Ok(true) => ok.push(id),
            Ok(false) => missing.push(id),
            Err(e) => return exit::report(&e),
        }
    }
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    if ctx.json {
        print(&format!(
            "{{\"server\":{},\"{done}\":[{}],\"not_found\":[{}]}}\n",
            json_str(&c.addr),
            list(&ok),
            list(&missing)
        ));
    } else {
        for id in &ok {
            print(&format!("{done} {id}\n"));
        }
    }
    for id in &missing {
        eprintln!(
            "sproutctl: no job {id} that {what} can act on at {}",
            c.addr
        );
    }
    if missing.is_empty() {
        exit::OK
    } else {
        exit::NOT_FOUND
    }
}
