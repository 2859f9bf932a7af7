//! Delta transfers on the wire: how both ends cut a file into chunks, the
//! signature that names those chunks ([`signature`]), and the recipe that
//! rebuilds a changed file from the old one's chunks and new bytes
//! ([`recipe`]). Decoders here take bytes and answer "need more", "here is
//! one" or "bad"; they never read a socket.
//!
//! The chunking parameters are part of the contract (docs/PROTOCOL.md,
//! "Delta transfers"): if the two ends cut differently, nothing matches.

use std::fmt;

pub mod recipe;
pub mod signature;

/// No chunk is shorter than this, except a file's last one.
pub const MIN_CHUNK: u32 = 16 * 1024;
/// The size FastCDC (v2020, normalization level 1) aims for.
pub const AVG_CHUNK: u32 = 64 * 1024;
/// No chunk is longer than this.
pub const MAX_CHUNK: u32 = 256 * 1024;

/// The most chunks a file of `size` bytes can have: every one but the
/// last is at least [`MIN_CHUNK`] long.
pub fn max_chunks(size: u64) -> u64 {
    match size {
        0 => 0,
        _ => size / u64::from(MIN_CHUNK) + 1,
    }
}

/// Why a signature or a recipe was refused. Each says what was wrong with
/// the numbers involved, so that a refusal is actionable in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeltaError {
    /// More chunks announced than a file of that size can have.
    TooManyChunks {
        /// Chunks announced.
        chunks: u64,
        /// The file's size.
        size: u64,
    },
    /// A chunk of length 0, or longer than [`MAX_CHUNK`].
    ChunkLength {
        /// Which chunk (from 0).
        index: u64,
        /// Its length.
        len: u32,
    },
    /// A chunk other than the last is shorter than [`MIN_CHUNK`].
    ShortChunk {
        /// Which chunk (from 0).
        index: u64,
        /// Its length.
        len: u32,
    },
    /// The chunks do not add up to the file's size.
    SizeMismatch {
        /// What the chunks add up to (so far).
        chunks: u64,
        /// The file's size.
        size: u64,
    },
    /// A recipe longer than the receiver takes.
    RecipeTooLong {
        /// Its length in bytes.
        len: u64,
        /// The most taken.
        max: u64,
    },
    /// A recipe byte that starts no known operation.
    UnknownOp {
        /// The byte.
        tag: u8,
        /// Where in the recipe it stands.
        at: u64,
    },
    /// The recipe ends inside an operation.
    RecipeTruncated,
    /// An operation that moves nothing (a copy of 0 chunks, 0 new bytes).
    EmptyOp {
        /// Where in the recipe it stands.
        at: u64,
    },
    /// A copy names chunks the old file does not have.
    ChunkOutOfRange {
        /// The first chunk named.
        first: u32,
        /// How many.
        count: u32,
        /// How many the old file has.
        chunks: u64,
    },
    /// The recipe builds a file of another size than the one declared.
    RecipeSize {
        /// What the recipe builds (at least).
        builds: u64,
        /// The size declared.
        size: u64,
    },
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::TooManyChunks { chunks, size } => {
                write!(f, "{chunks} chunks are too many for a file of {size} bytes")
            }
            DeltaError::ChunkLength { index, len } => write!(
                f,
                "chunk {index} is {len} bytes long; chunks are 1 to {MAX_CHUNK} bytes"
            ),
            DeltaError::ShortChunk { index, len } => write!(
                f,
                "chunk {index} is {len} bytes long; only the last may be shorter than {MIN_CHUNK}"
            ),
            DeltaError::SizeMismatch { chunks, size } => write!(
                f,
                "the chunks add up to {chunks} bytes, the file has {size}"
            ),
            DeltaError::RecipeTooLong { len, max } => {
                write!(f, "recipe too long: {len} > {max} bytes")
            }
            DeltaError::UnknownOp { tag, at } => {
                write!(f, "unknown recipe operation {tag:#04x} at byte {at}")
            }
            DeltaError::RecipeTruncated => write!(f, "the recipe ends inside an operation"),
            DeltaError::EmptyOp { at } => {
                write!(f, "the recipe operation at byte {at} moves nothing")
            }
            DeltaError::ChunkOutOfRange {
                first,
                count,
                chunks,
            } => write!(
                f,
                "the recipe copies chunks {first}..{} of an old file that has {chunks}",
                u64::from(*first) + u64::from(*count)
            ),
            DeltaError::RecipeSize { builds, size } => write!(
                f,
                "the recipe builds {builds} bytes, but the upload declared {size}"
            ),
        }
    }
}

impl std::error::Error for DeltaError {}

/// What a decoder made of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// At least this many more bytes are needed.
    Need(usize),
    /// One item, which took this many bytes from the front of the buffer.
    Item(T, usize),
    /// Everything announced has been decoded.
    Done,
}

/// The little-endian `u32` at `at` of `buf`, which holds it.
fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(word)
}
