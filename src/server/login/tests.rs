//! The login fed recorded byte sequences, one byte at a time and whole, as
//! rustls and postgres-protocol test theirs: no socket anywhere.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use super::*;
use crate::config::secret::Secret;
use crate::net::tls::{client_config, Pin, PinVerifier, SERVER_NAME};
use crate::server::accounts::{AccountBook, Accounts};
use crate::server::hosts::Backoff;
use crate::server::Config;
use crate::wire::auth::respond;
use crate::wire::binding::{client_tag, verify_server_proof, TLS_MARKER};

const SECRET: &[u8] = b"a login test secret";

/// A server's settings with one account, and its host back-off.
struct Server {
    _root: tempfile::TempDir,
    config: Config,
    backoff: Backoff,
}

impl Server {
    fn new(anonymous: bool) -> Server {
        let root = tempfile::tempdir().expect("a temporary folder");
        let ctx = crate::testing::context(root.path());
        let secret = Secret::new(SECRET.to_vec()).expect("a usable secret");
        let book = Arc::new(AccountBook::new(Accounts::single(secret)));
        let mut config = crate::server::harness::config(&ctx, book);
        config.anonymous = anonymous;
        // One failed login locks the host out: the tests see each failure count.
        let backoff = Backoff::new(1, 1000, Duration::from_secs(1));
        Server {
            _root: root,
            config,
            backoff,
        }
    }

    fn cx(&self) -> LoginContext<'_> {
        LoginContext {
            config: &self.config,
            backoff: &self.backoff,
            roster: self.config.accounts.current(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// The login's start, which sends the challenge and waits for the
    /// answer.
    fn challenged(&self) -> (Login, Vec<u8>) {
        let step = Login::begin(&self.cx());
        let Next::Read(login, _) = step.next else {
            panic!("the challenge waits for an answer")
        };
        (login, step.send)
    }
}

/// Feeds `bytes` as a driver does: never more than the login wants, in
/// pieces of at most `piece`. Returns what the last step decided and every
/// byte the login sent meanwhile.
fn feed(cx: &LoginContext<'_>, mut login: Login, mut bytes: &[u8], piece: usize) -> Step {
    let mut sent = Vec::new();
    loop {
        let want = login.wants().expect("a login that reads");
        let n = want.min(piece).min(bytes.len());
        let mut step = login.received(cx, &bytes[..n]);
        bytes = &bytes[n..];
        sent.append(&mut step.send);
        match step.next {
            Next::Read(next, _) if !bytes.is_empty() => login = next,
            next => return Step { send: sent, next },
        }
    }
}

fn admitted(step: Step) -> Admitted {
    match step.next {
        Next::In(admitted) => admitted,
        _ => panic!("the login was not admitted"),
    }
}

/// The `auth_failed` frame a refusal sends, as text.
fn refusal_text(step: &Step) -> String {
    assert!(
        matches!(step.next, Next::Refused),
        "the login was not refused"
    );
    String::from_utf8_lossy(step.send.get(4..).unwrap_or_default()).into_owned()
}

#[test]
fn the_seeds_answer_logs_in_fed_byte_by_byte_or_whole() {
    for piece in [1, 5, RESPONSE_LEN] {
        let server = Server::new(false);
        let (login, challenge) = server.challenged();
        assert_eq!(challenge.len(), 32, "the seed's 32-byte challenge");
        let step = feed(&server.cx(), login, &respond(SECRET, &challenge), piece);
        assert!(
            step.send.is_empty(),
            "the plaintext dialect answers nothing"
        );
        let admitted = admitted(step);
        assert_eq!(admitted.identity, Identity::Plaintext(0));
        assert!(admitted.tls.is_none() && admitted.incoming.is_empty());
    }
}

#[test]
fn the_login_never_takes_more_than_the_answer() {
    let server = Server::new(false);
    let (mut login, _) = server.challenged();
    for left in (1..=RESPONSE_LEN).rev() {
        assert_eq!(
            login.wants(),
            Some(left),
            "the session's bytes stay in the socket"
        );
        match login.received(&server.cx(), &[0x41]).next {
            Next::Read(next, _) => login = next,
            _ => return assert_eq!(left, 1, "the login ended before its answer was in"),
        }
    }
}

#[test]
fn a_wrong_answer_is_refused_and_slows_the_next_login() {
    let server = Server::new(false);
    let (login, _) = server.challenged();
    let step = feed(&server.cx(), login, &[7u8; RESPONSE_LEN], 1);
    let text = refusal_text(&step);
    assert!(
        text.contains("auth_failed") && text.contains("authentication failed"),
        "{text}"
    );
    assert!(
        server.backoff.locked_out(server.cx().ip).is_some(),
        "counted as failed"
    );
}

#[test]
fn a_frame_instead_of_an_answer_is_refused_unless_anonymous_uploads_are_on() {
    let frame = frame::encode_json(&serde_json::json!({"action": "put"})).expect("a frame");
    let server = Server::new(false);
    let (login, challenge) = server.challenged();
    assert_eq!(challenge.len(), 32);
    let text = refusal_text(&feed(&server.cx(), login, &frame, 1));
    assert!(text.contains("authentication failed"), "{text}");

    // On an anonymous server a client that speaks first is not challenged,
    // and the frame's first bytes start its first request.
    let server = Server::new(true);
    let step = Login::begin(&server.cx());
    assert!(
        step.send.is_empty(),
        "no challenge before the client had its moment"
    );
    let Next::Read(login, _) = step.next else {
        panic!("an anonymous server listens first")
    };
    let admitted = admitted(feed(&server.cx(), login, &frame, 1));
    assert_eq!(admitted.identity, Identity::Anonymous);
    assert_eq!(admitted.incoming.received(), &frame[..frame::LEN_PREFIX]);
}

#[test]
fn text_before_the_challenge_on_an_anonymous_server_is_dropped() {
    let server = Server::new(true);
    let Next::Read(login, _) = Login::begin(&server.cx()).next else {
        panic!("an anonymous server listens first")
    };
    let step = feed(&server.cx(), login, b"GET / HTTP/1.1\r\n", 1);
    assert!(matches!(step.next, Next::Gone) && step.send.is_empty());
}

#[test]
fn a_peer_that_closes_mid_answer_is_gone() {
    let server = Server::new(false);
    let (login, _) = server.challenged();
    let Next::Read(login, _) = login.received(&server.cx(), &[1, 2, 3]).next else {
        panic!("three bytes are not an answer")
    };
    assert!(matches!(
        login.ended(&server.cx(), "closed").next,
        Next::Gone
    ));
}

/// A TLS client in memory, which sends the marker, then its handshake.
struct Client {
    tls: ClientConnection,
    verifier: Arc<PinVerifier>,
}

impl Client {
    fn new(server: &Server) -> Client {
        let verifier = Arc::new(PinVerifier::new(Pin::Exact(server.config.tls.fingerprint)));
        let config = client_config(verifier.clone()).expect("a TLS client");
        let name = ServerName::try_from(SERVER_NAME).expect("a server name");
        let tls = ClientConnection::new(config, name).expect("a TLS client");
        Client { tls, verifier }
    }

    fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out).expect("writing to memory");
        }
        out
    }

    fn give(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.tls.read_tls(&mut bytes).expect("reading from memory");
            self.tls
                .process_new_packets()
                .expect("the server's records");
        }
    }
}

