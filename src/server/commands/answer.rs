//! How a stored put is answered, at once or at its group's commit: the
//! upload counted, the hook told and `ok` sent, or the store's refusal
//! sent in its place.

use std::io::Write;

use super::refusals::store_refusal;
use super::staged::{Answer, Landed};
use crate::error::Result;
use crate::server::context::Context;
use crate::server::outcome::{refuse, Outcome, Said};
use crate::storage::{StoreError, StoreResult};
use crate::wire::frame;
use crate::wire::message::{ErrorCode, ErrorReply, PutDone, PutRequest, Reply};
use crate::wire::names::escape;

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
