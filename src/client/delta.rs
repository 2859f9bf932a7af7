//! Delta upload, the client's side: ask the server for the stored file's
//! signature, cut the local file the same way, and send a recipe (copy
//! these chunks, here are new bytes) with only the new bytes. Whatever
//! stops a delta before its body (no stored file, a store that keeps no
//! signatures, an older server, a file that changed meanwhile) ends in a
//! whole upload, without asking the user.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

use crate::client::checks::{check_offset, check_stored};
use crate::client::connect::read_reply;
use crate::client::files::{file_mtime, paced};
use crate::client::{Client, Progress, PutReport};
use crate::error::{Error, Result};
use crate::io::chunks;
use crate::io::pump::{relay, PumpError};
use crate::wire::delta::recipe::{plan, Piece, RecipeBuilder, MAX_RECIPE_LEN};
use crate::wire::delta::signature::{Chunk, SignatureDecoder, ENTRY_LEN};
use crate::wire::delta::{max_chunks, DeltaError, Step};
use crate::wire::frame;
use crate::wire::message::{
    DeltaBase, Digest, DigestAlgorithm, PutDone, PutReady, PutRequest, Request,
};
use crate::wire::reply::{ErrorCode, SigReady};

/// Files smaller than this are sent whole: the signature's round trip
/// costs more than their bytes.
pub(crate) const DELTA_FROM: u64 = 1024 * 1024;

/// The stored file's signature, as the server sent it.
pub(crate) struct RemoteSignature {
    /// The stored file's BLAKE3, hex: what the recipe builds on.
    pub(crate) blake3: String,
    /// Its size.
    pub(crate) size: u64,
    /// Its modification time, seconds since the epoch.
    pub(crate) mtime: u64,
    pub(crate) chunks: Vec<Chunk>,
}

/// How many chunks of a stored file's signature are worth holding for a
/// put of a local file of `size` bytes: more could not match.
pub(crate) fn keep_for_put(size: u64) -> u64 {
    2 * max_chunks(size) + 64
}

impl Client {
    /// The signature of the stored file `name`; `None` when there is none
    /// to build on: no such file, a store that keeps none, a server that
    /// does not know `sig`, or one of more than `keep_at_most` chunks
    /// (its entries are then read and dropped, never held).
    ///
    /// Fails when the connection does, or the signature breaks the
    /// contract's rules (the connection is then out of step).
    pub(crate) fn remote_signature(
        &mut self,
        name: &str,
        keep_at_most: u64,
    ) -> Result<Option<RemoteSignature>> {
        self.guard(|c| {
            let request = Request::Sig {
                filename: name.to_string(),
            };
            frame::write_json(&mut c.stream, &request)?;
            let ready: SigReady = match read_reply(&mut c.stream) {
                Ok(ready) => ready,
                Err(Error::Remote { code, .. }) if no_signature(&code) => return Ok(None),
                Err(e) => return Err(e),
            };
            read_signature(&mut c.stream, ready, keep_at_most)
        })
    }

