//! Delta upload: a `put` with `delta` builds the new file from chunks of
//! the stored one and new bytes. Everything about the old file is checked
//! before `ready`; the recipe is read whole (it is bounded) and checked
//! against the old file's chunks and the declared size before a byte is
//! written. The build then goes through the same partial file, quota
//! charges, digest and atomic rename as a whole upload.

use std::io::{BufReader, Read};
use std::time::Instant;

use super::body::{body_end, BodyEnd, PreparedPut, Stop};
use super::refusals::store_refusal;
use crate::error::{Error, Result};
use crate::io::pump::{buffer_for, pump, PumpError};
use crate::io::throttle::RateFloor;
use crate::net::Transport;
use crate::server::outcome::{refuse, Outcome};
use crate::server::session::Session;
use crate::storage::{Place, StoreError, StoredFile};
use crate::wire::delta::recipe::{self, Piece, MAX_RECIPE_LEN};
use crate::wire::delta::signature::{SignatureDecoder, ENTRY_LEN};
use crate::wire::delta::Step;
use crate::wire::message::{DeltaBase, ErrorCode, ErrorReply, PutRequest};
use crate::wire::names::escape;

/// The stored file a delta upload builds on: open, so that a replacement
/// meanwhile does not change what is copied, and where its chunks start
/// (its size last). The final digest catches any difference between the
/// two.
pub(super) struct Base {
    file: Box<dyn StoredFile>,
    offsets: Vec<u64>,
}

impl Session<'_> {
    /// The stored file a delta upload names, with its chunks; refuses an
    /// upload that cannot build on it (`base_changed`: the client then
    /// sends the whole file).
    pub(super) fn delta_base(
        &self,
        req: &PutRequest,
        delta: &DeltaBase,
    ) -> Result<Base, ErrorReply> {
        if !req.resume || req.digest.is_none() {
            let why = "a delta put needs resume and a blake3 digest";
            return Err(ErrorReply::new(ErrorCode::BadRequest, why));
        }
        if delta.recipe > MAX_RECIPE_LEN {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!(
                    "recipe too long: {} > {MAX_RECIPE_LEN} bytes; send the whole file",
                    delta.recipe
                ),
            ));
        }
        let (folder, name) = self.resolve_file(&req.filename)?;
        let at = Place::new(&self.home, &folder);
        let changed = |why: &str| {
            ErrorReply::new(
                ErrorCode::BaseChanged,
                format!("{}: {why}; send the whole file", escape(&req.filename)),
            )
        };
        let store = &self.ctx.store;
        let file = match store.open_file(at, &name) {
            Ok(file) => file,
            Err(StoreError::File(_)) => return Err(changed("there is no stored file to build on")),
            Err(e) => return Err(store_refusal(e, &req.filename)),
        };
        let signature = match store.signature(at, &name) {
            Ok(signature) => signature,
            Err(StoreError::Unsupported(why)) => return Err(changed(why)),
            Err(e) => return Err(store_refusal(e, &req.filename)),
        };
        let base = blake3::Hash::from_hex(&delta.base).ok();
        if base != Some(signature.blake3) || file.size() != signature.size {
            return Err(changed(
                "the stored file changed since its signature was read",
            ));
        }
        let offsets = offsets(signature.size, signature.chunks, signature.entries)
            .map_err(|e| super::refusals::internal("reading a signature", &e))?;
        Ok(Base { file, offsets })
    }

    /// The body, whole or built by a delta's recipe, with how many of its
    /// bytes crossed the network.
    pub(super) fn receive<S: Transport>(
        &self,
        req: &PutRequest,
        prepared: &mut PreparedPut,
        base: Option<Base>,
        s: &mut S,
    ) -> Result<(BodyEnd, u64)> {
        match base {
            Some(base) => self.receive_delta(req, prepared, base, s),
            None => {
                let sent = req.filesize - prepared.upload.offset();
                Ok((self.receive_body(req, prepared, s)?, sent))
            }
        }
    }

    /// Reads a delta upload's recipe and builds the file from it and the
    /// new bytes that follow, from the upload's offset on (what a resume
    /// kept stays). Returns how the body ended and how many bytes it
    /// took from the network.
    fn receive_delta<S: Transport>(
        &self,
        req: &PutRequest,
        prepared: &mut PreparedPut,
        mut base: Base,
        s: &mut S,
    ) -> Result<(BodyEnd, u64)> {
        let recipe_len = req.delta.as_ref().map_or(0, |d| d.recipe);
        let pieces = match self.read_recipe(s, recipe_len, &base.offsets, req.filesize)? {
            Ok(pieces) => pieces,
            Err(reply) => return Ok((BodyEnd::Refused(reply), recipe_len)),
        };
        // Only the chunk starts were needed to check and map the recipe.
        base.offsets = Vec::new();
        let offset = prepared.upload.offset();
        let mut floor =
            (self.ctx.live.get().floor).map(|(rate, window)| RateFloor::new(rate, window));
        let mut buf = buffer_for(req.filesize);
        let (mut stored, mut write_error, mut at) = (offset, None, 0u64);
        let mut received = recipe_len;
        for piece in pieces {
            let len = match piece {
                Piece::Copy { len, .. } | Piece::Data { len } => len,
            };
            // What a resume kept is not built again, nor sent.
            let skip = offset.saturating_sub(at).min(len);
            at += len;
            let sink = (&mut stored, &mut write_error);
            let ended = match piece {
                Piece::Copy { from, .. } => {
                    let range = (from + skip, len - skip);
                    let file = &mut *base.file;
                    let copied = self.copy_range(req, prepared, file, range, &mut buf, sink);
                    copied.map(|()| 0).map_err(PumpError::Sink)
                }
                Piece::Data { .. } => pump(s, len - skip, &mut buf, |chunk| {
                    self.account.limits.pace_up(chunk.len());
                    if let Some(floor) = floor.as_mut() {
                        floor.note(chunk.len()).map_err(Stop::Slow)?;
                    }
                    let sink = (&mut *sink.0, &mut *sink.1);
                    self.store_chunk(req, prepared, (chunk, None), sink)
                }),
            };
            match ended {
                Ok(n) => received += n,
                Err(e) => return body_end(Err::<u64, _>(e), None).map(|end| (end, received)),
            }
        }
        Ok((BodyEnd::Read(write_error), received))
    }

    /// Reads the recipe and checks it against the old file and the size;
    /// the inner error is the refusal of a bad one.
    fn read_recipe<S: Transport>(
        &self,
        s: &mut S,
        len: u64,
        offsets: &[u64],
        size: u64,
    ) -> Result<Result<Vec<Piece>, ErrorReply>> {
        // At most MAX_RECIPE_LEN, checked before `ready`.
        let mut bytes = vec![0u8; len as usize];
        s.set_deadline(Some(Instant::now() + self.ctx.timings.idle));
        let read = s.read_exact(&mut bytes);
        s.set_deadline(None);
        read.map_err(|e| Error::io("receiving the recipe", e))?;
        let refused = |e: crate::wire::delta::DeltaError| {
            ErrorReply::new(ErrorCode::BadRequest, format!("refused recipe: {e}"))
        };
        let ops = recipe::decode_all(&bytes).map_err(refused);
        Ok(ops.and_then(|ops| recipe::plan(&ops, offsets, size).map_err(refused)))
    }

    /// Copies `len` bytes of the old file from `from` into the upload,
    /// charged as a body's bytes are. A failure to read the old file is
    /// kept as the upload's write error: the body is still read, so the
    /// stream stays in step for the reply.
    fn copy_range(
        &self,
        req: &PutRequest,
        prepared: &mut PreparedPut,
        file: &mut dyn StoredFile,
        (from, len): (u64, u64),
        buf: &mut [u8],
        (stored, write_error): (&mut u64, &mut Option<StoreError>),
    ) -> Result<(), Stop> {
        if len == 0 || write_error.is_some() {
            return Ok(());
        }
        // Taken before the read: the stored file is read and copied from
        // at once.
        let origin = file.copy_origin();
        let mut source = match file.read_range(from, len) {
            Ok(reader) => reader,
            Err(e) => {
                *write_error = Some(StoreError::Failed("reading the stored file", e));
                return Ok(());
            }
        };
        let (mut at, end) = (from, from + len);
        while at < end && write_error.is_none() {
            let want = (end - at).min(buf.len() as u64) as usize;
            if let Err(e) = source.read_exact(&mut buf[..want]) {
                *write_error = Some(StoreError::Failed("reading the stored file", e));
                break;
            }
            let chunk = (&buf[..want], origin.as_ref().map(|o| (o, at)));
            self.store_chunk(req, prepared, chunk, (&mut *stored, &mut *write_error))?;
            at += want as u64;
        }
        Ok(())
    }
}

