//! One account that asks and never reads: downloads, deep listings and
//! pipelined requests whose replies it leaves in the socket. A reply waits
//! in the poller for room, so the server's threads stay at its workers,
//! its memory stays bounded, another user is served as if nothing
//! happened, and every stalled reply ends at its rate floor.

use std::fs;
use std::io::Write;
use std::time::Duration;

use crate::support::*;
use ftp::wire::frame;
use serde_json::json;

/// Downloads asked for and never read.
const READERS: usize = 300;
/// Connections that pipeline requests without reading a reply.
const PIPELINERS: usize = 20;
/// Requests each pipeliner sends (as many as the socket takes).
const PIPELINED: usize = 10_000;
/// Worker threads the server gets.
const WORKERS: usize = 4;
/// The window of the rate floor: 1 KiB/s over this many seconds.
const WINDOW_SECS: u64 = 3;
/// What the server may hold at most while it is attacked.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// Threads the server may have: its workers, its pollers, and a few of
/// its own (the accepting thread, the sweeper, the pool's watcher).
fn thread_limit() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    WORKERS + cores.min(8) + 8
}

/// `n` connections that each ask for `big.bin` and read nothing.
fn stalled_downloads(server: &ServerProcess, n: usize) -> Vec<Raw> {
    (0..n)
        .map(|_| {
            let mut raw = Raw::login(server.addr, SECRET.as_bytes());
            raw.send_json(&json!({"cmd":"get","filename":"big.bin"}));
            raw
        })
        .collect()
}

/// `n` connections that each send [`PIPELINED`] requests, as many as the
/// socket takes, and read nothing.
/// Whether reading `stream` to its end meets a reset (within 10 s).
fn ends_in_a_reset(stream: &mut std::net::TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 1 << 16];
    loop {
        match std::io::Read::read(stream, &mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn stalled_pipelines(server: &ServerProcess, n: usize) -> Vec<Raw> {
    let echo = frame::encode_json(&json!({"cmd":"echo","text":"x".repeat(1000)})).unwrap();
    let burst: Vec<u8> = echo.repeat(PIPELINED);
    (0..n)
        .map(|_| {
            let mut raw = Raw::login(server.addr, SECRET.as_bytes());
            raw.stream
                .set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            // Stops when neither end's buffers take more.
            let _ = raw.stream.write_all(&burst);
            raw
        })
        .collect()
}

#[test]
fn replies_nobody_reads_hold_no_thread_and_end_at_the_floor() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("big.bin"), pattern(8 << 20, 1)).unwrap();
    let workers = WORKERS.to_string();
    let window = WINDOW_SECS.to_string();
    let server = sb.start_server(&[
        "--workers",
        &workers,
        "--max-per-address",
        "2000",
        "--min-rate",
        "1KiB",
        "--min-rate-window",
        &window,
        "--idle-timeout",
        "5",
    ]);
    let pid = server.child.id();
    let mut downloads = stalled_downloads(&server, READERS);
    let pipelines = stalled_pipelines(&server, PIPELINERS);
    served_quickly_from_elsewhere(server.addr);
    let threads = threads_of(pid);
    let rss = status_kib(pid, "VmRSS");
    eprintln!("under attack: {threads} threads, {rss} KiB resident");
    assert!(threads <= thread_limit(), "{threads} threads");
    assert!(rss <= RSS_LIMIT_KIB, "server RSS {rss} KiB");

    // Each stalled reply ends at its floor: the first window's bytes went
    // into the kernel's buffers, the next windows move nothing. A pipeliner
    // whose last request the socket took only in part is waiting for the
    // rest of it, not for room: that one ends at the idle timeout.
    let at_floor = |e: &serde_json::Value| message(e).contains("below the floor");
    let ended = |dropped: &[serde_json::Value]| {
        let floors = dropped.iter().filter(|e| at_floor(e)).count();
        let headers = dropped
            .iter()
            .filter(|e| has_fields(e, &[("result", "header_timeout")]))
            .count();
        (floors, floors + headers)
    };
    let dropped = [("event", "dropped")];
    let all = READERS + PIPELINERS;
    let done = wait_until(Duration::from_secs(10 * WINDOW_SECS + 30), || {
        ended(&server.events_with(&dropped)).1 >= all
    });
    let mut others = server.events_with(&dropped);
    let (floors, total) = ended(&others);
    others.retain(|e| !at_floor(e));
    assert!(done, "{total} of {all} ended; others: {others:#?}");
    assert!(floors >= READERS, "{floors} ended at the floor");
    // Reset, not left to the kernel to trickle out: reading what came ends
    // in a reset, not in the rest of the reply and a close.
    for raw in downloads.iter_mut().take(5) {
        assert!(
            ends_in_a_reset(&mut raw.stream),
            "a dropped download was not reset"
        );
    }
    let peak = status_kib(pid, "VmHWM");
    eprintln!("peak {peak} KiB resident");
    assert!(peak <= RSS_LIMIT_KIB, "server RSS peaked at {peak} KiB");
    drop((downloads, pipelines));
    served_quickly_from_elsewhere(server.addr);
}

