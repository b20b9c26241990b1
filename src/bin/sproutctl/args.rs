//! The command line as people type it: global flags before or after the
//! subcommand, a lone `-` for stdin, server addresses and tube names
//! checked before anything is sent, and argh's messages in sproutctl's
//! voice with a pointer to the subcommand's --help.

use std::io::Read;

use sprout::protocol::valid_tube_name;

use crate::{exit, output};

/// Every subcommand's name, as argh knows them.
pub const SUBCOMMANDS: [&str; 13] = [
    "put",
    "peek",
    "delete",
    "kick",
    "kick-job",
    "pause",
    "flush",
    "stats",
    "tubes",
    "top",
    "work",
    "call",
    "supervise",
];

/// The global flags that take a value.
const GLOBAL_OPTIONS: [&str; 3] = ["--server", "--etcd", "--cluster"];

/// Where the subcommand is in `args`, if one is named.
pub fn subcommand(args: &[String]) -> Option<usize> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut i = 0;
    while i < end {
        let a = args[i].as_str();
        if SUBCOMMANDS.contains(&a) {
            return Some(i);
        }
        // --server takes a value, which might spell a subcommand's name.
        i += if GLOBAL_OPTIONS.contains(&a) { 2 } else { 1 };
    }
    None
}

/// argh reads the global flags (`--server`, `--json`) only before the
/// subcommand; people type them anywhere. Those after it (and before a
/// `--`, past which everything is the command's) move to just before it.
pub fn hoist_globals(mut args: Vec<String>) -> Vec<String> {
    let Some(sub) = subcommand(&args) else {
        return args;
    };
    let mut moved = Vec::new();
    let mut i = sub + 1;
    while i < args.len() && args[i] != "--" {
        let a = args[i].as_str();
        let joined = GLOBAL_OPTIONS
            .iter()
            .any(|o| a.starts_with(&format!("{o}=")));
        if a == "--json" || joined {
            moved.push(args.remove(i));
        } else if GLOBAL_OPTIONS.contains(&a) && i + 1 < args.len() {
            moved.push(args.remove(i));
            moved.push(args.remove(i));
        } else {
            i += 1;
        }
    }
    // argh wants `--server X`, not `--server=X`.
    let moved = moved.into_iter().flat_map(|a| match a.split_once('=') {
        Some((o, v)) if GLOBAL_OPTIONS.contains(&o) => vec![o.to_string(), v.to_string()],
        _ => vec![a],
    });
    args.splice(sub..sub, moved);
    args
}

/// argh reads a lone `-` as an unknown flag; for put and call it is the
/// body from stdin, as in every Unix tool. It is moved after a `--`.
pub fn stdin_dash(mut args: Vec<String>) -> Vec<String> {
    let sub = subcommand(&args).filter(|&i| matches!(args[i].as_str(), "put" | "call"));
    if let Some(sub) = sub
        && !args.iter().any(|a| a == "--")
        && let Some(at) = args.iter().skip(sub).position(|a| a == "-")
    {
        args.remove(sub + at);
        args.extend(["--".to_string(), "-".to_string()]);
    }
    args
}

/// A server address is HOST:PORT (an IPv6 host in brackets), the port
/// 1 to 65535; anything else is a usage error, caught before a connect
/// would report it as a server that is down.
pub fn check_server(addr: &str, from: &str) -> Result<(), String> {
    let form = "HOST:PORT, as 127.0.0.1:11300 or [::1]:11300";
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("{from} {addr:?} has no port: give {form}"));
    };
    if host.is_empty() {
        return Err(format!("{from} {addr:?} has no host: give {form}"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if host.contains(':') && !bracketed {
        return Err(format!(
            "{from} {addr:?}: an IPv6 host goes in brackets: give {form}"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "{from} {addr:?}: the port must be a number from 1 to 65535: give {form}"
        )),
    }
}

/// The one message every subcommand gives for a bad tube name.
pub fn check_tube(t: &str) -> Result<(), i32> {
    if valid_tube_name(t.as_bytes()) {
        Ok(())
    } else {
        Err(exit::usage(&format!(
            "{t:?} is not a tube name: 1 to 200 of A-Z a-z 0-9 - + / ; . $ _ ( ), not starting with -"
        )))
    }
}

/// A body given as an argument, or read from stdin when it is `-` or
/// absent (put and call). On a terminal, says so first, rather than
/// waiting in silence for input nobody knows is wanted.
pub fn body_arg(arg: Option<&str>) -> Result<Vec<u8>, i32> {
    match arg {
        Some("-") | None => {
            if output::stdin_is_terminal() {
                eprintln!("sproutctl: reading the body from stdin; end it with Ctrl-D");
            }
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).map_err(|e| {
                eprintln!("sproutctl: cannot read the body from stdin: {e}");
                exit::USAGE
            })?;
            Ok(b)
        }
        Some(b) => Ok(b.as_bytes().to_vec()),
    }
}

/// argh's message for a bad command line, as sproutctl says things.
pub fn argh_error(output: &str, sub: Option<&str>) -> String {
    let help = match sub {
        Some(s) => format!("sproutctl {s} --help"),
        None => "sproutctl --help".to_string(),
    };
    format!("sproutctl: {} (see {help})", output.trim_end())
}

/// argh's help, with `work`'s command spelled as it is typed.
pub fn help_text(output: &str, sub: Option<&str>) -> String {
    match sub {
        Some("work") => output.replace("[command...]", "-- COMMAND [ARGS...]"),
        _ => output.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn globals_after_the_subcommand_move_before_it() {
        assert_eq!(
            hoist_globals(v("stats --json --server a:1 mail")),
            v("--json --server a:1 stats mail")
        );
        assert_eq!(
            hoist_globals(v("--server a:1 put --server=b:2 x")),
            v("--server a:1 --server b:2 put x")
        );
        // Past `--` everything is the command's.
        assert_eq!(
            hoist_globals(v("work --tube t -- cmd --json")),
            v("work --tube t -- cmd --json")
        );
        // A server whose value spells a subcommand is not one.
        assert_eq!(
            hoist_globals(v("--server put:1 tubes --json")),
            v("--server put:1 --json tubes")
        );
    }

    #[test]
    fn addresses_are_checked_for_their_form() {
        for ok in [
            "127.0.0.1:11300",
            "localhost:1",
            "[::1]:11300",
            "q.example:65535",
        ] {
            assert_eq!(check_server(ok, "--server"), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            ":99999",
            "h:99999",
            "h:0",
            "h:",
            ":11300",
            "::1:11300",
            "h:x",
        ] {
            let e = check_server(bad, "--server").unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad}: {e}");
        }
    }
}
