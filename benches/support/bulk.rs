//! Bulk transfer: a large file put and got through ftp-server, against a raw
//! TCP copy of the same bytes and a put to the seed's Python server,
//! interleaved round by round.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ftp::wire::frame;
use ftp::NoProgress;

use crate::{
    client, copy_chunks, copy_full_chunks, login, mib, print_rates, rss_kib, run_client,
    spawn_self, Scratch, Server, Settings,
};

/// The section's paths, in the order their rows are printed; the first is
/// the baseline.
const PATHS: [&str; 5] = [
    "raw TCP copy, 256 KiB buffers (baseline)",
    "put, library client (BLAKE3 verified)",
    "put, ftp-client process end to end",
    "get, ftp-client process end to end",
    "put to the seed Python server",
];

pub fn section(
    s: &Settings,
    scratch: &Scratch,
    source: &Path,
    ours: &Server,
    seed: Option<&Server>,
) {
    let raw_dst = scratch.dir.join("raw.bin");
    let rss_before = rss_kib(ours.pid());
    let (mut receiver, receiver_addr) = spawn_self(&["--raw-receive".as_ref(), raw_dst.as_ref()]);
    let bulk = Bulk {
        s,
        scratch,
        source,
        ours,
        seed,
        receiver: receiver_addr,
        raw_dst,
    };
    let mut times = vec![Vec::new(); PATHS.len()];
    for round in 0..s.rounds {
        // Each round runs every path once; the order rotates so that no path
        // always runs first (right after the deletes of the previous round).
        for step in 0..PATHS.len() {
            let path = (step + round) % PATHS.len();
            if let Some(took) = bulk.run(path) {
                times[path].push(took);
            }
        }
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    let rss_after = rss_kib(ours.pid());
    println!(
        "\n## bulk transfer of {} (median of {} interleaved rounds)",
        mib(s.size),
        s.rounds
    );
    println!("{:<44} {:>10} {:>8}", "path", "MB/s", "vs raw");
    // Without python3 the seed's row has no rounds and is left out.
    let rows: Vec<(&str, &[Duration])> = PATHS
        .iter()
        .zip(&times)
        .filter(|(_, took)| !took.is_empty())
        .map(|(name, took)| (*name, &took[..]))
        .collect();
    print_rates(s.size, &rows);
    println!(
        "server RSS before/after the bulk rounds: {} / {} KiB (streams, never buffers a file)",
        rss_before, rss_after
    );
}

/// What every round of the section works with.
struct Bulk<'a> {
    s: &'a Settings,
    scratch: &'a Scratch,
    source: &'a Path,
    ours: &'a Server,
    seed: Option<&'a Server>,
    receiver: SocketAddr,
    raw_dst: PathBuf,
}

impl Bulk<'_> {
    /// Times path `path` (an index into [`PATHS`]) once; `None` for the
    /// seed's put without python3.
    fn run(&self, path: usize) -> Option<Duration> {
        let (ours, source, dir) = (self.ours, self.source, &self.scratch.dir);
        match path {
            0 => {
                let took = raw_copy(self.receiver, source);
                let _ = fs::remove_file(&self.raw_dst);
                Some(took)
            }
            1 => {
                ours.forget_upload(source);
                let t = Instant::now();
                let mut c = client(ours.addr);
                c.put(source, &mut NoProgress).expect("library put");
                Some(t.elapsed())
            }
            2 => {
                ours.forget_upload(source);
                Some(run_client(
                    ours.addr,
                    &["put", source.to_str().unwrap()],
                    dir,
                ))
            }
            3 => {
                let get_dst = dir.join("got.bin");
                let took = run_client(
                    ours.addr,
                    &["get", "source.bin", get_dst.to_str().unwrap()],
                    dir,
                );
                assert_eq!(fs::metadata(&get_dst).unwrap().len(), self.s.size);
                let _ = fs::remove_file(&get_dst);
                Some(took)
            }
            _ => {
                let seed = self.seed?;
                let landed = seed.root.join("source.bin");
                Some(seed_style_put(seed, source, &landed, self.s.size))
            }
        }
    }
}

/// The baseline: copy the file over a fresh loopback connection into a
/// file, 256 KiB at a time, no protocol, no digest, and wait for the
/// receiver to say it has written everything. The receiver is a
/// long-lived process of its own, like the server, so that both paths
/// cross the same boundaries and neither starts cold.
fn raw_copy(receiver: SocketAddr, source: &Path) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(receiver).unwrap();
    copy_chunks(&mut File::open(source).unwrap(), &mut s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut done = Vec::new();
    s.read_to_end(&mut done).unwrap();
    assert_eq!(done, b"k");
    t.elapsed()
}

/// The raw receiver's process: each connection's bytes into `dst`, then
/// one byte back once they are written.
pub fn raw_receive(dst: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    for conn in listener.incoming() {
        let mut s = conn.unwrap();
        copy_full_chunks(&mut s, &mut File::create(dst).unwrap());
        s.write_all(b"k").unwrap();
    }
}

/// A put the way the seed's client makes it (no reply), timed until the
/// server has written every byte and closed.
fn seed_style_put(server: &Server, source: &Path, landed: &Path, size: u64) -> Duration {
    let _ = fs::remove_file(landed);
    let t = Instant::now();
    let mut s = login(server.addr).unwrap();
    let header = serde_json::json!({"cmd":"put","filename":"source.bin","filesize":size});
    s.write_all(&frame::encode_json(&header).unwrap()).unwrap();
    copy_chunks(&mut File::open(source).unwrap(), &mut s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let elapsed = t.elapsed();
    assert_eq!(fs::metadata(landed).map(|m| m.len()).unwrap_or(0), size);
    elapsed
}
