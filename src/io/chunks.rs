//! Cutting a stream into the chunks of its signature (see
//! [`crate::wire::delta`]): FastCDC v2020 with the contract's sizes, each
//! chunk named by its BLAKE3. Memory is one chunk buffer, at most
//! [`MAX_CHUNK`] bytes, whatever the stream's length.

use std::io::{self, Read};

use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};

use crate::wire::delta::signature::Chunk;
use crate::wire::delta::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

/// Calls `each` with every chunk of `reader`, in order, and its bytes;
/// returns the stream's length.
///
/// Fails when the reader fails, or when `each` does.
pub(crate) fn cut<R: Read>(
    reader: R,
    mut each: impl FnMut(Chunk, &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let chunker = StreamCDC::with_level(
        reader,
        MIN_CHUNK as usize,
        AVG_CHUNK as usize,
        MAX_CHUNK as usize,
        Normalization::Level1,
    );
    let mut total = 0;
    for data in chunker {
        let data = data.map_err(io::Error::from)?;
        let chunk = Chunk {
            offset: data.offset,
            // At most MAX_CHUNK: the chunker never makes a longer one.
            len: data.length as u32,
            hash: *blake3::hash(&data.data).as_bytes(),
        };
        total = chunk.end();
        each(chunk, &data.data)?;
    }
    Ok(total)
}

/// Cuts bytes handed to it piece by piece, where [`cut`] would cut the
/// stream they make: for a writer that sees a file go by (an upload) and
/// has no reader to give. It holds at most two chunks' worth of bytes.
pub(crate) struct Cutter {
    pending: Vec<u8>,
    /// Where the pending bytes start in the stream.
    offset: u64,
}

impl Default for Cutter {
    fn default() -> Cutter {
        Cutter {
            pending: Vec::with_capacity(2 * MAX_CHUNK as usize),
            offset: 0,
        }
    }
}

impl Cutter {
    /// Takes the stream's next `bytes`; calls `each` with every chunk
    /// they complete, and its bytes.
    pub(crate) fn update(&mut self, mut bytes: &[u8], mut each: impl FnMut(Chunk, &[u8])) {
        let max = MAX_CHUNK as usize;
        while !bytes.is_empty() {
            let room = (2 * max - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            // A cut needs the next MAX_CHUNK bytes in view, as the
            // stream chunker has them.
            let mut start = 0;
            while self.pending.len() - start >= max {
                start += self.cut_one(start, &mut each);
            }
            self.pending.drain(..start);
        }
    }

    /// Ends the stream: cuts what is left; returns the stream's length.
    pub(crate) fn finish(mut self, mut each: impl FnMut(Chunk, &[u8])) -> u64 {
        let mut start = 0;
        while start < self.pending.len() {
            start += self.cut_one(start, &mut each);
        }
        self.offset
    }

    /// Cuts the chunk that starts at `start` of the pending bytes; returns
    /// its length.
    fn cut_one(&mut self, start: usize, each: &mut impl FnMut(Chunk, &[u8])) -> usize {
        let view = &self.pending[start..];
        let cdc = FastCDC::with_level(
            view,
            MIN_CHUNK as usize,
            AVG_CHUNK as usize,
            MAX_CHUNK as usize,
            Normalization::Level1,
        );
        // At least one byte (the view is not empty), at most MAX_CHUNK.
        let (_, len) = cdc.cut(0, view.len());
        let bytes = &view[..len];
        let chunk = Chunk {
            offset: self.offset,
            len: len as u32,
            hash: *blake3::hash(bytes).as_bytes(),
        };
        each(chunk, bytes);
        self.offset += len as u64;
        len
    }
}

/// The signature of `reader`: its chunks, in order.
///
/// Fails when the reader fails.
#[cfg(test)]
pub(crate) fn signature<R: Read>(reader: R) -> io::Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    cut(reader, |chunk, _| {
        chunks.push(chunk);
        Ok(())
    })?;
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;
    use crate::wire::delta::signature::{decode_all, encode_entry};

    #[test]
    fn chunks_cover_the_stream_within_the_contract_sizes() {
        let data = noise(3 << 20, 7);
        let chunks = signature(&data[..]).unwrap();
        let mut at = 0;
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.offset, at);
            assert!(c.len <= MAX_CHUNK);
            assert!(c.len >= MIN_CHUNK || i + 1 == chunks.len());
            let bytes = &data[c.offset as usize..c.end() as usize];
            assert_eq!(&c.hash, blake3::hash(bytes).as_bytes());
            at = c.end();
        }
        assert_eq!(at, data.len() as u64);
        // What a peer decodes from it is what was cut.
        let mut wire = Vec::new();
        for c in &chunks {
            encode_entry(c.len, &c.hash, &mut wire);
        }
        let back = decode_all(at, chunks.len() as u64, &wire).unwrap();
        assert_eq!(back, chunks);
    }

    #[test]
    fn an_insertion_moves_only_the_boundaries_near_it() {
        let old = noise(4 << 20, 11);
        let mut new = old.clone();
        new.splice(2 << 20..2 << 20, noise(1000, 3));
        let before = signature(&old[..]).unwrap();
        let after = signature(&new[..]).unwrap();
        let known: std::collections::HashSet<_> = before.iter().map(|c| c.hash).collect();
        let fresh: u64 = after
            .iter()
            .filter(|c| !known.contains(&c.hash))
            .map(|c| u64::from(c.len))
            .sum();
        // One or two chunks around the insertion change, no more.
        assert!(
            fresh <= 2 * u64::from(MAX_CHUNK) + 1000,
            "{fresh} bytes changed"
        );
    }

    #[test]
    fn bytes_handed_over_piece_by_piece_are_cut_as_the_stream_is() {
        let data = noise(5 << 20, 13);
        let whole = signature(&data[..]).unwrap();
        for step in [1000, 65_536, 300_001, 3 << 20] {
            let (mut cutter, mut got) = (Cutter::default(), Vec::new());
            for piece in data.chunks(step) {
                cutter.update(piece, |chunk, _| got.push(chunk));
            }
            let len = cutter.finish(|chunk, _| got.push(chunk));
            assert_eq!(len, data.len() as u64);
            assert!(got == whole, "pieces of {step} bytes cut elsewhere");
        }
        assert_eq!(
            Cutter::default().finish(|_, _| panic!("a chunk of nothing")),
            0
        );
    }

    #[test]
    fn an_empty_stream_has_no_chunks() {
        assert!(signature(&[][..]).unwrap().is_empty());
    }
}
