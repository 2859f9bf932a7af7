//! Opening a connection: TCP, the challenge, then TLS with channel-bound
//! proofs both ways, or (only when the user allows an unproven server) the
//! seed's plaintext login.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::stream::ClientStream;
use crate::client::trust::{Contact, TlsClient};
use crate::client::ClientOptions;
use crate::error::{Error, Result};
use crate::net::stall::StallGuard;
use crate::net::tls::{self, ClientTls};
use crate::wire::auth::{
    client_handshake, new_nonce, read_challenge, verify_server_proof as verify_server_proof_md5,
};
use crate::wire::binding::{client_tag, verify_server_proof, BINDING_LEN, TLS_MARKER};
use crate::wire::frame::{self, read_full, MAX_HEADER_LEN, MAX_REPLY_LEN};
use crate::wire::message::{Proof, Request};
use crate::wire::reply::ErrorCode;
use crate::wire::reply::{error_reply_in, parse_reply};

/// How long a server may take to answer the proof request. The original
/// Python server never answers it (it ignores unknown commands).
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server turned out to speak at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Replies to every request, and proved it holds the secret (or was
    /// allowed not to).
    Replies,
    /// The original protocol: takes seed-style puts and never answers.
    /// Only reached with `require_proof` off.
    Original,
    /// The seed's echo server: answers raw text upper-cased, and nothing
    /// else. Only reached with `require_proof` off.
    Echo,
}

/// A new connection, logged in.
pub(crate) struct Opened {
    pub(crate) stream: ClientStream,
    pub(crate) dialect: Dialect,
    /// Something to tell the user once, such as a first contact's pin.
    pub(crate) notice: Option<String>,
}

/// Connects and logs in over TLS, with the channel-bound proofs both ways.
/// With `require_proof` off, a server that no pin vouches for and that
/// cannot do TLS (an older one, or the original Python one) is tried again
/// in the seed's plaintext dialect; a pinned one never is.
///
/// `again` says the client was connected before (a reconnect): a refusal
/// then means the server went away, not that it was never there.
pub(crate) fn open(
    addr: SocketAddr,
    options: &ClientOptions,
    tls: &TlsClient,
    again: bool,
) -> Result<Opened> {
    // A pinned server has spoken TLS with this client: whoever makes it
    // look as if it cannot is on the path, and a fallback would hand them
    // the login and the files.
    let fallback = !options.require_proof && !tls.is_pinned();
    // The challenge, or a busy frame in its place, comes whole within the
    // login's limit however it trickles: it is read before TLS and before
    // any pin is checked, from whatever answers at the address.
    let limit = login_limit(options);
    let mut sock = watched(dial(addr, options, again)?, options, limit)?;
    if fallback {
        // The seed's FtpServer never sends a challenge; a server of ours
        // sends it at once, so waiting a moment costs the normal case nothing.
        sock.set_stall(CHALLENGE_WAIT);
        match read_challenge(&mut sock).map_err(Error::from) {
            Err(e) if is_timeout(&e) && sock.moved() == 0 => {
                return no_login(sock.into_inner(), options)
            }
            other => other?,
        };
    } else {
        read_challenge(&mut sock)
            .map_err(Error::from)
            .map_err(|e| match is_timeout(&e) {
                true => no_challenge(tls, limit),
                false => e,
            })?;
    }
    // The rest of the login (TLS, both proofs) has as long again.
    sock.set_stall(options.stall_timeout);
    sock.restart(limit, None);
    sock.write_all(&TLS_MARKER)
        .map_err(|e| Error::io("sending the TLS request", e))?;
    match tls::connect(tls.config.clone(), sock) {
        Ok(stream) => tls_login(stream, options, tls),
        Err(e) => {
            if let Some(refusal) = tls.refusal() {
                return Err(refusal);
            }
            if fallback {
                return open_plaintext(addr, options, again);
            }
            let why = format!("it did not complete a TLS handshake: {e}");
            Err(tls.pinned_refusal(&why).unwrap_or_else(|| {
                Error::ServerNotProven(format!(
                    "{why}; an older ftp-server or the original Python server cannot"
                ))
            }))
        }
    }
}

