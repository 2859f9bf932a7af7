//! A batch's delta upload (`put -r`, `sync`): the same exchange as a
//! single `put`'s (see [`crate::client::delta`]), through the batch's
//! pipe. Like a large file's whole upload it waits for its replies (the
//! signature, then `ready`), every earlier one having been read by then.

use std::fs::File;

use super::sending::{body_sent, lost, request_out, Sending};
use super::{BatchProgress, Sent, Upload};
use crate::client::checks::check_offset;
use crate::client::connect::read_reply;
use crate::client::delta::{
    cut_while, keep_for_put, no_signature, read_signature, recipe_for, send_pieces, RemoteSignature,
};
use crate::client::files::paced;
use crate::client::pipeline::Pipe;
use crate::client::ClientOptions;
use crate::error::Error;
use crate::wire::message::{DeltaBase, Digest, PutReady, PutRequest, Request};
use crate::wire::reply::{ErrorCode, SigReady};

/// Sends `u` as a recipe on the stored file's signature; `None` when it
/// goes whole instead (no stored file or signature, nothing matches, the
/// stored file changed since its signature was read).
pub(super) fn send_delta_put(
    pipe: &mut Pipe,
    u: &Upload,
    header: &PutRequest,
    file: &mut File,
    client: &ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Option<Sent>, Sending> {
    let size = header.filesize;
    let (cut, base) = cut_while(file, || signature(pipe, u, size));
    let Some(base) = base? else {
        return Ok(None);
    };
    let cut = cut.map_err(|e| Sending::Local(Error::cannot_read(u.local.display(), e)))?;
    let Some(recipe) = recipe_for(&cut, size, &base) else {
        return Ok(None);
    };
    let request = Request::Put(PutRequest {
        resume: true,
        delta: Some(DeltaBase {
            base: base.blake3.clone(),
            recipe: recipe.bytes.len() as u64,
        }),
        ..header.clone()
    });
    request_out(pipe, &request)?;
    let offset = match read_reply::<_, PutReady>(pipe) {
        Ok(ready) => ready.offset,
        Err(Error::Remote {
            code: ErrorCode::BaseChanged,
            ..
        }) => return Ok(None),
        Err(e @ Error::Remote { .. }) => return Err(Sending::Local(e)),
        Err(e) => return Err(lost(e)),
    };
    check_offset(offset, size).map_err(lost)?;
    pipe.send_request(&recipe.bytes)
        .map_err(|e| lost(Error::io("sending files", e)))?;
    progress.advance(offset);
    let stream = pipe
        .direct()
        .map_err(|e| lost(Error::io("sending files", e)))?;
    let mut sink = paced(stream, client);
    let sent = send_pieces(&mut sink, file, &recipe.pieces, offset, |n| {
        progress.advance(n)
    });
    drop(sink);
    body_sent(u, sent)?;
    let blake3 = recipe.digest.to_hex().to_string();
    request_out(pipe, &Digest { blake3 })?;
    Ok(Some(Sent::Put {
        size,
        digest: recipe.digest,
        resumed_from: offset,
    }))
}

/// The stored file's signature, read whole off the pipe; `None` when
/// there is none to build on.
fn signature(pipe: &mut Pipe, u: &Upload, size: u64) -> Result<Option<RemoteSignature>, Sending> {
    let request = Request::Sig {
        filename: u.remote.clone(),
    };
    request_out(pipe, &request)?;
    match read_reply::<_, SigReady>(pipe) {
        // A bad signature leaves the stream out of step, through this step.
        Ok(ready) => {
            read_signature(pipe, ready, keep_for_put(size)).map_err(|cause| Sending::LostWith {
                file: u.local.clone(),
                cause,
            })
        }
        Err(Error::Remote { code, .. }) if no_signature(&code) => Ok(None),
        Err(e @ Error::Remote { .. }) => Err(Sending::Local(e)),
        Err(e) => Err(lost(e)),
    }
}
