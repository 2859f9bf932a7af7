//! Many files in one go: folders made, files uploaded, downloaded and
//! removed, all pipelined on one connection (see [`crate::client::pipeline`]).
//!
//! Every per-file guarantee of a single transfer holds: uploads land
//! atomically and are checked by BLAKE3 before the server commits them,
//! downloads are checked before they appear under their name, and a large
//! file resumes. One refused file does not stop the rest; a lost
//! connection is reopened and the batch goes on from the first step that
//! was not answered.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::lost::connection_lost;
use crate::client::pipeline::{Pipe, Window};
use crate::client::Client;
use crate::error::{Error, Result};

mod answer;
mod delta;
mod fetch_delta;
mod pass;
mod send;
mod sending;

use answer::requeued;
use pass::Pass;

/// One thing a batch does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make a folder on the server, and its parents; one that exists is fine.
    MakeFolder(String),
    /// Upload a local file to a path on the server.
    Upload(Upload),
    /// Download a file from the server.
    Download(Download),
    /// Remove a file, or a folder with everything in it, on the server.
    Remove {
        /// Path on the server.
        path: String,
        /// A folder and all it holds.
        recursive: bool,
    },
}

/// A file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The local file.
    pub local: PathBuf,
    /// Its path on the server, relative to the current folder.
    pub remote: String,
    /// Its size when the batch was planned, for the progress bar.
    pub size: u64,
}

/// A file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Its path on the server, relative to the current folder.
    pub(crate) remote: String,
    /// Where it goes.
    pub(crate) local: PathBuf,
    /// Its size as listed, for the progress bar.
    pub(crate) size: u64,
}

impl Step {
    /// What the step is about, as shown to the user.
    pub(crate) fn subject(&self) -> String {
        match self {
            Step::MakeFolder(p) | Step::Remove { path: p, .. } => p.clone(),
            Step::Upload(u) => u.local.display().to_string(),
            Step::Download(d) => d.remote.clone(),
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Step::MakeFolder(_) => "mkdir",
            Step::Upload(_) => "put",
            Step::Download(_) => "get",
            Step::Remove { .. } => "rm",
        }
    }

    fn size(&self) -> u64 {
        match self {
            Step::Upload(u) => u.size,
            Step::Download(d) => d.size,
            _ => 0,
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, Step::Upload(_) | Step::Download(_))
    }

    fn remote(&self) -> &str {
        match self {
            Step::MakeFolder(p) | Step::Remove { path: p, .. } => p,
            Step::Upload(u) => &u.remote,
            Step::Download(d) => &d.remote,
        }
    }
}

/// How a batch treats what it moves.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// Keep permission bits (`-p`); modification times are always kept.
    pub(crate) preserve_mode: bool,
    /// Apply the client's overwrite policy to local files a download would
    /// replace (`get`); off, they are replaced (`sync`, whose point that is).
    pub(crate) ask_before_replacing: bool,
}

/// A step that ended.
#[derive(Debug)]
pub enum Finished<'a> {
    /// A file stored on the server.
    Stored {
        /// Its path there.
        remote: &'a str,
        /// Its size.
        size: u64,
        /// Where the upload resumed, 0 when it started afresh.
        resumed_from: u64,
        /// Bytes that crossed for it; with a delta upload, fewer than the
        /// file's (the rest the server copied from the file it had).
        sent: u64,
    },
    /// A file saved locally.
    Saved {
        /// Where.
        local: &'a Path,
        /// Its size.
        size: u64,
        /// Where the download resumed.
        resumed_from: u64,
    },
    /// A folder made on the server.
    Made(&'a str),
    /// Something removed on the server.
    Removed {
        /// Its path.
        path: &'a str,
        /// Files and folders that went.
        entries: u64,
    },
    /// A step that failed.
    Failed {
        /// What it was: `put`, `get`, `mkdir`, `rm`.
        verb: &'static str,
        /// What it was about.
        subject: String,
        /// Why.
        error: &'a Error,
    },
}

/// Told how a batch advances: a progress bar, a list of files.
pub trait BatchProgress {
    /// The batch starts: this many files of this many bytes in all.
    fn begin(&mut self, _files: u64, _bytes: u64) {}
    /// `n` more bytes moved.
    fn advance(&mut self, _n: u64) {}
    /// One step ended.
    fn finished(&mut self, _what: &Finished) {}
    /// The batch ended.
    fn end(&mut self) {}
}

/// A failed step, for the summary.
#[derive(Debug)]
pub struct Failure {
    /// `put`, `get`, `mkdir`, `rm`.
    pub(crate) verb: &'static str,
    /// What it was about.
    pub(crate) subject: String,
    /// Why.
    pub(crate) error: Error,
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Files moved.
    pub(crate) files: u64,
    /// Bytes that crossed the network.
    pub(crate) bytes: u64,
    /// Folders made (or found there already).
    pub(crate) folders: u64,
    /// Removals on the server.
    pub(crate) removed: u64,
    /// Steps that failed.
    pub failures: Vec<Failure>,
    /// Why the batch stopped before its end (Ctrl-C, a connection that
    /// could not be reopened); `None` when every step was tried.
    pub stopped: Option<Error>,
    /// Steps not done, or not confirmed by the server, when it stopped.
    pub(crate) unfinished: Vec<Step>,
    /// From start to end.
    pub(crate) elapsed: Duration,
}

