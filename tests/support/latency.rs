//! A link with latency on loopback: a TCP proxy that holds every byte for a
//! fixed delay in each direction before passing it on, as a long cable
//! would (this kernel has no netem). It shows what a round trip per file
//! costs. It may also cap each direction's rate, as a slower line would
//! (bytes leave no faster than the rate after their delay), and it counts
//! the bytes it carries each way. Bounded: at most `MAX_CONNECTIONS`
//! connections, a bounded queue per direction, and it stops accepting when
//! dropped; each connection ends when either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most connections one proxy carries in its life.
const MAX_CONNECTIONS: usize = 256;
/// Chunks held per direction: with 64 KiB reads, up to 16 MiB in flight.
const QUEUE: usize = 256;
/// What a capped line holds before its sender waits: this long at its rate.
const LINE_BUFFER: Duration = Duration::from_millis(50);

/// A running proxy; stops accepting when dropped.
pub struct Latency {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Bytes carried towards the upstream, and back, over every
    /// connection so far.
    carried: Arc<[AtomicU64; 2]>,
}

/// How a link treats its bytes: the delay each way, and the most bytes a
/// second each way (`None`: as fast as loopback).
#[derive(Clone, Copy)]
pub struct Line {
    pub delay: Duration,
    pub rate: Option<u64>,
}

impl Latency {
    /// Passes every connection on to `upstream`, `delay` late each way.
    pub fn start(upstream: SocketAddr, delay: Duration) -> Latency {
        Latency::line(upstream, Line { delay, rate: None })
    }

    /// Passes every connection on to `upstream` over `line`.
    pub fn line(upstream: SocketAddr, line: Line) -> Latency {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let carried = AtomicUsize::new(0);
        let bytes = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let counted = bytes.clone();
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if carried.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                            return;
                        }
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            carry(client, server, line, counted.clone());
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Latency {
            addr,
            stop,
            carried: bytes,
        }
    }

    /// Bytes carried so far, both ways together.
    pub fn bytes(&self) -> u64 {
        self.carried.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Latency {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn carry(client: TcpStream, server: TcpStream, line: Line, bytes: Arc<[AtomicU64; 2]>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for (way, (from, to)) in [(&client, &server), (&server, &client)]
        .into_iter()
        .enumerate()
    {
        let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
        let (queue, held) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
        let bytes = bytes.clone();
        thread::spawn(move || {
            let mut from = from;
            let mut buf = vec![0u8; 64 * 1024];
            // When the line is free again: a capped line sends one chunk
            // after another, each taking its length over the rate.
            let mut free = Instant::now();
            loop {
                match from.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        bytes[way].fetch_add(n as u64, Ordering::Relaxed);
                        let mut due = Instant::now() + line.delay;
                        if let Some(rate) = line.rate {
                            free = free.max(Instant::now())
                                + Duration::from_secs_f64(n as f64 / rate as f64);
                            due = due.max(free + line.delay);
                        }
                        if queue.send((due, buf[..n].to_vec())).is_err() {
                            break;
                        }
                        // A line's buffer holds a moment's bytes, not
                        // megabytes: the sender waits, as on a real line.
                        let ahead = free.saturating_duration_since(Instant::now());
                        if ahead > LINE_BUFFER {
                            thread::sleep(ahead - LINE_BUFFER);
                        }
                    }
                    // The end (or a failure) travels with the same delay.
                    _ => {
                        let _ = queue.send((Instant::now().max(free) + line.delay, Vec::new()));
                        break;
                    }
                }
            }
        });
        thread::spawn(move || deliver(held, to));
    }
}

fn deliver(held: Receiver<(Instant, Vec<u8>)>, mut to: TcpStream) {
    while let Ok((due, bytes)) = held.recv() {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        if bytes.is_empty() || to.write_all(&bytes).is_err() {
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
