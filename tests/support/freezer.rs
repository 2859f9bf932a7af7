//! A link that goes down on cue: a proxy on loopback that stops moving
//! bytes, one way or both, with every socket left open, as a dead cable
//! or a peer that vanished without a word would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A proxy that forwards both ways until `frozen` is raised, and each way
/// until it has carried its own limit of bytes; from then on that way
/// moves nothing and reads nothing, with every socket left open: a link
/// that went down. When the server hangs up, it hangs up on the client
/// too.
pub struct Freezer {
    pub addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Freezer {
    pub fn start(upstream: SocketAddr, up_at: Option<usize>, down_at: Option<usize>) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (frozen.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(upstream).unwrap();
                // Set when either way ends: both let go of their sockets,
                // so the client hears of a server's hang-up (a reset).
                let done = Arc::new(AtomicBool::new(false));
                let ends = (f.clone(), s.clone(), done.clone());
                forward(&client, &server, up_at, ends);
                forward(&server, &client, down_at, (f.clone(), s.clone(), done));
            }
        });
        Freezer { addr, frozen, stop }
    }

    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Whether the link is frozen, the proxy stopped, and the connection over.
type Flags = (Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicBool>);

fn forward(from: &TcpStream, to: &TcpStream, freeze_at: Option<usize>, flags: Flags) {
    let (frozen, stop, done) = flags;
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut moved = 0;
        let limit = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) && Instant::now() < limit
        {
            // A limit freezes this way only; `frozen`, both.
            if frozen.load(Ordering::SeqCst) || freeze_at.is_some_and(|at| moved >= at) {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            let want = match freeze_at {
                Some(at) => (at - moved).min(buf.len()),
                None => buf.len(),
            };
            match from.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    moved += n;
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        done.store(true, Ordering::SeqCst);
        let _ = to.shutdown(Shutdown::Write);
    });
}
