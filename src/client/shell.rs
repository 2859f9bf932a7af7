//! What the person at the terminal sees: running one command and printing
//! its result.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::fs;

use crate::client::batch::{
    BatchOptions, BatchProgress, BatchReport, Download, Failure, Finished, Step, Upload,
};
use crate::client::command::{Command, ListOptions, SyncOptions, Transfer, HELP};
use crate::client::listing::ListingPrinter;
use crate::client::progress::{batch_bar, progress_for};
use crate::client::sync::{plan_fetch, plan_send, remove_local, Compare, SyncPlan};
use crate::client::tree::{
    clean_relative, expand_local, has_wildcard, join, local_path, walk_local, LocalTree,
};
use crate::client::{local_upload_name, Client, GetReport, PutReport};
use crate::error::{Error, Result};
use crate::wire::message::{EntryKind, LsRequest, Usage};
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
/// Fails with the first error of the command; for a command on many
/// files every file is tried, and the error says how many failed.
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
            let moved = client.mv(from, to)?;
            let (from, to) = (escape(&moved.from), escape(&moved.to));
            wrote(writeln!(out, "moved {from} to {to}"))?
        }
        Command::Sync(how) => sync(client, how, options, out, err)?,
        Command::Help | Command::Quit => {}
    }
    Ok(Next::Continue)
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

/// `put`: one plain file the way it always went (a line with what the
/// server said); anything more as one pipelined batch.
fn put(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut steps = Vec::new();
    let mut skipped = 0;
    let mut unreadable = Vec::new();
    for source in &t.sources {
        let paths = match expand_local(source) {
            Ok(paths) => paths,
            Err(error) => {
                unreadable.push((source.into(), error));
                continue;
            }
        };
        for path in paths {
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    let error = Error::cannot_read(path.display(), &e);
                    unreadable.push((path, error));
                    continue;
                }
            };
            if meta.is_dir() {
                if !t.recursive {
                    let why = "a folder; put -r sends a folder with all it holds";
                    unreadable.push((path, Error::Usage(why.into())));
                    continue;
                }
                skipped += plan_folder_upload(&path, &mut steps, options, err)?;
            } else if meta.file_type().is_symlink() {
                skipped += 1;
                note_skipped(err, options, &path, "a symbolic link, not followed");
            } else {
                let name = match local_upload_name(&path) {
                    Ok(name) => name,
                    Err(error) => {
                        unreadable.push((path, error));
                        continue;
                    }
                };
                steps.push(Step::Upload(Upload {
                    local: path,
                    remote: name,
                    size: meta.len(),
                }));
            }
        }
    }
    if steps.is_empty() {
        if let [(path, error)] = unreadable.as_slice() {
            return Err(Error::Usage(format!("put {}: {error}", path.display())));
        }
    }
    for (path, error) in &unreadable {
        let _ = writeln!(
            err,
            "error: put {}: {error}",
            escape(&path.display().to_string())
        );
    }
    if let [Step::Upload(one)] = steps.as_slice() {
        if !t.recursive && !t.preserve && unreadable.is_empty() {
            let mut bar = progress_for(options.quiet);
            let report = client
                .put(&one.local, bar.as_mut())
                .map_err(|e| Error::Usage(format!("put {}: {e}", one.local.display())))?;
            return wrote(print_put(out, &report));
        }
    }
    let lines = t.verbose || !t.recursive;
    let batch = BatchOptions {
        preserve_mode: t.preserve,
        ask_before_replacing: false,
    };
    let mut report = run_batch(client, steps, batch, options, lines, out, err);
    report
        .failures
        .extend(unreadable.into_iter().map(|(path, error)| Failure {
            verb: "put",
            subject: path.display().to_string(),
            error,
        }));
    summarize("put", &report, skipped, options, out)
}

