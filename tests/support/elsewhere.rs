//! A user on another host (127.0.0.2) while one host floods the server:
//! what the flood tests measure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ftp::wire::auth::respond;
use ftp::wire::frame;

use super::SECRET;

/// A connection from 127.0.0.2: another host, as far as the server knows.
fn connect_from_elsewhere(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = "127.0.0.2:0".parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// A user's login and `ls` from another address; how long it took, or
/// why it failed.
pub fn login_and_list(addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut s = connect_from_elsewhere(addr);
    let mut challenge = [0u8; 32];
    s.read_exact(&mut challenge)
        .map_err(|e| format!("no challenge: {e}"))?;
    s.write_all(&respond(SECRET.as_bytes(), &challenge))
        .map_err(|e| e.to_string())?;
    s.write_all(&frame::encode_json(&serde_json::json!({"cmd":"ls"})).unwrap())
        .map_err(|e| e.to_string())?;
    let reply = frame::read(&mut s, frame::MAX_REPLY_LEN)
        .map_err(|e| e.to_string())?
        .ok_or("closed without a reply")?;
    let reply: serde_json::Value = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
    if reply["status"] != "ok" {
        return Err(format!("refused: {reply}"));
    }
    Ok(started.elapsed())
}

/// Ten logins and listings from another address: each served, with a
/// median of at most 100 ms and the slowest at most 1 s.
pub fn served_quickly_from_elsewhere(addr: SocketAddr) {
    let mut times: Vec<Duration> = (0..10)
        .map(|i| login_and_list(addr).unwrap_or_else(|e| panic!("try {i}: {e}")))
        .collect();
    times.sort();
    let (median, worst) = (times[5], times[9]);
    assert!(
        median <= Duration::from_millis(100) && worst <= Duration::from_secs(1),
        "median {median:?}, worst {worst:?}: {times:?}"
    );
}
