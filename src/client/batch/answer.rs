//! Answering a batch's steps: each reply read in order, checked, and
//! reported; a download's body and digest taken with it.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::client::checks::{check_room, check_stored};
use crate::client::connect::read_reply;
use crate::client::files::{keep_times, paced};
use crate::client::overwrite::{land_download, Overwrite};
use crate::client::partial::{check_download, open_partial_download};
use crate::client::pipeline::Pipe;
use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::interrupt::is_interruption;
use crate::io::pump::{relay, PumpError};
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{Digest, ErrorCode, Folder, GetReady, PutDone, Removed};

use super::{
    fail, BatchOptions, BatchProgress, BatchReport, Download, Finished, InFlight, Lost, Queued,
    Sent, Step, Unanswered, TRIES,
};

/// Reads the reply to the oldest step in flight and reports it.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer(
    pipe: &mut Pipe,
    done: InFlight,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    report: &mut BatchReport,
    progress: &mut dyn BatchProgress,
    later: &mut Vec<Queued>,
) -> Result<(), Unanswered> {
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
        ) => {
            let sent = (*size, digest, *resumed_from);
            stored(pipe, &u.remote, sent, &mut whole, report, progress)
        }
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
    let Err(e) = outcome else { return Ok(()) };
    settle(e, whole, done, report, progress, later)
}

/// The reply to an upload, checked against what was sent (`size`,
/// `digest`, where it resumed) and reported. `whole` is set once the
/// reply was read whole.
fn stored(
    pipe: &mut Pipe,
    remote: &str,
    (size, digest, resumed_from): (u64, &blake3::Hash, u64),
    whole: &mut bool,
    report: &mut BatchReport,
    progress: &mut dyn BatchProgress,
) -> Result<()> {
    let done: PutDone = read_reply(pipe)?;
    *whole = true;
    let done = check_stored(&done, remote, size, digest)?;
    progress.finished(&Finished::Stored {
        remote,
        size: done.size,
        resumed_from,
        sent: done.received,
    });
    report.files += 1;
    report.bytes += done.received;
    Ok(())
}

/// What becomes of a step that failed: tried again later, reported as
/// failed (the connection is in step), or sent again at once on a new
/// connection (its reply did not come whole).
fn settle(
    e: Error,
    whole: bool,
    done: InFlight,
    report: &mut BatchReport,
    progress: &mut dyn BatchProgress,
    later: &mut Vec<Queued>,
) -> Result<(), Unanswered> {
    if retried(&e, &done) && done.tries + 1 < TRIES {
        later.push(Queued {
            step: done.step,
            tries: done.tries + 1,
        });
        return Ok(());
    }
    // A refusal is a whole reply too.
    if whole || matches!(e, Error::Remote { .. }) {
        fail(report, progress, &done.step, e);
        return Ok(());
    }
    Err(unanswered(Lost(e), done))
}

pub(super) fn requeued(done: InFlight) -> Queued {
    Queued {
        step: done.step,
        tries: done.tries,
    }
}

fn unanswered(lost: Lost, done: InFlight) -> Unanswered {
    Unanswered(lost, Box::new(done))
}

/// Whether a failed step is worth another try: a name another upload
/// holds, or stale partial data on either side (already discarded).
fn retried(e: &Error, done: &InFlight) -> bool {
    match e {
        Error::Remote { code, .. } => {
            *code == ErrorCode::Busy
                || *code == ErrorCode::InvalidOffset
                || (*code == ErrorCode::DigestMismatch
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
    let ready = match read_ready(pipe, offset, partial)? {
        Ok(ready) => ready,
        Err(refused) => return Ok(Err(refused)),
    };
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
    let digest: Digest = frame::read_json(pipe, MAX_HEADER_LEN).map_err(|e| Lost(e.into()))?;
    let landed = check_download(&d.remote, file, hasher, &digest, partial, false)
        .and_then(|ours| land(d, partial, &ready, &ours, options, client));
    Ok(landed.map(|()| (ready.filesize, body)))
}

/// A download's `ready` reply, checked against the offset asked for. A
/// refusal is the file's alone; a stale partial it names is removed.
fn read_ready(pipe: &mut Pipe, offset: u64, partial: &Path) -> Result<Result<GetReady>, Lost> {
    let ready: GetReady = match read_reply(pipe) {
        Ok(ready) => ready,
        Err(e @ Error::Remote { .. }) => {
            let stale = matches!(
                &e,
                Error::Remote {
                    code: ErrorCode::InvalidOffset,
                    ..
                }
            );
            if offset > 0 && stale {
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
    Ok(Ok(ready))
}

/// Puts a checked download under its name, as the overwrite policy says
/// (a sync replaces), with the server's times and, with `-p`, its mode.
fn land(
    d: &Download,
    partial: &Path,
    ready: &GetReady,
    digest: &blake3::Hash,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
) -> Result<()> {
    let policy = match options.ask_before_replacing {
        true => &client.overwrite,
        false => &Overwrite::Replace,
    };
    land_download(policy, partial, &d.local, ready.filesize, digest, false)?;
    let mode = ready.mode.filter(|_| options.preserve_mode);
    keep_times(&d.local, ready.mtime, mode);
    Ok(())
}

/// Reads and drops `len` bytes of a body nobody will keep, and its digest.
fn skip(pipe: &mut Pipe, len: u64) -> Result<(), Lost> {
    let copied = std::io::copy(&mut pipe.take(len), &mut std::io::sink())
        .map_err(|e| Lost(Error::io("reading a download", e)))?;
    if copied < len {
        return Err(Lost(Error::Closed));
    }
    frame::read_json::<_, Digest>(pipe, MAX_HEADER_LEN).map_err(|e| Lost(e.into()))?;
    Ok(())
}
