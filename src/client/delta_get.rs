//! Delta download: `get` over a local file that differs cuts the local
//! copy, asks for the server's signature, and fetches only the chunks it
//! lacks, with ranged `get`s (no new server state). It builds the result
//! in the usual partial file, checks each range's digest and then the
//! whole file's BLAKE3 against the signature's, and only then replaces
//! the local file, under the overwrite policy.
//!
//! A hostile server's signature only says which of *its* chunks to take
//! from where: local bytes are read only at ranges this side's own cut
//! found, and bytes are written only to the partial file, in order, up to
//! the size the signature declared (checked against the disk's room).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use crate::client::checks::check_room;
use crate::client::connect::read_reply;
use crate::client::delta::{cut_while, LocalCut, RemoteSignature, DELTA_FROM};
use crate::client::files::keep_times;
use crate::client::overwrite::{confirm_early, land_download, Overwrite};
use crate::client::partial::open_partial_download;
use crate::client::{Client, GetReport, Progress};
use crate::error::{Error, Result};
use crate::wire::delta::max_chunks;
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{Digest, GetReady, GetRequest, Request};
use crate::wire::names::escape;

/// Ranged gets sent before their replies are read: small requests, so a
/// window never fills the socket while the replies wait.
const WINDOW: usize = 64;

/// One stretch of the file being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// `len` bytes of the local file from `from`.
    Local { from: u64, len: u64 },
    /// `len` bytes of the server's file from `from`.
    Fetch { from: u64, len: u64 },
}

impl Client {
    /// Fetches `name` into `target` (an existing local file of at least
    /// [`DELTA_FROM`] bytes) through `partial`, taking what it can from
    /// `target`; `None` when a whole download is better (no signature,
    /// nothing in common).
    ///
    /// A different `target` is replaced as `policy` says.
    ///
    /// Fails as a download does; [`Error::DigestMismatch`] when the built
    /// file is not the server's (the partial is removed).
    pub(crate) fn get_delta(
        &mut self,
        name: &str,
        (target, partial): (&Path, &Path),
        policy: &Overwrite,
        progress: &mut dyn Progress,
    ) -> Result<Option<GetReport>> {
        let started = Instant::now();
        let Ok(mut local) = File::open(target) else {
            return Ok(None);
        };
        let local_size = local.metadata().map_or(0, |m| m.len());
        if local_size < DELTA_FROM || !local.metadata().is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        // The signature is held whole: bounded by what the local file
        // could share, with room to grow.
        let cap = 4 * max_chunks(local_size) + 65_536;
        let (cut, base) = cut_while(&local, || self.remote_signature(name, cap));
        let Some(base) = base? else {
            return Ok(None);
        };
        let cut = cut.map_err(|e| Error::cannot_read("the local copy", e))?;
        let Some(runs) = runs_for(&cut, &base) else {
            return Ok(None);
        };
        check_room(partial, base.size)?;
        let agreed = confirm_early(policy, target, base.size)?;
        let (mut out, _) = open_partial_download(partial, 0)?;
        progress.start(name, base.size, 0);
        let files = (&mut local, &mut out);
        let built = self.guard(|c| c.build(name, files, &runs, base.size, progress));
        progress.finish();
        // Ranged gets may still be in flight: out of step.
        let (digest, fetched) = built.inspect_err(|_| self.broken = true)?;
        let expected = blake3::Hash::from_hex(&base.blake3).ok();
        if expected != Some(digest) {
            let _ = fs::remove_file(partial);
            return Err(Error::DigestMismatch { name: escape(name) });
        }
        out.sync_all()
            .map_err(|e| Error::io("writing the download", e))?;
        land_download(policy, partial, target, base.size, &digest, agreed)?;
        keep_times(target, base.mtime, None);
        Ok(Some(GetReport {
            path: target.to_path_buf(),
            size: base.size,
            received: fetched,
            resumed_from: 0,
            restarted: false,
            elapsed: started.elapsed(),
            matched: base.size - fetched,
        }))
    }

