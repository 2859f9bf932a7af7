//! The "limit" baselines: a minimal server of the same protocol (the seed's
//! login, then seed-style puts into files), with a fixed set of 100
//! threads that each accept and serve one connection at a time. What this
//! machine can do with blocking code and no more than that, measured in
//! the same run as ours.
//!
//! Its `--atomic` mode pays what ftp-server pays per upload for its
//! guarantees, and no more: the body goes to a partial name, BLAKE3 hashes
//! it, and a rename lands it whole; with `--durable` as well, the file's
//! data is flushed before the rename and its folder after it. That is the
//! floor a server that keeps those guarantees can reach, so ftp-server's
//! remaining distance to it is overhead, not the price of the guarantees.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use ftp::wire::auth::{new_challenge, verify};
use ftp::wire::frame::{self, MAX_HEADER_LEN};
use ftp::wire::names::validate_name;

use crate::spawn_self;

const THREADS: usize = 100;

/// What the minimal server pays per upload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Straight into the file under its name.
    Plain,
    /// A partial name, BLAKE3 and a rename.
    Atomic,
    /// As `Atomic`, with the data flushed before the rename and the folder
    /// after it.
    Durable,
}

impl Landing {
    /// The flags that select it in the helper process.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Landing::Plain => &[],
            Landing::Atomic => &["--atomic"],
            Landing::Durable => &["--atomic", "--durable"],
        }
    }

    /// Read back from the helper process's arguments.
    pub fn from_args(args: &[String]) -> Landing {
        let has = |flag: &str| args.iter().any(|a| a == flag);
        match (has("--atomic"), has("--durable")) {
            (false, _) => Landing::Plain,
            (true, false) => Landing::Atomic,
            (true, true) => Landing::Durable,
        }
    }
}

/// Runs the minimal server (as a process of its own) until killed.
pub fn serve(root: &Path, secret: &str, landing: Landing) {
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
                    let _ = handle(conn, &root, &secret, landing);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn handle(mut conn: TcpStream, root: &Path, secret: &[u8], landing: Landing) -> Option<()> {
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
        let size = h["filesize"].as_u64()?;
        let reply = match landing {
            Landing::Plain => {
                let mut file = File::create(root.join(name)).ok()?;
                receive(&mut conn, &mut buf, size, |chunk| {
                    file.write_all(chunk).ok()
                })?;
                serde_json::json!({"status": "ok"})
            }
            Landing::Atomic | Landing::Durable => {
                let digest = land(&mut conn, &mut buf, root, name, size, landing)?;
                serde_json::json!({"status": "ok", "blake3": digest.to_hex().as_str()})
            }
        };
        conn.write_all(&frame::encode_json(&reply).ok()?).ok()?;
    }
    Some(())
}

/// Reads `size` body bytes, handing each read to `sink`.
fn receive(
    conn: &mut TcpStream,
    buf: &mut [u8],
    size: u64,
    mut sink: impl FnMut(&[u8]) -> Option<()>,
) -> Option<()> {
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = conn.read(&mut buf[..want]).ok()?;
        if n == 0 {
            return None;
        }
        sink(&buf[..n])?;
        left -= n as u64;
    }
    Some(())
}

/// One upload with ftp-server's guarantees: a partial file no reader
/// sees, BLAKE3 over the body, then a rename (and, when durable, a flush
/// of the data before it and of the folder after it).
fn land(
    conn: &mut TcpStream,
    buf: &mut [u8],
    root: &Path,
    name: &str,
    size: u64,
    landing: Landing,
) -> Option<blake3::Hash> {
    // Unique per upload, as ftp-server's partial names are, so two
    // connections putting the same name never share a partial file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let partial = root.join(format!(
        ".{name}.{}.partial",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = File::create(&partial).ok()?;
    let mut hasher = blake3::Hasher::new();
    receive(conn, buf, size, |chunk| {
        hasher.update(chunk);
        file.write_all(chunk).ok()
    })?;
    if landing == Landing::Durable {
        file.sync_data().ok()?;
    }
    std::fs::rename(&partial, root.join(name)).ok()?;
    if landing == Landing::Durable {
        File::open(root).ok()?.sync_all().ok()?;
    }
    Some(hasher.finalize())
}

/// Starts it from the bench binary; returns the child and its address.
pub fn start(root: &Path, secret: &str, landing: Landing) -> (Child, SocketAddr) {
    std::fs::create_dir_all(root).unwrap();
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["--limit-server".as_ref(), root.as_ref(), secret.as_ref()];
    args.extend(landing.flags().iter().map(std::ffi::OsStr::new));
    spawn_self(&args)
}
