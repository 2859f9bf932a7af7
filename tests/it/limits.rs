//! Limits against a live server: idle timeouts, the connection cap, a burst
//! of 1,000 clients, the worker pool, login back-off, file size and disk
//! space, and the clean-up of stale partial uploads.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::support::*;
use ftp::wire::frame;
use serde_json::json;

#[test]
fn stalled_peers_are_dropped_after_the_idle_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--idle-timeout", "1"]);
    let limit = Duration::from_secs(6);

    // Silent during the handshake.
    let mut s = TcpStream::connect(server.addr).unwrap();
    assert!(closed_within(&mut s, limit), "handshake stall");

    // Half a length prefix, then nothing.
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send(&[10, 0]);
    assert!(closed_within(&mut raw.stream, limit), "mid-header stall");

    // A header trickled one byte at a time, each within the idle timeout:
    // the whole header must still arrive within it.
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    let frame = ftp::wire::frame::encode_json(&json!({"cmd":"echo","text":"slow"})).unwrap();
    let started = Instant::now();
    let mut dropped = false;
    for b in frame {
        if raw.stream.write_all(&[b]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > limit {
            break;
        }
    }
    assert!(
        dropped || closed_within(&mut raw.stream, limit),
        "slowloris header"
    );

    // Part of a body, then nothing: dropped, partial kept, nothing committed.
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"stall.bin","filesize":100}));
    raw.send(&[1u8; 10]);
    assert!(closed_within(&mut raw.stream, limit), "mid-body stall");
    assert!(!sb.root().join("stall.bin").exists());
    let aborted = [
        ("cmd", "put"),
        ("path", "/stall.bin"),
        ("result", "aborted"),
    ];
    server.wait_for_event(&aborted);
    // The peer silent during the handshake was dropped at the login.
    server.wait_for_event(&[("event", "login"), ("result", "left")]);
}

#[test]
fn past_the_connection_cap_clients_are_told_at_once_and_others_unharmed() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-connections", "20", "--idle-timeout", "3"]);
    let mut working = Raw::login(server.addr, SECRET.as_bytes());
    working.send_json(&json!({"cmd":"echo","text":"a"}));
    assert_eq!(working.reply().unwrap()["text"], "A");
    // 19 slowloris peers fill the rest.
    let stalled: Vec<TcpStream> = (0..19)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    assert!(logged_times(&server, &[("event", "connected")], 20));

    let started = Instant::now();
    let out = ClientRun::new(&sb, &server, &["echo", "hi"]).run();
    assert!(!out.status.success());
    assert_stderr_has(
        &out,
        "server busy: it is serving its limit of 20 connections",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at once, not left hanging"
    );

    // The connection that was already open is not affected.
    working.send_json(&json!({"cmd":"echo","text":"b"}));
    assert_eq!(working.reply().unwrap()["text"], "B");
    drop(working);

    // Once the idle timeout drops the stalled peers, service resumes.
    let recovered = wait_until(Duration::from_secs(15), || {
        ClientRun::new(&sb, &server, &["echo", "back"])
            .run()
            .status
            .success()
    });
    assert!(recovered);
    drop(stalled);
}