    /// Uploads `file` (`size` bytes, cut as `local` says) as `name` by a
    /// recipe on `base`;
    /// `None` when it should go whole instead: nothing in it matches, the
    /// recipe would be too long, or the stored file changed since its
    /// signature was read.
    ///
    /// Fails as a whole put does.
    pub(crate) fn put_delta(
        &mut self,
        name: &str,
        (file, size): (&mut File, u64),
        (local, base): (&LocalCut, &RemoteSignature),
        progress: &mut dyn Progress,
    ) -> Result<Option<PutReport>> {
        let started = Instant::now();
        let Some(Recipe {
            bytes: recipe,
            pieces,
            digest,
        }) = recipe_for(local, size, base)
        else {
            return Ok(None);
        };
        let request = Request::Put(PutRequest {
            resume: true,
            digest: Some(DigestAlgorithm::Blake3),
            mtime: file_mtime(file),
            delta: Some(DeltaBase {
                base: base.blake3.clone(),
                recipe: recipe.len() as u64,
            }),
            ..PutRequest::plain(name, size)
        });
        self.guard(|c| {
            frame::write_json(&mut c.stream, &request)?;
            let ready: PutReady = match read_reply(&mut c.stream) {
                Ok(ready) => ready,
                Err(Error::Remote {
                    code: ErrorCode::BaseChanged,
                    ..
                }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let offset = ready.offset;
            check_offset(offset, size)?;
            c.stream
                .write_all(&recipe)
                .map_err(|e| Error::io("sending the recipe", e))?;
            progress.start(name, size, offset);
            let sent = c.send_pieces(name, file, &pieces, offset, progress);
            progress.finish();
            let sent = sent?;
            let blake3 = digest.to_hex().to_string();
            frame::write_json(&mut c.stream, &Digest { blake3 })?;
            let done: PutDone = read_reply(&mut c.stream)?;
            Ok(Some(PutReport {
                done: check_stored(&done, name, size, &digest)?,
                resumed_from: offset,
                restarted: false,
                confirmed: true,
                elapsed: started.elapsed(),
                matched: size - offset - sent,
            }))
        })
    }

    /// Sends the new bytes of `pieces` from `offset` on, as
    /// [`send_pieces`] does; returns the new bytes sent.
    fn send_pieces(
        &mut self,
        name: &str,
        file: &mut File,
        pieces: &[Piece],
        offset: u64,
        progress: &mut dyn Progress,
    ) -> Result<u64> {
        let options = self.options.clone();
        let mut sink = paced(&mut self.stream, &options);
        let sent = send_pieces(&mut sink, file, pieces, offset, |n| progress.advance(n));
        drop(sink);
        match sent {
            Ok(n) => Ok(n),
            Err(PumpError::Source(e)) => {
                self.broken = true;
                Err(Error::Usage(format!(
                    "{name} changed while it was being sent ({e}); nothing was stored"
                )))
            }
            Err(PumpError::Sink(e)) => Err(Error::io("sending file data", e)),
        }
    }
}

/// Reads the entries of the signature `ready` announced from `stream`,
/// checking each; keeps them only when there are at most `keep_at_most`
/// (else `None`, the entries read and dropped).
///
/// Fails when the stream does, or on an entry that breaks the contract's
/// rules (the stream is then out of step).
pub(crate) fn read_signature(
    stream: &mut impl Read,
    ready: SigReady,
    keep_at_most: u64,
) -> Result<Option<RemoteSignature>> {
    let keep = ready.chunks <= keep_at_most;
    let mut decoder = SignatureDecoder::new(ready.filesize, ready.chunks).map_err(bad)?;
    let mut chunks = Vec::new();
    let mut entry = [0u8; ENTRY_LEN];
    while decoder.decode(&[]).map_err(bad)? != Step::Done {
        stream
            .read_exact(&mut entry)
            .map_err(|e| Error::io("receiving a signature", e))?;
        if let Step::Item(chunk, _) = decoder.decode(&entry).map_err(bad)? {
            if keep {
                chunks.push(chunk);
            }
        }
    }
    Ok(keep.then_some(RemoteSignature {
        blake3: ready.blake3,
        size: ready.filesize,
        mtime: ready.mtime,
        chunks,
    }))
}

/// Sends to `sink` the new bytes of `pieces` (read from `file` where the
/// recipe puts them), from byte `offset` of the built file on, and tells
/// `advance` of every byte built, copied or sent; returns the new bytes
/// sent.
///
/// Fails with [`PumpError::Source`] when the file cannot be read as far
/// as its recipe said (it changed), [`PumpError::Sink`] when the sink
/// fails.
pub(crate) fn send_pieces(
    sink: &mut dyn Write,
    file: &mut File,
    pieces: &[Piece],
    offset: u64,
    mut advance: impl FnMut(u64),
) -> std::result::Result<u64, PumpError> {
    let (mut at, mut sent) = (0u64, 0u64);
    for piece in pieces {
        let (len, new) = match *piece {
            Piece::Copy { len, .. } => (len, false),
            Piece::Data { len } => (len, true),
        };
        let skip = offset.saturating_sub(at).min(len);
        let start = at + skip;
        at += len;
        if !new {
            advance(len - skip);
            continue;
        }
        file.seek(SeekFrom::Start(start))
            .map_err(|e| PumpError::Source(Error::io("reading the local file", e)))?;
        sent += relay(file, sink, len - skip, None, &mut advance)?;
    }
    Ok(sent)
}

/// A recipe ready to send: its bytes, the byte ranges it builds from, and
/// the whole local file's BLAKE3.
pub(crate) struct Recipe {
    pub(crate) bytes: Vec<u8>,
    pub(crate) pieces: Vec<Piece>,
    pub(crate) digest: blake3::Hash,
}

/// The codes that mean "no signature to build on": send the whole file.
pub(crate) fn no_signature(code: &ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotFound
            | ErrorCode::Forbidden
            | ErrorCode::UnknownCommand
            | ErrorCode::BaseChanged
            | ErrorCode::Exists
    )
}

fn bad(e: DeltaError) -> Error {
    Error::Malformed(format!("the server sent a bad signature: {e}"))
}

/// A local file cut as the contract says.
pub(crate) struct LocalCut {
    /// Its chunks, in order.
    pub(crate) chunks: Vec<Chunk>,
    /// The whole file's BLAKE3.
    pub(crate) digest: blake3::Hash,
    /// How many bytes were cut.
    pub(crate) size: u64,
}

/// Cuts `file` from its start.
///
/// Fails when it cannot be read.
pub(crate) fn cut_local(file: &mut File) -> std::io::Result<LocalCut> {
    file.seek(SeekFrom::Start(0))?;
    let (mut found, mut whole) = (Vec::new(), blake3::Hasher::new());
    let size = chunks::cut(&mut *file, |chunk, bytes| {
        whole.update(bytes);
        found.push(chunk);
        Ok(())
    })?;
    Ok(LocalCut {
        chunks: found,
        digest: whole.finalize(),
        size,
    })
}

/// Runs `ask` (a signature's round trip) while another thread cuts
/// `file`: on a big file the two take about as long, so the cut costs
/// no time of its own.
pub(crate) fn cut_while<T>(file: &File, ask: impl FnOnce() -> T) -> (std::io::Result<LocalCut>, T) {
    let mut own = match file.try_clone() {
        Ok(own) => own,
        Err(e) => return (Err(e), ask()),
    };
    std::thread::scope(|scope| {
        let cutting = scope.spawn(move || cut_local(&mut own));
        let answer = ask();
        let cut = cutting
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("cutting the local file failed")));
        (cut, answer)
    })
}

