//! The seed's challenge-response handshake, and the reverse proof in which
//! the server shows the client that it holds the secret too.
//!
//! 1. The server sends [`CHALLENGE_LEN`] random bytes.
//! 2. The client answers HMAC-MD5(secret, challenge): [`RESPONSE_LEN`] bytes.
//!    (Python's `hmac.new(key, msg)` defaulted to MD5, which the seed used.)
//! 3. The server compares in constant time and closes on a mismatch.
//!
//! The functions over keys and bytes are pure; the two handshake functions
//! take any `Read + Write` so tests replay exchanges from buffers.

use std::io::{Read, Write};

use hmac::{Hmac, Mac};
use md5::Md5;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::wire::error::{Result, WireError};
use crate::wire::frame::{read_full, whole};
use crate::wire::matching::{first_hit, is_account, padded, DECOY_KEY};

type HmacMd5 = Hmac<Md5>;

/// Length of the server's challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Length of the client's answer: one MD5 digest.
pub const RESPONSE_LEN: usize = 16;
/// Length of the client's nonce in the reverse proof.
pub const NONCE_LEN: usize = 32;

/// Domain separation for the server's proof, so that a proof can never be
/// replayed as a login answer or the other way round.
const SERVER_PROOF_LABEL: &[u8] = b"ftp server proof v1\0";

/// A challenge from the server.
pub type Challenge = [u8; CHALLENGE_LEN];
/// A client's answer to a challenge.
pub type Response = [u8; RESPONSE_LEN];

/// Draws a fresh challenge from the thread's CSPRNG (ChaCha, seeded and
/// reseeded from the operating system), which spares every connection a
/// `getrandom` call.
pub fn new_challenge() -> Challenge {
    let mut c = [0u8; CHALLENGE_LEN];
    rand::thread_rng().fill_bytes(&mut c);
    c
}

/// Draws a fresh nonce for asking the server to prove itself.
pub fn new_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

fn mac(secret: &[u8]) -> HmacMd5 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacMd5 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// The answer to `challenge`: HMAC-MD5(secret, challenge).
pub fn respond(secret: &[u8], challenge: &[u8]) -> Response {
    let mut m = mac(secret);
    m.update(challenge);
    m.finalize().into_bytes().into()
}

/// Whether `response` is the right answer to `challenge`, in constant time.
pub fn verify(secret: &[u8], challenge: &[u8], response: &[u8]) -> bool {
    let mut m = mac(secret);
    m.update(challenge);
    m.verify_slice(response).is_ok()
}

/// Finds which of `secrets` produced `response`.
///
/// Every key is tried and the results are combined without branching, so
/// the time taken reveals neither which key matched nor whether one did.
pub fn find_key<K: AsRef<[u8]>>(secrets: &[K], challenge: &[u8], response: &[u8]) -> Option<usize> {
    AnswerKeys::new(secrets).find(challenge, response)
}

/// Every account's HMAC-MD5 key with its padded key blocks hashed once,
/// and decoys up to a multiple of
/// `KEYS_TRIED_TOGETHER`: an answer is
/// then checked with two MD5 compressions per key instead of four, and in
/// a time that does not tell how many accounts there are (beyond that
/// multiple) or which one matched.
#[derive(Clone)]
pub struct AnswerKeys {
    keys: Vec<HmacMd5>,
    accounts: usize,
}

impl AnswerKeys {
    /// The prepared keys of `secrets`, in order.
    pub fn new<K: AsRef<[u8]>>(secrets: &[K]) -> AnswerKeys {
        let keys = (0..padded(secrets.len()))
            .map(|i| mac(secrets.get(i).map_or(DECOY_KEY, |s| s.as_ref())))
            .collect();
        AnswerKeys {
            keys,
            accounts: secrets.len(),
        }
    }

    /// Which account's secret produced `response` to `challenge`: every
    /// key (decoys too) is tried, and the results combined without
    /// branching.
    pub fn find(&self, challenge: &[u8], response: &[u8]) -> Option<usize> {
        if response.len() != RESPONSE_LEN {
            return None;
        }
        first_hit(self.keys.iter().enumerate().map(|(i, key)| {
            let mut m = key.clone();
            m.update(challenge);
            m.finalize().into_bytes().as_slice().ct_eq(response) & is_account(i, self.accounts)
        }))
    }
}

