//! One account's folder under two connections at once: a replacement
//! racing a `mv` cannot open the quota, a folder above a running upload
//! stays where it is, a replacement is an entry until it commits, and the
//! quota book agrees with what is on disk afterwards.

use std::fs;

use crate::support::*;
use serde_json::{json, Value};

fn ask(raw: &mut Raw, request: Value) -> Value {
    raw.send_json(&request);
    raw.reply().expect("every request is answered")
}

/// Uploads `data` as `name` with its digest, the body in one piece.
fn put(raw: &mut Raw, name: &str, data: &[u8]) -> Value {
    let request = json!({"cmd":"put","filename":name,"filesize":data.len(),"digest":"blake3",
                         "mode":0o640,"mtime":1_700_000_000});
    raw.send_json(&request);
    raw.send(data);
    raw.send_json(&json!({"blake3": blake3::hash(data).to_hex().to_string()}));
    raw.reply().expect("a put is answered")
}

/// Starts an upload of `data` as `name` and sends its first `sent` bytes.
fn start_put(raw: &mut Raw, name: &str, data: &[u8], sent: usize) {
    let request = json!({"cmd":"put","filename":name,"filesize":data.len(),
                         "ack":true,"digest":"blake3"});
    let ready = ask(raw, request);
    assert_eq!(ready["offset"], 0, "{ready}");
    raw.send(&data[..sent]);
}

/// Sends the rest of an upload begun with [`start_put`], and its digest.
fn finish_put(raw: &mut Raw, data: &[u8], sent: usize) -> Value {
    raw.send(&data[sent..]);
    raw.send_json(&json!({"blake3": blake3::hash(data).to_hex().to_string()}));
    raw.reply().expect("a put is answered")
}

fn used(raw: &mut Raw) -> u64 {
    let quota = ask(raw, json!({"cmd":"quota"}));
    quota["used"].as_u64().expect("quota says what is used")
}

#[test]
fn a_replacement_racing_a_mv_leaves_the_quota_book_equal_to_the_disk() {
    let sb = Sandbox::new();
    // With --durable a commit waits for the disk between reading the size
    // of the file it replaces and the rename: the window a `mv` raced.
    let server = alice_server(&sb, "quota = \"4MiB\"\n", &["--durable"]);
    let home = sb.root().join("alice");
    let data = pattern(4096, 1);
    let mut setup = Raw::login(server.addr, ALICE.as_bytes());
    assert_eq!(put(&mut setup, "x", &data)["status"], "ok");
    const ROUNDS: usize = 300;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addr, finished) = (server.addr, done.clone());
    let putter = std::thread::spawn(move || {
        let mut raw = Raw::login(addr, ALICE.as_bytes());
        for _ in 0..ROUNDS {
            let reply = put(&mut raw, "x", &pattern(4096, 1));
            let code = reply.get("code").and_then(Value::as_str);
            // The quota may be full of moved copies; never anything else.
            assert!(matches!(code, None | Some("quota_exceeded")), "{reply}");
            if code.is_some() {
                let _ = ask(&mut raw, json!({"cmd":"rm","filename":"y"}));
            }
        }
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    // Moves as long as the putter replaces (each move is much quicker
    // than a durable put), so that many land inside a commit.
    let mut mover = Raw::login(server.addr, ALICE.as_bytes());
    let mut moves = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) && moves < 50 * ROUNDS {
        let moved = ask(&mut mover, json!({"cmd":"mv","from":"x","to":"y"}));
        if moved["status"] != "ok" {
            continue;
        }
        // Moved back, so that a commit mostly finds a file to replace;
        // when one committed meanwhile, the moved copy goes.
        moves += 1;
        let back = ask(&mut mover, json!({"cmd":"mv","from":"y","to":"x"}));
        if back["status"] != "ok" {
            let removed = ask(&mut mover, json!({"cmd":"rm","filename":"y"}));
            assert_eq!(removed["status"], "ok", "{removed}");
        }
    }
    putter.join().unwrap();
    let (bytes, _) = held_under(&home);
    assert_eq!(used(&mut mover), bytes, "the book is what is on disk");
    assert!(bytes <= 4 << 20, "{bytes} bytes stored over the quota");
}