/// The recipe that builds `local` (`size` bytes, cut as `local` says)
/// from `base`'s chunks: its encoding, the byte ranges it builds from,
/// and the file's BLAKE3. `None` when a whole upload is the better deal
/// (nothing matches, or the file changed since it was cut) or the only
/// one (the recipe would pass [`MAX_RECIPE_LEN`]).
pub(crate) fn recipe_for(local: &LocalCut, size: u64, base: &RemoteSignature) -> Option<Recipe> {
    let mut known = HashMap::with_capacity(base.chunks.len());
    for (index, chunk) in base.chunks.iter().enumerate().rev() {
        // The first of equal chunks wins; any would do.
        known.insert(chunk.hash, index as u32);
    }
    let mut builder = RecipeBuilder::default();
    let mut matched = false;
    for chunk in &local.chunks {
        match known.get(&chunk.hash) {
            Some(&index) => {
                builder.copy(index);
                matched = true;
            }
            None => builder.data(u64::from(chunk.len)),
        }
    }
    if local.size != size || !matched || builder.encoded_len() > MAX_RECIPE_LEN {
        return None;
    }
    let mut offsets: Vec<u64> = base.chunks.iter().map(|c| c.offset).collect();
    offsets.push(base.size);
    let pieces = plan(builder.ops(), &offsets, size).ok()?;
    Some(Recipe {
        bytes: builder.encode(),
        pieces,
        digest: local.digest,
    })
}
