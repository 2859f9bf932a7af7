//! Folders of many small files across a link with latency: `put -r`,
//! `get -r` and a `sync` of the unchanged tree, against `tar` streamed over
//! one raw TCP connection (the link's limit: the bytes plus one round
//! trip) and `rsync -a` over ssh, every one through the same proxy that
//! holds each byte 25 ms each way; then the same folder on loopback with
//! no delay, against `tar | tar` over TCP. Interleaved rounds, medians.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::latency::Latency;
use crate::scp_bench::{start_sshd, Sshd};
use crate::{median, run_client, Scratch, Server, Settings};

/// Each way; a round trip is twice this.
const DELAY: Duration = Duration::from_millis(25);
const FILE_SIZE: usize = 4096;

/// `files` files of 4 KiB in folders of 100.
fn make_tree(root: &Path, files: usize) {
    let _ = fs::remove_dir_all(root);
    for i in 0..files {
        let folder = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&folder).unwrap();
        }
        let mut bytes = vec![0u8; FILE_SIZE];
        for (j, b) in bytes.iter_mut().enumerate() {
            *b = (i * 31 + j * 7) as u8;
        }
        fs::write(folder.join(format!("f{i:05}.dat")), bytes).unwrap();
    }
}

/// The tar receiver's process: each connection's bytes into `tar -x` in
/// `dst`, then one byte back once tar has written everything.
pub fn tar_receive(dst: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    for conn in listener.incoming() {
        let mut s = conn.unwrap();
        let _ = fs::remove_dir_all(dst);
        fs::create_dir_all(dst).unwrap();
        let mut tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dst)
            .stdin(Stdio::piped())
            .spawn()
            .expect("tar");
        let mut input = tar.stdin.take().unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => input.write_all(&buf[..n]).unwrap(),
            }
        }
        drop(input);
        assert!(tar.wait().unwrap().success());
        s.write_all(b"k").unwrap();
    }
}

/// `tar -c` of `tree` streamed to the receiver at `to`, until the
/// receiver says it has extracted everything.
fn tar_over_tcp(to: SocketAddr, tree: &Path) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(to).unwrap();
    let mut tar = Command::new("tar")
        .arg("-c")
        .arg("-C")
        .arg(tree.parent().unwrap())
        .arg(tree.file_name().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    std::io::copy(&mut tar.stdout.take().unwrap(), &mut s).unwrap();
    assert!(tar.wait().unwrap().success());
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut done = Vec::new();
    s.read_to_end(&mut done).unwrap();
    assert_eq!(done, b"k");
    t.elapsed()
}

fn rsync_over_ssh(sshd: &Sshd, port: u16, key: &Path, tree: &Path, dst: &Path) -> Duration {
    let _ = fs::remove_dir_all(dst);
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let ssh = format!(
        "ssh -p {port} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o LogLevel=ERROR",
        key.display()
    );
    let _ = sshd;
    let t = Instant::now();
    let out = Command::new("rsync")
        .args(["-a", "-e", &ssh])
        .arg(format!("{}/", tree.display()))
        .arg(format!("{user}@127.0.0.1:{}/", dst.display()))
        .output()
        .expect("run rsync");
    assert!(
        out.status.success(),
        "rsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn files_under(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type().map(|t| t.is_dir()) {
                Ok(true) => files_under(&e.path()),
                _ => 1,
            })
            .sum()
    })
}

/// The section: put -r, get -r and sync through the proxy against tar and
/// rsync through it, then put -r against tar on plain loopback.
pub fn section(s: &Settings, scratch: &Scratch, ours: &Server) {
    let files = s.folder_files;
    let work = scratch.dir.join("folders");
    let tree = work.join("tree");
    make_tree(&tree, files);
    let tar_dst = work.join("tar-dst");
    let (mut receiver, receiver_addr) =
        crate::spawn_self(&["--tar-receive".as_ref(), tar_dst.as_ref()]);
    let sshd = match (Path::new("/usr/sbin/sshd").exists(), has("rsync")) {
        (true, true) => start_sshd(&work.join("ssh")),
        _ => None,
    };
    let ssh_link = sshd
        .as_ref()
        .map(|d| Latency::start(SocketAddr::from(([127, 0, 0, 1], d.port)), DELAY));
    let folders = Folders {
        files,
        ours,
        link: Latency::start(ours.addr, DELAY),
        tar_link: Latency::start(receiver_addr, DELAY),
        receiver: receiver_addr,
        sshd,
        ssh_link,
        remote_tree: ours.root.join("tree"),
        got: work.join("got"),
        rsync_dst: work.join("rsync-dst"),
        tar_dst,
        tree,
        work,
    };
    let mut times = vec![Vec::new(); PATHS];
    for round in 0..s.rounds {
        for step in 0..PATHS {
            let path = (step + round) % PATHS;
            if let Some(took) = folders.run(path) {
                times[path].push(took);
            }
        }
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    report(s, &times);
}

/// How many paths a round runs: see [`Folders::run`].
const PATHS: usize = 8;

/// What every round of the section works with.
struct Folders<'a> {
    files: usize,
    ours: &'a Server,
    /// The proxies with latency: to ours, to the tar receiver, to sshd.
    link: Latency,
    tar_link: Latency,
    ssh_link: Option<Latency>,
    /// The tar receiver without the proxy.
    receiver: SocketAddr,
    sshd: Option<Sshd>,
    work: PathBuf,
    tree: PathBuf,
    remote_tree: PathBuf,
    got: PathBuf,
    rsync_dst: PathBuf,
    tar_dst: PathBuf,
}

