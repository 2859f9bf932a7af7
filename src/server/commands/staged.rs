//! A durable put whose commit waits for its group. Flushing each file and
//! its folder before each `ok` costs two journal commits a file; a client
//! that pipelines puts pays them a thousand times. So a put on a durable
//! store is staged (its data written and checked, its name not yet taken)
//! while the next request already sent is another put, and the group then
//! commits in one order: the data of all flushed at once, every name
//! taken, the names flushed at once, and only then the replies, in order
//! (see `server::serving`). `ok` still means the file is on disk under its
//! name; a put not yet answered when the connection breaks may not be.

use std::io::Write;

use super::store_refusal;
use crate::error::Result;
use crate::server::context::Context;
use crate::server::hooks::Event;
use crate::server::outcome::{Outcome, Said};
use crate::server::session::refuse;
use crate::server::uploads::UploadLock;
use crate::storage::{Staged, StoreError, StoreResult};
use crate::wire::frame;
use crate::wire::message::{ErrorCode, ErrorReply, PutDone, PutRequest, Reply};
use crate::wire::names::escape;

/// A member of a group, in the order its request came: a staged put, or
/// the reply of a request that ended meanwhile (a put refused), held
/// until the puts before it are answered.
pub(crate) enum InGroup {
    Put(Box<PendingPut>),
    Reply(Vec<u8>),
}

/// Where an upload lands, for its reply.
pub(crate) struct Landed {
    pub(crate) name: String,
    /// Whether it replaces a file of that name.
    pub(crate) replaced: bool,
    /// Where its body started (a resume).
    pub(crate) offset: u64,
    /// Bytes of its body that crossed the network (a delta upload's
    /// recipe and new bytes).
    pub(crate) received: u64,
    /// What the upload hook is told, once the file is stored (boxed: a
    /// group holds many of these, and most servers set no hook).
    pub(crate) event: Box<Event>,
}

/// A put staged for its group: the store's part, its name's lock (no other
/// upload of the name may start meanwhile), and what its reply says.
pub(crate) struct PendingPut {
    staged: Box<dyn Staged>,
    lock: UploadLock,
    home: String,
    req: PutRequest,
    landed: Landed,
}

impl PendingPut {
    /// A put of `req` into `home`, staged by the store.
    pub(crate) fn new(
        staged: Box<dyn Staged>,
        lock: UploadLock,
        home: String,
        req: PutRequest,
        landed: Landed,
    ) -> PendingPut {
        PendingPut {
            staged,
            lock,
            home,
            req,
            landed,
        }
    }

    /// Takes the file's name, in the home's turn (the same namespace step
    /// as an unstaged commit).
    pub(crate) fn commit(self, ctx: &Context) -> (Answer, StoreResult<Option<blake3::Hash>>) {
        let committed = {
            let _turn = ctx.name_order.enter(&self.home);
            self.staged.commit()
        };
        drop(self.lock);
        let answer = Answer {
            req: self.req,
            landed: self.landed,
        };
        (answer, committed)
    }
}

impl PendingPut {
    /// Gives the put up without its name: the group's flush failed. Its
    /// partial file stays, for a resume.
    pub(crate) fn abandon(self, e: StoreError) -> (Answer, StoreResult<Option<blake3::Hash>>) {
        drop(self.staged);
        drop(self.lock);
        let answer = Answer {
            req: self.req,
            landed: self.landed,
        };
        (answer, Err(e))
    }
}

/// The error each put of a group meets when the group's flush failed.
pub(crate) fn flush_failed(e: &std::io::Error) -> StoreError {
    let again = std::io::Error::new(e.kind(), crate::error::reason(e));
    StoreError::Failed("flushing the disk", again)
}

/// What a committed put's reply needs.
pub(crate) struct Answer {
    req: PutRequest,
    landed: Landed,
}

impl Answer {
    /// Tells the client how its put ended: `committed`, unless the group's
    /// flush failed (then nothing of the group is confirmed).
    pub(crate) fn send(
        self,
        ctx: &Context,
        committed: StoreResult<Option<blake3::Hash>>,
        s: &mut impl Write,
    ) -> Result<Outcome> {
        // Its request's line said it was staged; this says how it ended.
        let outcome = match committed {
            Ok(digest) => confirm(ctx, &self.req, &self.landed, digest, s)?,
            Err(e) => {
                ctx.metrics.uploads_failed.inc();
                refuse(s, put_refusal(e, &self.landed))?
            }
        };
        let said = Said::committed_put(&self.landed.name, &self.landed.event.path);
        outcome.log(&said, None);
        Ok(outcome)
    }
}

/// Counts a stored upload and tells the client.
pub(crate) fn confirm(
    ctx: &Context,
    req: &PutRequest,
    landed: &Landed,
    digest: Option<blake3::Hash>,
    s: &mut impl Write,
) -> Result<Outcome> {
    let body = landed.received;
    let metrics = &ctx.metrics;
    metrics.uploads_committed.inc();
    metrics.bytes_in.inc_by(body);
    if landed.offset > 0 {
        metrics.uploads_resumed.inc();
    }
    let done = PutDone {
        filename: landed.name.clone(),
        size: req.filesize,
        received: body,
        replaced: landed.replaced,
        blake3: req.digest.and(digest).map(|h| h.to_hex().to_string()),
    };
    frame::write_json(s, &Reply::Ok(done))?;
    let event = (*landed.event).clone();
    ctx.hooks
        .fire(event.sized(req.filesize, digest, landed.offset > 0));
    let resumed = match landed.offset {
        0 => String::new(),
        at => format!(", resumed at {at}"),
    };
    let what = format!("stored {} bytes{resumed}", req.filesize);
    Ok(Outcome::ok(what, body).transfer(landed.offset > 0, digest))
}

/// The reply to an upload the store did not take.
pub(crate) fn put_refusal(e: StoreError, landed: &Landed) -> ErrorReply {
    let (name, offset) = (&landed.name, landed.offset);
    match e {
        StoreError::DigestMismatch => ErrorReply::new(
            ErrorCode::DigestMismatch,
            format!(
                "digest mismatch for {}: the data does not match (resumed at {offset}); \
                 the partial data was discarded, send the file again",
                escape(name)
            ),
        ),
        StoreError::Exists => ErrorReply::new(
            ErrorCode::Exists,
            format!("{} was created meanwhile; not overwritten", escape(name)),
        ),
        e => store_refusal(e, name),
    }
}
