//! A batch as the person at the terminal sees it: one progress bar, a
//! line per file with `-v`, failures as they happen, one summary line.

use std::io::Write;

use crate::client::batch::{BatchOptions, BatchProgress, BatchReport, Finished, Step};
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
                let resumed = resumed_note(*resumed_from);
                format!("stored {} ({size} bytes{resumed})", escape(remote))
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

/// The summary line of a batch; the command fails when any step did.
pub(super) fn summarize(
    verb: &str,
    report: &BatchReport,
    skipped: usize,
    options: ShellOptions,
    out: &mut impl Write,
) -> Result<()> {
    let failed = report.failures.len();
    if !options.quiet && verb != "sync" {
        let mut line = format!(
            "{verb}: {}, {}",
            files(report.files),
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

/// `1 file`, `2 files`.
pub(super) fn files(n: u64) -> String {
    match n {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

/// `; resumed at byte N` for a transfer that resumed, else nothing.
fn resumed_note(from: u64) -> String {
    match from {
        0 => String::new(),
        n => format!("; resumed at byte {n}"),
    }
}
