//! A batch as the person at the terminal sees it: one progress bar, a
//! line per file with `-v`, failures as they happen, one summary line.

use std::io::Write;

use crate::client::batch::{BatchOptions, BatchProgress, BatchReport, Finished, Step};
use crate::client::command::Transfer;
use crate::client::progress::batch_bar;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::names::escape;

use super::{rate, wrote, ShellOptions};

/// Runs a batch with one progress bar, naming each step on `out` when
/// `lines`, and each failure on `err` as it happens.
pub(super) fn run_batch(
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
        echoed: 0,
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
    /// Failures named so far.
    echoed: usize,
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
            // Past a few, failures are counted in the summary, not each
            // named, unless every file is named anyway.
            Finished::Failed { .. } if !self.lines && self.echoed >= ECHOED => return,
            Finished::Failed {
                verb,
                subject,
                error,
            } => {
                self.echoed += 1;
                let line = format!("error: {verb} {}: {error}", escape(subject));
                return self.print(true, line);
            }
            _ if !self.lines => return,
            Finished::Stored {
                remote,
                size,
                resumed_from,
                sent,
            } => {
                let resumed = resumed_note(*resumed_from);
                let delta = delta_note(*size - resumed_from.min(size), *sent, *size);
                format!("stored {} ({size} bytes{resumed}{delta})", escape(remote))
            }
            Finished::Saved {
                local,
                size,
                resumed_from,
            } => {
                let resumed = resumed_note(*resumed_from);
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

/// Failures named as they happen in a batch that does not name every
/// file; the summary counts the rest.
const ECHOED: usize = 3;

/// How a batch command ends, beyond its report.
pub(super) struct Ending<'a> {
    /// `put`, `get`, `sync`.
    pub(super) verb: &'static str,
    /// The command as it is typed again to finish a stopped run.
    pub(super) again: String,
    /// Entries left out while planning (links, special files).
    pub(super) skipped: usize,
    /// Files left out because the other side has them, the same.
    pub(super) up_to_date: u64,
    /// Name every file not moved (`-v`).
    pub(super) verbose: bool,
    /// Where to write the names of the files not moved.
    pub(super) failed_list: Option<&'a str>,
}

impl<'a> Ending<'a> {
    /// How `put` or `get` ends.
    pub(super) fn of(verb: &'static str, t: &'a Transfer, skipped: usize, up_to_date: u64) -> Self {
        Ending {
            verb,
            again: t.line(verb),
            skipped,
            up_to_date,
            verbose: t.verbose,
            failed_list: t.failed_list.as_deref(),
        }
    }
}

/// The summary line of a batch; the command fails when any step did, and
/// says in one sentence why a batch stopped and how to finish it.
pub(super) fn summarize(
    end: &Ending,
    mut report: BatchReport,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    if !options.quiet && end.verb != "sync" {
        wrote(writeln!(out, "{}", summary_line(end, &report)))?;
    }
    let left: Vec<String> = report
        .failures
        .iter()
        .map(|f| f.subject.clone())
        .chain(report.unfinished.iter().map(Step::subject))
        .collect();
    if let Some(path) = end.failed_list {
        write_list(path, &left)?;
    }
    if end.verbose {
        for name in report.unfinished.iter().map(Step::subject) {
            wrote(writeln!(err, "not done: {}", escape(&name)))?;
        }
    }
    if let Some(cause) = report.stopped.take() {
        return Err(Error::Stopped {
            command: end.again.clone(),
            cause: Box::new(cause),
            landed: report.files,
            missing: left.len() as u64,
        });
    }
    match report.failures.as_slice() {
        [] => Ok(()),
        [f] if report.files == 0 => Err(Error::Usage(format!(
            "{} {}: {}",
            f.verb,
            escape(&f.subject),
            f.error
        ))),
        failures => {
            let n = failures.len();
            let mut named: Vec<String> = left.iter().take(5).map(|s| escape(s)).collect();
            if n > 5 {
                named.push("... (-v or --failed-list FILE names them all)".into());
            }
            Err(Error::Usage(format!(
                "{n} of {} files failed: {}",
                n as u64 + report.files,
                named.join(", ")
            )))
        }
    }
}

/// `put: 3 files, 1.00 MiB moved in 0.10 s, 10.00 MiB/s; 2 already there`.
fn summary_line(end: &Ending, report: &BatchReport) -> String {
    let mut line = format!(
        "{}: {}, {}",
        end.verb,
        files(report.files),
        rate("moved", report.bytes, report.elapsed)
    );
    let counts = [
        (end.up_to_date, "already there"),
        (end.skipped as u64, "skipped"),
        (report.failures.len() as u64, "failed"),
        (report.unfinished.len() as u64, "not done"),
    ];
    for (n, what) in counts {
        if n > 0 {
            line.push_str(&format!("; {n} {what}"));
        }
    }
    line
}

/// Writes one name a line, for a rerun or a script to read.
fn write_list(path: &str, names: &[String]) -> Result<()> {
    let mut text = String::new();
    for name in names {
        text.push_str(name);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {path}"), e))
}

/// `1 file`, `2 files`.
pub(super) fn files(n: u64) -> String {
    match n {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

/// `; resumed at byte N` for a transfer that resumed, else nothing.
/// What a delta upload sent and what the server copied instead, when
/// fewer than the `due` bytes left to send crossed (`size` in all).
fn delta_note(due: u64, sent: u64, size: u64) -> String {
    if sent >= due {
        return String::new();
    }
    let matched = (due - sent) as f64 * 100.0 / size.max(1) as f64;
    format!("; {sent} bytes sent, {matched:.1}% matched the stored file")
}

fn resumed_note(from: u64) -> String {
    match from {
        0 => String::new(),
        n => format!("; resumed at byte {n}"),
    }
}
