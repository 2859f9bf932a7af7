//! A server played from a script, for the client's unit tests: it takes
//! each request frame (and the body and digest the script says follow
//! it), records them, and answers with the script's replies, byte for
//! byte. A request past the script's end is recorded and hung up on: the
//! server stops sending, and reads what still comes until the client
//! closes, so that nothing it sent before is lost to a reset.
//! The client under test is a real [`Client`] over a loopback socket in
//! the replies dialect, logged in already; nothing listens at its address
//! once the script's connection is taken, so a reconnect is refused.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::client::connect::Dialect;
use crate::client::stream::ClientStream;
use crate::client::trust::{TlsClient, Trust};
use crate::client::{Client, ClientOptions};
use crate::config::secret::Secret;
use crate::net::stall::StallGuard;
use crate::wire::frame;

/// How long the client waits on the script: a test that expects a reply
/// the script lacks fails in this time instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// One request the script expects, and what it answers.
pub(crate) struct Exchange {
    /// Bytes that follow the request's header (a put's body).
    body: usize,
    /// Whether a digest frame follows them (a put's).
    digest: bool,
    /// What the server sends back.
    replies: Vec<u8>,
}

/// A request that reaches `replies` (JSON replies, each in its frame).
pub(crate) fn answer(replies: &[Value]) -> Exchange {
    answer_then(replies, &[])
}

/// A put of `body` bytes and their digest, answered by `replies`.
pub(crate) fn answer_put(body: usize, replies: &[Value]) -> Exchange {
    Exchange {
        body,
        digest: true,
        ..answer(replies)
    }
}

/// A request answered by `replies` and then the raw bytes `then` (a
/// download's body and digest, say).
pub(crate) fn answer_then(replies: &[Value], then: &[u8]) -> Exchange {
    let mut bytes: Vec<u8> = replies
        .iter()
        .flat_map(|r| frame::encode_json(r).expect("a reply frame"))
        .collect();
    bytes.extend_from_slice(then);
    Exchange {
        body: 0,
        digest: false,
        replies: bytes,
    }
}

/// What the client sent for one request.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The request's header.
    pub(crate) header: Value,
    /// The bytes after it.
    pub(crate) body: Vec<u8>,
    /// The digest frame after those.
    pub(crate) digest: Option<Value>,
}

/// The script's side of the connection, running until the client closes.
pub(crate) struct Scripted {
    server: JoinHandle<Vec<Recorded>>,
}

impl Scripted {
    /// A client and the script it talks to.
    pub(crate) fn start(script: Vec<Exchange>) -> (Client, Scripted) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let server = std::thread::spawn(move || {
            let (peer, _) = listener.accept().expect("the client's connection");
            drop(listener);
            play(peer, script)
        });
        let tcp = TcpStream::connect(addr).expect("connecting to the script");
        let mut options = ClientOptions::new(Secret::new(b"scripted secret".to_vec()).unwrap());
        options.stall_timeout = PATIENCE;
        options.reply_timeout = PATIENCE;
        options.connect_timeout = PATIENCE;
        let sock = StallGuard::new(tcp, PATIENCE, PATIENCE).expect("timeouts");
        let client = Client {
            addr,
            tls: TlsClient::new(&addr.to_string(), &Trust::default()).unwrap(),
            options,
            stream: ClientStream::Plain(sock),
            dialect: Dialect::Replies,
            notice: None,
            broken: false,
            folder: "/".into(),
            lost: None,
        };
        (client, Scripted { server })
    }

    /// Every request the client sent, once it has closed the connection
    /// (drop the client first).
    pub(crate) fn requests(self) -> Vec<Recorded> {
        self.server.join().expect("the script ran")
    }
}

/// Plays `script` on `peer`, and hangs up at its end; what was recorded.
fn play(mut peer: TcpStream, script: Vec<Exchange>) -> Vec<Recorded> {
    let mut recorded = Vec::new();
    let mut script = script.into_iter();
    while let Some(header) = read_json(&mut peer) {
        let exchange = script.next();
        let (body, digest) = exchange.as_ref().map_or((0, false), |e| (e.body, e.digest));
        let mut taken = Recorded {
            header,
            body: vec![0; body],
            digest: None,
        };
        let whole = peer.read_exact(&mut taken.body).is_ok();
        if digest {
            taken.digest = read_json(&mut peer);
        }
        recorded.push(taken);
        let Some(exchange) = exchange.filter(|_| whole) else {
            break;
        };
        if peer.write_all(&exchange.replies).is_err() {
            break;
        }
    }
    let _ = peer.shutdown(Shutdown::Write);
    let _ = io::copy(&mut peer, &mut io::sink());
    recorded
}

fn read_json(peer: &mut TcpStream) -> Option<Value> {
    let frame = frame::read(peer, frame::MAX_HEADER_LEN).ok()??;
    Some(serde_json::from_slice(&frame).unwrap_or(Value::Null))
}
