//! Upload: every check that can be made before the body, then the body
//! into the store, the digest check, and the atomic commit.

use std::convert::Infallible;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::delta::refuse_delta;
use super::staged::{confirm, put_refusal, Landed, PendingPut};
use super::store_refusal;
use crate::error::{Error, Result};
use crate::io::pump::{buffer_for, pump, PumpError};
use crate::io::throttle::RateFloor;
use crate::net::Transport;
use crate::server::hooks::EventKind;
use crate::server::quota::{check_bytes, check_entries, exceeded_while_storing};
use crate::server::session::{refuse, Outcome, Session};
use crate::server::uploads::{Owner, UploadLock};
use crate::storage::{CopyOrigin, Place, Stage, StoreError, StoreResult, Upload, UploadPlan};
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{Digest, ErrorCode, ErrorReply, PutReady, PutRequest, Reply};
use crate::wire::names::escape;

/// A refused upload from a client that does not wait for `ready` still
/// sends its body; up to this many bytes are read and dropped so that the
/// connection stays usable. Larger bodies close the connection instead.
pub const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// How long a put waits for an earlier upload of the same name by the
/// same account (whose connection it cuts) to let go: the same user
/// running the upload again after killing the first takes it over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// An upload that passed every check, holds its name, and has begun in
/// the store.
pub(super) struct PreparedPut {
    /// The path as the client sent it, for replies.
    name: String,
    pub(super) upload: Box<dyn Upload>,
    /// Whether a file of that name existed when the upload started.
    replaces: bool,
    lock: UploadLock,
}

/// How the body of an upload ended.
pub(super) enum BodyEnd {
    /// Every byte was read; the first write error, if any.
    Read(Option<StoreError>),
    /// Stopped at a chunk that the quota does not allow (or that could not
    /// be checked against it); the body is still coming.
    Refused(ErrorReply),
    /// Stopped because the store is full; what was written stays for a
    /// resume once there is room, and the body is still coming.
    Full(StoreError),
}

/// Why the body stopped going into the store before its end.
pub(super) enum Stop {
    /// The client sends more slowly than the rate floor allows.
    Slow(io::Error),
    /// The quota does not allow the next chunk.
    Quota(ErrorReply),
    /// The store is full.
    Full(StoreError),
}