    /// Builds the file into `out` from `runs`, in order; returns its
    /// BLAKE3 and the bytes fetched.
    fn build(
        &mut self,
        name: &str,
        (local, out): (&mut File, &mut File),
        runs: &[Run],
        size: u64,
        progress: &mut dyn Progress,
    ) -> Result<(blake3::Hash, u64)> {
        let fetches: Vec<(u64, u64)> = runs
            .iter()
            .filter_map(|run| match *run {
                Run::Fetch { from, len } => Some((from, len)),
                Run::Local { .. } => None,
            })
            .collect();
        let (mut requested, mut taken, mut fetched) = (0, 0, 0);
        let mut whole = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let write = |e| Error::io("writing the download", e);
        for run in runs {
            match *run {
                Run::Local { from, len } => {
                    local
                        .seek(SeekFrom::Start(from))
                        .map_err(|e| Error::cannot_read("the local copy", e))?;
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(buf.len() as u64) as usize;
                        local
                            .read_exact(&mut buf[..n])
                            .map_err(|e| Error::cannot_read("the local copy", e))?;
                        out.write_all(&buf[..n]).map_err(write)?;
                        whole.update(&buf[..n]);
                        progress.advance(n as u64);
                        left -= n as u64;
                    }
                }
                Run::Fetch { from, len } => {
                    if taken == requested {
                        requested = (requested + WINDOW).min(fetches.len());
                        self.ask_ranges(name, &fetches[taken..requested])?;
                    }
                    self.take_range(name, (from, len), size, out, &mut whole, &mut buf, progress)?;
                    taken += 1;
                    fetched += len;
                }
            }
        }
        Ok((whole.finalize(), fetched))
    }

    /// Sends the ranged gets for `ranges` in one write.
    fn ask_ranges(&mut self, name: &str, ranges: &[(u64, u64)]) -> Result<()> {
        let mut bytes = Vec::new();
        for &(offset, len) in ranges {
            let request = Request::Get(GetRequest::ranged(name, offset, Some(len)));
            bytes.extend(frame::encode_json(&request)?);
        }
        self.stream
            .write_all(&bytes)
            .map_err(|e| Error::io("sending requests", e))
    }

    /// Reads the reply to the ranged get of `len` bytes at `from`, writing
    /// them to `out` and hashing them, and checks the range's digest.
    #[allow(clippy::too_many_arguments)]
    fn take_range(
        &mut self,
        name: &str,
        (from, len): (u64, u64),
        size: u64,
        out: &mut File,
        whole: &mut blake3::Hasher,
        buf: &mut [u8],
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let ready: GetReady = read_reply(&mut self.stream)?;
        if ready.offset != from || ready.filesize != size {
            return Err(Error::Malformed(format!(
                "the server answered a range at {from} of {size} bytes with one at {} of {}",
                ready.offset, ready.filesize
            )));
        }
        let mut range = blake3::Hasher::new();
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.stream
                .read_exact(&mut buf[..n])
                .map_err(|e| Error::io("receiving file data", e))?;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("writing the download", e))?;
            whole.update(&buf[..n]);
            range.update(&buf[..n]);
            progress.advance(n as u64);
            left -= n as u64;
        }
        let digest: Digest = frame::read_json(&mut self.stream, MAX_HEADER_LEN)?;
        match blake3::Hash::from_hex(&digest.blake3) {
            Ok(d) if d == range.finalize() => Ok(()),
            _ => Err(Error::DigestMismatch { name: escape(name) }),
        }
    }
}

/// The runs that build the server's file from `base`'s chunks, each
/// taken from the local file where it has a chunk of that BLAKE3;
/// neighbours merged. `None` when the local file has none of them.
fn runs_for(local: &LocalCut, base: &RemoteSignature) -> Option<Vec<Run>> {
    let mut have = HashMap::new();
    for chunk in &local.chunks {
        have.entry(chunk.hash)
            .or_insert((chunk.offset, u64::from(chunk.len)));
    }
    let mut runs: Vec<Run> = Vec::new();
    for chunk in &base.chunks {
        let len = u64::from(chunk.len);
        let run = match have.get(&chunk.hash) {
            Some(&(from, local_len)) if local_len == len => Run::Local { from, len },
            _ => Run::Fetch {
                from: chunk.offset,
                len,
            },
        };
        match (runs.last_mut(), run) {
            (
                Some(Run::Local { from, len }),
                Run::Local {
                    from: next,
                    len: more,
                },
            )
            | (
                Some(Run::Fetch { from, len }),
                Run::Fetch {
                    from: next,
                    len: more,
                },
            ) if *from + *len == next => *len += more,
            _ => runs.push(run),
        }
    }
    let any_local = runs.iter().any(|r| matches!(r, Run::Local { .. }));
    any_local.then_some(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;
    use crate::wire::delta::signature::Chunk;

    fn local(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, bytes).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    #[test]
    fn local_bytes_are_taken_only_where_this_side_cut_them() {
        let data = noise(1 << 20, 41);
        let (_dir, mut file) = local(&data);
        let cut = crate::client::delta::cut_local(&mut file).unwrap();
        let mine = cut.chunks.clone();
        // A server that names a local chunk's hash with another length,
        // or at another place, gets its bytes fetched, not read from here.
        let lying = Chunk {
            offset: 0,
            len: mine[0].len + 1,
            hash: mine[0].hash,
        };
        let honest = Chunk {
            offset: u64::from(lying.len),
            ..mine[1]
        };
        let base = RemoteSignature {
            blake3: String::new(),
            size: honest.end(),
            mtime: 0,
            chunks: vec![lying, honest],
        };
        let runs = runs_for(&cut, &base).unwrap();
        assert_eq!(
            runs,
            [
                Run::Fetch {
                    from: 0,
                    len: u64::from(lying.len)
                },
                Run::Local {
                    from: mine[1].offset,
                    len: u64::from(mine[1].len)
                },
            ]
        );
        // Nothing in common: no delta at all.
        let other = RemoteSignature {
            chunks: vec![Chunk {
                hash: [7; 32],
                ..mine[0]
            }],
            ..base
        };
        assert_eq!(runs_for(&cut, &other), None);
    }
}
