//! The processes the bench starts and talks to: the servers under test, the
//! bench's own helper processes, the client library and the ftp-client
//! binary.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ftp::Secret;
use ftp::Trust;
use ftp::{Client, ClientOptions};

use crate::limit::{self, Landing};
use crate::shared::{answer_challenge, listening_addr};
use crate::{Scratch, SECRET};

/// A server under test: its process, address and upload root.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
    /// Whether it answers each put (all but the seed's server do): the
    /// load generator then counts a put as done only on an `ok`.
    pub replies: bool,
}

impl Server {
    pub fn ours(root: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "-q",
                "--idle-timeout",
                "600",
                "--max-connections",
                "20000",
                // Every client here comes from 127.0.0.1, where it stands
                // for clients on many hosts: the per-host limits would
                // otherwise queue or refuse the burst as one host's flood.
                "--max-per-address",
                "20000",
                "--max-logins-per-address",
                "20000",
                "--max-handshakes-per-second",
                "1000000",
            ])
            .arg("--root")
            .arg(root)
            .args(extra)
            .args(
                std::env::var("FTP_BENCH_SERVER_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("FTP_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ftp-server");
        let addr = first_line_addr(&mut child);
        Server {
            child,
            addr,
            root: root.to_path_buf(),
            replies: true,
        }
    }

    pub fn seed(root: &Path) -> Option<Server> {
        fs::create_dir_all(root).ok()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(SECRET)
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = first_line_addr(&mut child);
        Some(Server {
            child,
            addr,
            root: root.to_path_buf(),
            replies: false,
        })
    }

    /// Deletes what an earlier round stored under `source`'s name, outside
    /// the timed part, as the baselines delete their copies: replacing a
    /// 1 GiB file in tmpfs frees its pages inside the rename, which would
    /// time the previous round's clean-up.
    pub fn forget_upload(&self, source: &Path) {
        if let Some(name) = source.file_name() {
            let _ = fs::remove_file(self.root.join(name));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn first_line_addr(child: &mut Child) -> SocketAddr {
    listening_addr(child).expect("listening line")
}

pub fn login(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    // A connection the server leaves unanswered this long counts as failed.
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    answer_challenge(&mut s, SECRET.as_bytes()).ok()?;
    Some(s)
}

pub fn client(addr: SocketAddr) -> Client {
    let mut options = ClientOptions::new(Secret::new(SECRET.as_bytes().to_vec()).unwrap());
    options.trust = Trust::from_config_dir();
    Client::connect(&addr.to_string(), options).expect("connect")
}

pub fn run_client(addr: SocketAddr, args: &[&str], cwd: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-client"))
        .arg("--server")
        .arg(addr.to_string())
        .arg("--quiet")
        .args(args)
        .current_dir(cwd)
        .env("FTP_SECRET", SECRET)
        .output()
        .expect("run ftp-client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// The minimal reference server, started afresh for a section, landing
/// its uploads as `landing` says, in a root of its own in the scratch
/// folder (a tmpfs where there is one, as ftp-server's root is).
pub fn limit_server(scratch: &Scratch, landing: Landing) -> Server {
    let root = scratch.dir.join(match landing {
        Landing::Plain => "limit-root",
        Landing::Atomic => "atomic-limit-root",
        Landing::Durable => "durable-limit-root",
    });
    limit_server_at(&root, landing)
}

/// The minimal reference server with its root at `root`.
pub fn limit_server_at(root: &Path, landing: Landing) -> Server {
    let (child, addr) = limit::start(root, SECRET, landing);
    Server {
        child,
        addr,
        root: root.to_path_buf(),
        replies: true,
    }
}

/// Starts this bench binary again in one of its helper modes (`--raw-
/// receive` and the like) and reads the address it listens on.
pub fn spawn_self(args: &[&std::ffi::OsStr]) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a helper process of the bench");
    let addr = first_line_addr(&mut child);
    (child, addr)
}

pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
