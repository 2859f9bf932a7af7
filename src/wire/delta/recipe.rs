//! A recipe: how to build a new file from the chunks of an old one and
//! new bytes. It is a run of operations, each a tag byte and
//! little-endian words:
//!
//! | tag | words | meaning |
//! |---|---|---|
//! | `0x01` | first: u32, count: u32 | copy chunks `first..first+count` of the old file |
//! | `0x02` | len: u32 | take the next `len` new bytes (sent after the recipe, in order) |
//!
//! The receiver reads the whole recipe (at most [`MAX_RECIPE_LEN`] bytes)
//! and checks it against the old file's chunks and the declared size with
//! [`plan`] before it writes anything: a copy out of range, or a recipe
//! that builds more or less than declared, is refused there.

use super::{u32_at, DeltaError, Step};

/// The longest recipe a receiver takes: 8 MiB is a million operations,
/// enough for a file of tens of GiB whose every other chunk changed. A
/// sender whose recipe would be longer sends the whole file.
pub const MAX_RECIPE_LEN: u64 = 8 * 1024 * 1024;

const COPY: u8 = 0x01;
const DATA: u8 = 0x02;
const COPY_LEN: usize = 9;
const DATA_LEN: usize = 5;

/// One operation of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Copy `count` chunks of the old file, from chunk `first` on.
    Copy {
        /// The first chunk, from 0.
        first: u32,
        /// How many, at least 1.
        count: u32,
    },
    /// Take the next `len` new bytes, at least 1.
    Data {
        /// How many.
        len: u32,
    },
}

/// Builds a recipe, merging neighbours: consecutive chunks into one copy,
/// consecutive new bytes into one run.
#[derive(Debug, Default, Clone)]
pub struct RecipeBuilder {
    ops: Vec<Op>,
}

impl RecipeBuilder {
    /// Copies chunk `index` of the old file next.
    pub fn copy(&mut self, index: u32) {
        if let Some(Op::Copy { first, count }) = self.ops.last_mut() {
            if first.checked_add(*count) == Some(index) && *count < u32::MAX {
                *count += 1;
                return;
            }
        }
        self.ops.push(Op::Copy {
            first: index,
            count: 1,
        });
    }

    /// Takes `len` new bytes next.
    pub fn data(&mut self, mut len: u64) {
        if let Some(Op::Data { len: last }) = self.ops.last_mut() {
            let room = u64::from(u32::MAX - *last).min(len);
            *last += room as u32;
            len -= room;
        }
        while len > 0 {
            let part = len.min(u64::from(u32::MAX));
            self.ops.push(Op::Data { len: part as u32 });
            len -= part;
        }
    }

    /// The operations so far.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// How long the encoded recipe is.
    pub fn encoded_len(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Copy { .. } => COPY_LEN as u64,
                Op::Data { .. } => DATA_LEN as u64,
            })
            .sum()
    }

    /// The recipe's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len() as usize);
        for op in &self.ops {
            match *op {
                Op::Copy { first, count } => {
                    out.push(COPY);
                    out.extend_from_slice(&first.to_le_bytes());
                    out.extend_from_slice(&count.to_le_bytes());
                }
                Op::Data { len } => {
                    out.push(DATA);
                    out.extend_from_slice(&len.to_le_bytes());
                }
            }
        }
        out
    }
}

/// Decodes a recipe of a length announced up front.
#[derive(Debug, Clone)]
pub struct RecipeDecoder {
    len: u64,
    at: u64,
}

impl RecipeDecoder {
    /// A decoder for a recipe of `len` bytes.
    ///
    /// Fails when `len` is over [`MAX_RECIPE_LEN`].
    pub fn new(len: u64) -> Result<RecipeDecoder, DeltaError> {
        if len > MAX_RECIPE_LEN {
            return Err(DeltaError::RecipeTooLong {
                len,
                max: MAX_RECIPE_LEN,
            });
        }
        Ok(RecipeDecoder { len, at: 0 })
    }

