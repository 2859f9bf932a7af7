//! The "limit" baseline: a minimal server of the same protocol (the seed's
//! login, then seed-style puts into files), with a fixed set of 100
//! threads that each accept and serve one connection at a time. What this
//! machine can do with blocking code and no more than that, measured in
//! the same run as ours.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::thread;

use ftp::wire::auth::{new_challenge, verify};
use ftp::wire::frame::{self, MAX_HEADER_LEN};
use ftp::wire::names::validate_name;

use crate::spawn_self;

const THREADS: usize = 100;

/// Runs the minimal server (as a process of its own) until killed.
pub fn serve(root: &Path, secret: &str) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(4096).unwrap();
    let listener: Arc<TcpListener> = Arc::new(socket.into());
    println!("listening on {}", listener.local_addr().unwrap());
    let root = Arc::new(root.to_path_buf());
    let secret = Arc::new(secret.as_bytes().to_vec());
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (listener, root, secret) = (listener.clone(), root.clone(), secret.clone());
            thread::spawn(move || loop {
                if let Ok((conn, _)) = listener.accept() {
                    let _ = handle(conn, &root, &secret);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn handle(mut conn: TcpStream, root: &Path, secret: &[u8]) -> Option<()> {
    conn.set_nodelay(true).ok()?;
    let challenge = new_challenge();
    conn.write_all(&challenge).ok()?;
    let mut answer = [0u8; 16];
    conn.read_exact(&mut answer).ok()?;
    if !verify(secret, &challenge, &answer) {
        return None;
    }
    let mut buf = vec![0u8; 256 * 1024];
    while let Ok(Some(header)) = frame::read(&mut conn, MAX_HEADER_LEN) {
        let h: serde_json::Value = serde_json::from_slice(&header).ok()?;
        let name = validate_name(h["filename"].as_str()?).ok()?;
        let mut left = h["filesize"].as_u64()?;
        let mut file = File::create(root.join(name)).ok()?;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = conn.read(&mut buf[..want]).ok()?;
            if n == 0 {
                return None;
            }
            file.write_all(&buf[..n]).ok()?;
            left -= n as u64;
        }
        let reply = frame::encode_json(&serde_json::json!({"status":"ok"})).ok()?;
        conn.write_all(&reply).ok()?;
    }
    Some(())
}

/// Starts it from the bench binary; returns the child and its address.
pub fn start(root: &Path, secret: &str) -> (Child, SocketAddr) {
    std::fs::create_dir_all(root).unwrap();
    spawn_self(&["--limit-server".as_ref(), root.as_ref(), secret.as_ref()])
}
