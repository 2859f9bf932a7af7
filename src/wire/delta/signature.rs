//! A file's signature: its chunks in order, each as a 4-byte
//! little-endian length and the chunk's 32-byte BLAKE3. The reply that
//! carries one announces the file's size and the number of chunks first,
//! so the receiver bounds both before it takes a byte of the entries.

use super::{max_chunks, u32_at, DeltaError, Step, MAX_CHUNK, MIN_CHUNK};

/// Bytes of one entry on the wire.
pub const ENTRY_LEN: usize = 4 + 32;

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// Where it starts in its file.
    pub offset: u64,
    /// Its length, 1 to [`MAX_CHUNK`].
    pub len: u32,
    /// Its BLAKE3.
    pub hash: [u8; 32],
}

impl Chunk {
    /// Where it ends in its file.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// Appends the entry of a chunk of `len` bytes whose BLAKE3 is `hash`.
pub fn encode_entry(len: u32, hash: &[u8; 32], out: &mut Vec<u8>) {
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(hash);
}

/// Decodes the entries of one file's signature, checking each against
/// the file's size as it comes: no chunk is empty or longer than
/// [`MAX_CHUNK`], only the last is shorter than [`MIN_CHUNK`], and they
/// add up to exactly the size. A signature that passes can only name
/// bytes inside the file it describes.
#[derive(Debug, Clone)]
pub struct SignatureDecoder {
    size: u64,
    chunks: u64,
    seen: u64,
    offset: u64,
}

impl SignatureDecoder {
    /// A decoder for the `chunks` entries of a file of `size` bytes.
    ///
    /// Fails when a file of that size cannot have that many chunks (or
    /// none at all while it has bytes).
    pub fn new(size: u64, chunks: u64) -> Result<SignatureDecoder, DeltaError> {
        if chunks > max_chunks(size) {
            return Err(DeltaError::TooManyChunks { chunks, size });
        }
        if chunks == 0 && size > 0 {
            return Err(DeltaError::SizeMismatch { chunks: 0, size });
        }
        Ok(SignatureDecoder {
            size,
            chunks,
            seen: 0,
            offset: 0,
        })
    }

    /// The next chunk from the front of `buf`.
    ///
    /// Fails with the first entry that breaks a rule above.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Step<Chunk>, DeltaError> {
        if self.seen == self.chunks {
            return Ok(Step::Done);
        }
        if buf.len() < ENTRY_LEN {
            return Ok(Step::Need(ENTRY_LEN - buf.len()));
        }
        let index = self.seen;
        let len = u32_at(buf, 0);
        if len == 0 || len > MAX_CHUNK {
            return Err(DeltaError::ChunkLength { index, len });
        }
        let last = index + 1 == self.chunks;
        if !last && len < MIN_CHUNK {
            return Err(DeltaError::ShortChunk { index, len });
        }
        let end = self.offset + u64::from(len);
        if end > self.size || (last && end != self.size) {
            return Err(DeltaError::SizeMismatch {
                chunks: end,
                size: self.size,
            });
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&buf[4..ENTRY_LEN]);
        let chunk = Chunk {
            offset: self.offset,
            len,
            hash,
        };
        self.seen += 1;
        self.offset = end;
        Ok(Step::Item(chunk, ENTRY_LEN))
    }
}

/// Decodes a whole signature held in `bytes`, for tests and for a
/// signature read back from where it was kept.
///
/// Fails as [`SignatureDecoder::decode`] does, or when bytes are missing
/// or left over.
pub fn decode_all(size: u64, chunks: u64, bytes: &[u8]) -> Result<Vec<Chunk>, DeltaError> {
    let mut decoder = SignatureDecoder::new(size, chunks)?;
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match decoder.decode(&bytes[at..])? {
            Step::Item(chunk, used) => {
                out.push(chunk);
                at += used;
            }
            Step::Need(_) => {
                return Err(DeltaError::SizeMismatch {
                    chunks: decoder.offset,
                    size,
                })
            }
            Step::Done if at == bytes.len() => return Ok(out),
            Step::Done => {
                return Err(DeltaError::TooManyChunks {
                    chunks: chunks + 1,
                    size,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            encode_entry(len, blake3::hash(&[i as u8]).as_bytes(), &mut out);
        }
        out
    }

    fn size(lens: &[u32]) -> u64 {
        lens.iter().map(|&l| u64::from(l)).sum()
    }

    #[test]
    fn whole_and_byte_by_byte_agree() {
        let lens = [MIN_CHUNK, MAX_CHUNK, 70_000, 5];
        let bytes = entries(&lens);
        let whole = decode_all(size(&lens), 4, &bytes).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[3].offset, u64::from(MIN_CHUNK + MAX_CHUNK + 70_000));
        assert_eq!(whole[3].end(), size(&lens));

        let mut decoder = SignatureDecoder::new(size(&lens), 4).unwrap();
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        for &b in &bytes {
            buf.push(b);
            match decoder.decode(&buf).unwrap() {
                Step::Need(n) => assert_eq!(n, ENTRY_LEN - buf.len()),
                Step::Item(chunk, used) => {
                    got.push(chunk);
                    buf.drain(..used);
                }
                Step::Done => panic!("done before the last entry"),
            }
        }
        assert_eq!(decoder.decode(&[]).unwrap(), Step::Done);
        assert_eq!(got, whole);
    }

    #[test]
    fn an_empty_file_has_no_chunks() {
        assert_eq!(decode_all(0, 0, &[]).unwrap(), vec![]);
        assert!(SignatureDecoder::new(1, 0).is_err());
        assert!(SignatureDecoder::new(0, 1).is_err());
    }

    #[test]
    fn hostile_signatures_are_refused() {
        // More chunks than the size allows, announced before any entry.
        let err = SignatureDecoder::new(1 << 20, (1 << 20) / u64::from(MIN_CHUNK) + 2);
        assert!(matches!(err, Err(DeltaError::TooManyChunks { .. })));
        // A chunk of 0 bytes, or past the maximum.
        for len in [0, MAX_CHUNK + 1, u32::MAX] {
            let e = decode_all(u64::from(MIN_CHUNK) * 4, 2, &entries(&[len, 1])).unwrap_err();
            assert!(matches!(e, DeltaError::ChunkLength { .. }), "{e}");
        }
        // A short chunk in the middle.
        let lens = [10, MIN_CHUNK];
        let e = decode_all(size(&lens), 2, &entries(&lens)).unwrap_err();
        assert!(
            matches!(e, DeltaError::ShortChunk { index: 0, len: 10 }),
            "{e}"
        );
        // Chunks that run past the file, or stop short of its end.
        let e = decode_all(100, 1, &entries(&[101])).unwrap_err();
        assert!(matches!(e, DeltaError::SizeMismatch { .. }), "{e}");
        let e = decode_all(100, 1, &entries(&[99])).unwrap_err();
        assert!(matches!(e, DeltaError::SizeMismatch { .. }), "{e}");
        // Missing entries, and entries left over.
        let lens = [MIN_CHUNK, 7];
        let bytes = entries(&lens);
        assert!(decode_all(size(&lens), 2, &bytes[..ENTRY_LEN + 3]).is_err());
        let mut more = bytes.clone();
        more.extend_from_slice(&[0; 3]);
        assert!(decode_all(size(&lens), 2, &more).is_err());
    }

    #[test]
    fn error_messages_carry_the_numbers() {
        let e = DeltaError::ChunkLength { index: 3, len: 0 };
        assert_eq!(
            e.to_string(),
            "chunk 3 is 0 bytes long; chunks are 1 to 262144 bytes"
        );
    }
}
