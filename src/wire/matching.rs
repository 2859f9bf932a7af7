//! Which of several secrets a proof was made with, found in a time that
//! tells neither which one nor whether any: every key is tried, decoys pad
//! the work to a whole group, and the results are combined without a
//! branch. Both logins (the seed's HMAC-MD5 answer and the TLS dialect's
//! bound proof) search their accounts this way.

use subtle::{ConditionallySelectable, ConstantTimeEq};

/// Keys are tried in groups of this many: a failed login costs the same
/// for 1 account as for 8, and reveals the number of accounts only to
/// the nearest multiple above it.
pub(crate) const KEYS_TRIED_TOGETHER: usize = 8;

/// What the padding tries in place of a key.
pub(crate) const DECOY_KEY: &[u8] = b"not an account";

/// Finds the index of the secret whose `expected` value equals `candidate`,
/// trying every secret, and decoys up to a multiple of
/// [`KEYS_TRIED_TOGETHER`], and combining the results in constant time.
pub(crate) fn find_matching<K: AsRef<[u8]>, const N: usize>(
    secrets: &[K],
    candidate: &[u8],
    expected: impl Fn(&[u8]) -> [u8; N],
) -> Option<usize> {
    if candidate.len() != N {
        return None;
    }
    let tries = padded(secrets.len());
    first_hit((0..tries).map(|i| {
        let secret = secrets.get(i).map_or(DECOY_KEY, |s| s.as_ref());
        expected(secret).ct_eq(candidate) & is_account(i, secrets.len())
    }))
}

/// How many keys are tried for `accounts` accounts: a whole number of
/// groups.
pub(crate) fn padded(accounts: usize) -> usize {
    accounts.max(1).next_multiple_of(KEYS_TRIED_TOGETHER)
}

/// Whether the key at `i` is an account's, not a decoy's, without a branch.
pub(crate) fn is_account(i: usize, accounts: usize) -> subtle::Choice {
    subtle::Choice::from(u8::from(i < accounts))
}

/// The index of the one hit among `hits`, combining them all without
/// branching, so that the time taken reveals neither which one matched
/// nor whether one did.
pub(crate) fn first_hit(hits: impl Iterator<Item = subtle::Choice>) -> Option<usize> {
    let mut found = subtle::Choice::from(0u8);
    let mut index = 0u64;
    for (i, hit) in hits.enumerate() {
        index = u64::conditional_select(&index, &(i as u64), hit);
        found |= hit;
    }
    bool::from(found).then_some(index as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a proof: the secret's first 16 bytes, zero-padded.
    fn tag(secret: &[u8]) -> [u8; 16] {
        let mut t = [0u8; 16];
        let n = secret.len().min(16);
        t[..n].copy_from_slice(&secret[..n]);
        t
    }

    #[test]
    fn the_work_is_padded_to_a_group() {
        let tried = std::cell::Cell::new(0);
        let count = |secret: &[u8]| {
            tried.set(tried.get() + 1);
            tag(secret)
        };
        find_matching(&[b"a".as_slice()], &[0u8; 16], count);
        assert_eq!(
            tried.get(),
            KEYS_TRIED_TOGETHER,
            "one account costs a group"
        );
        tried.set(0);
        let many: Vec<Vec<u8>> = (0..=KEYS_TRIED_TOGETHER as u8).map(|i| vec![i]).collect();
        find_matching(&many, &[0u8; 16], count);
        assert_eq!(tried.get(), 2 * KEYS_TRIED_TOGETHER);
    }

    #[test]
    fn the_matching_secret_is_found_and_a_decoy_never_is() {
        let secrets: [&[u8]; 3] = [b"alice", b"bob", b"carol"];
        assert_eq!(find_matching(&secrets, &tag(b"bob"), tag), Some(1));
        assert_eq!(find_matching(&secrets, &tag(DECOY_KEY), tag), None);
        assert_eq!(find_matching(&secrets, b"short", tag), None);
    }
}