/// How often a batch reopens a lost connection before it gives up.
const RECONNECTS: u32 = 2;

/// A step sent and not yet answered.
struct InFlight {
    step: Step,
    cost: usize,
    tries: u32,
    sent: Sent,
}

/// What the reply to a sent step is checked against.
enum Sent {
    Plain,
    Put {
        size: u64,
        digest: blake3::Hash,
        resumed_from: u64,
    },
    Get {
        offset: u64,
        partial: PathBuf,
    },
}

/// A queued step and how often it was tried.
struct Queued {
    step: Step,
    tries: u32,
}

/// A failure that leaves the connection out of step: the batch reconnects.
struct Lost(Error);

/// A lost connection while a step's reply was read: the step goes again.
struct Unanswered(Lost, Box<InFlight>);

impl Client {
    /// Runs `steps` in order, pipelined, and reports what happened to each
    /// to `progress`. Never fails as a whole: each step's failure is in
    /// the report, and the steps after it still run.
    pub fn run_batch(
        &mut self,
        steps: Vec<Step>,
        options: BatchOptions,
        progress: &mut dyn BatchProgress,
    ) -> BatchReport {
        let started = Instant::now();
        let mut report = BatchReport::default();
        let files = steps.iter().filter(|s| s.is_file()).count() as u64;
        progress.begin(files, steps.iter().map(Step::size).sum());
        let steps = self.fetch_deltas(steps, options, &mut report, progress);
        let mut queue: VecDeque<Queued> = steps
            .into_iter()
            .map(|step| Queued { step, tries: 0 })
            .collect();
        let mut reconnects = 0;
        let download_folder = queue.iter().find_map(|q| match &q.step {
            Step::Download(d) => Some(d.local.parent().unwrap_or(Path::new(".")).to_path_buf()),
            _ => None,
        });
        while !queue.is_empty() {
            let lost = match self.require_replies() {
                Ok(()) => self.batch_pass(&mut queue, options, &mut report, progress),
                Err(e) => Err(Lost(e)),
            };
            // Done, or steps to try once more are queued again.
            let Err(Lost(error)) = lost else { continue };
            self.broken = true;
            let interrupted = error.is_interruption();
            // A connection that cannot be reopened is told by what broke
            // it: the refusal of a server that went away says less.
            // Nor is a stalled one: the stall timeout is when it gives up,
            // not when it starts over.
            let reopened = !interrupted
                && !self.stream.has_stalled()
                && reconnects < RECONNECTS
                && self.ensure_connected().is_ok();
            reconnects += 1;
            if !reopened {
                // One reason for all that is left, not one line per file.
                report.stopped = Some(match interrupted {
                    true => Error::Interrupted { what: "batch" },
                    false => connection_lost(error),
                });
                let files = queue.drain(..).filter(|q| q.step.is_file());
                report.unfinished.extend(files.map(|q| q.step));
            }
        }
        if let Some(folder) = download_folder {
            sync_downloads(&folder, &report);
        }
        progress.end();
        report.elapsed = started.elapsed();
        report
    }

    /// Sends and answers steps until the queue is empty or the connection
    /// is lost; steps sent but not answered then go back to the front of
    /// the queue.
    fn batch_pass(
        &mut self,
        queue: &mut VecDeque<Queued>,
        options: BatchOptions,
        report: &mut BatchReport,
        progress: &mut dyn BatchProgress,
    ) -> Result<(), Lost> {
        let client = self.options.clone();
        let mut pass = Pass {
            pipe: Pipe::new(&mut self.stream),
            window: Window::new(),
            in_flight: VecDeque::new(),
            later: Vec::new(),
            unanswered: None,
            options,
            client: &client,
            report,
            progress,
        };
        let result = pass.run(queue);
        if let Err(Lost(e)) = &result {
            if e.is_interruption() {
                pass.settle_in_flight();
            }
        }
        if result.is_err() {
            // Unanswered steps go first when the batch goes on.
            for f in pass.in_flight.drain(..).rev() {
                queue.push_front(requeued(f));
            }
            if let Some(step) = pass.unanswered.take() {
                queue.push_front(requeued(step));
            }
        }
        queue.extend(pass.later.drain(..));
        result
    }
}

/// Pause before a step refused `busy` is tried again.
const BUSY_PAUSE: Duration = Duration::from_secs(1);
/// How often a step is tried: `busy`, or a stale partial on either side.
const TRIES: u32 = 3;

pub(super) fn fail(
    report: &mut BatchReport,
    progress: &mut dyn BatchProgress,
    step: &Step,
    error: Error,
) {
    progress.finished(&Finished::Failed {
        verb: step.verb(),
        subject: step.subject(),
        error: &error,
    });
    report.failures.push(Failure {
        verb: step.verb(),
        subject: step.subject(),
        error,
    });
}

/// Downloads are renamed into place without a flush each (that would cost
/// a disk round trip per file); their file system is flushed once at the
/// end instead.
fn sync_downloads(folder: &Path, report: &BatchReport) {
    let folder = match folder.as_os_str().is_empty() {
        true => Path::new("."),
        false => folder,
    };
    if report.files > 0 {
        if let Ok(dir) = File::open(folder) {
            let _ = rustix::fs::syncfs(&dir);
        }
    }
}

#[cfg(test)]
mod tests;
