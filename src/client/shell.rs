//! What the person at the terminal sees: running one command and printing
//! its result.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::command::{Command, ListOptions, HELP};
use crate::client::listing::ListingPrinter;
use crate::client::progress::progress_for;
use crate::client::{local_upload_name, Client, GetReport, PutReport};
use crate::error::{Error, Result};
use crate::wire::message::Usage;
use crate::wire::names::escape;

pub use crate::client::prompt::run_session;

/// How the shell behaves.
#[derive(Debug, Clone, Copy)]
pub struct ShellOptions {
    /// No progress bars and no informational notes.
    pub quiet: bool,
}

/// Whether the session should go on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read another command.
    Continue,
    /// The user asked to leave.
    Quit,
}

/// Runs one command, printing results to `out` and notes to `err`.
///
/// Fails with the first error of the command; for `put` of several files
/// every file is tried and the last error is returned.
pub fn run_command(
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
    match command {
        Command::Put(files) => put_files(client, files, options, out, err)?,
        Command::PutTree(folders) => put_trees(client, folders, options, out, err)?,
        Command::Get { name, local } => {
            let mut bar = progress_for(options.quiet);
            let report = client.get(name, local.as_deref().map(Path::new), bar.as_mut())?;
            wrote(print_get(out, name, &report))?;
        }
        Command::Ls(how) => list(client, *how, out)?,
        Command::Echo(text) => wrote(writeln!(out, "{}", escape(&client.echo(text)?)))?,
        Command::Quota => wrote(print_quota(out, &client.quota()?))?,
        Command::Mkdir(p) => wrote(writeln!(out, "created {}", escape(&client.mkdir(p)?)))?,
        Command::Cd(p) => wrote(writeln!(out, "{}", escape(&client.cd(p)?)))?,
        Command::Pwd => wrote(writeln!(out, "{}", escape(&client.pwd()?)))?,
        Command::Rm(n) => wrote(writeln!(out, "removed {}", escape(&client.rm(n)?)))?,
        Command::Help | Command::Quit => {}
    }
    Ok(Next::Continue)
}

/// `ls`: prints each page as it arrives.
fn list(client: &mut Client, how: ListOptions, out: &mut impl Write) -> Result<()> {
    let mut printer = ListingPrinter::new(how);
    let truncated = client.ls(|page| wrote(printer.page(out, &page)))?;
    wrote(printer.finish(out, truncated))
}

/// `put FILE...`: every file is tried; a broken connection is reopened
/// between files, and the files left when that fails are counted.
fn put_files(
    client: &mut Client,
    files: &[String],
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut failed = 0;
    for (i, file) in files.iter().enumerate() {
        match put_file(client, Path::new(file), options, out) {
            Ok(()) => {}
            // One file: its error is the command's error, shown once.
            Err(e) if files.len() == 1 => return Err(Error::Usage(format!("put {file}: {e}"))),
            Err(e) => {
                let _ = writeln!(err, "error: put {file}: {e}");
                failed += 1;
                if let Err(e) = client.ensure_connected() {
                    let left = files.len() - i - 1;
                    let _ = writeln!(err, "error: {e}; {left} more files not sent");
                    failed += left;
                    break;
                }
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} uploads failed",
            files.len()
        ))),
    }
}

/// `put -r FOLDER...`.
fn put_trees(
    client: &mut Client,
    folders: &[String],
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut tally = Tally::default();
    for folder in folders {
        if let Err(e) = put_tree(client, Path::new(folder), options, &mut tally, out, err) {
            let _ = writeln!(err, "error: put -r {folder}: {e}");
            tally.failed += 1;
        }
    }
    match tally.failed {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} uploads failed",
            n + tally.stored
        ))),
    }
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
    r.map_err(|e| Error::io("writing output", e))
}

/// Uploads one file with a progress bar and prints what the server said.
fn put_file(
    client: &mut Client,
    path: &Path,
    options: ShellOptions,
    out: &mut impl Write,
) -> Result<()> {
    let mut bar = progress_for(options.quiet);
    let report = client.put(path, bar.as_mut())?;
    wrote(print_put(out, &report))
}

/// Files stored and failed in a `put -r`.
#[derive(Debug, Default)]
struct Tally {
    stored: usize,
    failed: usize,
}

/// Uploads a local folder as a folder of the same name in the current
/// server folder, then returns there. Every name is checked one path
/// component at a time, by the client and again by the server; symbolic
/// links are skipped, not followed.
fn put_tree(
    client: &mut Client,
    local: &Path,
    options: ShellOptions,
    tally: &mut Tally,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(local).map_err(|e| Error::cannot_read(local.display(), &e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("{} is not a folder", local.display())));
    }
    let absolute =
        std::fs::canonicalize(local).map_err(|e| Error::cannot_read(local.display(), &e))?;
    let name = local_upload_name(&absolute)?;
    let start = client.pwd()?;
    let remote = join_remote(&start, &name);
    let result = upload_folder(client, &absolute, &remote, options, tally, out, err);
    client.cd(&start)?;
    result
}

fn join_remote(folder: &str, name: &str) -> String {
    format!("{}/{name}", folder.trim_end_matches('/'))
}

/// Uploads the regular files among `entries`, skipping (with a note)
/// anything that is neither file nor folder; returns the folders.
fn put_folder_files(
    client: &mut Client,
    entries: Vec<std::fs::DirEntry>,
    remote: &str,
    options: ShellOptions,
    tally: &mut Tally,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if kind.is_dir() {
            folders.push(path);
        } else if kind.is_file() {
            match put_file(client, &path, options, out) {
                Ok(()) => tally.stored += 1,
                Err(e) => {
                    tally.failed += 1;
                    let shown = escape(&path.display().to_string());
                    let _ = writeln!(err, "error: put {shown}: {e}");
                    client.ensure_connected()?;
                    client.cd(remote)?;
                }
            }
        } else if !options.quiet {
            let _ = writeln!(
                err,
                "note: skipped {}: not a regular file or folder",
                escape(&path.display().to_string())
            );
        }
    }
    Ok(folders)
}

fn upload_folder(
    client: &mut Client,
    local: &Path,
    remote: &str,
    options: ShellOptions,
    tally: &mut Tally,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    match client.mkdir(remote) {
        Ok(_) => {}
        Err(Error::Remote { code, .. }) if code == "exists" => {}
        Err(e) => return Err(e),
    }
    client.cd(remote)?;
    let mut entries: Vec<_> = std::fs::read_dir(local)
        .map_err(|e| Error::cannot_read(local.display(), &e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let folders = put_folder_files(client, entries, remote, options, tally, out, err)?;
    for path in folders {
        match local_upload_name(&path) {
            Ok(name) => upload_folder(
                client,
                &path,
                &join_remote(remote, &name),
                options,
                tally,
                out,
                err,
            )?,
            Err(e) => {
                tally.failed += 1;
                let _ = writeln!(err, "error: {e}");
            }
        }
    }
    Ok(())
}

/// Bytes moved in this run and their rate; resumed bytes are not counted.
fn rate(verb: &str, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let per_sec = human((bytes as f64 / secs) as u64);
    format!("{} {verb} in {secs:.2} s, {per_sec}/s", human(bytes))
}

/// `1536` → `1.50 KiB`.
pub fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
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

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.50 KiB");
        assert_eq!(human(3 << 30), "3.00 GiB");
    }
}
