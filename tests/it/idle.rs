//! Connections idle between commands wait in the server's poller, not in
//! threads: a hundred of them leave a handful of threads, and each still
//! answers when it speaks again, in either dialect.

use std::time::Duration;

use crate::support::*;
use serde_json::json;

fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn idle_connections_hold_no_thread_and_still_answer() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let pid = server.child.id();
    let mut idle: Vec<Raw> = (0..100)
        .map(|i| {
            let mut raw = Raw::login(server.addr, SECRET.as_bytes());
            // Half of them idle after a command, half right after the login.
            if i % 2 == 0 {
                raw.send_json(&json!({"cmd":"echo","text":format!("first {i}")}));
                assert_eq!(raw.reply().unwrap()["text"], format!("FIRST {i}"));
            }
            raw
        })
        .collect();
    // Finished workers linger 5 s for new work, then leave; the idle
    // connections keep none of them.
    assert!(
        wait_until(Duration::from_secs(15), || threads_of(pid) <= 8),
        "{} threads for 100 idle connections",
        threads_of(pid)
    );
    for (i, raw) in idle.iter_mut().enumerate() {
        raw.send_json(&json!({"cmd":"echo","text":format!("again {i}")}));
        assert_eq!(raw.reply().unwrap()["text"], format!("AGAIN {i}"));
    }
    // The encrypted dialect parks the same way, folder and all.
    let out = ClientRun::new(&sb, &server, &[]).run_with_input("mkdir d\ncd d\npwd\n");
    assert!(stdout(&out).ends_with("/d\n"), "{}", stdout(&out));
}

#[test]
fn the_poller_enforces_the_idle_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--idle-timeout", "1"]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"echo","text":"x"}));
    assert_eq!(raw.reply().unwrap()["text"], "X");
    assert!(raw.closed_within(Duration::from_secs(10)));
    server.wait_for_event(&[("event", "dropped"), ("result", "idle_timeout")]);
}

#[test]
fn a_peer_that_never_logs_in_is_dropped_at_the_login_timeout() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--login-timeout", "1", "--idle-timeout", "60"]);
    let started = std::time::Instant::now();
    let mut silent = Raw::connect(server.addr);
    let mut challenge = [0u8; 32];
    std::io::Read::read_exact(&mut silent.stream, &mut challenge).unwrap();
    assert!(silent.closed_within(Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_event(&[("event", "login"), ("result", "left")]);
}

#[test]
fn a_body_that_trickles_below_the_floor_is_dropped_and_kept_for_a_resume() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--min-rate", "10KiB", "--min-rate-window", "1"]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"drip.bin","filesize":100_000}));
    // 500 bytes a second, far below 10 KiB/s.
    let started = std::time::Instant::now();
    let mut dropped = false;
    while started.elapsed() < Duration::from_secs(10) {
        if std::io::Write::write_all(&mut raw.stream, &[7u8; 100]).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let aborted = [("cmd", "put"), ("path", "/drip.bin"), ("result", "aborted")];
        if !server.events_with(&aborted).is_empty() {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the trickle was never dropped");
    let aborted =
        server.wait_for_event(&[("cmd", "put"), ("path", "/drip.bin"), ("result", "aborted")]);
    assert!(
        message(&aborted).contains("below the server's floor"),
        "{aborted}"
    );
    assert!(
        size_of(&sb.root().join(".ftp-partial/drip.bin")) > 0,
        "kept for a resume"
    );
}
