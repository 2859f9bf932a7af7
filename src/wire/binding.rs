//! The encrypted dialect's login: which bytes announce TLS, and the proofs
//! both sides send once TLS is up, bound to that one TLS connection.
//!
//! After the seed's 32-byte challenge the client sends [`TLS_MARKER`]
//! instead of an HMAC-MD5 answer, and a TLS 1.3 handshake follows. Both
//! sides then take the connection's RFC 9266 `tls-exporter` value. The
//! client sends HMAC-SHA256(secret, client label ‖ exporter); the server
//! finds the account whose secret matches and answers HMAC-SHA256(secret,
//! server label ‖ exporter). A relay that ends TLS on both sides sees a
//! different exporter on each side, so neither proof passes through it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::matching::find_matching;

type HmacSha256 = Hmac<Sha256>;

/// The 16 bytes a client sends in place of the HMAC-MD5 answer to ask for
/// TLS. The first four read as a negative frame length, so they can never
/// start a frame, and an HMAC-MD5 answer equals them with probability
/// 2^-128.
pub const TLS_MARKER: [u8; 16] = *b"\xff\xff\xff\xffftp+tls1.3\0\0";

/// The RFC 9266 exporter label for channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// Length of the exporter value and of each proof.
pub const BINDING_LEN: usize = 32;

/// Domain separation, so that the client's tag can never serve as the
/// server's proof or the other way round.
const CLIENT_LABEL: &[u8] = b"ftp tls client v1\0";
const SERVER_LABEL: &[u8] = b"ftp tls server v1\0";

/// A proof over one connection's exporter value.
pub type Tag = [u8; BINDING_LEN];

fn tag(secret: &[u8], label: &[u8], exporter: &[u8]) -> Tag {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(label);
    m.update(exporter);
    m.finalize().into_bytes().into()
}

/// What the client sends to log in over TLS.
pub fn client_tag(secret: &[u8], exporter: &[u8]) -> Tag {
    tag(secret, CLIENT_LABEL, exporter)
}

/// What the server answers once it found the client's account.
pub fn server_proof(secret: &[u8], exporter: &[u8]) -> Tag {
    tag(secret, SERVER_LABEL, exporter)
}

/// Which of `secrets` made the client's `tag`, in constant time over all.
pub fn find_client<K: AsRef<[u8]>>(secrets: &[K], exporter: &[u8], tag: &[u8]) -> Option<usize> {
    find_matching(secrets, tag, |secret| client_tag(secret, exporter))
}

/// Whether `proof` is the server's proof for this connection, compared in
/// constant time.
pub fn verify_server_proof(secret: &[u8], exporter: &[u8], proof: &[u8]) -> bool {
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(SERVER_LABEL);
    m.update(exporter);
    m.verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::auth::{new_challenge, respond};

    #[test]
    fn the_marker_is_no_frame_and_no_answer() {
        let len = i32::from_le_bytes([TLS_MARKER[0], TLS_MARKER[1], TLS_MARKER[2], TLS_MARKER[3]]);
        assert!(len < 0);
        assert_ne!(respond(b"k", &new_challenge()), TLS_MARKER);
    }

    #[test]
    fn matches_hmac_sha256_of_label_and_exporter() {
        // python3: hmac.new(b'key', b'ftp tls client v1\0' + bytes(32), 'sha256').hexdigest()
        let t = client_tag(b"key", &[0u8; 32]);
        assert_eq!(
            hex::encode(t),
            "91de5a675f8776c3f1bd29e619629407a5d0991f9aed6f222b161031f85bc9d8"
        );
    }

    #[test]
    fn proofs_are_bound_to_one_exporter_and_one_side() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let keys: [&[u8]; 2] = [b"alice", b"bob"];
        let t = client_tag(b"bob", &a);
        assert_eq!(find_client(&keys, &a, &t), Some(1));
        assert_eq!(find_client(&keys, &b, &t), None, "another connection");
        assert_eq!(find_client(&keys, &a, &server_proof(b"bob", &a)), None);
        assert!(verify_server_proof(b"bob", &a, &server_proof(b"bob", &a)));
        assert!(!verify_server_proof(b"bob", &b, &server_proof(b"bob", &a)));
        assert!(
            !verify_server_proof(b"bob", &a, &t),
            "a client tag is no proof"
        );
    }
}
