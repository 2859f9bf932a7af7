//! HTTP for the tests: a receiver of hook events that can answer slowly
//! or with an error, and a scrape of the server's metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ServerProcess;

/// Most bytes of one request the receiver reads.
const MAX_REQUEST: u64 = 64 * 1024;

/// A local HTTP server that keeps each request's body and answers with
/// `status` after `delay`; it stops on `Drop`.
pub struct Receiver {
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(status: u16, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, a, s) = (bodies.clone(), answered.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let (b, a) = (b.clone(), a.clone());
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || answer(conn, status, delay, &b, &a));
            }
        });
        Receiver {
            url,
            bodies,
            answered,
            stop,
        }
    }

    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// How many requests were answered.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees `stop`.
        let addr = self.url.trim_start_matches("http://");
        let _ = TcpStream::connect(addr.split('/').next().unwrap_or(addr));
    }
}

fn answer(
    conn: TcpStream,
    status: u16,
    delay: Duration,
    bodies: &Mutex<Vec<String>>,
    answered: &AtomicUsize,
) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut reader = BufReader::new((&conn).take(MAX_REQUEST));
    let mut len = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    bodies
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    std::thread::sleep(delay);
    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = (&conn).write_all(reply.as_bytes());
    answered.fetch_add(1, Ordering::SeqCst);
}

/// A URL on which nothing listens: a port just bound and let go.
pub fn down_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/events", listener.local_addr().unwrap())
}

/// The body of `GET /metrics` from `addr`.
pub fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    text
}

/// Where a server started with `--metrics 127.0.0.1:0` serves them.
pub fn metrics_addr(server: &ServerProcess) -> String {
    let start = server.wait_for_said(&[("event", "start")], "metrics on ");
    let said = super::log::message(&start);
    said.trim_start_matches("metrics on ").trim().to_string()
}
