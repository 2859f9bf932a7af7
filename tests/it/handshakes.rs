//! A flood of replayed ClientHellos from one address: each costs the
//! server an ECDHE and a signature and its sender nothing. Abandoned
//! handshakes count as failed logins of their host, and a host starts
//! only so many handshakes a second, so a user on another address is
//! served as if nothing happened.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use ftp::wire::binding::TLS_MARKER;

/// Threads that flood from 127.0.0.1, each starting [`PER_THREAD`]
/// handshakes one after the other (the host's sixteen login turns).
const THREADS: usize = 16;
const PER_THREAD: usize = 19;

/// A TLS 1.3 ClientHello, as a replaying attacker sends it again and again.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = "localhost".try_into().unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// One abandoned handshake: the challenge, the TLS marker and a
/// ClientHello, then the connection is dropped without a look at the
/// server's answer.
fn abandon_a_handshake(addr: SocketAddr, hello: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    // Past the longest back-off delay.
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut challenge = [0u8; 32];
    if s.read_exact(&mut challenge).is_err() {
        return;
    }
    let _ = s.write_all(&TLS_MARKER);
    let _ = s.write_all(hello);
    // Long enough for the server to read it all before the close.
    let mut first = [0u8; 1];
    let _ = s.read(&mut first);
}

/// Starts `THREADS` threads that each open and abandon `PER_THREAD` TLS
/// handshakes with the same recorded ClientHello.
fn flood_with_hellos(addr: std::net::SocketAddr) -> Vec<std::thread::JoinHandle<()>> {
    let hello = client_hello();
    (0..THREADS)
        .map(|_| {
            let hello = hello.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    abandon_a_handshake(addr, &hello);
                }
            })
        })
        .collect()
}

#[test]
fn replayed_client_hellos_from_one_address_are_paced_and_slow_no_one_else() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[
        "--max-failed-logins",
        "10",
        "--max-handshakes-per-second",
        "16",
    ]);
    login_and_list(server.addr).expect("served before the flood");
    let started = Instant::now();
    let flood = flood_with_hellos(server.addr);
    let mut times: Vec<Duration> = (0..10)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(50));
            login_and_list(server.addr).unwrap_or_else(|e| panic!("try {i}: {e}"))
        })
        .collect();
    for thread in flood {
        thread.join().unwrap();
    }
    let flood_took = started.elapsed();
    println!("user times {times:?}, flood took {flood_took:?}");
    times.sort();
    let (median, worst) = (times[5], times[9]);
    assert!(
        median <= Duration::from_millis(200) && worst <= Duration::from_secs(1),
        "median {median:?}, worst {worst:?}: {times:?}"
    );
    // Abandoned handshakes count as failed logins: after the minute's
    // ten, the address is turned away before any handshake (a turn's
    // worth were under way then).
    let left = server.events_with(&[("event", "login"), ("result", "left")]);
    let counted = left
        .iter()
        .filter(|e| message(e).contains("counted as a failed login"))
        .count();
    println!("counted {counted}");
    assert!(
        (10..=10 + THREADS).contains(&counted),
        "{counted} handshakes were abandoned and counted in {flood_took:?}"
    );
    let refused = server.events_with(&[("event", "login"), ("result", "refused")]);
    assert!(
        refused
            .iter()
            .any(|e| message(e).contains("too many failed logins")),
        "the address was never turned away"
    );
    assert!(flood_took < Duration::from_secs(30), "{flood_took:?}");
}