#[test]
fn a_thousand_clients_at_once_all_get_served() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["-q"]);
    let addr = server.addr;
    let threads: Vec<_> = (0..50)
        .map(|t| {
            std::thread::spawn(move || {
                // Each thread opens 20 connections before using any, so all
                // 1,000 are pending at the same time.
                let conns: Vec<Result<TcpStream, std::io::Error>> =
                    (0..20).map(|_| TcpStream::connect(addr)).collect();
                let mut failures = 0;
                for (i, c) in conns.into_iter().enumerate() {
                    let ok = c.ok().and_then(|s| echo_over(s, &format!("t{t}c{i}")));
                    if ok.is_none() {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let failures: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failures, 0);
}

fn echo_over(mut stream: TcpStream, text: &str) -> Option<()> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut challenge = [0u8; 32];
    stream.read_exact(&mut challenge).ok()?;
    stream
        .write_all(&ftp::wire::auth::respond(SECRET.as_bytes(), &challenge))
        .ok()?;
    stream
        .write_all(&ftp::wire::frame::encode_json(&json!({"cmd":"echo","text":text})).ok()?)
        .ok()?;
    let reply: serde_json::Value = ftp::wire::frame::read_json(&mut stream, 1024).ok()?;
    (reply["text"] == text.to_uppercase()).then_some(())
}

/// Connects from a chosen loopback address and times the challenge.
fn time_to_challenge(from: &str, to: SocketAddr) -> Duration {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let started = Instant::now();
    let mut challenge = [0u8; 32];
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.read_exact(&mut challenge).unwrap();
    let waited = started.elapsed();
    stream.write_all(&[0u8; 16]).unwrap(); // a wrong answer
    waited
}

#[test]
fn repeated_failed_logins_slow_down_that_address_only() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fail_seven_logins(&server);
    let slowed = time_to_challenge("127.0.0.1", server.addr);
    let other = time_to_challenge("127.0.0.2", server.addr);
    assert!(slowed >= Duration::from_millis(1500), "{slowed:?}");
    assert!(other < Duration::from_millis(1000), "{other:?}");
    let failed = server.events_with(&[("event", "login"), ("result", "failed")]);
    assert!(
        failed
            .iter()
            .any(|e| field(e, "peer").is_some_and(|p| p.starts_with("127.0.0.1:"))),
        "{failed:?}"
    );
    server.wait_for_event(&[("event", "login"), ("result", "delayed")]);
}

#[test]
fn files_over_the_size_limit_are_refused_before_any_byte_is_written() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-file-size", "1KiB"]);
    sb.local_file("ok.bin", &[1u8; 1024]);
    sb.local_file("big.bin", &[1u8; 1025]);
    let out = ClientRun::new(&sb, &server, &["put", "*.bin"]).run();
    assert!(!out.status.success());
    assert_stderr_has(
        &out,
        "server refused (too large): file too large: 1025 > 1024 bytes",
    );
    assert!(sb.root().join("ok.bin").exists());
    assert!(!sb.root().join("big.bin").exists());
    assert!(!sb.root().join(".ftp-partial/big.bin").exists());
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> Option<SmallDisk> {
        fs::create_dir_all(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
    }
}

/// Two uploads that each fit alone on the 4 MiB disk: the slow one runs
/// out of space in the middle of its write, while the fast one lands.
/// What the slow one's client printed.
fn slow_upload_meets_a_full_disk(sb: &Sandbox, server: &ServerProcess) -> std::process::Output {
    let fast_data = pattern(3 * 1024 * 1024, 22);
    sb.local_file("fast.bin", &fast_data);
    let slow = ClientRun::new(sb, server, &["--limit-rate", "1MiB", "put", "slow.bin"]);
    let mut slow_cmd = slow.cmd;
    slow_cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let slow_child = slow_cmd.spawn().unwrap();
    let partial = sb.root().join(".ftp-partial/slow.bin");
    assert!(wait_until(Duration::from_secs(20), || size_of(&partial) >= 256 * 1024));
    let fast = ClientRun::new(sb, server, &["put", "fast.bin"]).run();
    assert!(fast.status.success(), "{}", stderr(&fast));
    let started = std::time::Instant::now();
    let slow_out = wait_output(slow_child, Duration::from_secs(60));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "told at once, not after the body"
    );
    assert_eq!(fs::read(sb.root().join("fast.bin")).unwrap(), fast_data);
    slow_out
}

#[test]
fn a_full_disk_is_refused_up_front_or_stops_the_upload_and_keeps_it_for_a_resume() {
    let sb = Sandbox::new();
    let disk = SmallDisk::mount(sb.root(), "4m");
    if !require(
        "a small tmpfs to fill (mounting one needs root)",
        disk.is_some(),
    ) {
        return;
    }
    let server = sb.start_server(&[]);
    // Too big for the free space: refused before any byte is written.
    sb.local_file("huge.bin", &pattern(5 * 1024 * 1024, 20));
    let out = ClientRun::new(&sb, &server, &["put", "huge.bin"]).run();
    assert_stderr_has(&out, "server refused (no space): not enough disk space");
    assert!(!sb.root().join(".ftp-partial/huge.bin").exists());

    // The slow upload is told at once, and keeps what it wrote.
    let slow_data = pattern(3 * 1024 * 1024, 21);
    sb.local_file("slow.bin", &slow_data);
    let slow_out = slow_upload_meets_a_full_disk(&sb, &server);
    assert!(!slow_out.status.success());
    assert!(
        stderr(&slow_out)
            .contains("server refused (no space): writing the file: the server's disk is full"),
        "{}",
        stderr(&slow_out)
    );
    let kept = size_of(&sb.root().join(".ftp-partial/slow.bin"));
    assert!(kept > 0, "what was written is kept");
    assert!(!sb.root().join("slow.bin").exists());
    // Once there is room, the upload resumes where it stopped.
    fs::remove_file(sb.root().join("fast.bin")).unwrap();
    let out = ClientRun::new(&sb, &server, &["put", "slow.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    assert_eq!(fs::read(sb.root().join("slow.bin")).unwrap(), slow_data);
    // Still serving.
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(out.status.success());
    drop(server);
}

#[test]
fn stale_partial_uploads_are_removed_and_fresh_ones_kept() {
    let sb = Sandbox::new();
    let parts = sb.root().join(".ftp-partial");
    fs::create_dir_all(&parts).unwrap();
    fs::write(parts.join("old.bin"), b"abandoned").unwrap();
    fs::write(parts.join("new.bin"), b"in progress").unwrap();
    let old = SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    fs::File::options()
        .write(true)
        .open(parts.join("old.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let server = sb.start_server(&["--partial-ttl", "168"]);
    server.wait_for_said(&[("event", "recount")], "removed 1 partial uploads");
    assert!(!parts.join("old.bin").exists());
    assert!(parts.join("new.bin").exists());
}

#[test]
fn durable_mode_stores_files() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--durable"]);
    let data = pattern(300_000, 23);
    sb.local_file("d.bin", &data);
    let out = ClientRun::new(&sb, &server, &["put", "d.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("d.bin")).unwrap(), data);
}

#[test]
fn durable_pipelined_puts_commit_as_groups_and_all_land() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--durable"]);
    let tree = sb.work().join("tree");
    fs::create_dir_all(&tree).unwrap();
    for i in 0..300 {
        fs::write(tree.join(format!("f{i:03}")), pattern(4096, i)).unwrap();
    }
    let out = ClientRun::new(&sb, &server, &["put", "-r", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    for i in [0, 150, 299] {
        let landed = fs::read(sb.root().join(format!("tree/f{i:03}"))).unwrap();
        assert_eq!(landed, pattern(4096, i));
    }
    assert_eq!(fs::read_dir(sb.root().join("tree")).unwrap().count(), 300);
    // The batch's puts came pipelined: they were committed in groups, each
    // with one flush of their data and one of their names.
    let groups = server.events_with(&[("event", "commit")]).len();
    let log = server.log_text();
    assert!((1..300).contains(&groups), "{groups} groups:\n{log}");
    // Each put of a group is logged as it commits, under its own name.
    let put = [("cmd", "put"), ("path", "/tree/f150"), ("result", "ok")];
    let committed = server.events_with(&put);
    assert!(
        committed.iter().any(|e| e["bytes"] == 4096),
        "{committed:?}"
    );
}

#[test]
fn a_refused_put_inside_a_durable_group_is_answered_in_its_turn() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--durable"]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    let mut pipelined = Vec::new();
    let too_long = "b".repeat(300);
    for name in ["a.txt", too_long.as_str(), "c.txt"] {
        let put = json!({"cmd":"put","filename":name,"filesize":3});
        pipelined.extend(frame::encode_json(&put).unwrap());
        pipelined.extend_from_slice(b"abc");
    }
    raw.send(&pipelined);
    let replies: Vec<_> = (0..3).map(|_| raw.reply().expect("a reply")).collect();
    assert_eq!(replies[0]["filename"], "a.txt", "{replies:?}");
    assert_eq!(replies[1]["code"], "bad_name", "{replies:?}");
    assert_eq!(replies[2]["filename"], "c.txt", "{replies:?}");
    assert!(sb.root().join("a.txt").exists() && sb.root().join("c.txt").exists());
}

#[test]
fn a_durable_put_whose_client_leaves_at_once_still_lands() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--durable", "--anonymous"]);
    // The seed's FtpClient: a put, its body, and the close, reading nothing.
    let mut raw = Raw::connect(server.addr);
    let mut put =
        frame::encode_json(&json!({"cmd":"put","filename":"seed.txt","filesize":5})).unwrap();
    put.extend_from_slice(b"hello");
    raw.send(&put);
    drop(raw);
    let landed = sb.root().join("anonymous/seed.txt");
    assert!(wait_until(Duration::from_secs(10), || landed.exists()));
    assert_eq!(fs::read(landed).unwrap(), b"hello");
}

/// Waits up to 10 s until the server's log holds at least `n` events with
/// `fields`.
fn logged_times(server: &ServerProcess, fields: &[(&str, &str)], n: usize) -> bool {
    wait_until(Duration::from_secs(10), || {
        server.events_with(fields).len() >= n
    })
}

/// Seven wrong answers from 127.0.0.1, counted by the server, which then
/// makes that address wait 125 ms << 4 = 2 s for its challenges.
fn fail_seven_logins(server: &ServerProcess) {
    for _ in 0..7 {
        time_to_challenge("127.0.0.1", server.addr);
    }
    // The client leaves as soon as it has answered; let the server count
    // all seven.
    let failed = [("event", "login"), ("result", "failed")];
    assert!(logged_times(server, &failed, 7));
}

#[test]
fn clients_that_never_answer_the_challenge_hold_no_worker() {
    let sb = Sandbox::new();
    // One address may have only so many logins under way at once; this
    // test is about workers, so it lets all fifty have their turn.
    let server = sb.start_server(&["-q", "--workers", "2", "--max-logins-per-address", "64"]);
    let threads_before = threads_of(server.child.id());
    // Fifty logins that read the challenge and go silent: each would hold a
    // worker until the login timeout if workers waited for answers.
    let silent: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut challenge = [0u8; 32];
            s.read_exact(&mut challenge).unwrap();
            s
        })
        .collect();
    let out = ClientRun::new(&sb, &server, &["echo", "still served"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "STILL SERVED");
    let threads = threads_of(server.child.id());
    // Two workers, the pool's watcher, and room for it to have grown once
    // or twice on a loaded machine; waiting in workers would take fifty.
    assert!(
        threads <= threads_before + 10,
        "{threads} threads for 50 silent logins (from {threads_before}): they wait in the poller"
    );
    drop(silent);
}

#[test]
fn a_worker_busy_with_a_slow_upload_does_not_keep_others_waiting() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--workers", "1"]);
    sb.local_file("slow.bin", &pattern(4 << 20, 3));
    // About twenty seconds at this rate, all of it on the only core worker.
    let mut slow =
        ClientRun::new(&sb, &server, &["--limit-rate", "200KiB", "put", "slow.bin"]).spawn();
    let partial = sb.root().join(".ftp-partial/slow.bin");
    assert!(wait_until(Duration::from_secs(20), || size_of(&partial) > 0));
    let out = ClientRun::new(&sb, &server, &["echo", "meanwhile"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "MEANWHILE");
    assert!(
        slow.try_wait().unwrap().is_none(),
        "answered while the upload still runs, not after it"
    );
    assert!(size_of(&partial) < 4 << 20);
    let _ = slow.kill();
    let _ = slow.wait();
}

#[test]
fn logins_delayed_by_the_back_off_hold_no_worker() {
    let sb = Sandbox::new();
    // Room for thirty logins at once from one address, so that all wait
    // out their delay together.
    let server = sb.start_server(&["--workers", "2", "--max-logins-per-address", "64"]);
    fail_seven_logins(&server);
    let threads_before = threads_of(server.child.id());
    // Thirty connections from the failing address, each made to wait two
    // seconds for its challenge: timers in the poller, not sleeping workers.
    let delayed: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let challenge_delayed = [("event", "login"), ("result", "delayed")];
    assert!(logged_times(&server, &challenge_delayed, 30));
    let threads = threads_of(server.child.id());
    assert!(
        threads <= threads_before + 10,
        "{threads} threads for 30 delayed logins (from {threads_before})"
    );
    // Each gets its challenge in the end.
    for mut s in delayed {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut challenge = [0u8; 32];
        s.read_exact(&mut challenge).unwrap();
    }
}
