//! Upload: every check that can be made before the body, then the body
//! into a partial file, the digest check, and the atomic commit.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{bad_name, internal};
use crate::error::{Error, Result};
use crate::io::pump::{buffer_for, hash_prefix, pump, PumpError};
use crate::io::throttle::RateFloor;
use crate::net::Transport;
use crate::server::session::{refuse, Outcome, Session};
use crate::server::uploads::UploadLock;
use crate::storage::local;
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{Digest, ErrorCode, ErrorReply, PutDone, PutReady, PutRequest, Reply};
use crate::wire::names::{escape, validate_name};

/// A refused upload from a client that does not wait for `ready` still
/// sends its body; up to this many bytes are read and dropped so that the
/// connection stays usable. Larger bodies close the connection instead.
pub const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// How long a put waits for an earlier upload of the same name (whose
/// connection it cuts) to let go: the same user running the upload again
/// after killing the first takes it over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// An upload that passed every check and holds its name.
struct PreparedPut {
    name: String,
    target: PathBuf,
    partial: PathBuf,
    offset: u64,
    /// Whether a file of that name existed when the upload started.
    replaces: bool,
    _lock: UploadLock,
}

/// What arrived of a body: its digest if one was asked for, and the first
/// error writing it, which is reported only once the body is read.
struct Received {
    blake3: Option<blake3::Hash>,
    write_error: Option<io::Error>,
}

