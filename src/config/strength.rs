//! How hard a secret is to guess offline, in bits, for the one decision
//! that depends on it: whether the client may send its proof to a server
//! no pin vouches for without asking (an impostor could test guesses
//! against that proof at leisure).
//!
//! The estimate is zxcvbn's: it knows dictionaries, names, keyboard walks,
//! dates, l33t, repeats and sequences, which a hand-written "looks random"
//! test does not (`Summer2024` repeated passes any character-class rule).
//! zxcvbn counts guesses in a `u64`, so it cannot say more than "64 bits
//! or more"; past that the secret is rated piece by piece (each piece
//! small enough to be rated exactly) and the pieces' bits are added. That
//! sum misses structure across pieces, so a secret with any 8 characters
//! that occur twice is never rated above 64 bits.

use std::collections::HashSet;

/// Bits at or above which a secret counts as a random key.
pub(crate) const RANDOM_KEY_BITS: f64 = 128.0;

/// The longest piece zxcvbn rates without reaching its `u64` ceiling: it
/// counts a character it cannot explain as 10 guesses, and 10^19 < 2^64.
const PIECE_CHARS: usize = 19;

/// What zxcvbn's ceiling is in bits, less a margin for rounding.
const CEILING_BITS: f64 = 63.0;

/// A run this long that occurs twice is a repeat that piecewise rating
/// would not see.
const REPEAT_CHARS: usize = 8;

/// Estimated bits of guessing work to find `secret` (bytes that are not
/// UTF-8 count as U+FFFD, which only lowers the estimate).
pub(crate) fn estimate_bits(secret: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(secret);
    let whole = bits(&text);
    if whole < CEILING_BITS {
        return whole;
    }
    let chars: Vec<char> = text.chars().collect();
    if has_repeat(&chars) {
        return whole.min(CEILING_BITS);
    }
    pieces(&chars).map(|p| bits(&p)).sum()
}

/// Whether `secret` is hard enough to guess to be sent to an unknown
/// server without asking.
pub(crate) fn is_random_key(secret: &[u8]) -> bool {
    estimate_bits(secret) >= RANDOM_KEY_BITS
}

fn bits(text: &str) -> f64 {
    zxcvbn::zxcvbn(text, &[]).guesses_log10() * std::f64::consts::LOG2_10
}

fn has_repeat(chars: &[char]) -> bool {
    let mut seen = HashSet::new();
    chars.windows(REPEAT_CHARS).any(|w| !seen.insert(w))
}

/// The text in pieces of at most [`PIECE_CHARS`], cut after a space or
/// punctuation where there is one, so that words stay whole (a word cut
/// in two would be rated as random letters, and the sum would be too
/// high).
fn pieces(chars: &[char]) -> impl Iterator<Item = String> + '_ {
    let mut rest = chars;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(PIECE_CHARS);
        if end < rest.len() {
            if let Some(cut) = rest[1..end].iter().rposition(|c| !c.is_alphanumeric()) {
                end = cut + 2;
            }
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece.iter().collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_random() {
        let generated = "9c1f0e5a7b3d28c64e0f9a1b7c2d5e8f03a6b9c2d1e4f7a0b3c6d9e2f5a8b1c4";
        assert!(is_random_key(generated.as_bytes()));
        // `openssl rand -base64 32`
        assert!(is_random_key(
            b"q3Vx9Lr2Tz7KcPm4Wn8YbEj1Hf6Ds0Ga5Ru+Ao/NiXk="
        ));
    }

    #[test]
    fn a_long_but_patterned_passphrase_is_not() {
        for weak in [
            "Summer2024Summer2024Summer2024Summer2024Summer",
            "linhaifeng bang bang bang",
            "correct horse battery staple",
            "correct horse battery staple correct horse battery staple",
            &"a".repeat(64),
            &"ab12".repeat(16),
            &"0123456789abcdef".repeat(4),
        ] {
            let bits = estimate_bits(weak.as_bytes());
            assert!(bits < RANDOM_KEY_BITS, "{weak}: {bits:.0} bits");
        }
    }

    #[test]
    fn pieces_keep_words_whole_and_cover_everything() {
        let text: Vec<char> = "the quick brown fox jumps over it".chars().collect();
        let got: Vec<String> = pieces(&text).collect();
        assert_eq!(got, ["the quick brown ", "fox jumps over it"]);
        let dense: Vec<char> = "x".repeat(40).chars().collect();
        let got: Vec<usize> = pieces(&dense).map(|p| p.len()).collect();
        assert_eq!(got, [19, 19, 2]);
    }
}