#[test]
fn a_folder_above_a_running_upload_is_neither_moved_nor_removed() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "quota = \"8MiB\"\n", &[]);
    let home = sb.root().join("alice");
    let (a_data, b_data) = (pattern(512 * 1024, 2), pattern(512 * 1024, 3));
    let mut a = Raw::login(server.addr, ALICE.as_bytes());
    let mut b = Raw::login(server.addr, ALICE.as_bytes());
    assert_eq!(
        ask(&mut b, json!({"cmd":"mkdir","path":"d/sub"}))["status"],
        "ok"
    );
    start_put(&mut a, "d/sub/f", &a_data, 256 * 1024);
    let partial = home.join("d/sub/.ftp-partial/f");
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        size_of(&partial) == 256 * 1024
    }));

    // Neither the folder nor one above it moves; rm -r leaves the upload.
    for from in ["d", "d/sub"] {
        let moved = ask(&mut b, json!({"cmd":"mv","from":from,"to":"e"}));
        assert_eq!(moved["code"], "busy", "{moved}");
        assert!(
            moved["message"].as_str().unwrap().contains("upload"),
            "{moved}"
        );
    }
    let removed = ask(&mut b, json!({"cmd":"rm","filename":"d","recursive":true}));
    assert_eq!(removed["code"], "busy", "{removed}");
    assert_eq!(size_of(&partial), 256 * 1024, "the partial is untouched");

    // The upload ends as it began; then the folder moves, and a second
    // upload at the new path is its own.
    assert_eq!(finish_put(&mut a, &a_data, 256 * 1024)["status"], "ok");
    assert_eq!(fs::read(home.join("d/sub/f")).unwrap(), a_data);
    let moved = ask(&mut b, json!({"cmd":"mv","from":"d","to":"e"}));
    assert_eq!(moved["status"], "ok", "{moved}");
    assert_eq!(put(&mut b, "e/sub/f", &b_data)["status"], "ok");
    assert_eq!(fs::read(home.join("e/sub/f")).unwrap(), b_data);
    let listed = ask(
        &mut b,
        json!({"cmd":"ls","path":"e/sub","digests":true,"pages":true}),
    );
    let entry = &listed["files"][0];
    assert_eq!(entry["blake3"], blake3::hash(&b_data).to_hex().to_string());
    let (bytes, _) = held_under(&home);
    assert_eq!(used(&mut b), bytes);
}

#[test]
fn a_replacement_is_an_entry_until_it_commits() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "max_files = 3\n", &[]);
    let home = sb.root().join("alice");
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    for name in ["a", "b", "c"] {
        assert_eq!(put(&mut raw, name, b"one")["status"], "ok");
    }
    // Its partial would be a fourth entry beside the three files.
    let reply = put(&mut raw, "a", b"two");
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    assert_eq!(held_under(&home), (9, 3));
    assert_eq!(
        ask(&mut raw, json!({"cmd":"rm","filename":"c"}))["status"],
        "ok"
    );
    assert_eq!(put(&mut raw, "a", b"two")["status"], "ok");
    assert_eq!(fs::read(home.join("a")).unwrap(), b"two");
    // Committed, it is one entry again: a new name still fits.
    assert_eq!(put(&mut raw, "c", b"new")["status"], "ok");
    assert_eq!(held_under(&home), (9, 3));
}

#[test]
fn mkdir_of_a_folder_that_exists_succeeds_and_of_a_file_fails() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "", &[]);
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    for _ in 0..2 {
        let made = ask(&mut raw, json!({"cmd":"mkdir","path":"a/b"}));
        assert_eq!(made["status"], "ok", "{made}");
    }
    assert_eq!(put(&mut raw, "a/f", b"x")["status"], "ok");
    let refused = ask(&mut raw, json!({"cmd":"mkdir","path":"a/f"}));
    assert_eq!(refused["code"], "exists", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("not a folder"));
    assert!(sb.root().join("alice/a/f").is_file());
}

#[test]
fn the_partial_folder_goes_with_its_last_partial_upload() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "", &[]);
    let folder = sb.root().join("alice/d");
    let partials = folder.join(".ftp-partial");
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    assert_eq!(
        ask(&mut raw, json!({"cmd":"mkdir","path":"d"}))["status"],
        "ok"
    );
    assert_eq!(put(&mut raw, "d/f", b"whole")["status"], "ok");
    assert!(!partials.exists(), "gone once the upload committed");
    // A broken upload keeps its partial (and the folder) for a resume.
    let data = pattern(10_000, 4);
    let mut broken = Raw::login(server.addr, ALICE.as_bytes());
    start_put(&mut broken, "d/g", &data, 5_000);
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        size_of(&partials.join("g")) == 5_000
    }));
    drop(broken);
    server.wait_for_event(&[("cmd", "put"), ("path", "/d/g"), ("result", "aborted")]);
    assert!(partials.join("g").exists());
    // rm of the name removes the partial, and the folder with it.
    assert_eq!(
        ask(&mut raw, json!({"cmd":"rm","filename":"d/g"}))["status"],
        "ok"
    );
    assert!(!partials.exists());
    assert_eq!(fs::read_dir(&folder).unwrap().count(), 1, "only f is left");
}