/// What a server that sent no challenge in time is told as.
fn no_challenge(tls: &TlsClient, limit: Duration) -> Error {
    let why = format!("no challenge came within {} s", limit.as_secs_f64());
    tls.pinned_refusal(&why).unwrap_or_else(|| {
        Error::ServerNotProven(format!(
            "{why}: it is not an ftp-server (the original FtpServer sends none; \
             --allow-unproven-server uploads to it without a login)"
        ))
    })
}

/// How long each part of the login may take, however the server trickles
/// it: the challenge (or a busy frame in its place), then TLS and the
/// proofs. [`CHALLENGE_LIMIT`], or the reply timeout when that is shorter.
pub(crate) fn login_limit(options: &ClientOptions) -> Duration {
    CHALLENGE_LIMIT.min(options.reply_timeout)
}

/// How long a client that allows unproven servers waits for a challenge
/// before it takes the server for the seed's FtpServer, which has no login.
pub const CHALLENGE_WAIT: Duration = Duration::from_millis(1500);

/// How long any client waits for the challenge: more than a server's
/// longest back-off delay (8 s).
pub(crate) const CHALLENGE_LIMIT: Duration = Duration::from_secs(10);

/// The seed's FtpServer: no login, puts in the seed's form, no replies.
fn no_login(tcp: TcpStream, options: &ClientOptions) -> Result<Opened> {
    Ok(Opened {
        stream: ClientStream::Plain(watched(tcp, options, options.reply_timeout)?),
        dialect: Dialect::Original,
        notice: Some(format!(
            "no challenge came within {} ms: uploading without a login, as to the original \
             FtpServer; nothing is encrypted or confirmed",
            CHALLENGE_WAIT.as_millis()
        )),
    })
}

/// The stream, watched: a stall, a reply past its budget (`grace` until
/// the next restart) or Ctrl-C ends what it is doing.
fn watched(tcp: TcpStream, options: &ClientOptions, grace: Duration) -> Result<StallGuard> {
    let mut sock = StallGuard::new(tcp, options.stall_timeout, grace)
        .map_err(|e| Error::io("setting timeouts", e))?;
    sock.set_interrupt(options.interrupt.clone());
    Ok(sock)
}

/// The TCP connection; `again` when it replaces one that was made.
fn dial(addr: SocketAddr, options: &ClientOptions, again: bool) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
        let hint = match (e.kind(), again) {
            (_, true) => " again",
            (io::ErrorKind::ConnectionRefused, false) => " (is ftp-server running there?)",
            _ => "",
        };
        Error::io(format!("cannot connect to {addr}{hint}"), e)
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Inside TLS: our tag over this connection's exporter, then the server's
/// proof over the same value, checked before anything else is sent.
fn tls_login(
    mut stream: ClientTls<StallGuard>,
    options: &ClientOptions,
    tls: &TlsClient,
) -> Result<Opened> {
    let secret = options.secret.as_bytes();
    let contact = tls.check_contact(&options.trust, &options.secret)?;
    let exporter = tls::exporter(&stream.conn).map_err(|e| Error::io("TLS exporter", e))?;
    stream
        .write_all(&client_tag(secret, &exporter))
        .and_then(|()| stream.flush())
        .map_err(|e| Error::io("sending the login proof", e))?;
    let mut proof = [0u8; BINDING_LEN];
    let got = read_full(&mut stream, &mut proof)?;
    match error_reply_in(&proof[..got], &mut stream).map(Error::from) {
        Some(Error::Remote {
            code: ErrorCode::AuthFailed,
            ..
        }) => return Err(Error::AuthFailed),
        Some(other) => return Err(other),
        None if got == 0 => return Err(Error::AuthFailed),
        None => {}
    }
    if !verify_server_proof(secret, &exporter, &proof[..got]) {
        return Err(Error::ServerNotProven(
            "its proof over TLS is wrong: it does not hold our secret".into(),
        ));
    }
    let notice = match contact {
        Contact::New(seen) => Some(tls.pin(&options.trust, seen)?),
        Contact::Known => None,
    };
    Ok(Opened {
        stream: ClientStream::Tls(Box::new(stream)),
        dialect: Dialect::Replies,
        notice,
    })
}