impl std::fmt::Debug for AnswerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnswerKeys({} accounts)", self.accounts)
    }
}

/// The server's proof for the client's `nonce`.
pub fn server_proof(secret: &[u8], nonce: &[u8]) -> Response {
    let mut m = mac(secret);
    m.update(SERVER_PROOF_LABEL);
    m.update(nonce);
    m.finalize().into_bytes().into()
}

/// Whether `proof` is the server's proof for `nonce`, in constant time.
pub fn verify_server_proof(secret: &[u8], nonce: &[u8], proof: &[u8]) -> bool {
    let mut m = mac(secret);
    m.update(SERVER_PROOF_LABEL);
    m.update(nonce);
    m.verify_slice(proof).is_ok()
}

/// Reads the server's challenge.
///
/// A busy server sends an error frame instead of a challenge; that is
/// recognised and returned as [`WireError::Remote`]. Fails when the connection
/// closes before the challenge is complete.
pub fn read_challenge<R: Read>(stream: &mut R) -> Result<Challenge> {
    let mut challenge = [0u8; CHALLENGE_LEN];
    let got = read_full(stream, &mut challenge)?;
    if let Some(err) = crate::wire::reply::error_reply_in(&challenge[..got], stream) {
        return Err(err);
    }
    whole("challenge", got, CHALLENGE_LEN)?;
    Ok(challenge)
}

/// Client side of the seed's handshake: read the challenge, send the
/// HMAC-MD5 answer.
///
/// Fails like [`read_challenge`], or when the answer cannot be sent.
pub fn client_handshake<S: Read + Write>(stream: &mut S, secret: &[u8]) -> Result<()> {
    let challenge = read_challenge(stream)?;
    stream
        .write_all(&respond(secret, &challenge))
        .and_then(|()| stream.flush())
        .map_err(|e| WireError::io("sending the authentication answer", e))
}

/// What a client sent in answer to the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The TLS marker: a TLS handshake follows ([`crate::wire::binding`]).
    Tls,
    /// Sixteen bytes that may be the seed's HMAC-MD5 answer.
    Answer(Response),
}

/// The server's side of the opening, first half: the challenge. The
/// answer is read with [`read_opening`], by whichever thread has the
/// connection when it comes.
///
/// Fails when it cannot be sent.
pub fn send_challenge<S: Write>(stream: &mut S, challenge: &Challenge) -> Result<()> {
    stream
        .write_all(challenge)
        .and_then(|()| stream.flush())
        .map_err(|e| WireError::io("sending the challenge", e))
}

/// The second half of the opening: the client's 16 bytes, which choose
/// the dialect.
///
/// Fails when the peer stops before sending 16 bytes.
pub fn read_opening<S: Read>(stream: &mut S) -> Result<Opening> {
    let mut response = [0u8; RESPONSE_LEN];
    let got = read_full(stream, &mut response)?;
    whole("authentication answer", got, RESPONSE_LEN)?;
    decode_opening(&response).ok_or(WireError::Closed)
}

