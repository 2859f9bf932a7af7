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
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::client::checks::{check_room, check_stored};
use crate::client::connect::read_reply;
use crate::client::overwrite::{land_download, Overwrite};
use crate::client::pipeline::{Pipe, Window};
use crate::client::transfer::{
    check_download, open_partial_download, paced, partial_download_path, planted_link,
};
use crate::client::{Client, SMALL_FILE};
use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::interrupt::is_interruption;
use crate::io::pump::{hash_prefix, relay, PumpError};
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{
    Digest, DigestAlgorithm, Folder, GetReady, GetRequest, PutDone, PutReady, PutRequest, Removed,
    Request,
};

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
    pub remote: String,
    /// Where it goes.
    pub local: PathBuf,
    /// Its size as listed, for the progress bar.
    pub size: u64,
}

impl Step {
    /// What the step is about, as shown to the user.
    pub fn subject(&self) -> String {
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
    pub preserve_mode: bool,
    /// Apply the client's overwrite policy to local files a download would
    /// replace (`get`); off, they are replaced (`sync`, whose point that is).
    pub ask_before_replacing: bool,
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
    pub verb: &'static str,
    /// What it was about.
    pub subject: String,
    /// Why.
    pub error: Error,
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Files moved.
    pub files: u64,
    /// Bytes that crossed the network.
    pub bytes: u64,
    /// Folders made (or found there already).
    pub folders: u64,
    /// Removals on the server.
    pub removed: u64,
    /// Steps that failed.
    pub failures: Vec<Failure>,
    /// From start to end.
    pub elapsed: Duration,
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
struct Unanswered(Lost, Box<Queued>);

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
            let interrupted = matches!(error, Error::Interrupted { .. }) || error.is_interruption();
            let reopened = match interrupted || reconnects >= RECONNECTS {
                true => Err(error),
                false => self.ensure_connected().map(|_| ()),
            };
            reconnects += 1;
            if let Err(error) = reopened {
                let why = format!("{error}; run the same command to resume");
                for q in queue.drain(..) {
                    let error = Error::Usage(why.clone());
                    fail(&mut report, progress, &q.step, error);
                }
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
        let client_options = self.options.clone();
        let interrupt = client_options.interrupt.clone();
        let mut pipe = Pipe::new(&mut self.stream);
        let mut window = Window::new();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut later: Vec<Queued> = Vec::new();
        let mut unanswered_step: Option<Queued> = None;
        let result = (|| -> Result<(), Lost> {
            while let Some(next) = queue.pop_front() {
                if interrupt
                    .as_ref()
                    .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
                {
                    queue.push_front(next);
                    return Err(Lost(Error::Interrupted { what: "batch" }));
                }
                let cost = Window::cost(next.step.remote());
                while !window.has_room(cost) || large_upload(&next.step) && !in_flight.is_empty() {
                    let done = in_flight
                        .pop_front()
                        .expect("a full window has a step in flight");
                    window.answered(done.cost);
                    if let Err(Unanswered(lost, step)) = answer(
                        &mut pipe,
                        done,
                        options,
                        &client_options,
                        report,
                        progress,
                        &mut later,
                    ) {
                        unanswered_step = Some(*step);
                        return Err(lost);
                    }
                }
                let sent = match send(&mut pipe, &next.step, options, &client_options, progress) {
                    Ok(sent) => sent,
                    Err(Sending::Local(error)) => {
                        fail(report, progress, &next.step, error);
                        continue;
                    }
                    Err(Sending::Lost(error)) => {
                        queue.push_front(next);
                        return Err(Lost(error));
                    }
                    Err(Sending::LostWith(error)) => {
                        let why = Error::Usage(format!("{error}; nothing was stored"));
                        fail(report, progress, &next.step, why);
                        return Err(Lost(error));
                    }
                };
                window.sent(cost);
                in_flight.push_back(InFlight {
                    step: next.step,
                    cost,
                    tries: next.tries,
                    sent,
                });
                if queue.is_empty() {
                    queue.extend(later.drain(..));
                }
                // Take replies that are here already, so the window seldom
                // has to wait for one.
                while pipe.has_input() {
                    let Some(done) = in_flight.pop_front() else {
                        break;
                    };
                    window.answered(done.cost);
                    if let Err(Unanswered(lost, step)) = answer(
                        &mut pipe,
                        done,
                        options,
                        &client_options,
                        report,
                        progress,
                        &mut later,
                    ) {
                        unanswered_step = Some(*step);
                        return Err(lost);
                    }
                    if queue.is_empty() {
                        queue.extend(later.drain(..));
                    }
                }
            }
            while let Some(done) = in_flight.pop_front() {
                window.answered(done.cost);
                if let Err(Unanswered(lost, step)) = answer(
                    &mut pipe,
                    done,
                    options,
                    &client_options,
                    report,
                    progress,
                    &mut later,
                ) {
                    unanswered_step = Some(*step);
                    return Err(lost);
                }
                if in_flight.is_empty() && !later.is_empty() {
                    // Steps to try once more (a name another upload held):
                    // after a pause, through the same window.
                    std::thread::sleep(BUSY_PAUSE);
                    queue.extend(later.drain(..));
                    return Ok(());
                }
            }
            Ok(())
        })();
        if result.is_err() {
            // Unanswered steps go first when the batch goes on.
            for f in in_flight.into_iter().rev() {
                queue.push_front(requeued(f));
            }
            if let Some(step) = unanswered_step {
                queue.push_front(step);
            }
        }
        queue.extend(later);
        result
    }
}

/// Pause before a step refused `busy` is tried again.
const BUSY_PAUSE: Duration = Duration::from_secs(1);
/// How often a step is tried: `busy`, or a stale partial on either side.
const TRIES: u32 = 3;

fn large_upload(step: &Step) -> bool {
    matches!(step, Step::Upload(u) if u.size > SMALL_FILE)
}

fn fail(report: &mut BatchReport, progress: &mut dyn BatchProgress, step: &Step, error: Error) {
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

/// Why a step could not be sent.
enum Sending {
    /// Something local (a file that cannot be read): only this step fails.
    Local(Error),
    /// The connection failed before the step went out whole: try it again.
    Lost(Error),
    /// The connection is out of step because of this step (its file
    /// changed size mid-body): it fails, and the batch reconnects.
    LostWith(Error),
}

fn lost(e: impl Into<Error>) -> Sending {
    Sending::Lost(e.into())
}

fn send(
    pipe: &mut Pipe,
    step: &Step,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let header = match step {
        Step::MakeFolder(path) => Request::Mkdir {
            path: path.clone(),
            parents: true,
        },
        Step::Remove { path, recursive } => Request::Rm {
            filename: path.clone(),
            recursive: *recursive,
        },
        Step::Download(d) => return send_get(pipe, d),
        Step::Upload(u) => return send_put(pipe, u, options, client, progress),
    };
    let bytes = frame::encode_json(&header).map_err(Sending::Local)?;
    pipe.send_request(&bytes)
        .map_err(|e| lost(Error::io("sending requests", e)))?;
    Ok(Sent::Plain)
}

fn send_get(pipe: &mut Pipe, d: &Download) -> Result<Sent, Sending> {
    let partial = partial_download_path(&d.local).map_err(Sending::Local)?;
    let found = fs::symlink_metadata(&partial).ok();
    if found.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
        return Err(Sending::Local(planted_link(&partial)));
    }
    let offset = found.filter(|m| m.is_file()).map_or(0, |m| m.len());
    let request = Request::Get(GetRequest {
        filename: d.remote.clone(),
        offset,
    });
    let bytes = frame::encode_json(&request).map_err(Sending::Local)?;
    pipe.send_request(&bytes)
        .map_err(|e| lost(Error::io("sending requests", e)))?;
    Ok(Sent::Get { offset, partial })
}

/// A local file's modification time, whole seconds since the epoch.
pub(crate) fn unix_mtime(meta: &fs::Metadata) -> Option<u64> {
    let t = meta.modified().ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn send_put(
    pipe: &mut Pipe,
    u: &Upload,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let cannot_read = |e: std::io::Error| Sending::Local(Error::cannot_read(u.local.display(), &e));
    let mut file = File::open(&u.local).map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    if !meta.is_file() {
        let what = format!("{} is not a regular file", u.local.display());
        return Err(Sending::Local(Error::Usage(what)));
    }
    let size = meta.len();
    let header = PutRequest {
        digest: Some(DigestAlgorithm::Blake3),
        mtime: unix_mtime(&meta),
        mode: options
            .preserve_mode
            .then(|| std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777),
        ..PutRequest::plain(&u.remote, size)
    };
    if size > SMALL_FILE {
        return send_large_put(pipe, u, header, &mut file, client, progress);
    }
    let mut body = Vec::with_capacity(size as usize);
    (&mut file)
        .take(SMALL_FILE + 1)
        .read_to_end(&mut body)
        .map_err(cannot_read)?;
    if body.len() as u64 != size {
        let what = format!("{} changed while it was read; try again", u.local.display());
        return Err(Sending::Local(Error::Usage(what)));
    }
    let digest = blake3::hash(&body);
    let mut message = frame::encode_json(&Request::Put(header)).map_err(Sending::Local)?;
    message.extend_from_slice(&body);
    message.extend(
        frame::encode_json(&Digest {
            blake3: digest.to_hex().to_string(),
        })
        .map_err(Sending::Local)?,
    );
    pipe.send_request(&message)
        .map_err(|e| lost(Error::io("sending files", e)))?;
    progress.advance(size);
    Ok(Sent::Put {
        size,
        digest,
        resumed_from: 0,
    })
}

/// A large file: the server says where to resume before the body goes, so
/// this waits for one reply (every earlier one has been read by then).
fn send_large_put(
    pipe: &mut Pipe,
    u: &Upload,
    header: PutRequest,
    file: &mut File,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let size = header.filesize;
    let request = Request::Put(PutRequest {
        ack: true,
        resume: true,
        ..header
    });
    let bytes = frame::encode_json(&request).map_err(Sending::Local)?;
    pipe.send_request(&bytes)
        .map_err(|e| lost(Error::io("sending requests", e)))?;
    let ready: PutReady = match read_reply(pipe) {
        Ok(ready) => ready,
        Err(e @ Error::Remote { .. }) => return Err(Sending::Local(e)),
        Err(e) => return Err(lost(e)),
    };
    let offset = ready.offset;
    if offset > size {
        let what = format!("server asked to resume at {offset}, beyond the file's {size} bytes");
        return Err(lost(Error::Malformed(what)));
    }
    let mut hasher = blake3::Hasher::new();
    let read_err = |e| Sending::LostWith(Error::cannot_read(u.local.display(), &e));
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    hash_prefix(file, offset, &mut hasher).map_err(Sending::LostWith)?;
    progress.advance(offset);
    let mut hasher = Digester::new(hasher, size - offset);
    let stream = pipe
        .direct()
        .map_err(|e| lost(Error::io("sending files", e)))?;
    let mut sink = paced(stream, client);
    let sent = relay(file, &mut sink, size - offset, Some(&mut hasher), |n| {
        progress.advance(n)
    });
    drop(sink);
    match sent {
        Ok(_) => {}
        Err(PumpError::Source(e)) => {
            let what = format!("{} changed size while it was sent ({e})", u.local.display());
            return Err(Sending::LostWith(Error::Usage(what)));
        }
        Err(PumpError::Sink(e)) if is_interruption(&e) => {
            return Err(lost(Error::Interrupted { what: "upload" }))
        }
        Err(PumpError::Sink(e)) => return Err(lost(Error::io("sending file data", e))),
    }
    let digest = hasher.finalize();
    let frame = frame::encode_json(&Digest {
        blake3: digest.to_hex().to_string(),
    })
    .map_err(Sending::Local)?;
    pipe.send_request(&frame)
        .map_err(|e| lost(Error::io("sending files", e)))?;
    Ok(Sent::Put {
        size,
        digest,
        resumed_from: offset,
    })
}

/// Reads the reply to the oldest step in flight and reports it.
#[allow(clippy::too_many_arguments)]
fn answer(
    pipe: &mut Pipe,
    done: InFlight,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    report: &mut BatchReport,
    progress: &mut dyn BatchProgress,
    later: &mut Vec<Queued>,
) -> Result<(), Unanswered> {
    let step = &done.step;
    // Set when the reply came whole but the step failed on our side (a
    // lying reply, a local file that cannot be written): the connection is
    // in step, only the step fails.
    let mut whole = false;
    let outcome = match (&done.step, &done.sent) {
        (Step::MakeFolder(path), _) => read_reply::<_, Folder>(pipe).map(|_| {
            progress.finished(&Finished::Made(path));
            report.folders += 1;
        }),
        (Step::Remove { path, .. }, _) => read_reply::<_, Removed>(pipe).map(|r| {
            progress.finished(&Finished::Removed {
                path,
                entries: r.entries,
            });
            report.removed += 1;
        }),
        (
            Step::Upload(u),
            Sent::Put {
                size,
                digest,
                resumed_from,
            },
        ) => read_reply::<_, PutDone>(pipe)
            .and_then(|d| {
                whole = true;
                check_stored(&d, &u.remote, *size, digest)
            })
            .map(|d| {
                progress.finished(&Finished::Stored {
                    remote: &u.remote,
                    size: d.size,
                    resumed_from: *resumed_from,
                });
                report.files += 1;
                report.bytes += d.received;
            }),
        (Step::Download(d), Sent::Get { offset, partial }) => {
            let got = match receive(pipe, d, *offset, partial, options, client, progress) {
                Ok(got) => got,
                Err(lost) => return Err(unanswered(lost, done)),
            };
            whole = true;
            got.map(|(size, received)| {
                progress.finished(&Finished::Saved {
                    local: &d.local,
                    size,
                    resumed_from: *offset,
                });
                report.files += 1;
                report.bytes += received;
            })
        }
        _ => unreachable!("a step is sent with its own kind of record"),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(e) if retried(&e, &done) && done.tries + 1 < TRIES => {
            later.push(Queued {
                step: done.step,
                tries: done.tries + 1,
            });
            Ok(())
        }
        Err(e) if whole || matches!(e, Error::Remote { .. } | Error::Usage(_)) => {
            fail(report, progress, step, e);
            Ok(())
        }
        // The reply did not come whole: the step goes again.
        Err(e) => Err(unanswered(Lost(e), done)),
    }
}

fn requeued(done: InFlight) -> Queued {
    Queued {
        step: done.step,
        tries: done.tries,
    }
}

fn unanswered(lost: Lost, done: InFlight) -> Unanswered {
    Unanswered(lost, Box::new(requeued(done)))
}

/// Whether a failed step is worth another try: a name another upload
/// holds, or stale partial data on either side (already discarded).
fn retried(e: &Error, done: &InFlight) -> bool {
    match e {
        Error::Remote { code, .. } => {
            code == "busy"
                || code == "invalid_offset"
                || (code == "digest_mismatch"
                    && matches!(done.sent, Sent::Put { resumed_from, .. } if resumed_from > 0))
        }
        Error::DigestMismatch { .. } => matches!(done.sent, Sent::Get { offset, .. } if offset > 0),
        _ => false,
    }
}

/// Takes one download's reply, body and digest. The outer error means the
/// connection is out of step; the inner one that only this file failed.
fn receive(
    pipe: &mut Pipe,
    d: &Download,
    offset: u64,
    partial: &Path,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Result<(u64, u64)>, Lost> {
    let ready: GetReady = match read_reply(pipe) {
        Ok(ready) => ready,
        Err(e @ Error::Remote { .. }) => {
            if offset > 0 && matches!(&e, Error::Remote { code, .. } if code == "invalid_offset") {
                let _ = fs::remove_file(partial);
            }
            return Ok(Err(e));
        }
        Err(e) => return Err(Lost(e)),
    };
    if ready.offset != offset || ready.filesize < offset {
        return Err(Lost(Error::Malformed(
            "server sent a different offset".into(),
        )));
    }
    let body = ready.filesize - offset;
    // Refused before a byte is written; the body is on its way regardless.
    if let Err(e) = check_room(partial, body) {
        // Only this file does not fit: its bytes are skipped, the rest go on.
        skip(pipe, body)?;
        return Ok(Err(e));
    }
    let (mut file, hasher) = match open_partial_download(partial, offset) {
        Ok(opened) => opened,
        Err(e) => {
            // The bytes are on their way whatever happens here.
            skip(pipe, body)?;
            return Ok(Err(e));
        }
    };
    progress.advance(offset);
    let mut hasher = Digester::new(hasher, body);
    let mut sink = paced(&mut file, client);
    let got = relay(pipe, &mut sink, body, Some(&mut hasher), |n| {
        progress.advance(n)
    });
    drop(sink);
    match got {
        Ok(_) => {}
        Err(PumpError::Source(e)) => return Err(Lost(e)),
        Err(PumpError::Sink(e)) if is_interruption(&e) => {
            return Err(Lost(Error::Interrupted { what: "download" }))
        }
        Err(PumpError::Sink(e)) => {
            let _ = fs::remove_file(partial);
            return Err(Lost(Error::io(format!("writing {}", partial.display()), e)));
        }
    }
    let digest: Digest = frame::read_json(pipe, MAX_HEADER_LEN).map_err(Lost)?;
    let landed =
        check_download(&d.remote, file, hasher, &digest, partial, false).and_then(|ours| {
            let policy = match options.ask_before_replacing {
                true => &client.overwrite,
                false => &Overwrite::Replace,
            };
            land_download(policy, partial, &d.local, ready.filesize, &ours, false)
        });
    if let Err(e) = landed {
        return Ok(Err(e));
    }
    keep_times(
        &d.local,
        ready.mtime,
        ready.mode.filter(|_| options.preserve_mode),
    );
    Ok(Ok((ready.filesize, body)))
}

/// Reads and drops `len` bytes of a body nobody will keep, and its digest.
fn skip(pipe: &mut Pipe, len: u64) -> Result<(), Lost> {
    let copied = std::io::copy(&mut pipe.take(len), &mut std::io::sink())
        .map_err(|e| Lost(Error::io("reading a download", e)))?;
    if copied < len {
        return Err(Lost(Error::Closed));
    }
    frame::read_json::<_, Digest>(pipe, MAX_HEADER_LEN).map_err(Lost)?;
    Ok(())
}

/// Gives a downloaded file the server's modification time, and its
/// permission bits when asked.
pub(crate) fn keep_times(path: &Path, mtime: u64, mode: Option<u32>) {
    if let Ok(file) = File::options().write(true).open(path) {
        let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
    }
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777));
    }
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
