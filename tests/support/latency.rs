//! A link with latency on loopback: a TCP proxy that holds every byte for a
//! fixed delay in each direction before passing it on, as a long cable
//! would (this kernel has no netem). It shows what a round trip per file
//! costs. Bounded: at most `MAX_CONNECTIONS` connections, a bounded queue
//! per direction, and it stops accepting when dropped; each connection
//! ends when either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most connections one proxy carries in its life.
const MAX_CONNECTIONS: usize = 256;
/// Chunks held per direction: with 64 KiB reads, up to 16 MiB in flight.
const QUEUE: usize = 256;

/// A running proxy; stops accepting when dropped.
pub struct Latency {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Latency {
    /// Passes every connection on to `upstream`, `delay` late each way.
    pub fn start(upstream: SocketAddr, delay: Duration) -> Latency {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let carried = AtomicUsize::new(0);
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if carried.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
                            return;
                        }
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            carry(client, server, delay);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Latency { addr, stop }
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

fn carry(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for (from, to) in [(&client, &server), (&server, &client)] {
        let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
        let (queue, held) = sync_channel::<(Instant, Vec<u8>)>(QUEUE);
        thread::spawn(move || {
            let mut from = from;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if queue
                            .send((Instant::now() + delay, buf[..n].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                    // The end (or a failure) travels with the same delay.
                    _ => {
                        let _ = queue.send((Instant::now() + delay, Vec::new()));
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
