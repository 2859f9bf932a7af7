//! What the person at the terminal sees: running one command and printing
//! its result.

use std::io::{self, Write};
use std::time::Duration;

use crate::client::command::{Command, ListOptions, HELP};
use crate::client::listing::ListingPrinter;
use crate::client::{Client, GetReport, PutReport};
use crate::config::units::human;
use crate::error::{Error, Result, WRITING_OUTPUT};
use crate::wire::message::{ErrorCode, LsRequest, Moved, Usage};
use crate::wire::names::escape;

mod fetch;
mod filtered;
mod many;
mod rerun;
mod shown;
mod sync;
mod target;

use self::sync::sync;
use fetch::get;
use many::{note_skipped, put, remove};
use shown::{run_batch, summarize};

pub(crate) use crate::client::prompt::run_session;

/// How the shell behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShellOptions {
    /// No progress bars and no informational notes.
    pub(crate) quiet: bool,
}

/// Whether the session should go on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read another command.
    Continue,
    /// The user asked to leave.
    Quit,
}

/// Runs one command, printing results to `out` and notes to `err`.
///
/// Fails with the first error of the command; for a command on many
/// files every file is tried, and the error says how many failed.
pub(crate) fn run_command(
    client: &mut Client,
    command: &Command,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<Next> {
    if matches!(command, Command::Help) {
        wrote(writeln!(out, "{HELP}"))?;
        return Ok(Next::Continue);
    }
    if matches!(command, Command::Quit) {
        return Ok(Next::Quit);
    }
    if client.ensure_connected()? && !options.quiet {
        let _ = writeln!(
            err,
            "note: the connection had closed; reconnected to {}",
            client.addr()
        );
    }
    let mark = client.mark();
    match run(client, command, options, out, err) {
        // The server closed the idle connection as the command went out:
        // it never saw it, so it runs once more on a new connection.
        Err(_) if client.met_idle_close(mark) => {
            client.ensure_connected()?;
            run(client, command, options, out, err)?;
        }
        other => other?,
    }
    Ok(Next::Continue)
}

/// Runs a command on a connected client.
fn run(
    client: &mut Client,
    command: &Command,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    match command {
        Command::Put(t) => put(client, t, options, out, err)?,
        Command::Get(t) => get(client, t, options, out, err)?,
        Command::Ls { path, how } => list(client, path.as_deref(), *how, out)?,
        Command::Echo(text) => wrote(writeln!(out, "{}", escape(&client.echo(text)?)))?,
        Command::Quota => wrote(print_quota(out, &client.quota()?))?,
        Command::Mkdir(p) => wrote(writeln!(out, "created {}", escape(&client.mkdir(p)?)))?,
        Command::Cd(p) => wrote(writeln!(out, "{}", escape(&client.cd(p)?)))?,
        Command::Pwd => wrote(writeln!(out, "{}", escape(&client.pwd()?)))?,
        Command::Rm { paths, recursive } => remove(client, paths, *recursive, options, out, err)?,
        Command::Mv { from, to } => {
            let moved = move_to(client, from, to)?;
            let (from, to) = (escape(&moved.from), escape(&moved.to));
            wrote(writeln!(out, "moved {from} to {to}"))?
        }
        Command::Sync(how) => sync(client, how, options, out, err)?,
        Command::Help | Command::Quit => {}
    }
    Ok(())
}

/// `mv FROM TO`, where TO may be a folder to move into, as `mv` does:
/// `TO/` always is, and a TO that exists is one when the server lists it
/// as a folder.
fn move_to(client: &mut Client, from: &str, to: &str) -> Result<Moved> {
    let base = from
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(from);
    if to.ends_with('/') && !base.is_empty() {
        return client.mv(from, &format!("{to}{base}"));
    }
    match client.mv(from, to) {
        Err(Error::Remote {
            code: ErrorCode::Exists,
            ..
        }) if !base.is_empty() && is_folder(client, to) => {
            client.mv(from, &format!("{}/{base}", to.trim_end_matches('/')))
        }
        other => other,
    }
}

/// Whether the server lists `path` as a folder.
fn is_folder(client: &mut Client, path: &str) -> bool {
    let request = LsRequest {
        pages: true,
        path: Some(path.to_string()),
        ..LsRequest::default()
    };
    client.ls_with(request, |_| Ok(())).is_ok()
}

/// `ls [PATH]`, `ls -R`: prints each page as it arrives.
fn list(
    client: &mut Client,
    path: Option<&str>,
    how: ListOptions,
    out: &mut impl Write,
) -> Result<()> {
    let mut printer = ListingPrinter::new(how);
    let request = LsRequest {
        pages: true,
        path: path.map(str::to_string),
        recursive: how.recursive,
        digests: false,
    };
    let truncated = client.ls_with(request, |page| wrote(printer.page(out, &page)))?;
    wrote(printer.finish(out, truncated))
}

fn print_quota(out: &mut impl Write, u: &Usage) -> io::Result<()> {
    let (used, available) = (human(u.used), human(u.available));
    match (u.quota, u.available) {
        (Some(q), _) => writeln!(
            out,
            "used {used} of quota {}; {available} available",
            human(q)
        ),
        // An object store without a quota has no bound to report.
        (None, u64::MAX) => writeln!(out, "used {used} (no quota; the store sets no limit)"),
        (None, _) => writeln!(out, "used {used} (no quota); {available} available"),
    }
}

fn print_put(out: &mut impl Write, r: &PutReport) -> io::Result<()> {
    let d = &r.done;
    if !r.confirmed {
        return writeln!(
            out,
            "sent {} ({} bytes; {}; this server does not confirm uploads)",
            escape(&d.filename),
            d.size,
            rate("sent", d.received, r.elapsed)
        );
    }
    let mut notes = Vec::new();
    if r.restarted {
        notes.push("the server's partial data did not match, so it was sent again".to_string());
    } else if r.resumed_from > 0 {
        notes.push(format!("resumed at byte {}", r.resumed_from));
    }
    if d.replaced {
        notes.push("replaced the existing file".into());
    }
    notes.push(rate("sent", d.received, r.elapsed));
    if r.matched > 0 {
        let share = r.matched as f64 * 100.0 / d.size.max(1) as f64;
        notes.push(format!("{share:.1}% matched the stored file"));
    }
    writeln!(
        out,
        "stored {} ({} bytes; {})",
        escape(&d.filename),
        d.size,
        notes.join("; ")
    )
}

fn print_get(out: &mut impl Write, name: &str, r: &GetReport) -> io::Result<()> {
    let mut notes = Vec::new();
    if r.restarted {
        notes.push("the local partial data did not match, so it was fetched again".to_string());
    } else if r.resumed_from > 0 {
        notes.push(format!("resumed at byte {}", r.resumed_from));
    }
    notes.push(rate("received", r.received, r.elapsed));
    if r.matched > 0 {
        let share = r.matched as f64 * 100.0 / r.size.max(1) as f64;
        notes.push(format!("{share:.1}% matched the local copy"));
    }
    writeln!(
        out,
        "saved {} to {} ({} bytes; {})",
        escape(name),
        escape(&r.path.display().to_string()),
        r.size,
        notes.join("; ")
    )
}

/// Turns a failure to print into the library's error.
fn wrote(r: io::Result<()>) -> Result<()> {
    r.map_err(|e| Error::io(WRITING_OUTPUT, e))
}

pub(crate) use crate::error::output_closed;

/// Bytes moved in this run and their rate; resumed bytes are not counted.
fn rate(verb: &str, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let per_sec = human((bytes as f64 / secs) as u64);
    format!("{} {verb} in {secs:.2} s, {per_sec}/s", human(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_lines_say_what_bounds_the_space() {
        let line = |quota, available| {
            let mut out = Vec::new();
            let u = Usage {
                used: 1024,
                quota,
                available,
            };
            print_quota(&mut out, &u).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            line(Some(4096), 3072),
            "used 1.00 KiB of quota 4.00 KiB; 3.00 KiB available\n"
        );
        assert_eq!(
            line(None, 2048),
            "used 1.00 KiB (no quota); 2.00 KiB available\n"
        );
        assert_eq!(
            line(None, u64::MAX),
            "used 1.00 KiB (no quota; the store sets no limit)\n"
        );
    }
}
