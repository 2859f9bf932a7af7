//! BLAKE3 of a byte stream, computed beside the I/O for large streams.
//!
//! Receiving a large upload keeps one core busy with decryption, the copy
//! into the page cache and the digest, while the sender's core has room to
//! spare. Hashing on a helper thread takes the digest, about an eighth of
//! the receiving thread's time, off the path that sets the transfer's
//! speed. The helper gets its own copy of each chunk: copying 256 KiB that
//! is still in the cache costs far less than hashing it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Streams shorter than this are hashed inline: a thread and its buffers
/// are not worth it.
pub(crate) const BACKGROUND_FROM: u64 = 8 * 1024 * 1024;

/// Chunks in flight to the helper before the feeder waits for it.
const DEPTH: usize = 4;

/// A BLAKE3 hasher that may run on a helper thread.
pub(crate) struct Digester(Inner);

impl Default for Digester {
    /// An empty digest, hashed inline.
    fn default() -> Digester {
        Digester(Inner::Inline(Box::default()))
    }
}

enum Inner {
    // Boxed: a hasher's state is 2 KiB, the other variant a few words.
    Inline(Box<blake3::Hasher>),
    Background(Background),
}

struct Background {
    chunks: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    allocated: usize,
    helper: JoinHandle<blake3::Hasher>,
}

impl Digester {
    /// Continues `hasher` over the next `remaining` bytes, on a helper
    /// thread when they are many (and a thread can be had).
    pub(crate) fn new(hasher: blake3::Hasher, remaining: u64) -> Digester {
        if remaining < BACKGROUND_FROM {
            return Digester(Inner::Inline(Box::new(hasher)));
        }
        let (chunks, incoming) = sync_channel::<Vec<u8>>(DEPTH);
        let (give_back, spare) = sync_channel::<Vec<u8>>(DEPTH);
        // The helper owns a copy of the state; if it cannot start, the
        // original stays here and hashes inline.
        let mut state = hasher.clone();
        let started = thread::Builder::new()
            .name("ftp-digest".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for chunk in incoming {
                    state.update(&chunk);
                    // The feeder may be gone already; the buffer just drops.
                    let _ = give_back.try_send(chunk);
                }
                state
            });
        match started {
            Ok(helper) => Digester(Inner::Background(Background {
                chunks: Some(chunks),
                spare,
                allocated: 0,
                helper,
            })),
            Err(_) => Digester(Inner::Inline(Box::new(hasher))),
        }
    }

    /// Adds `bytes` to the digest.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            Inner::Inline(h) => {
                h.update(bytes);
            }
            Inner::Background(bg) => bg.send(bytes),
        }
    }

    /// The digest of everything added, once the helper has caught up.
    pub(crate) fn finalize(self) -> blake3::Hash {
        match self.0 {
            Inner::Inline(h) => h.finalize(),
            Inner::Background(mut bg) => {
                drop(bg.chunks.take());
                // The helper only hashes, which cannot panic; were it to,
                // the empty hasher's digest matches nothing and the upload
                // is refused, never stored wrong.
                bg.helper
                    .join()
                    .unwrap_or_else(|_| blake3::Hasher::new())
                    .finalize()
            }
        }
    }
}

impl Background {
    fn send(&mut self, bytes: &[u8]) {
        let mut buf = match self.spare.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.allocated < DEPTH + 1 => {
                self.allocated += 1;
                Vec::with_capacity(bytes.len())
            }
            // Every buffer is out: wait for the helper to return one. An
            // error means it is gone (it cannot be, while `chunks` lives).
            Err(_) => self.spare.recv().unwrap_or_default(),
        };
        buf.clear();
        buf.extend_from_slice(bytes);
        if let Some(chunks) = &self.chunks {
            let _ = chunks.send(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn background_digest_equals_inline_digest() {
        let bytes = data(20 * 1024 * 1024 + 12_345);
        let mut prefix = blake3::Hasher::new();
        prefix.update(&bytes[..1000]);
        let mut d = Digester::new(prefix, bytes.len() as u64);
        assert!(matches!(d.0, Inner::Background(_)));
        // Uneven chunks, more of them than there are buffers.
        for chunk in bytes[1000..].chunks(256 * 1024 + 17) {
            d.update(chunk);
        }
        assert_eq!(d.finalize(), blake3::hash(&bytes));
    }

    #[test]
    fn short_streams_hash_inline() {
        let bytes = data(100_000);
        let mut d = Digester::new(blake3::Hasher::new(), bytes.len() as u64);
        assert!(matches!(d.0, Inner::Inline(_)));
        d.update(&bytes);
        assert_eq!(d.finalize(), blake3::hash(&bytes));
    }

    #[test]
    fn a_stream_that_stops_early_finalizes_what_came() {
        let bytes = data(3 * 1024 * 1024);
        let mut d = Digester::new(blake3::Hasher::new(), 1 << 30);
        d.update(&bytes);
        assert_eq!(d.finalize(), blake3::hash(&bytes));
    }
}
