//! A folder far bigger than one reply: 50,000 names of 250 bytes, mostly
//! `"` (each escapes to two bytes of JSON, about 27 MB of listing in all).
//! `ftp-client ls` lists all of it, and clients that ask for it and never
//! read cost the server a bounded page each, until the whole-reply
//! deadline closes them.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

const NAMES: usize = 50_000;

/// The `i`th name: a number to tell them apart, then quotes to 250 bytes.
fn quoted_name(i: usize) -> String {
    format!("{i:06}{}", "\"".repeat(244))
}

/// Creates the big folder as the home itself: the server's root in
/// single-secret mode.
fn fill_home(root: &Path) {
    fs::create_dir_all(root).unwrap();
    for i in 0..NAMES {
        fs::File::create(root.join(quoted_name(i))).unwrap();
    }
}

/// What the server may hold at most, whatever the folder and the readers.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

#[test]
fn the_client_lists_a_folder_bigger_than_any_frame() {
    let sb = Sandbox::new();
    fill_home(&sb.root());
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["ls", "-a"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), NAMES, "{}", stderr(&out));
    for i in [0, 12_345, NAMES - 1] {
        let name = quoted_name(i);
        assert!(
            text.lines().any(|l| l.ends_with(&format!("  {name}"))),
            "{name} is not listed"
        );
    }
}

/// What the log says of a reply its peer did not read in time.
const CUT_OFF: &str = "connection dropped: the peer did not take the whole reply within 4 s";

#[test]
fn readers_that_never_read_hold_a_page_each_until_the_deadline() {
    let sb = Sandbox::new();
    fill_home(&sb.root());
    fs::create_dir(sb.root().join("small")).unwrap();
    fs::write(sb.root().join("small/note.txt"), b"hello").unwrap();
    let mut server = sb.start_server(&["--reply-timeout", "4"]);
    let pid = server.child.id();
    // Half ask for pages, half for the single frame older clients read.
    let stalled: Vec<Raw> = (0..40)
        .map(|i| {
            let mut raw = Raw::login(server.addr, SECRET.as_bytes());
            raw.send_json(&json!({"cmd":"ls","pages":i % 2 == 0}));
            raw
        })
        .collect();
    let started = Instant::now();

    // Meanwhile another client is served.
    let out = ClientRun::new(&sb, &server, &[]).run_with_input("cd small\nls\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("  note.txt\n"), "{}", stdout(&out));

    // Every stalled reply ends: a paged one at its deadline, a one-frame
    // one (1 MiB) then too or, when the kernel's buffers took it whole,
    // at once. Memory stays bounded all the while.
    let mut peak = 0;
    let all_ended = wait_until(Duration::from_secs(30), || {
        peak = peak.max(status_kib(pid, "VmRSS"));
        assert!(peak <= RSS_LIMIT_KIB, "server RSS reached {peak} KiB");
        // The other client's listing is one of those sent.
        cut_off(&server) + server.events_with(&[("event", "reply")]).len() == stalled.len() + 1
    });
    let log = server.log_text();
    assert!(all_ended, "not every stalled ls ended:\n{log}");
    let aborted = cut_off(&server);
    assert!(aborted >= stalled.len() / 2, "{aborted} aborted:\n{log}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(server.is_running());
    // The paged ones, far bigger than any buffer, are closed: what the
    // kernel buffered, then the end.
    for mut raw in stalled.into_iter().step_by(2) {
        raw.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut sink = Vec::new();
        if let Err(e) = raw.stream.read_to_end(&mut sink) {
            assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "still open");
        }
    }
    let hwm = status_kib(pid, "VmHWM");
    eprintln!(
        "server RSS: highest sample {peak} KiB, high-water mark {hwm} KiB; all ended in {took:?}"
    );
    assert!(hwm <= RSS_LIMIT_KIB, "server RSS peaked at {hwm} KiB");
}

#[test]
fn ls_r_prints_each_folder_together_and_sorted_across_many_pages() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let root = sb.root();
    // Enough names for several 64 KiB pages, in folders at three depths.
    for folder in ["", "a", "a/deep", "b"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
        for i in (0..400).rev() {
            let name = format!("file-with-a-longish-name-{i:04}.txt");
            std::fs::write(root.join(folder).join(name), b"x").unwrap();
        }
    }
    let out = ClientRun::new(&sb, &server, &["ls", "-R"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit("  ").next().unwrap())
        .collect();
    assert_eq!(names.len(), 1603, "{}", &text[..200]);
    let folder_of = |n: &str| {
        n.trim_end_matches('/')
            .rsplit_once('/')
            .map_or("", |(f, _)| f)
            .to_string()
    };
    // Each folder's entries in one run, the folders in order.
    let mut runs: Vec<String> = names.iter().map(|n| folder_of(n)).collect();
    runs.dedup();
    assert_eq!(runs, ["", "a", "a/deep", "b"]);
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| (folder_of(n), n.to_string()));
    assert_eq!(names, sorted);
}

/// Connections dropped because the peer did not take its reply in time.
fn cut_off(server: &ServerProcess) -> usize {
    let dropped = server.events_with(&[("event", "dropped")]);
    dropped.iter().filter(|e| message(e) == CUT_OFF).count()
}