/// The seed's plaintext dialect: HMAC-MD5 login, then the `prove` request
/// in which a server of ours shows it holds the secret.
fn open_plaintext(addr: SocketAddr, options: &ClientOptions, again: bool) -> Result<Opened> {
    let limit = login_limit(options);
    let mut sock = watched(dial(addr, options, again)?, options, limit)?;
    client_handshake(&mut sock, options.secret.as_bytes())?;
    let nonce = new_nonce();
    let prove = frame::encode_json(&Request::Prove {
        nonce: hex::encode(nonce),
    })?;
    sock.write_all(&prove)
        .map_err(|e| Error::io("asking the server to prove itself", e))?;
    sock.set_stall(PROOF_TIMEOUT.min(options.stall_timeout));
    sock.restart(PROOF_TIMEOUT.min(limit), None);
    let answer = read_proof(&mut sock, &prove);
    // A seed server never answers: the wait for the proof ended in a
    // timeout, and the connection goes on unwatched by it.
    let stream = ClientStream::Plain(watched(sock.into_inner(), options, options.reply_timeout)?);
    if let Ok(ProofAnswer::Echoed) = answer {
        return Ok(Opened {
            stream,
            dialect: Dialect::Echo,
            notice: Some("the server echoes what it is sent: the seed's echo server".into()),
        });
    }
    let answer = answer.and_then(|a| match a {
        ProofAnswer::Reply(reply) => reply,
        ProofAnswer::Echoed => unreachable!(),
    });
    let dialect = plaintext_dialect(options, &nonce, answer)?;
    Ok(Opened {
        stream,
        dialect,
        notice: None,
    })
}

/// What the answer to `prove` says about a plaintext server.
fn plaintext_dialect(
    options: &ClientOptions,
    nonce: &[u8],
    answer: Result<Proof>,
) -> Result<Dialect> {
    let unproven = |why: String| match options.require_proof {
        true => Err(Error::ServerNotProven(why)),
        false => Ok(()),
    };
    let dialect = match answer {
        Ok(proof) => {
            let valid = hex::decode(&proof.proof)
                .ok()
                .is_some_and(|p| verify_server_proof_md5(options.secret.as_bytes(), nonce, &p));
            if !valid {
                // A wrong proof is an impostor, whatever the options say.
                return Err(Error::ServerNotProven(
                    "its proof is wrong: it does not hold our secret".into(),
                ));
            }
            Dialect::Replies
        }
        Err(e) if is_timeout(&e) => {
            let secs = PROOF_TIMEOUT.as_secs();
            unproven(format!(
                "it did not answer the proof request within {secs} s"
            ))?;
            Dialect::Original
        }
        Err(e) if e.is_disconnect() => return Err(Error::AuthFailed),
        Err(e @ Error::Remote { .. }) => {
            unproven(e.to_string())?;
            Dialect::Replies
        }
        Err(e) => return Err(e),
    };
    Ok(dialect)
}

/// What came back for the `prove` request.
enum ProofAnswer {
    /// A reply frame.
    Reply(Result<Proof>),
    /// The request itself, upper-cased: the seed's echo server.
    Echoed,
}

/// Reads the answer to `prove`, recognising a server that echoes.
fn read_proof<R: Read>(stream: &mut R, request: &[u8]) -> Result<ProofAnswer> {
    let body = frame::read(stream, MAX_HEADER_LEN)?.ok_or(Error::Closed)?;
    if body == request[4..].to_ascii_uppercase() {
        return Ok(ProofAnswer::Echoed);
    }
    match parse_reply(&body).map_err(Error::from) {
        Err(Error::Malformed(why)) => Err(Error::Malformed(format!("reply to prove: {why}"))),
        answer => Ok(ProofAnswer::Reply(answer)),
    }
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Reads a reply frame and turns an error reply into [`Error::Remote`]:
/// the frame's bytes and what it holds, never a copy of it as a tree of
/// values (see [`parse_reply`]).
pub(crate) fn read_reply<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T> {
    let body = frame::read(r, MAX_REPLY_LEN)?.ok_or(Error::Closed)?;
    Ok(parse_reply(&body)?)
}
