//! Opening a connection: TCP, the login, and finding out whether the
//! server can prove that it holds the secret, which tells its dialect.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::ClientOptions;
use crate::error::{Error, Result};
use crate::wire::auth::{client_handshake, new_nonce, verify_server_proof};
use crate::wire::frame::{self, MAX_REPLY_LEN};
use crate::wire::message::{Proof, Reply, Request};

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

/// Connects, logs in and checks the server's proof.
pub(crate) fn open(addr: SocketAddr, options: &ClientOptions) -> Result<(TcpStream, Dialect)> {
    let mut stream = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::ConnectionRefused => " (is ftp-server running there?)",
            _ => "",
        };
        Error::io(format!("cannot connect to {addr}{hint}"), e)
    })?;
    let _ = stream.set_nodelay(true);
    let set_timeouts = |s: &TcpStream, read: Duration| {
        s.set_read_timeout(Some(read))
            .and_then(|()| s.set_write_timeout(Some(options.io_timeout)))
            .map_err(|e| Error::io("setting timeouts", e))
    };
    set_timeouts(&stream, options.io_timeout)?;
    client_handshake(&mut stream, options.secret.as_bytes())?;
    let nonce = new_nonce();
    frame::write_json(
        &mut stream,
        &Request::Prove {
            nonce: hex::encode(nonce),
        },
    )?;
    set_timeouts(&stream, PROOF_TIMEOUT.min(options.io_timeout))?;
    let answer = read_reply::<_, Proof>(&mut stream);
    set_timeouts(&stream, options.io_timeout)?;
    let unproven = |why: String| {
        if options.require_proof {
            Err(Error::ServerNotProven(why))
        } else {
            Ok(())
        }
    };
    let dialect = match answer {
        Ok(proof) => {
            let valid = hex::decode(&proof.proof)
                .ok()
                .map(|p| verify_server_proof(options.secret.as_bytes(), &nonce, &p))
                .unwrap_or(false);
            if !valid {
                // A wrong proof is an impostor, whatever the options say.
                return Err(Error::ServerNotProven(
                    "its proof is wrong: it does not hold our secret".into(),
                ));
            }
            Dialect::Replies
        }
        Err(e) if is_timeout(&e) => {
            unproven(format!(
                "it did not answer the proof request within {} s",
                PROOF_TIMEOUT.as_secs()
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
    Ok((stream, dialect))
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

/// Whether the server has closed an idle connection (a zero-length peek
/// that does not block).
pub(crate) fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut probe = [0u8; 1];
    let closed = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // unexpected data; the next read will tell
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}
