//! An upload's body on its way into the store: each chunk paced, held to
//! the rate floor and charged to the quota before it is written, and how
//! the body ended. A whole upload (`put`) and one built by a delta's
//! recipe (`delta`) both store their bytes this way.

use std::io;

use super::refusals::store_refusal;
use crate::error::{Error, Result};
use crate::io::pump::{buffer_for, pump, PumpError};
use crate::io::throttle::RateFloor;
use crate::net::Transport;
use crate::server::quota::exceeded_while_storing;
use crate::server::session::Session;
use crate::server::uploads::UploadLock;
use crate::storage::{CopyOrigin, StoreError, Upload};
use crate::wire::message::{ErrorReply, PutRequest};

/// An upload that passed every check, holds its name, and has begun in
/// the store.
pub(super) struct PreparedPut {
    /// The path as the client sent it, for replies.
    pub(super) name: String,
    pub(super) upload: Box<dyn Upload>,
    /// Whether a file of that name existed when the upload started.
    pub(super) replaces: bool,
    pub(super) lock: UploadLock,
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
            Err(e @ StoreError::NoSpace) => return Err(Stop::Full(e)),
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