/// Plans a folder's upload: the folder of the same name in the current
/// server folder, everything below it made and sent. Returns how many
/// entries were skipped (links, special files, unusable names).
fn plan_folder_upload(
    path: &Path,
    steps: &mut Vec<Step>,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<usize> {
    let absolute = fs::canonicalize(path).map_err(|e| Error::cannot_read(path.display(), &e))?;
    let name = local_upload_name(&absolute)?;
    let tree = walk_local(&absolute)?;
    for (skipped, why) in &tree.skipped {
        note_skipped(err, options, skipped, why);
    }
    steps.push(Step::MakeFolder(name.clone()));
    steps.extend(
        tree.folders
            .iter()
            .map(|f| Step::MakeFolder(join(&name, f))),
    );
    steps.extend(tree.files.into_iter().map(|f| {
        Step::Upload(Upload {
            remote: join(&name, &f.relative),
            local: f.path,
            size: f.size,
        })
    }));
    Ok(tree.skipped.len())
}

fn note_skipped(err: &mut impl Write, options: ShellOptions, path: &Path, why: &str) {
    if !options.quiet {
        let shown = escape(&path.display().to_string());
        let _ = writeln!(err, "note: skipped {shown}: {why}");
    }
}

/// `get`: one plain file the way it always went; anything more (several
/// files, wildcards, folders) as one pipelined batch.
fn get(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let single = matches!(t.sources.as_slice(), [one] if !has_wildcard(one));
    if single && !t.recursive && !t.preserve {
        let name = &t.sources[0];
        let mut bar = progress_for(options.quiet);
        let local = t.local.as_deref().map(Path::new);
        let report = client.get(name, local, bar.as_mut())?;
        return wrote(print_get(out, name, &report));
    }
    let mut found = Vec::new();
    for source in &t.sources {
        found.extend(client.expand_remote(source)?);
    }
    let several = found.len() > 1 || t.recursive;
    let into = match &t.local {
        Some(local) => PathBuf::from(local),
        None => PathBuf::from("."),
    };
    // Several things, or a folder, go into LOCAL, which must be a folder;
    // one folder into a LOCAL that does not exist becomes LOCAL (as cp -r).
    let own_name = into.is_dir() || t.local.is_none();
    if several && !own_name && found.len() > 1 {
        return Err(Error::Usage(format!(
            "{} is not a folder; several files go into a folder",
            into.display()
        )));
    }
    let mut steps = Vec::new();
    for (path, kind) in found {
        let base = path.rsplit('/').next().unwrap_or(&path).to_string();
        let base = clean_relative(&base).map_err(|_| {
            Error::Usage(format!("cannot name a local file after {}", escape(&path)))
        })?;
        let target = match own_name {
            true => into.join(&base),
            false => into.clone(),
        };
        if kind == EntryKind::Dir || t.recursive {
            let entries = match client.list_tree(&path, false) {
                Ok(entries) => entries,
                // A file named on the command line, with -r.
                Err(Error::Remote { code, .. })
                    if code == "bad_name" || code == "not_found" && kind == EntryKind::File =>
                {
                    steps.push(Step::Download(Download {
                        remote: path,
                        local: target,
                        size: 0,
                    }));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !t.recursive {
                return Err(Error::Usage(format!(
                    "{} is a folder; get -r fetches a folder with all it holds",
                    escape(&path)
                )));
            }
            make_local_folder(&target)?;
            for e in entries {
                let local = local_path(&target, &e.relative);
                match e.kind {
                    EntryKind::Dir => make_local_folder(&local)?,
                    EntryKind::File => steps.push(Step::Download(Download {
                        remote: join(&path, &e.relative),
                        local,
                        size: e.size,
                    })),
                }
            }
        } else {
            steps.push(Step::Download(Download {
                remote: path,
                local: target,
                size: 0,
            }));
        }
    }
    let lines = t.verbose || !t.recursive;
    let batch = BatchOptions {
        preserve_mode: t.preserve,
        ask_before_replacing: true,
    };
    let report = run_batch(client, steps, batch, options, lines, out, err);
    summarize("get", &report, 0, options, out)
}

fn make_local_folder(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "{} exists and is not a folder",
            path.display()
        ))),
        Err(_) => fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e)),
    }
}

/// `rm [-r] PATH...`: every path (wildcards expanded) in one batch.
fn remove(
    client: &mut Client,
    paths: &[String],
    recursive: bool,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut steps = Vec::new();
    for pattern in paths {
        for (path, _) in client.expand_remote(pattern)? {
            steps.push(Step::Remove { path, recursive });
        }
    }
    let report = run_batch(
        client,
        steps,
        BatchOptions::default(),
        options,
        true,
        out,
        err,
    );
    match report.failures.len() {
        0 => Ok(()),
        1 if report.removed == 0 => {
            let f = &report.failures[0];
            Err(Error::Usage(format!(
                "rm {}: {}",
                escape(&f.subject),
                f.error
            )))
        }
        n => Err(Error::Usage(format!(
            "{n} of {} removals failed",
            n as u64 + report.removed
        ))),
    }
}