    /// The next operation from the front of `buf`.
    ///
    /// Fails on an unknown tag, an operation that moves nothing, or one
    /// that runs past the announced length.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Step<Op>, DeltaError> {
        if self.at == self.len {
            return Ok(Step::Done);
        }
        let Some(&tag) = buf.first() else {
            return Ok(Step::Need(1));
        };
        let size = match tag {
            COPY => COPY_LEN,
            DATA => DATA_LEN,
            _ => return Err(DeltaError::UnknownOp { tag, at: self.at }),
        };
        if self.len - self.at < size as u64 {
            return Err(DeltaError::RecipeTruncated);
        }
        if buf.len() < size {
            return Ok(Step::Need(size - buf.len()));
        }
        let op = match tag {
            COPY => Op::Copy {
                first: u32_at(buf, 1),
                count: u32_at(buf, 5),
            },
            _ => Op::Data {
                len: u32_at(buf, 1),
            },
        };
        if matches!(op, Op::Copy { count: 0, .. } | Op::Data { len: 0 }) {
            return Err(DeltaError::EmptyOp { at: self.at });
        }
        self.at += size as u64;
        Ok(Step::Item(op, size))
    }
}

/// Decodes a whole recipe held in `bytes`.
///
/// Fails as [`RecipeDecoder::decode`] does.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Op>, DeltaError> {
    let mut decoder = RecipeDecoder::new(bytes.len() as u64)?;
    let (mut ops, mut at) = (Vec::new(), 0);
    loop {
        match decoder.decode(&bytes[at..])? {
            Step::Item(op, used) => {
                ops.push(op);
                at += used;
            }
            Step::Need(_) => return Err(DeltaError::RecipeTruncated),
            Step::Done => return Ok(ops),
        }
    }
}

/// One step of building the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Copy `len` bytes of the old file from `from`.
    Copy {
        /// Where in the old file.
        from: u64,
        /// How many bytes.
        len: u64,
    },
    /// Write the next `len` new bytes.
    Data {
        /// How many bytes.
        len: u64,
    },
}

/// Checks `ops` against the old file, whose chunk `k` starts at
/// `offsets[k]` (with the old file's size last, so `offsets` has one more
/// entry than there are chunks), and the declared `size` of the new file;
/// returns the byte ranges to build it from, neighbours merged.
///
/// Fails on a copy of a chunk the old file does not have, or when the
/// recipe builds another size than `size`; it stops adding up as soon as
/// the size is passed, so no recipe costs more than its own length.
pub fn plan(ops: &[Op], offsets: &[u64], size: u64) -> Result<Vec<Piece>, DeltaError> {
    let chunks = offsets.len().saturating_sub(1) as u64;
    let (mut pieces, mut builds) = (Vec::<Piece>::new(), 0u64);
    for op in ops {
        let piece = match *op {
            Op::Copy { first, count } => {
                let end = u64::from(first) + u64::from(count);
                if end > chunks {
                    return Err(DeltaError::ChunkOutOfRange {
                        first,
                        count,
                        chunks,
                    });
                }
                let from = offsets[first as usize];
                Piece::Copy {
                    from,
                    len: offsets[end as usize] - from,
                }
            }
            Op::Data { len } => Piece::Data {
                len: u64::from(len),
            },
        };
        let len = match piece {
            Piece::Copy { len, .. } | Piece::Data { len } => len,
        };
        builds = builds.saturating_add(len);
        if builds > size {
            return Err(DeltaError::RecipeSize { builds, size });
        }
        merge(&mut pieces, piece);
    }
    if builds != size {
        return Err(DeltaError::RecipeSize { builds, size });
    }
    Ok(pieces)
}

