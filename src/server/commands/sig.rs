//! `sig`: a file's delta signature, so that a client can send or fetch
//! only the chunks that changed. The store keeps it beside the file and
//! cuts it again when the file changed; the entries follow the reply as a
//! body, read as the client takes them.

use std::io;

use super::refusals::store_refusal;
use crate::error::Result;
use crate::net::Transport;
use crate::server::bodies::SignatureBody;
use crate::server::outcome::{refuse, Outcome};
use crate::server::session::Session;
use crate::storage::{Place, StoreError};
use crate::wire::delta::signature::ENTRY_LEN;
use crate::wire::frame;
use crate::wire::message::Reply;

use crate::wire::reply::SigReady;

impl Session<'_> {
    pub(crate) fn sig<S: Transport>(&mut self, filename: String, s: &mut S) -> Result<Outcome> {
        // The kept signature stays open while the peer reads it.
        let lease = match self.lease_fds(1) {
            Ok(lease) => lease,
            Err(reply) => return refuse(s, reply),
        };
        let (folder, name) = match self.resolve_file(&filename) {
            Ok(found) => found,
            Err(reply) => return refuse(s, reply),
        };
        let at = Place::new(&self.home, &folder);
        let signature = match self.ctx.store.signature(at, &name) {
            Ok(signature) => signature,
            // Asked before every upload of a big file: one not there yet
            // is the usual answer, not a failure.
            Err(StoreError::File(e)) if e.kind() == io::ErrorKind::NotFound => {
                let refused = refuse(s, store_refusal(StoreError::File(e), &filename))?;
                return Ok(refused.nothing("no stored file to build a delta on"));
            }
            // The refusal's line says why, so that an operator sees why
            // changed files cross the network whole.
            Err(e) => return refuse(s, store_refusal(e, &filename)),
        };
        let len = signature.chunks * ENTRY_LEN as u64;
        frame::write_json(
            s,
            &Reply::Ok(SigReady {
                filename,
                filesize: signature.size,
                chunks: signature.chunks,
                blake3: signature.blake3.to_hex().to_string(),
                mtime: signature.mtime,
            }),
        )?;
        let metrics = self.ctx.metrics.clone();
        let body = SignatureBody::new(signature.entries, len, metrics, lease);
        let sending = format!("signature of {} chunks", signature.chunks);
        Ok(Outcome::ok(sending, len).with_body(Box::new(body)))
    }
}
