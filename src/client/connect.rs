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
use crate::net::tls::{self, ClientTls};
use crate::wire::auth::{
    client_handshake, new_nonce, read_challenge, verify_server_proof as verify_server_proof_md5,
};
use crate::wire::binding::{client_tag, verify_server_proof, BINDING_LEN, TLS_MARKER};
use crate::wire::frame::{self, read_full, MAX_REPLY_LEN};
use crate::wire::message::{Proof, Reply, Request};
use crate::wire::reply::error_reply_in;

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
}

/// A new connection, logged in.
pub(crate) struct Opened {
    pub(crate) stream: ClientStream,
    pub(crate) dialect: Dialect,
    /// Something to tell the user once, such as a first contact's pin.
    pub(crate) notice: Option<String>,
}

/// Connects and logs in over TLS, with the channel-bound proofs both ways.
/// With `require_proof` off, a server that cannot do TLS (an older one, or
/// the original Python one) is tried again in the seed's plaintext dialect.
pub(crate) fn open(addr: SocketAddr, options: &ClientOptions, tls: &TlsClient) -> Result<Opened> {
    let mut tcp = dial(addr, options)?;
    read_challenge(&mut tcp)?;
    tcp.write_all(&TLS_MARKER)
        .map_err(|e| Error::io("sending the TLS request", e))?;
    match tls::connect(tls.config.clone(), tcp) {
        Ok(stream) => tls_login(stream, options, tls),
        Err(e) => {
            if let Some(refusal) = tls.refusal() {
                return Err(refusal);
            }
            if !options.require_proof {
                return open_plaintext(addr, options);
            }
            Err(Error::ServerNotProven(format!(
                "it did not complete a TLS handshake: {e}; an older ftp-server or the original \
                 Python server cannot"
            )))
        }
    }
}

/// The TCP connection, with timeouts set.
fn dial(addr: SocketAddr, options: &ClientOptions) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::ConnectionRefused => " (is ftp-server running there?)",
            _ => "",
        };
        Error::io(format!("cannot connect to {addr}{hint}"), e)
    })?;
    let _ = stream.set_nodelay(true);
    set_timeouts(&stream, options.io_timeout, options)?;
    Ok(stream)
}

fn set_timeouts(s: &TcpStream, read: Duration, options: &ClientOptions) -> Result<()> {
    s.set_read_timeout(Some(read))
        .and_then(|()| s.set_write_timeout(Some(options.io_timeout)))
        .map_err(|e| Error::io("setting timeouts", e))
}

/// Inside TLS: our tag over this connection's exporter, then the server's
/// proof over the same value, checked before anything else is sent.
fn tls_login(mut stream: ClientTls, options: &ClientOptions, tls: &TlsClient) -> Result<Opened> {
    let secret = options.secret.as_bytes();
    let contact = tls.check_contact(&options.trust, !options.secret.looks_random())?;
    let exporter = tls::exporter(&stream.conn).map_err(|e| Error::io("TLS exporter", e))?;
    stream
        .write_all(&client_tag(secret, &exporter))
        .and_then(|()| stream.flush())
        .map_err(|e| Error::io("sending the login proof", e))?;
    let mut proof = [0u8; BINDING_LEN];
    let got = read_full(&mut stream, &mut proof)?;
    match error_reply_in(&proof[..got], &mut stream) {
        Some(Error::Remote { code, .. }) if code == "auth_failed" => return Err(Error::AuthFailed),
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
fn open_plaintext(addr: SocketAddr, options: &ClientOptions) -> Result<Opened> {
    let mut stream = dial(addr, options)?;
    client_handshake(&mut stream, options.secret.as_bytes())?;
    let nonce = new_nonce();
    let prove = Request::Prove {
        nonce: hex::encode(nonce),
    };
    frame::write_json(&mut stream, &prove)?;
    set_timeouts(&stream, PROOF_TIMEOUT.min(options.io_timeout), options)?;
    let answer = read_reply::<_, Proof>(&mut stream);
    set_timeouts(&stream, options.io_timeout, options)?;
    let unproven = |why: String| match options.require_proof {
        true => Err(Error::ServerNotProven(why)),
        false => Ok(()),
    };
    let dialect = match answer {
        Ok(proof) => {
            let valid = hex::decode(&proof.proof)
                .ok()
                .is_some_and(|p| verify_server_proof_md5(options.secret.as_bytes(), &nonce, &p));
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
    Ok(Opened {
        stream: ClientStream::Plain(stream),
        dialect,
        notice: None,
    })
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Reads a reply frame and turns an error reply into [`Error::Remote`].
pub(crate) fn read_reply<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T> {
    let reply: Reply<T> = frame::read_json(r, MAX_REPLY_LEN)?;
    reply.into_result()
}