/// Runs the encrypted login: the marker, the handshake both ways, and the
/// client's tag over the exporter, each flight fed `piece` bytes at a
/// time. Returns the login's last step, with what it sent since the
/// client's last flight.
fn tls_login(server: &Server, client: &mut Client, secret: &[u8], piece: usize) -> Step {
    let (login, _) = server.challenged();
    let mut step = feed(&server.cx(), login, &TLS_MARKER, piece);
    for _ in 0..8 {
        let Next::Read(login, _) = step.next else {
            return step;
        };
        client.give(&step.send);
        let mut flight = client.take_output();
        if !client.tls.is_handshaking() && flight.is_empty() {
            let exporter = crate::net::tls::exporter(&client.tls).expect("an exporter");
            let tag = client_tag(secret, &exporter);
            client.tls.writer().write_all(&tag).expect("the tag");
            flight = client.take_output();
        }
        step = feed(&server.cx(), login, &flight, piece);
    }
    panic!("the TLS login did not end in eight flights")
}

#[test]
fn a_tls_login_fed_byte_by_byte_or_whole_proves_both_ends() {
    for piece in [1, 7, MOST_READ] {
        let server = Server::new(false);
        let mut client = Client::new(&server);
        let step = tls_login(&server, &mut client, SECRET, piece);
        let proof_records = step.send.clone();
        let admitted = admitted(step);
        assert_eq!(admitted.identity, Identity::Tls(0));
        client.give(&proof_records);
        let mut proof = [0u8; BINDING_LEN];
        client
            .tls
            .reader()
            .read_exact(&mut proof)
            .expect("the proof");
        let exporter = crate::net::tls::exporter(&client.tls).expect("an exporter");
        assert!(verify_server_proof(SECRET, &exporter, &proof));
        assert_eq!(client.verifier.seen(), Some(server.config.tls.fingerprint));
    }
}

#[test]
fn a_wrong_tag_over_tls_is_refused_inside_tls() {
    let server = Server::new(false);
    let mut client = Client::new(&server);
    let step = tls_login(&server, &mut client, b"not the secret", 64);
    assert!(matches!(step.next, Next::Refused));
    client.give(&step.send);
    let mut said = Vec::new();
    let _ = client.tls.reader().read_to_end(&mut said);
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.contains("auth_failed"),
        "the refusal is readable inside TLS: {said}"
    );
}

#[test]
fn garbage_in_place_of_a_handshake_is_an_abandoned_login() {
    let server = Server::new(false);
    let (login, _) = server.challenged();
    let Next::Read(login, _) = feed(&server.cx(), login, &TLS_MARKER, 16).next else {
        panic!("the marker starts a handshake")
    };
    let step = feed(&server.cx(), login, &[0x16, 3, 1, 0xff, 0xff, 1, 2, 3], 1);
    assert!(matches!(step.next, Next::Gone));
    assert!(!step.send.is_empty(), "the alert that says why goes out");
    assert!(
        server.backoff.locked_out(server.cx().ip).is_some(),
        "counted as failed"
    );
}