/// `sync SRC DST`.
fn sync(
    client: &mut Client,
    how: &SyncOptions,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let compare = match how.checksum {
        true => Compare::Checksum,
        false => Compare::SizeAndTime,
    };
    let sending = how.target.starts_with(':');
    let remote = match sending {
        true => &how.target[1..],
        false => &how.source[1..],
    };
    let remote = remote.trim_end_matches('/');
    let local = Path::new(match sending {
        true => &how.source,
        false => &how.target,
    });
    let theirs = match client.list_tree(remote, how.checksum) {
        Ok(entries) => entries,
        Err(Error::Remote { code, .. }) if code == "not_found" && sending => Vec::new(),
        Err(e) => return Err(e),
    };
    let plan = match sending {
        true => {
            let ours = walk_local(local)?;
            for (skipped, why) in &ours.skipped {
                note_skipped(err, options, skipped, why);
            }
            plan_send(&ours, remote, &theirs, compare, how.delete)
        }
        false => {
            let ours = match local.exists() {
                true => walk_local(local)?,
                false => LocalTree::default(),
            };
            plan_fetch(&theirs, remote, local, &ours, compare, how.delete)
        }
    };
    if how.dry_run {
        return print_plan(&plan, out);
    }
    for gone in &plan.local_removals {
        remove_local(gone).map_err(|e| Error::io(format!("removing {}", gone.display()), e))?;
        if how.verbose {
            wrote(writeln!(
                out,
                "removed {}",
                escape(&gone.display().to_string())
            ))?;
        }
    }
    for folder in &plan.local_folders {
        make_local_folder(folder)?;
    }
    let batch = BatchOptions {
        preserve_mode: how.preserve,
        ask_before_replacing: false,
    };
    let report = run_batch(client, plan.steps, batch, options, how.verbose, out, err);
    let removed = plan.local_removals.len() as u64;
    if !options.quiet {
        wrote(writeln!(
            out,
            "sync: {} files sent or fetched, {} up to date, {} removed",
            report.files,
            plan.unchanged,
            removed + report.removed
        ))?;
    }
    summarize("sync", &report, 0, options, out)
}

/// `sync -n`: what would be done.
fn print_plan(plan: &SyncPlan, out: &mut impl Write) -> Result<()> {
    for gone in &plan.local_removals {
        wrote(writeln!(
            out,
            "would remove {}",
            escape(&gone.display().to_string())
        ))?;
    }
    for step in &plan.steps {
        let line = match step {
            Step::MakeFolder(p) => format!("would make folder :{}", escape(p)),
            Step::Upload(u) => format!(
                "would send {} to :{}",
                escape(&u.local.display().to_string()),
                escape(&u.remote)
            ),
            Step::Download(d) => format!(
                "would fetch :{} to {}",
                escape(&d.remote),
                escape(&d.local.display().to_string())
            ),
            Step::Remove { path, .. } => format!("would remove :{}", escape(path)),
        };
        wrote(writeln!(out, "{line}"))?;
    }
    wrote(writeln!(
        out,
        "{} files up to date; nothing was changed (dry run)",
        plan.unchanged
    ))
}

/// Runs a batch with one progress bar, naming each step on `out` when
/// `lines`, and each failure on `err` as it happens.
fn run_batch(
    client: &mut Client,
    steps: Vec<Step>,
    batch: BatchOptions,
    options: ShellOptions,
    lines: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> BatchReport {
    let mut shown = Shown {
        // One step's failure is the command's error, shown once.
        echo_failures: steps.len() > 1,
        out,
        err,
        bar: None,
        quiet: options.quiet,
        lines,
        files_done: 0,
        files: 0,
    };
    client.run_batch(steps, batch, &mut shown)
}

/// A batch as the person at the terminal sees it.
struct Shown<'a, O: Write, E: Write> {
    echo_failures: bool,
    out: &'a mut O,
    err: &'a mut E,
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    lines: bool,
    files_done: u64,
    files: u64,
}

