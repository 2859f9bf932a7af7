//! Timeouts that mean what they say: `--stall-timeout N` gives up N s
//! after the last byte moved whatever went wrong (a silent link, a stopped
//! server, replies that no longer come back), batch or not; and a command
//! that meets the server's idle close runs again, without a TLS library's
//! words.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::freezer::Freezer;
use crate::support::*;

/// The stall timeout these tests set, and the window they accept around
/// it (a busy machine is slow to notice, never early by more than a tick).
const STALL: &str = "5";
const EARLIEST: Duration = Duration::from_secs(4);
const LATEST: Duration = Duration::from_secs(9);

/// Many files and, every 50th, a large one: a batch that runs for seconds
/// under a rate limit.
fn tree(at: &Path) {
    fs::create_dir_all(at).unwrap();
    for i in 0..400u64 {
        let len = if i % 50 == 25 { 400_000 } else { 4096 };
        fs::write(at.join(format!("t{i:03}")), pattern(len, i)).unwrap();
    }
}

fn files_in(folder: &Path) -> usize {
    fs::read_dir(folder).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count()
    })
}

fn start_batch(sb: &Sandbox, addr: &str) -> Child {
    let args = [
        "--stall-timeout",
        STALL,
        "--limit-rate",
        "1MiB",
        "put",
        "-r",
        "tree",
    ];
    let mut cmd = ClientRun::to(sb, addr, &args).cmd;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Waits until the batch has stored some files, breaks the link with
/// `cut`, and returns how long the client took to give up after that.
fn gives_up_after(sb: &Sandbox, child: Child, cut: impl FnOnce()) -> Duration {
    let landed = sb.root().join("tree");
    assert!(wait_until(Duration::from_secs(30), || files_in(&landed) >= 30));
    cut();
    let cut_at = Instant::now();
    let out = wait_output(child, Duration::from_secs(40));
    let took = cut_at.elapsed();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nothing moved for 5 s"), "{err}");
    assert!(err.contains("run `put -r tree` again"), "{err}");
    assert!(err.lines().count() <= 5, "{err}");
    assert!(
        took >= EARLIEST && took <= LATEST,
        "gave up after {took:?}: {err}"
    );
    eprintln!("gave up {took:?} after the link broke: {err}");
    took
}

#[test]
fn a_silent_link_is_given_up_at_the_stall_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    tree(&sb.work().join("tree"));
    let link = Freezer::start(server.addr, None, None);
    let child = start_batch(&sb, &link.addr.to_string());
    gives_up_after(&sb, child, || link.freeze());
}

#[test]
fn a_stopped_server_is_given_up_at_the_stall_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    tree(&sb.work().join("tree"));
    let child = start_batch(&sb, &server.addr_string());
    let pid = server.child.id() as i32;
    gives_up_after(&sb, child, || unsafe {
        libc::kill(pid, libc::SIGSTOP);
    });
    unsafe { libc::kill(pid, libc::SIGCONT) };
}

#[test]
fn replies_that_stop_coming_back_are_given_up_at_the_stall_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    tree(&sb.work().join("tree"));
    // Half open: the client's bytes still reach the server, nothing comes
    // back past the first 20 KiB of replies.
    let link = Freezer::start(server.addr, None, Some(20 << 10));
    let child = start_batch(&sb, &link.addr.to_string());
    let landed = sb.root().join("tree");
    let started = Instant::now();
    let out = wait_output(child, Duration::from_secs(60));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nothing moved for 5 s"), "{err}");
    assert!(err.lines().count() <= 5, "{err}");
    // Nothing to time from but the start: it gave up, once, soon.
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
    assert!(files_in(&landed) > 0);
}

/// A proxy that hangs up on the client, without a word, when it sends
/// something after a second of silence: the server's idle timeout
/// firing just as a command goes out. Later connections pass.
struct IdleCloser {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
}

impl IdleCloser {
    fn start(upstream: std::net::SocketAddr) -> IdleCloser {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut first = true;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(upstream).unwrap();
                pass(&server, &client);
                let closes = std::mem::replace(&mut first, false);
                thread::spawn(move || carry_up(client, server, closes));
            }
        });
        IdleCloser { addr, stop }
    }
}

impl Drop for IdleCloser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Server to client, as it comes.
fn pass(from: &TcpStream, to: &TcpStream) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Client to server; with `closes`, bytes after a second of silence end
/// both connections instead of going on.
fn carry_up(mut client: TcpStream, mut server: TcpStream, closes: bool) {
    let mut buf = [0u8; 64 * 1024];
    let mut last = Instant::now();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if closes && last.elapsed() > Duration::from_secs(1) {
            break;
        }
        last = Instant::now();
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

#[test]
fn a_command_that_meets_the_idle_close_runs_again_on_a_new_connection() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("here.txt"), b"here").unwrap();
    let proxy = IdleCloser::start(server.addr);
    let mut run = ClientRun::to(&sb, &proxy.addr.to_string(), &[]);
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = run.cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"pwd\n").unwrap();
    thread::sleep(Duration::from_millis(1600));
    input.write_all(b"get here.txt\n").unwrap();
    drop(input);
    let out = wait_output(child, CLIENT_LIMIT);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("close_notify") && !err.contains("https://"),
        "{err}"
    );
    assert_eq!(fs::read(sb.work().join("here.txt")).unwrap(), b"here");
}