impl Session<'_> {
    pub(crate) fn put<S: Transport>(&mut self, req: PutRequest, s: &mut S) -> Result<Outcome> {
        // A delta upload's old file is checked before anything begins.
        let base = match req.delta.as_ref().map(|d| self.delta_base(&req, d)) {
            Some(Err(reply)) => return refuse_delta(&req, reply, s),
            base => base.transpose().ok().flatten(),
        };
        let socket = s.socket().and_then(|fd| fd.try_clone_to_owned().ok());
        let mut prepared = match self.prepare_put(&req, socket) {
            Ok(p) => p,
            Err(reply) => return refuse_put(&req, reply, s),
        };
        let offset = prepared.upload.offset();
        if req.wants_ready() {
            frame::write_json(s, &Reply::Ok(PutReady { offset }))?;
        }
        let (body, received) = self.receive(&req, &mut prepared, base, s)?;
        // A broken connection leaves the partial data for a resume. The
        // body of a refused upload is still coming and cannot be skipped:
        // the connection closes.
        let write_error = match body {
            BodyEnd::Full(e) => {
                self.ctx.metrics.uploads_failed.inc();
                let reply = store_refusal(e, &prepared.name);
                return refuse(s, reply).map(Outcome::closing);
            }
            // What it stored would only hold the quota that others filled.
            BodyEnd::Refused(reply) => {
                self.ctx.metrics.uploads_failed.inc();
                self.discard(prepared.upload);
                return refuse(s, reply).map(Outcome::closing);
            }
            BodyEnd::Read(write_error) => write_error,
        };
        let expected = self.read_digest(&req, s)?;
        let finished = match (write_error, expected) {
            // What was stored before the error stays for a resume; the
            // digest checks it then.
            (Some(e), _) => Err(e),
            // The commit is a namespace step: the size of the file it
            // replaces, the rename and the book's change happen in one
            // turn, so no `mv` or `rm` can come between them. A durable
            // store stages it for its group's flush (see `staged`).
            (None, expected) => match self.vet(&req, &*prepared.upload, expected) {
                Ok(expected) => {
                    let _turn = self.turn();
                    prepared.upload.stage(expected)
                }
                Err(reply) => {
                    self.discard(prepared.upload);
                    return refuse(s, reply);
                }
            },
        };
        let kept = (prepared.name, prepared.replaces, prepared.lock);
        self.land(req, kept, (offset, received), finished, s)
    }

    /// Answers an upload as the store left it: committed, staged for its
    /// group's flush (answered then), or refused.
    fn land<S: Transport>(
        &self,
        req: PutRequest,
        (name, replaced, lock): (String, bool, UploadLock),
        (offset, received): (u64, u64),
        finished: StoreResult<Stage>,
        s: &mut S,
    ) -> Result<Outcome> {
        let landed = Landed {
            name,
            replaced,
            offset,
            received,
            event: Box::new(self.event(EventKind::Upload, &req.filename)),
        };
        match finished {
            Ok(Stage::Done(digest)) => {
                drop(lock);
                confirm(self.ctx, &req, &landed, digest, s)
            }
            Ok(Stage::Waiting(staged)) => {
                let home = self.home.join("/");
                let pending = PendingPut::new(staged, lock, home, req, landed);
                Ok(Outcome::ok("staged for its group's flush", 0).with_commit(pending))
            }
            Err(e) => {
                drop(lock);
                self.ctx.metrics.uploads_failed.inc();
                refuse(s, put_refusal(e, &landed))
            }
        }
    }

    /// The digest the upload is checked against, once the server's upload
    /// check, if any, passed what `upload` stored; or why it may not take
    /// its name (a bad digest line, the check's refusal).
    fn vet(
        &self,
        req: &PutRequest,
        upload: &dyn Upload,
        expected: Option<Result<blake3::Hash, ErrorReply>>,
    ) -> Result<Option<blake3::Hash>, ErrorReply> {
        let expected = expected.transpose()?;
        if self.ctx.hooks.checks_uploads() {
            let event = self.event(EventKind::Upload, &req.filename);
            let event = event.sized(req.filesize, None, upload.offset() > 0);
            let verdict = self.ctx.hooks.check_upload(&event, upload.contents());
            verdict.allows(&req.filename)?;
        }
        Ok(expected)
    }

    /// Throws an upload's partial data away, in the home's turn: the
    /// entry goes from the book while no measure walks the home.
    fn discard(&self, upload: Box<dyn Upload>) {
        let _turn = self.turn();
        upload.discard();
    }

    /// Checks everything about an upload that can be checked before its
    /// body (name, size, overwrite policy, concurrent uploads, space and
    /// quota), then begins it in the store.
    fn prepare_put(
        &self,
        req: &PutRequest,
        socket: Option<OwnedFd>,
    ) -> Result<PreparedPut, ErrorReply> {
        let (folder, name) = self.resolve_file(&req.filename)?;
        let (name, at) = (name.as_str(), Place::new(&self.home, &folder));
        let max_file_size = self.ctx.live.get().max_file_size;
        if req.filesize > max_file_size {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!(
                    "file too large: {} > {} bytes (the server's --max-file-size)",
                    req.filesize, max_file_size
                ),
            ));
        }
        // An object store has no folders to fail on: a folder of the path
        // other than the current one (checked by `cd`) is looked up.
        if folder != self.cwd {
            let store = &self.ctx.store;
            store.check_folder(at).map_err(|e| store_refusal(e, ""))?;
        }
        // Checks the folder too.
        let existing = self.existing_len(at, name)?;
        let lock = self.lock_name(&req.filename, &at.key(name), socket)?;
        let plan = UploadPlan {
            filesize: req.filesize,
            resume: req.resume,
            hash: req.digest.is_some(),
            overwrite: self.ctx.overwrite && !self.anonymous,
            mtime: req.mtime,
            mode: req.mode.map(|m| m & 0o777),
        };
        // The checks and the partial file they allow are one step: a
        // partial is an entry of its own until it commits, replacement
        // or not.
        let _turn = self.turn();
        self.check_room(req, at, name, &lock)?;
        let store = &self.ctx.store;
        let refused = |e| store_refusal(e, &req.filename);
        let upload = store.begin_upload(at, name, plan).map_err(refused)?;
        // What it kept is charged to it, whether the store's usage
        // counts that already or leaves it to the upload.
        lock.hold(upload.offset());
        lock.set_counted(upload.counted());
        Ok(PreparedPut {
            name: req.filename.clone(),
            upload,
            replaces: existing.is_some(),
            lock,
        })
    }

    /// Takes the name `key` for this upload, taking it over from another
    /// connection of the same account (see the lock's `take_over`).
    fn lock_name(
        &self,
        shown: &str,
        key: &str,
        socket: Option<OwnedFd>,
    ) -> Result<UploadLock, ErrorReply> {
        let owner = match self.anonymous {
            true => Owner::Anonymous,
            false => Owner::Account(self.account.name.clone()),
        };
        let home = self.home.join("/");
        self.ctx
            .locks
            .take_over(key, &home, owner, socket, TAKEOVER_WAIT)
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorCode::Busy,
                    format!("{} is being uploaded by another connection", escape(shown)),
                )
            })
    }

    /// Refuses an upload of `name` that the store has no room for, or that
    /// would take the home over its quota.
    fn check_room(
        &self,
        req: &PutRequest,
        at: Place,
        name: &str,
        lock: &UploadLock,
    ) -> Result<(), ErrorReply> {
        let store = &self.ctx.store;
        let refused = |e| store_refusal(e, &req.filename);
        let kept = match req.resume {
            true => store.kept(at, name, req.filesize).map_err(refused)?,
            false => 0,
        };
        let needed = req.filesize - kept;
        if let Some(free) = store.free_space(at).map_err(refused)? {
            if needed > free {
                return Err(ErrorReply::new(
                    ErrorCode::NoSpace,
                    format!("not enough disk space: {needed} bytes needed, {free} free"),
                ));
            }
        }
        // A kept partial is an entry already; a new one is an entry
        // beside the file it would replace until it commits.
        self.check_quota(needed, lock, kept == 0)
    }

    /// The size of the file an upload would replace, if any; refuses a
    /// name that holds something else, or any file when overwriting is off.
    fn existing_len(&self, at: Place, name: &str) -> Result<Option<u64>, ErrorReply> {
        let existing = self
            .ctx
            .store
            .file_len(at, name)
            .map_err(|e| store_refusal(e, name))?;
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

    /// Refuses an upload whose `needed` bytes cannot fit in the quota
    /// beside what is stored and what running uploads have written (not
    /// what they declared), or that would add an entry (`new`) past the
    /// entry limit. The file it replaces counts until it is replaced: so
    /// does a partial left by a replacement that broke off.
    fn check_quota(&self, needed: u64, lock: &UploadLock, new: bool) -> Result<(), ErrorReply> {
        let quota = self.account.quota;
        if quota.is_none() && self.max_files.is_none() {
            return Ok(());
        }
        let used = self.used()?;
        if let (Some(max), true) = (self.max_files, new) {
            check_entries(used.entries, 1, max)?;
        }
        let Some(quota) = quota else {
            return Ok(());
        };
        let projected = lock
            .projected(needed, || Ok(used.bytes))
            .map_err(|e| store_refusal(e, ""))?;
        check_bytes(projected, needed, quota)
    }

    /// Reads the body into the store, charging each chunk to the quota
    /// before it is written. A write error does not stop the reading, so
    /// the stream stays in step for the error reply; it is returned once
    /// the body is read. A full store, or a full quota, stops it at once.
    pub(super) fn receive_body<S: Transport>(
        &self,
        req: &PutRequest,
        prepared: &mut PreparedPut,
        s: &mut S,
    ) -> Result<BodyEnd> {
        let offset = prepared.upload.offset();
        let body = req.filesize - offset;
        let mut buf = buffer_for(body);
        let mut write_error = None;
        let mut stored = offset;
        let mut floor =
            (self.ctx.live.get().floor).map(|(rate, window)| RateFloor::new(rate, window));
        let pumped = pump(s, body, &mut buf, |chunk| {
            self.account.limits.pace_up(chunk.len());
            if let Some(floor) = floor.as_mut() {
                floor.note(chunk.len()).map_err(Stop::Slow)?;
            }
            self.store_chunk(
                req,
                prepared,
                (chunk, None),
                (&mut stored, &mut write_error),
            )
        });
        body_end(pumped, write_error)
    }

    /// Charges `chunk` to the quota and stores it (copied from the file
    /// and offset `from` that hold it, when given), unless a write failed
    /// before (`stored` bytes are in; the first write error is kept).
    pub(super) fn store_chunk(
        &self,
        req: &PutRequest,
        prepared: &mut PreparedPut,
        (chunk, from): (&[u8], Option<(&CopyOrigin, u64)>),
        (stored, write_error): (&mut u64, &mut Option<StoreError>),
    ) -> Result<(), Stop> {
        if write_error.is_some() {
            return Ok(());
        }
        let (upload, lock) = (&mut prepared.upload, &prepared.lock);
        self.charge(lock, chunk.len() as u64, *stored, req.filesize)
            .map_err(Stop::Quota)?;
        let written = match from {
            Some((origin, at)) => upload.copy(origin, at, chunk),
            None => upload.write(chunk),
        };
        match written {
            Ok(()) => {
                *stored += chunk.len() as u64;
                lock.set_counted(upload.counted());
            }
            // A full store stops the upload at once; what was written
            // stays for a resume once there is room.
            Err(e @ StoreError::NoSpace(_)) => return Err(Stop::Full(e)),
            Err(e) => *write_error = Some(e),
        }
        Ok(())
    }

    /// Charges the next `n` bytes of an upload of `filesize` bytes, of
    /// which `written` are stored, to the home's quota, if it has one.
    fn charge(
        &self,
        lock: &UploadLock,
        n: u64,
        written: u64,
        filesize: u64,
    ) -> Result<(), ErrorReply> {
        let Some(quota) = self.account.quota else {
            return Ok(());
        };
        let used = || self.ctx.store.usage(&self.home).map(|u| u.bytes);
        // Measured once outside the lock (and in the home's turn), so
        // that a store that lists its usage does not hold every upload up
        // while it does.
        self.used()?;
        match lock.charge(n, quota, used) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(exceeded_while_storing(written, filesize, quota)),
            Err(e) => Err(store_refusal(e, "")),
        }
    }

    /// The digest frame that follows the body, when the client promised
    /// one: `Some(Err)` when it is not a BLAKE3 digest in hex.
    fn read_digest<S: Transport>(
        &self,
        req: &PutRequest,
        s: &mut S,
    ) -> Result<Option<Result<blake3::Hash, ErrorReply>>> {
        if req.digest.is_none() {
            return Ok(None);
        }
        s.set_deadline(Some(Instant::now() + self.ctx.timings.idle));
        let digest = frame::read_json::<_, Digest>(s, MAX_HEADER_LEN);
        s.set_deadline(None);
        // Hex of either case parses.
        Ok(Some(blake3::Hash::from_hex(&digest?.blake3).map_err(
            |_| ErrorReply::new(ErrorCode::DigestMismatch, "the digest is not BLAKE3 in hex"),
        )))
    }
}

/// How a body's pump ended, as the upload sees it.
pub(super) fn body_end<T>(
    pumped: Result<T, PumpError<Stop>>,
    write_error: Option<StoreError>,
) -> Result<BodyEnd> {
    match pumped {
        Ok(_) => Ok(BodyEnd::Read(write_error)),
        Err(PumpError::Source(e)) => Err(e),
        Err(PumpError::Sink(Stop::Quota(reply))) => Ok(BodyEnd::Refused(reply)),
        Err(PumpError::Sink(Stop::Full(e))) => Ok(BodyEnd::Full(e)),
        // Too slow: dropped, and the partial stays for a resume.
        Err(PumpError::Sink(Stop::Slow(e))) => Err(Error::io("receiving the file", e)),
    }
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
    pump(s, req.filesize, &mut buf, |_| Ok::<_, Infallible>(()))?;
    if req.digest.is_some() {
        frame::read(s, MAX_HEADER_LEN)?;
    }
    refuse(s, reply)
}
