//! The whole file's BLAKE3 from the hashes of its parts, so that a
//! multipart upload is verified without reading back what the store holds,
//! and so that a server that resumes someone else's upload needs only the
//! parts' hashes, not their bytes.
//!
//! Every part but the last is the same power-of-two size, so each part is
//! a whole subtree of the file's BLAKE3 tree (the last one sits on the right
//! edge, where a short subtree is allowed). A part's chaining value comes
//! from [`PartHasher`]; [`root`] merges them the way BLAKE3 splits its
//! input: the left subtree holds the largest power of two of chunks that
//! leaves something on the right.

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// Hashes one part that starts `offset` bytes into the file.
pub(crate) struct PartHasher {
    hasher: blake3::Hasher,
    first: bool,
}

/// What is kept of a part to verify the whole file later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartHash {
    /// The part's chaining value (a non-root hash).
    pub(crate) cv: ChainingValue,
    /// The part's bytes.
    pub(crate) len: u64,
    /// The part's root hash, only for the first part: the whole file's
    /// digest when it has one part.
    pub(crate) root: Option<blake3::Hash>,
}

impl PartHasher {
    /// A hasher for the part at `offset`, a multiple of the part size
    /// (itself a power of two of at least 1 KiB). An offset that is no
    /// multiple of 1 KiB (which BLAKE3 would not take) gives a hasher whose
    /// hash can never match, rather than a panic.
    pub(crate) fn new(offset: u64) -> PartHasher {
        let mut hasher = blake3::Hasher::new();
        if offset > 0 {
            hasher.set_input_offset(offset - offset % 1024);
        }
        PartHasher {
            hasher,
            first: offset == 0,
        }
    }

    /// Hashes the next bytes of the part.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The part's hash; `None` for an empty part.
    pub(crate) fn finish(&self) -> Option<PartHash> {
        let len = self.hasher.count();
        (len > 0).then(|| PartHash {
            cv: self.hasher.finalize_non_root(),
            len,
            root: self.first.then(|| self.hasher.finalize()),
        })
    }
}

/// The BLAKE3 of the file made of `parts`, in order; `None` when there
/// are none, or when the first of several is missing its place in the tree.
pub(crate) fn root(parts: &[PartHash]) -> Option<blake3::Hash> {
    match parts {
        [] => None,
        [only] => only.root,
        _ => {
            let (left, right) = split(parts)?;
            Some(merge_subtrees_root(
                &subtree(left)?,
                &subtree(right)?,
                Mode::Hash,
            ))
        }
    }
}

/// The chaining value of the subtree made of `parts`.
fn subtree(parts: &[PartHash]) -> Option<ChainingValue> {
    match parts {
        [] => None,
        [only] => Some(only.cv),
        _ => {
            let (left, right) = split(parts)?;
            Some(merge_subtrees_non_root(
                &subtree(left)?,
                &subtree(right)?,
                Mode::Hash,
            ))
        }
    }
}

/// Splits `parts` where BLAKE3 splits their bytes; `None` if that falls
/// inside a part, which only parts of unequal or odd sizes cause.
fn split(parts: &[PartHash]) -> Option<(&[PartHash], &[PartHash])> {
    let total: u64 = parts.iter().map(|p| p.len).sum();
    let mut left = left_subtree_len(total);
    for (i, part) in parts.iter().enumerate() {
        if left == 0 {
            return Some(parts.split_at(i));
        }
        left = left.checked_sub(part.len)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(data: &[u8], part: usize) -> Vec<PartHash> {
        data.chunks(part)
            .enumerate()
            .map(|(i, bytes)| {
                let mut h = PartHasher::new((i * part) as u64);
                h.update(bytes);
                h.finish().unwrap()
            })
            .collect()
    }

    #[test]
    fn merged_part_hashes_equal_the_hash_of_the_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for part in [1024, 4096, 16384, 65536] {
            for len in [1, 1024, 1025, 4096, 5000, 16384, 70_000, 131_072, 300_000] {
                let whole = &data[..len];
                let got = root(&parts_of(whole, part));
                assert_eq!(got, Some(blake3::hash(whole)), "part {part}, len {len}");
            }
        }
    }

    #[test]
    fn a_changed_part_changes_the_root() {
        let mut data = vec![5u8; 40_000];
        let good = root(&parts_of(&data, 8192)).unwrap();
        data[20_000] ^= 1;
        assert_ne!(root(&parts_of(&data, 8192)).unwrap(), good);
        assert_eq!(root(&[]), None);
    }

    #[test]
    fn an_offset_off_a_chunk_boundary_does_not_panic() {
        let mut h = PartHasher::new(1500);
        h.update(b"x");
        assert!(h.finish().is_some());
    }

    #[test]
    fn parts_that_do_not_tile_the_tree_are_refused() {
        let mut parts = parts_of(&[1u8; 3000], 1024);
        parts[0].len = 2000;
        assert_eq!(root(&parts), None);
    }
}