impl Folders<'_> {
    /// Times path `path` once: through the link, 0 put -r, 1 get -r, 2
    /// sync, 3 the login alone, 4 tar, 5 rsync (`None` without sshd and
    /// rsync); on loopback, 6 put -r and 7 tar.
    fn run(&self, path: usize) -> Option<Duration> {
        let (files, work, link) = (self.files, &self.work, &self.link.addr_string());
        let put_r = ["put", "-r", "tree"];
        match path {
            0 => {
                let _ = fs::remove_dir_all(&self.remote_tree);
                let took = run_client_at(link, &put_r, work);
                assert_eq!(files_under(&self.remote_tree), files);
                Some(took)
            }
            1 => {
                let _ = fs::remove_dir_all(&self.got);
                self.ensure_remote_tree();
                let took = run_client_at(link, &["get", "-r", "tree", "got"], work);
                assert_eq!(files_under(&self.got), files);
                Some(took)
            }
            2 => {
                self.ensure_remote_tree();
                Some(run_client_at(link, &["sync", "tree", ":tree"], work))
            }
            3 => Some(run_client_at(link, &["pwd"], work)),
            4 => {
                let took = tar_over_tcp(self.tar_link.addr, &self.tree);
                assert_eq!(files_under(&self.tar_dst), files);
                Some(took)
            }
            5 => {
                let (d, l) = (self.sshd.as_ref()?, self.ssh_link.as_ref()?);
                let key = work.join("ssh/user_key");
                Some(rsync_over_ssh(
                    d,
                    l.addr.port(),
                    &key,
                    &self.tree,
                    &self.rsync_dst,
                ))
            }
            6 => {
                let _ = fs::remove_dir_all(&self.remote_tree);
                Some(run_client(self.ours.addr, &put_r, work))
            }
            _ => Some(tar_over_tcp(self.receiver, &self.tree)),
        }
    }

    /// Puts the tree to the server without the link, untimed, when an
    /// earlier path of the round removed it.
    fn ensure_remote_tree(&self) {
        if !self.remote_tree.exists() {
            run_client(self.ours.addr, &["put", "-r", "tree"], &self.work);
        }
    }
}

/// The two tables, from each path's times in [`Folders::run`]'s order.
fn report(s: &Settings, times: &[Vec<Duration>]) {
    let [put, get, sync, login, tar, rsync, put_local, tar_local] = times else {
        unreachable!("one list of times a path");
    };
    let files = s.folder_files;
    let bytes = (files * FILE_SIZE) as u64;
    let rtt = DELAY * 2;
    println!(
        "\n## a folder of {files} files of 4 KiB ({:.1} MB) through a link of {} ms round trip \
         (median of {} interleaved rounds)",
        bytes as f64 / 1e6,
        rtt.as_millis(),
        s.rounds
    );
    println!("{:<52} {:>9} {:>12}", "path", "seconds", "vs tar/TCP");
    let base = median(tar).as_secs_f64();
    let row = |name: &str, runs: &[Duration]| {
        if runs.is_empty() {
            return;
        }
        let secs = median(runs).as_secs_f64();
        println!("{name:<52} {secs:>9.2} {:>11.2}x", secs / base);
    };
    row("tar streamed over one TCP connection (baseline)", tar);
    row("ftp-client put -r (login included)", put);
    row("ftp-client get -r (login included)", get);
    match rsync.is_empty() {
        true => println!("(sshd or rsync missing: rsync comparison skipped; apt-get install openssh-server rsync)"),
        false => row("rsync -a over ssh (login included)", rsync),
    }
    row("ftp-client sync of the unchanged tree", sync);
    row("ftp-client pwd: the login alone", login);
    let rounds = (median(sync).as_secs_f64() - median(login).as_secs_f64()) / rtt.as_secs_f64();
    println!("the sync's own round trips (sync - login) / RTT: {rounds:.1}");
    println!("\n## the same folder on loopback, no delay");
    let base = median(tar_local).as_secs_f64();
    println!("{:<52} {:>9} {:>12}", "path", "seconds", "vs tar/TCP");
    println!(
        "{:<52} {base:>9.2} {:>11.2}x",
        "tar | tar over TCP (baseline)", 1.0
    );
    let secs = median(put_local).as_secs_f64();
    println!(
        "{:<52} {secs:>9.2} {:>11.2}x",
        "ftp-client put -r",
        secs / base
    );
}

fn run_client_at(addr: &str, args: &[&str], cwd: &Path) -> Duration {
    let addr: SocketAddr = addr.parse().unwrap();
    run_client(addr, args, cwd)
}

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