/// The attacker's secret; the other user logs in with [`SECRET`].
const MALLORY: &str = "mallory's own long secret";
/// The open-file limit the server runs under in the descriptor test.
const NOFILE: usize = 4096;
/// Recursive listings the attacker leaves unread.
const LISTINGS: usize = 40;

/// Two accounts: `alice` (whose secret is [`SECRET`], as the other
/// address's user logs in with) and `mallory`.
fn two_accounts(sb: &Sandbox) -> String {
    let users = sb.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\nsecret = \"{SECRET}\"\n\n\
             [[user]]\nname = \"mallory\"\nsecret = \"{MALLORY}\"\n"
        ),
    )
    .unwrap();
    users.to_string_lossy().into_owned()
}

/// A 32-level folder in `home` with `names` long names at the bottom.
fn deep_tree(home: &std::path::Path, names: usize) {
    let mut deep = home.to_path_buf();
    for level in 0..31 {
        deep.push(format!("level-{level:02}"));
    }
    fs::create_dir_all(&deep).unwrap();
    for i in 0..names {
        fs::File::create(deep.join(format!("{i:05}-{}", "n".repeat(180)))).unwrap();
    }
}

#[test]
fn unread_deep_listings_of_one_account_stop_at_its_share_of_descriptors() {
    assert!(require("prlimit", has_prlimit()));
    let sb = Sandbox::new();
    let users = two_accounts(&sb);
    deep_tree(&sb.root().join("mallory"), 10_000);
    fs::create_dir_all(sb.root().join("alice")).unwrap();
    let nofile = format!("--nofile={NOFILE}");
    let server = ServerProcess::start_under(
        &sb,
        &["prlimit", &nofile, "--"],
        &["--users", &users, "--max-per-address", "2000"],
        None,
    );
    let pid = server.child.id();
    let mut busy = 0;
    let stalled: Vec<Raw> = (0..LISTINGS)
        .map(|_| {
            let mut raw = Raw::login(server.addr, MALLORY.as_bytes());
            raw.send_json(&json!({"cmd":"ls","recursive":true,"pages":true}));
            // The first frame: a page, or the refusal; the rest is left.
            let first = raw.reply().expect("a first frame");
            if first["code"] == "busy" {
                assert!(
                    first["message"].as_str().unwrap().contains("open files"),
                    "{first}"
                );
                busy += 1;
            }
            raw
        })
        .collect();
    let fds = fds_of(pid);
    eprintln!("{busy} of {LISTINGS} listings refused; the server holds {fds} descriptors");
    assert!(busy > 0 && busy < LISTINGS, "{busy} refused");
    assert!(fds < NOFILE / 2, "{fds} descriptors open");
    served_quickly_from_elsewhere(server.addr);
    drop(stalled);
}