/// Appends `piece`, joined to the last one when they are contiguous.
fn merge(pieces: &mut Vec<Piece>, piece: Piece) {
    match (pieces.last_mut(), piece) {
        (
            Some(Piece::Copy { from, len }),
            Piece::Copy {
                from: next,
                len: more,
            },
        ) if *from + *len == next => *len += more,
        (Some(Piece::Data { len }), Piece::Data { len: more }) => *len += more,
        _ => pieces.push(piece),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Old file of three chunks: 0..100, 100..250, 250..300.
    const OFFSETS: [u64; 4] = [0, 100, 250, 300];

    fn sample() -> RecipeBuilder {
        let mut b = RecipeBuilder::default();
        b.copy(0);
        b.copy(1);
        b.data(7);
        b.data(3);
        b.copy(0);
        b
    }

    #[test]
    fn a_recipe_round_trips_whole_and_byte_by_byte() {
        let b = sample();
        assert_eq!(
            b.ops(),
            [
                Op::Copy { first: 0, count: 2 },
                Op::Data { len: 10 },
                Op::Copy { first: 0, count: 1 },
            ]
        );
        let bytes = b.encode();
        assert_eq!(bytes.len() as u64, b.encoded_len());
        assert_eq!(decode_all(&bytes).unwrap(), b.ops());

        let mut decoder = RecipeDecoder::new(bytes.len() as u64).unwrap();
        let (mut buf, mut ops) = (Vec::new(), Vec::new());
        for &byte in &bytes {
            buf.push(byte);
            match decoder.decode(&buf).unwrap() {
                Step::Need(n) => assert!(n > 0),
                Step::Item(op, used) => {
                    ops.push(op);
                    buf.drain(..used);
                }
                Step::Done => panic!("done early"),
            }
        }
        assert_eq!(decoder.decode(&[]).unwrap(), Step::Done);
        assert_eq!(ops, b.ops());
    }

    #[test]
    fn a_plan_maps_chunks_to_byte_ranges() {
        let pieces = plan(sample().ops(), &OFFSETS, 250 + 10 + 100).unwrap();
        assert_eq!(
            pieces,
            [
                Piece::Copy { from: 0, len: 250 },
                Piece::Data { len: 10 },
                Piece::Copy { from: 0, len: 100 },
            ]
        );
        // Chunks 1 then 2, sent as two copies, are one range.
        let ops = [
            Op::Copy { first: 1, count: 1 },
            Op::Copy { first: 2, count: 1 },
        ];
        assert_eq!(
            plan(&ops, &OFFSETS, 200).unwrap(),
            [Piece::Copy {
                from: 100,
                len: 200
            }]
        );
    }

    #[test]
    fn long_runs_of_new_bytes_split_at_the_word() {
        let mut b = RecipeBuilder::default();
        b.data(u64::from(u32::MAX) + 5);
        b.data(1);
        assert_eq!(b.ops(), [Op::Data { len: u32::MAX }, Op::Data { len: 6 }]);
    }

    #[test]
    fn hostile_recipes_are_refused() {
        // A chunk index out of range, and a count that runs past the end.
        let out = [Op::Copy { first: 3, count: 1 }];
        let e = plan(&out, &OFFSETS, 50).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the recipe copies chunks 3..4 of an old file that has 3"
        );
        let past = [Op::Copy {
            first: 2,
            count: u32::MAX,
        }];
        assert!(matches!(
            plan(&past, &OFFSETS, 50),
            Err(DeltaError::ChunkOutOfRange { .. })
        ));
        // No old file at all.
        assert!(plan(&[Op::Copy { first: 0, count: 1 }], &[], 1).is_err());
        // A terabyte from one chunk: refused once it passes the size.
        let many = vec![Op::Copy { first: 0, count: 1 }; 1000];
        let e = plan(&many, &OFFSETS, 1 << 40).unwrap_err();
        assert!(
            matches!(
                e,
                DeltaError::RecipeSize {
                    builds: 100_000,
                    ..
                }
            ),
            "{e}"
        );
        let e = plan(&many, &OFFSETS, 5_000).unwrap_err();
        assert!(
            matches!(e, DeltaError::RecipeSize { builds: 5_100, .. }),
            "{e}"
        );
        // Unknown tags, empty operations, truncated ones, too long.
        assert!(matches!(
            decode_all(&[9]),
            Err(DeltaError::UnknownOp { tag: 9, at: 0 })
        ));
        assert!(matches!(
            decode_all(&[DATA, 0, 0, 0, 0]),
            Err(DeltaError::EmptyOp { .. })
        ));
        assert!(matches!(
            decode_all(&[COPY, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DeltaError::EmptyOp { .. })
        ));
        assert_eq!(decode_all(&[DATA, 1, 0]), Err(DeltaError::RecipeTruncated));
        assert!(matches!(
            RecipeDecoder::new(MAX_RECIPE_LEN + 1),
            Err(DeltaError::RecipeTooLong { .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 4) as u8
                })
                .collect();
            if let Ok(ops) = decode_all(&bytes) {
                let _ = plan(&ops, &OFFSETS, state % 1000);
            }
        }
    }
}