impl Session<'_> {
    pub(crate) fn put<S: Transport>(&mut self, req: PutRequest, s: &mut S) -> Result<Outcome> {
        let socket = s.socket().and_then(|fd| fd.try_clone_to_owned().ok());
        let prepared = match self.prepare_put(&req, socket) {
            Ok(p) => p,
            Err(reply) => return refuse_put(&req, reply, s),
        };
        // Starting from 0 empties a partial that was there.
        let book = &self.ctx.usage;
        let emptied = match prepared.offset {
            0 if book.tracks(&self.home) => local::regular_len(&prepared.partial).unwrap_or(0),
            _ => 0,
        };
        let mut file = match local::open_partial(&prepared.partial, prepared.offset) {
            Ok(f) => f,
            Err(e) => return refuse_put(&req, internal("creating the upload file", &e), s),
        };
        book.remove(&self.home, emptied);
        if req.wants_ready() {
            let offset = prepared.offset;
            frame::write_json(s, &Reply::Ok(PutReady { offset }))?;
        }
        // A broken connection leaves the partial data for a resume.
        let received = match self.receive_body(&req, &prepared, &mut file, s) {
            Err(Error::DiskFull(e)) => {
                self.ctx.usage.forget(&self.home);
                self.ctx.metrics.uploads_failed.inc();
                let reply = internal("writing the file", &e);
                // The body is still coming and cannot be skipped: close.
                return refuse(s, reply).map(Outcome::closing);
            }
            other => other?,
        };
        let expected = self.read_digest(&req, s)?;
        let checked = check_upload(&prepared, &received, expected.as_ref())
            .and_then(|()| self.commit_upload(&prepared, file));
        if let Err(reply) = checked {
            self.ctx.metrics.uploads_failed.inc();
            return self.discard_upload(&prepared.partial, reply, s);
        }
        let body = req.filesize - prepared.offset;
        let metrics = &self.ctx.metrics;
        metrics.uploads_committed.inc();
        metrics.bytes_in.inc_by(body);
        if prepared.offset > 0 {
            metrics.uploads_resumed.inc();
        }
        let done = PutDone {
            filename: prepared.name.clone(),
            size: req.filesize,
            received: body,
            replaced: prepared.replaces,
            blake3: received.blake3.map(|h| h.to_hex().to_string()),
        };
        frame::write_json(s, &Reply::Ok(done))?;
        let resumed = match prepared.offset {
            0 => String::new(),
            at => format!(", resumed at {at}"),
        };
        let what = format!("stored {} bytes{resumed}", req.filesize);
        Ok(Outcome::ok(what, body))
    }

    /// Checks everything about an upload that can be checked before its
    /// body: name, size, overwrite policy, concurrent uploads, disk space
    /// and quota. Returns where it goes and the offset to resume from.
    fn prepare_put(
        &self,
        req: &PutRequest,
        socket: Option<OwnedFd>,
    ) -> Result<PreparedPut, ErrorReply> {
        let name = validate_name(&req.filename).map_err(bad_name)?;
        if req.filesize > self.ctx.max_file_size {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!(
                    "file too large: {} > {} bytes (the server's --max-file-size)",
                    req.filesize, self.ctx.max_file_size
                ),
            ));
        }
        let dir = self.folder()?;
        let target = dir.join(name);
        let existing = self.existing_len(&target, name)?;
        let partial = local::partial_path(&dir, name);
        let lock = self
            .ctx
            .locks
            .take_over(&partial, req.filesize, socket, TAKEOVER_WAIT)
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorCode::Busy,
                    format!("{} is being uploaded by another connection", escape(name)),
                )
            })?;
        let offset = match req.resume {
            true => local::partial_len(&partial, req.filesize).unwrap_or(0),
            false => 0,
        };
        check_space(&dir, req.filesize - offset)?;
        self.check_quota(req.filesize, &partial, existing.unwrap_or(0))?;
        Ok(PreparedPut {
            name: name.to_string(),
            target,
            partial,
            offset,
            replaces: existing.is_some(),
            _lock: lock,
        })
    }

    /// The size of the file an upload would replace, if any; refuses a
    /// name that holds something else, or any file when overwriting is off.
    fn existing_len(&self, target: &Path, name: &str) -> Result<Option<u64>, ErrorReply> {
        let existing = match fs::symlink_metadata(target) {
            Ok(m) if m.is_file() => Some(m.len()),
            Ok(_) => {
                return Err(ErrorReply::new(
                    ErrorCode::Exists,
                    format!("{} exists and is not a regular file", escape(name)),
                ))
            }
            Err(_) => None,
        };
        if existing.is_some() && (self.anonymous || !self.ctx.overwrite) {
            return Err(ErrorReply::new(
                ErrorCode::Exists,
                format!(
                    "{} already exists and this server does not overwrite files",
                    escape(name)
                ),
            ));
        }
        Ok(existing)
    }

    /// Refuses an upload that would take the home over its quota once every
    /// running upload is done and this file has replaced `replaced` bytes.
    fn check_quota(&self, filesize: u64, partial: &Path, replaced: u64) -> Result<(), ErrorReply> {
        let Some(quota) = self.account.quota else {
            return Ok(());
        };
        let used = self
            .ctx
            .usage
            .used(&self.home)
            .map_err(|e| internal("measuring usage", &e))?;
        let kept = local::regular_len(partial).unwrap_or(0);
        // Uploads still running count with their whole declared size, not
        // just the part they have written.
        let (written, declared) = self
            .ctx
            .locks
            .others_below(&self.home, partial)
            .iter()
            .fold((0u64, 0u64), |(w, d), (path, size)| {
                let len = local::regular_len(path).unwrap_or(0);
                (w.saturating_add(len), d.saturating_add(*size))
            });
        let projected = used
            .saturating_sub(written)
            .saturating_add(declared)
            .saturating_sub(replaced)
            .saturating_sub(kept)
            .saturating_add(filesize);
        if projected > quota {
            return Err(ErrorReply::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "quota exceeded: storing {filesize} bytes would use {projected} of {quota} bytes"
                ),
            ));
        }
        Ok(())
    }

    /// Reads the body into `file`, hashing the whole file (the kept prefix
    /// too) when the client will send a digest. A write error does not stop
    /// the reading, so the stream stays in step for the error reply.
    fn receive_body<S: Transport>(
        &self,
        req: &PutRequest,
        prepared: &PreparedPut,
        file: &mut File,
        s: &mut S,
    ) -> Result<Received> {
        let offset = prepared.offset;
        let (mut hasher, mut write_error) = hash_kept(req, prepared);
        let body = req.filesize - offset;
        let mut buf = buffer_for(body);
        let (mut written, mut flushed) = (offset, offset);
        let durable = self.ctx.durable;
        let mut floor = self
            .ctx
            .min_rate
            .map(|(rate, window)| RateFloor::new(rate, window));
        let pumped = pump(s, body, &mut buf, |chunk| {
            if let Some(floor) = floor.as_mut() {
                floor.note(chunk.len())?;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            if write_error.is_none() {
                match file.write_all(chunk) {
                    Ok(()) => {
                        written += chunk.len() as u64;
                        self.ctx.usage.add(&self.home, chunk.len() as u64);
                    }
                    // A full disk stops the upload at once; what was
                    // written stays for a resume once there is room.
                    Err(e) if local::is_no_space(&e) => return Err(e),
                    Err(e) => {
                        // Part of the chunk may be on disk: measure again.
                        self.ctx.usage.forget(&self.home);
                        write_error = Some(e);
                    }
                }
                if durable && written - flushed >= local::WRITEBACK_STEP {
                    local::start_writeback(file, flushed, written - flushed);
                    flushed = written;
                }
            }
            Ok(())
        });
        match pumped {
            Ok(_) => Ok(Received {
                blake3: hasher.map(|h| h.finalize()),
                write_error,
            }),
            Err(PumpError::Source(e)) => Err(e),
            Err(PumpError::Sink(e)) if local::is_no_space(&e) => Err(Error::DiskFull(e)),
            // Too slow: dropped, and the partial stays for a resume.
            Err(PumpError::Sink(e)) => Err(Error::io("receiving the file", e)),
        }
    }

    /// The digest frame that follows the body, when the client promised one.
    fn read_digest<S: Transport>(&self, req: &PutRequest, s: &mut S) -> Result<Option<Digest>> {
        if req.digest.is_none() {
            return Ok(None);
        }
        s.set_deadline(Some(Instant::now() + self.ctx.idle_timeout));
        let digest = frame::read_json::<_, Digest>(s, MAX_HEADER_LEN);
        s.set_deadline(None);
        digest.map(Some)
    }

    /// Deletes an upload that must not be committed and answers `reply`.
    fn discard_upload<S: Transport>(
        &self,
        partial: &Path,
        reply: ErrorReply,
        s: &mut S,
    ) -> Result<Outcome> {
        let len = local::regular_len(partial).unwrap_or(0);
        if fs::remove_file(partial).is_ok() {
            self.ctx.usage.remove(&self.home, len);
        }
        refuse(s, reply)
    }

    /// Puts a complete, verified upload under its name.
    fn commit_upload(&self, prepared: &PreparedPut, file: File) -> Result<(), ErrorReply> {
        let durable = self.ctx.durable;
        let replaced = match self.ctx.usage.tracks(&self.home) {
            true => local::regular_len(&prepared.target).unwrap_or(0),
            false => 0,
        };
        let committed = (if durable { file.sync_all() } else { Ok(()) }).and_then(|()| {
            drop(file);
            let overwrite = self.ctx.overwrite;
            local::commit(&prepared.partial, &prepared.target, overwrite, durable)
        });
        if committed.is_ok() {
            self.ctx.usage.remove(&self.home, replaced);
        }
        committed.map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => ErrorReply::new(
                ErrorCode::Exists,
                format!(
                    "{} was created meanwhile; not overwritten",
                    escape(&prepared.name)
                ),
            ),
            _ => internal("committing the file", &e),
        })
    }
}