/// Answers a delta upload refused before `ready`. A client that does not
/// wait for `ready` is sending a body of a length the header does not
/// give: the stream is out of step, and the connection closes.
pub(super) fn refuse_delta<S: Transport>(
    req: &PutRequest,
    reply: ErrorReply,
    s: &mut S,
) -> Result<Outcome> {
    let refused = refuse(s, reply);
    match req.wants_ready() {
        true => refused,
        false => refused.map(Outcome::closing),
    }
}

/// Where each of `chunks` chunks of a file of `size` bytes starts, read
/// from a store's signature entries, with `size` last.
fn offsets(size: u64, chunks: u64, entries: Box<dyn Read + Send>) -> std::io::Result<Vec<u64>> {
    let bad = |e: crate::wire::delta::DeltaError| std::io::Error::other(e.to_string());
    let mut decoder = SignatureDecoder::new(size, chunks).map_err(bad)?;
    let mut reader = BufReader::new(entries);
    let mut entry = [0u8; ENTRY_LEN];
    let mut offsets = Vec::with_capacity(chunks.min(1 << 20) as usize + 1);
    loop {
        match decoder.decode(&entry[..0]).map_err(bad)? {
            Step::Done => break,
            _ => reader.read_exact(&mut entry)?,
        }
        match decoder.decode(&entry).map_err(bad)? {
            Step::Item(chunk, _) => offsets.push(chunk.offset),
            _ => return Err(std::io::ErrorKind::InvalidData.into()),
        }
    }
    offsets.push(size);
    Ok(offsets)
}
