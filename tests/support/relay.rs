//! A TCP relay between a client and a server on loopback that records both
//! directions and can meddle with what either side sends: what a passive
//! eavesdropper sees, and what an active one can do without keys.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the relay does to the client's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meddle {
    /// Forward them untouched.
    Nothing,
    /// Flip the lowest bit of the byte at this offset of each connection.
    FlipAt(usize),
    /// Cut the connection (both ways, no close_notify) at this offset.
    CutAt(usize),
    /// The same, on the first connection only: later ones pass untouched.
    CutFirstAt(usize),
    /// Hold the first bytes this long before passing them on (a challenge
    /// that comes late).
    Hold(Duration),
}

/// A running relay; stops accepting when dropped.
pub struct Relay {
    pub addr: SocketAddr,
    /// Everything the clients sent, as it went by.
    pub from_clients: Arc<Mutex<Vec<u8>>>,
    /// Everything the server sent.
    pub from_server: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relays every connection to `upstream`, meddling with what the
    /// client sends.
    pub fn start(upstream: SocketAddr, meddle: Meddle) -> Relay {
        Relay::start_both(upstream, meddle, Meddle::Nothing)
    }

    /// The same, meddling with the client's bytes (`up`) and with the
    /// server's (`down`).
    pub fn start_both(upstream: SocketAddr, up_meddle: Meddle, down_meddle: Meddle) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let relay = Relay {
            addr,
            from_clients: Arc::default(),
            from_server: Arc::default(),
            stop: Arc::default(),
        };
        let (up, down, stop) = (
            relay.from_clients.clone(),
            relay.from_server.clone(),
            relay.stop.clone(),
        );
        thread::spawn(move || {
            let mut first = true;
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(upstream).unwrap();
                        let only_first = |m| match m {
                            Meddle::CutFirstAt(at) if first => Meddle::CutAt(at),
                            Meddle::CutFirstAt(_) => Meddle::Nothing,
                            m => m,
                        };
                        spawn_pump(&client, &server, up.clone(), only_first(up_meddle));
                        spawn_pump(&server, &client, down.clone(), only_first(down_meddle));
                        first = false;
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        relay
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Both directions, for searching.
    pub fn capture(&self) -> Vec<u8> {
        let mut all = self.from_clients.lock().unwrap().clone();
        all.extend_from_slice(&self.from_server.lock().unwrap());
        all
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn spawn_pump(from: &TcpStream, to: &TcpStream, record: Arc<Mutex<Vec<u8>>>, meddle: Meddle) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut offset = 0usize;
        if let Meddle::Hold(wait) = meddle {
            thread::sleep(wait);
        }
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            let range = offset..offset + n;
            match meddle {
                Meddle::FlipAt(at) if range.contains(&at) => chunk[at - offset] ^= 1,
                Meddle::CutAt(at) if range.contains(&at) => {
                    let _ = to.write_all(&chunk[..at - offset]);
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                _ => {}
            }
            offset += n;
            record.lock().unwrap().extend_from_slice(chunk);
            if to.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