impl<O: Write, E: Write> Shown<'_, O, E> {
    fn print(&mut self, to_err: bool, line: String) {
        let (out, err) = (&mut *self.out, &mut *self.err);
        let mut write = || match to_err {
            true => writeln!(err, "{line}"),
            false => writeln!(out, "{line}"),
        };
        let _ = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
    }
}

impl<O: Write, E: Write> BatchProgress for Shown<'_, O, E> {
    fn begin(&mut self, files: u64, bytes: u64) {
        self.files = files;
        if files > 1 {
            self.bar = batch_bar(self.quiet, files, bytes);
        }
    }
    fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
    fn finished(&mut self, what: &Finished) {
        if matches!(
            what,
            Finished::Stored { .. } | Finished::Saved { .. } | Finished::Failed { .. }
        ) {
            self.files_done += 1;
            if let Some(bar) = &self.bar {
                bar.set_message(format!("{}/{} files", self.files_done, self.files));
            }
        }
        let line = match what {
            Finished::Failed { .. } if !self.echo_failures => return,
            Finished::Failed {
                verb,
                subject,
                error,
            } => {
                let line = format!("error: {verb} {}: {error}", escape(subject));
                return self.print(true, line);
            }
            _ if !self.lines => return,
            Finished::Stored {
                remote,
                size,
                resumed_from,
            } => {
                let resumed = match resumed_from {
                    0 => String::new(),
                    n => format!("; resumed at byte {n}"),
                };
                format!("stored {} ({size} bytes{resumed})", escape(remote))
            }
            Finished::Saved {
                local,
                size,
                resumed_from,
            } => {
                let resumed = match resumed_from {
                    0 => String::new(),
                    n => format!("; resumed at byte {n}"),
                };
                format!(
                    "saved {} ({size} bytes{resumed})",
                    escape(&local.display().to_string())
                )
            }
            Finished::Removed { path, entries } => match entries {
                1 => format!("removed {}", escape(path)),
                n => format!("removed {} ({n} files and folders)", escape(path)),
            },
            Finished::Made(_) => return,
        };
        self.print(false, line);
    }
    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The summary line of a batch; the command fails when any step did.
fn summarize(
    verb: &str,
    report: &BatchReport,
    skipped: usize,
    options: ShellOptions,
    out: &mut impl Write,
) -> Result<()> {
    let failed = report.failures.len();
    let many = report.files + failed as u64 > 1 || skipped > 0;
    if many && !options.quiet && verb != "sync" {
        let mut line = format!(
            "{verb}: {} files, {}",
            report.files,
            rate("moved", report.bytes, report.elapsed)
        );
        if skipped > 0 {
            line.push_str(&format!("; {skipped} skipped"));
        }
        if failed > 0 {
            line.push_str(&format!("; {failed} failed"));
        }
        wrote(writeln!(out, "{line}"))?;
    }
    match failed {
        0 => Ok(()),
        1 if report.files == 0 => {
            let f = &report.failures[0];
            Err(Error::Usage(format!(
                "{} {}: {}",
                f.verb,
                escape(&f.subject),
                f.error
            )))
        }
        n => Err(Error::Usage(format!(
            "{n} of {} files failed: {}",
            n as u64 + report.files,
            report
                .failures
                .iter()
                .take(5)
                .map(|f| escape(&f.subject))
                .collect::<Vec<_>>()
                .join(", ")
                + if n > 5 { ", ..." } else { "" }
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

/// What a failure to print is about.
const WRITING_OUTPUT: &str = "writing output";

/// Turns a failure to print into the library's error.
fn wrote(r: io::Result<()>) -> Result<()> {
    r.map_err(|e| Error::io(WRITING_OUTPUT, e))
}

/// Whether `e` says the output was closed by whoever read it (`| head`,
/// `| true`): not a failure of the command, so the program ends quietly
/// with success, as other command-line tools do.
pub fn output_closed(e: &Error) -> bool {
    matches!(e, Error::Io { context, source }
        if context == WRITING_OUTPUT && source.kind() == io::ErrorKind::BrokenPipe)
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