/// The client's 16 bytes, decoded without any I/O: `None` until all have
/// come.
pub fn decode_opening(bytes: &[u8]) -> Option<Opening> {
    let response: Response = *bytes.first_chunk()?;
    Some(match response == crate::wire::binding::TLS_MARKER {
        true => Opening::Tls,
        false => Opening::Answer(response),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const SEED_KEY: &[u8] = b"linhaifeng bang bang bang";

    /// A read/write pair over buffers: reads come from `input`, writes go to `output`.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn counting_challenge() -> Challenge {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn matches_python_hmac_md5() {
        // python3: hmac.new(b'linhaifeng bang bang bang', bytes(range(32)), 'md5').hexdigest()
        let answer = respond(SEED_KEY, &counting_challenge());
        let hex: String = answer.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "073377114443732921e7133c6b32ec30");
    }

    #[test]
    fn verify_accepts_right_and_refuses_wrong_answers() {
        let c = counting_challenge();
        let good = respond(SEED_KEY, &c);
        assert!(verify(SEED_KEY, &c, &good));
        assert!(!verify(b"other", &c, &good));
        assert!(!verify(SEED_KEY, &c, &good[..15]));
    }

    #[test]
    fn find_key_picks_the_matching_user() {
        let keys: [&[u8]; 3] = [b"alice", b"bob", b"carol"];
        let c = new_challenge();
        assert_eq!(find_key(&keys, &c, &respond(b"bob", &c)), Some(1));
        assert_eq!(find_key(&keys, &c, &respond(b"carol", &c)), Some(2));
        assert_eq!(find_key(&keys, &c, &respond(b"mallory", &c)), None);
        assert_eq!(find_key(&keys, &c, b"short"), None);
    }

    #[test]
    fn a_decoy_never_matches() {
        let c = new_challenge();
        let decoy_answer = respond(DECOY_KEY, &c);
        assert_eq!(find_key(&[b"alice".as_slice()], &c, &decoy_answer), None);
    }

    #[test]
    fn prepared_keys_find_what_find_key_finds() {
        let keys: [&[u8]; 3] = [b"alice", b"bob", b"carol"];
        let prepared = AnswerKeys::new(&keys);
        let c = new_challenge();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(prepared.find(&c, &respond(key, &c)), Some(i));
        }
        assert_eq!(prepared.find(&c, &respond(b"mallory", &c)), None);
        assert_eq!(prepared.find(&c, &respond(DECOY_KEY, &c)), None);
        assert_eq!(prepared.find(&c, b"short"), None);
        assert_eq!(AnswerKeys::new::<&[u8]>(&[]).find(&c, &[0u8; 16]), None);
    }

    #[test]
    fn replayed_answer_fails_on_a_fresh_challenge() {
        let first = new_challenge();
        let answer = respond(SEED_KEY, &first);
        let second = new_challenge();
        assert_ne!(first, second);
        assert!(!verify(SEED_KEY, &second, &answer));
    }

    #[test]
    fn server_proof_is_not_a_login_answer() {
        let n = counting_challenge();
        let proof = server_proof(SEED_KEY, &n);
        assert_ne!(proof, respond(SEED_KEY, &n));
        assert!(verify_server_proof(SEED_KEY, &n, &proof));
        assert!(!verify_server_proof(b"impostor", &n, &proof));
    }

    #[test]
    fn handshakes_replay_a_recorded_exchange() {
        let c = counting_challenge();
        let mut client = Duplex {
            input: Cursor::new(c.to_vec()),
            output: Vec::new(),
        };
        client_handshake(&mut client, SEED_KEY).unwrap();
        assert_eq!(client.output, respond(SEED_KEY, &c));

        let mut server = Duplex {
            input: Cursor::new(client.output.clone()),
            output: Vec::new(),
        };
        send_challenge(&mut server, &c).unwrap();
        let Opening::Answer(answer) = read_opening(&mut server).unwrap() else {
            panic!("an HMAC answer is no TLS marker");
        };
        assert_eq!(find_key(&[b"x".as_slice(), SEED_KEY], &c, &answer), Some(1));
        assert_eq!(server.output, c);

        let mut tls = Duplex {
            input: Cursor::new(crate::wire::binding::TLS_MARKER.to_vec()),
            output: Vec::new(),
        };
        assert_eq!(read_opening(&mut tls).unwrap(), Opening::Tls);
    }

    #[test]
    fn the_opening_decoder_waits_for_all_sixteen_bytes() {
        let marker = crate::wire::binding::TLS_MARKER;
        for n in 0..RESPONSE_LEN {
            assert_eq!(decode_opening(&marker[..n]), None);
        }
        assert_eq!(decode_opening(&marker), Some(Opening::Tls));
        let answer = respond(SEED_KEY, &counting_challenge());
        assert_eq!(decode_opening(&answer), Some(Opening::Answer(answer)));
    }

    #[test]
    fn short_answer_is_truncated_error() {
        let mut server = Duplex {
            input: Cursor::new(vec![1, 2, 3]),
            output: Vec::new(),
        };
        let err = read_opening(&mut server).unwrap_err();
        assert!(matches!(err, WireError::Truncated { .. }), "{err}");
    }
}