/// The digest of the bytes a resumed upload kept, when the client will
/// send one; an error reading them is reported like a write error.
fn hash_kept(
    req: &PutRequest,
    prepared: &PreparedPut,
) -> (Option<blake3::Hasher>, Option<io::Error>) {
    let mut hasher = req.digest.map(|_| blake3::Hasher::new());
    let mut error = None;
    if let (Some(h), true) = (hasher.as_mut(), prepared.offset > 0) {
        let kept = File::open(&prepared.partial)
            .map_err(|e| Error::io("reading partial data", e))
            .and_then(|mut f| hash_prefix(&mut f, prepared.offset, h));
        error = kept.err().map(io::Error::from);
    }
    (hasher, error)
}

/// Refuses an upload whose bytes could not be stored or whose digest does
/// not match what arrived.
fn check_upload(
    prepared: &PreparedPut,
    received: &Received,
    expected: Option<&Digest>,
) -> Result<(), ErrorReply> {
    if let Some(e) = &received.write_error {
        return Err(internal("writing the file", e));
    }
    let (Some(actual), Some(expected)) = (&received.blake3, expected) else {
        return Ok(());
    };
    // Hash equality is constant-time; hex of either case parses.
    if blake3::Hash::from_hex(&expected.blake3).is_ok_and(|e| e == *actual) {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorCode::DigestMismatch,
        format!(
            "digest mismatch for {}: the data does not match (resumed at {}); \
             the partial data was discarded, send the file again",
            escape(&prepared.name),
            prepared.offset
        ),
    ))
}

/// Refuses when the disk cannot hold `needed` more bytes.
fn check_space(dir: &Path, needed: u64) -> Result<(), ErrorReply> {
    let free = local::disk_free(dir).map_err(|e| internal("statvfs", &e))?;
    if needed > free {
        return Err(ErrorReply::new(
            ErrorCode::NoSpace,
            format!("not enough disk space: {needed} bytes needed, {free} free"),
        ));
    }
    Ok(())
}

/// Answers a refused upload. A client that waits for `ready` sends no body;
/// one that does not (the seed's) is sending it now, so it is read and
/// dropped, up to [`MAX_DRAIN`] bytes, to keep the stream in step.
fn refuse_put<S: Transport>(req: &PutRequest, reply: ErrorReply, s: &mut S) -> Result<Outcome> {
    if req.wants_ready() {
        return refuse(s, reply);
    }
    if req.filesize > MAX_DRAIN {
        return refuse(s, reply).map(Outcome::closing);
    }
    let mut buf = buffer_for(req.filesize);
    pump(s, req.filesize, &mut buf, |_| Ok(())).map_err(|e| match e {
        PumpError::Source(e) => e,
        PumpError::Sink(e) => Error::io("draining", e),
    })?;
    if req.digest.is_some() {
        frame::read(s, MAX_HEADER_LEN)?;
    }
    refuse(s, reply)
}
