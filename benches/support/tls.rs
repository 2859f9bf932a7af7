//! The encrypted path against its own baseline, measured in the same run: a
//! raw rustls copy of the same bytes (same provider, same cipher suite),
//! then what a TLS handshake costs, full and resumed.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp::testing::inside::TcpTransport;
use ftp::testing::inside::{self as tls, fingerprint_of_file, TlsTransport};
use ftp::NoProgress;
use ftp::{Pin, PinVerifier, ServerIdentity};

use crate::{
    client, copy_chunks, copy_full_chunks, median, mib, print_rates, run_client, spawn_self,
    Scratch, Server, Settings,
};

/// The receiving end of the baseline, run as a process of its own like the
/// server: TLS with the server's own certificate, bytes into `dst` (and on
/// disk, with `sync`), and "k" once the sender's close_notify has come.
/// With `plain`, the TLS is rustls' own `StreamOwned` on the bare socket
/// instead of the server's `TlsTransport`.
pub fn receive(identity_dir: &Path, dst: &Path, sync: bool, plain: bool) {
    let identity = ServerIdentity::load_or_create(identity_dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    for stream in listener.incoming() {
        let stream = stream.unwrap();
        let mut file = File::create(dst).unwrap();
        if plain {
            let conn = rustls::ServerConnection::new(identity.config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            copy_full_chunks(&mut tls, &mut file);
            finish(&mut file, &mut tls, sync);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        } else {
            let transport = TcpTransport::new(stream, Duration::from_secs(60)).unwrap();
            let mut tls = TlsTransport::accept(identity.config.clone(), transport).unwrap();
            copy_chunks(&mut tls, &mut file);
            finish(&mut file, &mut tls, sync);
            drop(tls.close());
        }
    }
}

/// Syncs the received file when asked, then tells the sender it is done.
fn finish(file: &mut File, tls: &mut impl Write, sync: bool) {
    if sync {
        file.sync_all().unwrap();
    }
    tls.write_all(b"k").unwrap();
    tls.flush().unwrap();
}

/// One baseline copy: TLS to the receiver, the file in 256 KiB writes,
/// close_notify, and the receiver's "k". Returns the time and the suite.
fn copy(addr: SocketAddr, config: Arc<rustls::ClientConfig>, source: &Path) -> (Duration, String) {
    let t = Instant::now();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = tls::connect(config, tcp).unwrap();
    let suite = format!(
        "{:?}",
        tls.conn.negotiated_cipher_suite().map(|s| s.suite())
    );
    copy_chunks(&mut File::open(source).unwrap(), &mut tls);
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut done = [0u8; 1];
    tls.read_exact(&mut done).unwrap();
    assert_eq!(&done, b"k");
    (t.elapsed(), suite)
}

/// A raw rustls copy into a file, with the server's own certificate: the
/// receiver, a process of its own, and the sender's configuration.
pub struct RawTls {
    child: std::process::Child,
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    dst: PathBuf,
}

impl RawTls {
    /// Starts the receiver, writing into `dst` (and syncing it, with
    /// `sync`), with the identity the bench's servers use.
    pub fn start(scratch: &Scratch, dst: &Path, sync: bool) -> RawTls {
        RawTls::start_as(scratch, dst, sync, false)
    }

    /// The same, with rustls' plain `StreamOwned` on both ends (`plain`)
    /// or the server's `TlsTransport` receiving.
    pub fn start_as(scratch: &Scratch, dst: &Path, sync: bool, plain: bool) -> RawTls {
        let dir = scratch.dir.join("home/.config/ftp");
        let pin = Pin::Exact(fingerprint_of_file(&dir.join(tls::CERT_FILE)).unwrap());
        let config = tls::client_config(Arc::new(PinVerifier::new(pin))).unwrap();
        let mut args = vec!["--tls-receive".as_ref(), dir.as_os_str(), dst.as_os_str()];
        if sync {
            args.push("--fsync".as_ref());
        }
        if plain {
            args.push("--plain".as_ref());
        }
        let (child, addr) = spawn_self(&args);
        RawTls {
            child,
            addr,
            config,
            dst: dst.to_path_buf(),
        }
    }

    /// One copy of `source`, deleted afterwards; the time and the suite.
    pub fn copy(&self, source: &Path) -> (Duration, String) {
        let done = copy(self.addr, self.config.clone(), source);
        let _ = fs::remove_file(&self.dst);
        done
    }
}

impl Drop for RawTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bulk: the raw TLS copy into the server's `TlsTransport`, a plain
/// rustls `StreamOwned` copy, the library's put and ftp-client's put,
/// interleaved; then handshake costs.
pub fn section(s: &Settings, scratch: &Scratch, source: &Path, ours: &Server) {
    let raw_tls = RawTls::start(scratch, &scratch.dir.join("tls-raw.bin"), false);
    let plain_tls = RawTls::start_as(scratch, &scratch.dir.join("tls-plain.bin"), false, true);
    let mut times = vec![Vec::new(); 4];
    let mut suite = String::new();
    for round in 0..s.rounds {
        for step in 0..times.len() {
            let path = (step + round) % times.len();
            let took = match path {
                0 | 1 => {
                    let (d, used) = [&raw_tls, &plain_tls][path].copy(source);
                    suite = used;
                    d
                }
                2 => {
                    ours.forget_upload(source);
                    let t = Instant::now();
                    client(ours.addr).put(source, &mut NoProgress).unwrap();
                    t.elapsed()
                }
                _ => {
                    ours.forget_upload(source);
                    run_client(ours.addr, &["put", source.to_str().unwrap()], &scratch.dir)
                }
            };
            times[path].push(took);
        }
    }
    drop((raw_tls, plain_tls));
    println!(
        "\n## encrypted put of {} (median of {} interleaved rounds; suite {suite})",
        mib(s.size),
        s.rounds
    );
    println!("{:<44} {:>10} {:>8}", "path", "MB/s", "vs raw TLS");
    print_rates(
        s.size,
        &[
            ("raw rustls copy, 256 KiB writes (baseline)", &times[0]),
            ("plain rustls copy, StreamOwned receiver", &times[1]),
            ("put, library client over TLS", &times[2]),
            ("put, ftp-client process over TLS", &times[3]),
        ],
    );
    handshakes(s, ours);
}

/// What a connection costs: a full TLS handshake and login, a resumed one,
/// and a command on a connection already open.
fn handshakes(s: &Settings, ours: &Server) {
    let n = if s.rounds <= 1 { 20 } else { 300 };
    let (mut full, mut resumed, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    let mut one = client(ours.addr);
    for _ in 0..n {
        let t = Instant::now();
        client(ours.addr).echo("x").unwrap();
        full.push(t.elapsed());
        let t = Instant::now();
        one.reconnect().unwrap();
        one.echo("x").unwrap();
        resumed.push(t.elapsed());
        let t = Instant::now();
        one.echo("x").unwrap();
        warm.push(t.elapsed());
    }
    println!("\n## what a connection costs (median of {n}, interleaved)");
    let ms = |v: &[Duration]| median(v).as_secs_f64() * 1e3;
    println!(
        "{:<52} {:>8.3} ms",
        "connect + full TLS handshake + login + echo",
        ms(&full)
    );
    println!(
        "{:<52} {:>8.3} ms",
        "reconnect, TLS session resumed, login + echo",
        ms(&resumed)
    );
    println!("{:<52} {:>8.3} ms", "echo on an open connection", ms(&warm));
}
