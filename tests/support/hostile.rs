//! A hostile server for the client's tests (`tests/hostile_server.rs`):
//! it logs a client in as ftp-server does, over TLS with the proofs both
//! ways (so the client runs pinned, as by default), and then does whatever
//! the test scripts; or it scripts the bare TCP stream, before any login.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use ftp::testing::inside::TcpTransport;
use ftp::testing::inside::TlsTransport;
use ftp::wire::binding::{server_proof, BINDING_LEN, TLS_MARKER};
use ftp::wire::frame;
use ftp::ServerIdentity;

use super::{ClientRun, Sandbox, SECRET};

/// What the hostile server does with each connection once it is logged
/// in (or, for [`Hostile::raw`], straight after the accept).
pub type Script = dyn Fn(&mut dyn Stream) + Send + Sync;

pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A hostile server on 127.0.0.1:0, running `script` on each connection.
pub struct Hostile {
    pub addr: SocketAddr,
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

impl Hostile {
    /// Logs each client in as a real server does, then runs `script`.
    pub fn new(script: impl Fn(&mut dyn Stream) + Send + Sync + 'static) -> Hostile {
        Hostile::start(true, Arc::new(script))
    }

    /// Runs `script` on the bare TCP stream, before any login: whatever
    /// answers at an address.
    pub fn raw(script: impl Fn(&mut dyn Stream) + Send + Sync + 'static) -> Hostile {
        Hostile::start(false, Arc::new(script))
    }

    fn start(login: bool, script: Arc<Script>) -> Hostile {
        let dir = tempfile::tempdir().unwrap();
        let identity = ServerIdentity::load_or_create(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fingerprint = identity.fingerprint.to_string();
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let (script, identity) = (script.clone(), identity.clone());
                thread::spawn(move || match login {
                    true => {
                        if let Some(mut tls) = log_in(tcp, &identity) {
                            script(&mut tls);
                        }
                    }
                    false => script(&mut { tcp }),
                });
            }
        });
        Hostile {
            addr,
            fingerprint,
            _dir: dir,
        }
    }

    /// `ftp-client --server ADDR --fingerprint PIN ARGS...`.
    pub fn client(&self, sb: &Sandbox, args: &[&str]) -> ClientRun {
        let mut all = vec!["--fingerprint", &self.fingerprint];
        all.extend_from_slice(args);
        ClientRun::to(sb, &self.addr.to_string(), &all)
    }
}

/// The server's side of the login, as ftp-server does it: challenge, the
/// TLS marker, TLS, the client's tag (not checked: a hostile server does
/// not care), and the proof that it holds the secret.
pub fn log_in(mut tcp: TcpStream, identity: &ServerIdentity) -> Option<TlsTransport> {
    tcp.write_all(&[7u8; 32]).ok()?;
    let mut marker = [0u8; 16];
    tcp.read_exact(&mut marker).ok()?;
    assert_eq!(marker, TLS_MARKER);
    let transport = TcpTransport::new(tcp, Duration::from_secs(30)).ok()?;
    let mut tls = TlsTransport::accept(identity.config.clone(), transport).ok()?;
    let mut tag = [0u8; BINDING_LEN];
    tls.read_exact(&mut tag).ok()?;
    let exporter = tls.exporter().ok()?;
    tls.write_all(&server_proof(SECRET.as_bytes(), &exporter))
        .ok()?;
    tls.flush().ok()?;
    Some(tls)
}

/// Reads one request frame; `None` once the client is gone.
pub fn request(s: &mut dyn Stream) -> Option<Value> {
    let body = frame::read(&mut ReadOf(s), frame::MAX_HEADER_LEN).ok()??;
    serde_json::from_slice(&body).ok()
}

struct ReadOf<'a>(&'a mut dyn Stream);
impl Read for ReadOf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// Sends `bytes` at once; false once the client is gone.
pub fn send(s: &mut dyn Stream, bytes: &[u8]) -> bool {
    s.write_all(bytes).and_then(|()| s.flush()).is_ok()
}

pub fn send_json(s: &mut dyn Stream, v: &Value) -> bool {
    send(s, &frame::encode_json(v).unwrap())
}

/// Sends `bytes` one at a time, `every` apart, until they are out or the
/// client has gone.
pub fn drip(s: &mut dyn Stream, bytes: &[u8], every: Duration) {
    for b in bytes {
        if !send(s, &[*b]) {
            return;
        }
        thread::sleep(every);
    }
}

/// Drains `n` bytes a client sends (a put's body).
pub fn take(s: &mut dyn Stream, n: u64) -> bool {
    std::io::copy(&mut ReadOf(s).take(n), &mut std::io::sink()).is_ok_and(|got| got == n)
}

/// An error frame as a busy server sends it in place of the challenge:
/// `status` first, which is how the client tells it from a challenge.
pub fn refusal(code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"status":"error","code":{},"message":{}}}"#,
        serde_json::to_string(code).unwrap(),
        serde_json::to_string(message).unwrap()
    );
    frame::encode(body.as_bytes()).unwrap()
}

/// The flag that pins the hostile server.
pub fn fp_args(server: &Hostile) -> Vec<String> {
    vec!["--fingerprint".into(), server.fingerprint.clone()]
}

/// The client's peak resident memory, in KiB, while it is still running.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
