//! The real `ftp-client` against a hostile server: one the client trusts
//! (it holds the secret, and the client pins its certificate) that then
//! lies, floods or trickles, and anything answering at its address before
//! the login.
//!
//! The hostile server (`support/hostile.rs`) lives with the tests: it speaks the encrypted
//! dialect with the library's own TLS and proofs, so the client runs as it
//! does by default (pinned, TLS, proof checked), and every reply after the
//! login is whatever the test scripts. A mode of the real server, or a
//! proxy rewriting its replies, would need TLS broken open or code in the
//! product that only tests use.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use ftp::wire::frame;

use crate::support::hostile::*;
use crate::support::*;

/// A drip slower than any real server, faster than the stall timeout.
const DRIP: Duration = Duration::from_millis(300);

/// The client's settings for the drip tests: a reply may take 2 s, a byte
/// 1.5 s.
const QUICK: &[&str] = &["--reply-timeout", "2", "--stall-timeout", "2"];

/// Runs `args` and checks that it failed within `limit`, saying `needle`.
#[track_caller]
fn fails_within(run: ClientRun, limit: Duration, needle: &str) -> String {
    let started = Instant::now();
    let out = run.run();
    let took = started.elapsed();
    let said = stderr(&out);
    assert!(!out.status.success(), "it succeeded: {said}");
    assert!(took < limit, "it took {took:?}: {said}");
    assert!(said.contains(needle), "no {needle:?} in: {said}");
    said
}

/// What a terminal must never receive from a server.
#[track_caller]
fn nothing_raw(text: &str) {
    for c in ['\x1b', '\x07', '\u{9b}', '\u{202e}', '\u{2066}', '\u{200b}'] {
        assert!(!text.contains(c), "{c:?} reached the terminal: {text:?}");
    }
}

/// OSC 52 (set the clipboard), a bell, reordering and invisible characters.
const NASTY: &str = "\x1b]52;c;cm0gLXJmIH4=\x07 \u{9b}2J txt\u{202e}exe.\u{2066}\u{200b}";

#[test]
fn error_text_is_escaped_before_the_login() {
    let sb = Sandbox::new();
    // A busy frame in the challenge slot, read before TLS and before the
    // pin is checked, from anything that answers at the address.
    let busy = Hostile::raw(|s| {
        send(s, &refusal("too_many_connections", NASTY));
    });
    let said = fails_within(
        busy.client(&sb, &["ls"]),
        Duration::from_secs(20),
        "\\u{1b}]52;c;",
    );
    nothing_raw(&said);
    // An unknown code with an escape in it, too.
    let odd = Hostile::raw(|s| {
        send(s, &refusal(NASTY, "x"));
    });
    let said = fails_within(odd.client(&sb, &["ls"]), Duration::from_secs(20), "refused");
    nothing_raw(&said);
}

#[test]
fn error_text_and_listings_are_escaped_after_the_login() {
    let sb = Sandbox::new();
    let server = Hostile::new(|s| {
        while let Some(req) = request(s) {
            let reply = match req["cmd"].as_str() {
                Some("ls") => {
                    let files = json!([
                        {"name": NASTY, "kind": "file", "size": 1, "mtime": 0},
                        {"name": "plain.txt", "kind": "file", "size": 2, "mtime": 0},
                    ]);
                    json!({"status": "ok", "files": files})
                }
                // serde quotes an unknown status in its complaint.
                Some("pwd") => json!({"status": NASTY}),
                _ => json!({"status": "error", "code": "not_found", "message": NASTY}),
            };
            if !send_json(s, &reply) {
                return;
            }
        }
    });
    let out = server.client(&sb, &["ls"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "plain.txt");
    assert_stdout_has(&out, "\\u{1b}]52;c;");
    nothing_raw(&stdout(&out));
    for command in ["rm x", "pwd"] {
        let words: Vec<&str> = command.split(' ').collect();
        let said = fails_within(
            server.client(&sb, &words),
            Duration::from_secs(20),
            "\\u{1b}]52",
        );
        nothing_raw(&said);
    }
}

/// A server that answers `ls` of a folder, recursive or not, with `names`,
/// and `get` of anything with a small file.
fn listing_server(names: &'static [&'static str]) -> Hostile {
    Hostile::new(move |s| {
        while let Some(req) = request(s) {
            let ok = match req["cmd"].as_str() {
                Some("ls") => {
                    let files: Vec<Value> = names
                        .iter()
                        .map(|n| json!({"name": n, "kind": "file", "size": 5, "mtime": 0}))
                        .collect();
                    send_json(s, &json!({"status": "ok", "files": files}))
                }
                Some("get") => serve_file(s, b"hello"),
                _ => send_json(
                    s,
                    &json!({"status": "error", "code": "not_found", "message": "no"}),
                ),
            };
            if !ok {
                return;
            }
        }
    })
}

/// A get's reply, body and digest.
fn serve_file(s: &mut dyn Stream, data: &[u8]) -> bool {
    let ready = json!({"status": "ok", "filename": "whatever", "filesize": data.len(),
                       "offset": 0, "mtime": 0});
    send_json(s, &ready)
        && send(s, data)
        && send_json(
            s,
            &json!({"blake3": blake3::hash(data).to_hex().to_string()}),
        )
}

#[test]
fn names_in_a_listing_never_lead_a_download_out_of_its_folder() {
    let sb = Sandbox::new();
    let outside = sb.path().join("escaped.txt");
    for names in [
        &["../escaped.txt"][..],
        &["/tmp/absolute.txt"],
        &["a/../../escaped.txt"],
    ] {
        let names: &'static [&'static str] = Box::leak(names.to_vec().into_boxed_slice());
        let server = listing_server(names);
        let said = fails_within(
            server.client(&sb, &["get", "-r", "tree"]),
            Duration::from_secs(20),
            "not a clean relative path",
        );
        nothing_raw(&said);
        assert!(!outside.exists() && !Path::new("/tmp/absolute.txt").exists());
    }
    // A wildcard expands to the server's names: the same rule holds.
    let server = listing_server(&["sub/../../escaped.txt", "ok.txt"]);
    let out = server.client(&sb, &["get", "*.txt"]).run();
    assert!(!out.status.success());
    assert!(!outside.exists());
    assert_stderr_has(&out, "not a clean relative path");
}

#[test]
fn completion_offers_no_hostile_name_and_none_for_local() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    std::fs::create_dir(sb.work().join("lo-dir")).unwrap();
    let server = listing_server(&[
        "evil\x1b]0;owned\x07",
        "/etc/cron.d/x",
        "../../lo-x",
        "lo-remote.txt",
        "safe.txt",
    ]);
    let keys: Vec<(u64, &[u8])> = vec![
        // Nothing to complete: the only e-name has an escape in it.
        (600, b"get ev\t\t"),
        (400, b"\x15"),
        // The remote name completes; LOCAL completes the local folder.
        (400, b"get saf\t lo\t\r"),
        (800, b"quit\r"),
    ];
    let out = at_terminal_to(&sb, &server.addr.to_string(), &fp_args(&server), keys);
    let screen = stdout(&out);
    assert!(!screen.contains("owned"), "{screen:?}");
    assert!(
        !screen.contains("cron.d") && !screen.contains("lo-remote"),
        "{screen:?}"
    );
    assert_eq!(
        std::fs::read(sb.work().join("lo-dir/safe.txt")).unwrap(),
        b"hello",
        "{screen}"
    );
}

#[test]
fn a_drip_in_the_challenge_slot_is_cut_at_the_login_limit() {
    let sb = Sandbox::new();
    let challenge = Hostile::raw(|s| drip(s, &[9u8; 32], DRIP));
    fails_within(
        challenge.client(&sb, &[QUICK, &["ls"]].concat()),
        Duration::from_secs(6),
        "no challenge came within 2 s",
    );
    // A busy frame that claims 16 MiB is refused from its length alone.
    let huge = Hostile::raw(|s| {
        let mut head = (16i32 << 20).to_le_bytes().to_vec();
        head.extend_from_slice(br#"{"status":"error","code":"busy","message":""#);
        send(s, &head);
        drip(s, &[b'x'; 1000], DRIP);
    });
    fails_within(
        huge.client(&sb, &["ls"]),
        Duration::from_secs(6),
        "error frame of 16777216 bytes",
    );
    // One that fits, dripped: cut at the limit.
    let slow = Hostile::raw(|s| {
        let mut head = 3000i32.to_le_bytes().to_vec();
        head.extend_from_slice(br#"{"status":"error","code":"busy","message":""#);
        send(s, &head);
        drip(s, &[b'x'; 3000], DRIP);
    });
    fails_within(
        slow.client(&sb, &[QUICK, &["ls"]].concat()),
        Duration::from_secs(6),
        "no challenge came within 2 s",
    );
}

#[test]
fn a_drip_in_a_reply_a_body_a_digest_or_a_listing_ends_the_command() {
    let sb = Sandbox::new();
    let server = Hostile::new(|s| {
        if let Some(req) = request(s) {
            let name = req["filename"].as_str().unwrap_or("").to_string();
            let data = vec![b'd'; 100];
            let ready = json!({"status": "ok", "filename": name, "filesize": 100,
                               "offset": 0, "mtime": 0});
            let digest = frame::encode_json(&json!({
                "blake3": blake3::hash(&data).to_hex().to_string()
            }))
            .unwrap();
            match (req["cmd"].as_str(), name.as_str()) {
                (Some("get"), "reply") => drip(s, &frame::encode_json(&ready).unwrap(), DRIP),
                (Some("get"), "body") => {
                    send_json(s, &ready);
                    drip(s, &data, DRIP);
                }
                (Some("get"), _) => {
                    send_json(s, &ready);
                    send(s, &data);
                    drip(s, &digest, DRIP);
                }
                _ => {
                    let page = json!({"status": "ok", "files": [
                        {"name": "a", "kind": "file", "size": 1, "mtime": 0}]});
                    drip(s, &frame::encode_json(&page).unwrap(), DRIP);
                }
            }
        }
    });
    for command in [
        &["get", "reply"][..],
        &["get", "body"],
        &["get", "digest"],
        &["ls"],
    ] {
        let said = fails_within(
            server.client(&sb, &[QUICK, command].concat()),
            Duration::from_secs(6),
            "took longer than its time for this reply (2 s and 1 s per 1 KiB moved)",
        );
        assert!(said.contains("run the same command to resume"), "{said}");
    }
    assert!(!sb.work().join("body").exists() && !sb.work().join("digest").exists());
}

#[test]
fn ctrl_c_and_completion_against_a_dripping_server() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = Hostile::new(|s| {
        while let Some(req) = request(s) {
            if req["cmd"] == "echo" {
                let text = req["text"].as_str().unwrap_or("").to_uppercase();
                send_json(s, &json!({"status": "ok", "text": text}));
            }
            if req["cmd"] == "ls" {
                let page = json!({"status": "ok", "files": [
                    {"name": "slow.txt", "kind": "file", "size": 1, "mtime": 0}]});
                drip(s, &frame::encode_json(&page).unwrap(), DRIP);
                return;
            }
        }
    });
    let mut args = fp_args(&server);
    args.extend(["--reply-timeout", "60", "--stall-timeout", "60"].map(String::from));
    let keys: Vec<(u64, &[u8])> = vec![
        // The Tab's listing trickles: it gives up within its 2 s.
        (600, b"get sl\t"),
        (2600, b"\x15ls\r"),
        // Ctrl-C one second into the listing.
        (1000, b"\x03"),
        (1000, b"echo still here\r"),
        (600, b"quit\r"),
    ];
    let started = Instant::now();
    let out = at_terminal_to(&sb, &server.addr.to_string(), &args, keys);
    let took = started.elapsed();
    let screen = stdout(&out);
    assert!(screen.contains("command interrupted"), "{screen}");
    assert!(
        screen.contains("STILL HERE"),
        "back at a working prompt: {screen}"
    );
    // Five seconds of typing and a second's margin: the listing's 60 s
    // reply timeout played no part.
    assert!(took < Duration::from_secs(12), "{took:?}: {screen}");
    assert_eq!(out.status.code(), Some(1), "one command failed: {screen}");
}

#[test]
fn a_declared_size_past_the_free_space_writes_nothing() {
    let sb = Sandbox::new();
    let server = Hostile::new(|s| {
        while let Some(req) = request(s) {
            let ready = json!({"status": "ok", "filename": req["filename"], "filesize": 1u64 << 62,
                               "offset": 0, "mtime": 0});
            send_json(s, &ready);
            drip(s, &[0u8; 1 << 16], Duration::from_millis(1));
        }
    });
    let said = fails_within(
        server.client(&sb, &["get", "big"]),
        Duration::from_secs(10),
        "the download needs 4.00 EiB more",
    );
    assert!(said.contains("nothing was written"), "{said}");
    let left: Vec<_> = std::fs::read_dir(sb.work()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_put_reply_that_names_something_else_is_an_error() {
    let sb = Sandbox::new();
    sb.local_file("small.txt", b"ten bytes!");
    sb.local_file("large.bin", &pattern(200_000, 3));
    // It takes the whole upload, then says it stored another name, size
    // or digest.
    let server = Hostile::new(|s| {
        while let Some(req) = request(s) {
            let size = req["filesize"].as_u64().unwrap_or(0);
            if req["ack"] == true && !send_json(s, &json!({"status": "ok", "offset": 0})) {
                return;
            }
            if !take(s, size) || request(s).is_none() {
                return;
            }
            let name = req["filename"].as_str().unwrap().to_string();
            let done = match name.as_str() {
                "small.txt" => json!({"status": "ok", "filename": "other.txt", "size": size,
                                      "received": size}),
                _ => json!({"status": "ok", "filename": name, "size": size, "received": size,
                            "blake3": blake3::hash(b"something else").to_hex().to_string()}),
            };
            send_json(s, &done);
        }
    });
    for file in ["small.txt", "large.bin"] {
        let said = fails_within(
            server.client(&sb, &["put", file]),
            Duration::from_secs(20),
            "it is not known to be stored",
        );
        assert!(!said.contains("stored "), "{said}");
    }
}

/// A server whose every reply is just under 16 MiB: a folder name for
/// `pwd`, an error message for anything else.
fn sixteen_mib_replies() -> Hostile {
    Hostile::new(|s| {
        while let Some(req) = request(s) {
            // Just under 16 MiB of JSON: a quote takes two bytes there.
            let big = "\"".repeat((8 << 20) - 64) + "\u{2066}";
            let reply = match req["cmd"].as_str() {
                Some("pwd") => json!({"status": "ok", "path": big}),
                _ => json!({"status": "error", "code": "not_found", "message": big}),
            };
            if !send_json(s, &reply) {
                return;
            }
        }
    })
}

/// A thread that gathers what `from` says into `heard`, until it closes.
fn gather(mut from: impl Read + Send + 'static, heard: Arc<Mutex<String>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            heard
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

#[test]
fn a_16_mib_reply_keeps_the_client_under_64_mib() {
    let sb = Sandbox::new();
    let server = sixteen_mib_replies();
    let mut cmd = server.client(&sb, &[]).cmd;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let printed = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = output.read_to_end(&mut v);
        v.len()
    });
    let heard = Arc::new(Mutex::new(String::new()));
    let complained = gather(child.stderr.take().unwrap(), heard.clone());
    input.write_all(b"pwd\nrm x\n").unwrap();
    input.flush().unwrap();
    // rm's error is the last thing it says; the client then waits for a
    // line, still running, so its peak can be read.
    let answered = wait_until(Duration::from_secs(30), || {
        heard.lock().unwrap().contains("(not found)")
    });
    let peak = peak_rss_kib(child.id());
    drop(input);
    let status = wait_limited(&mut child, Duration::from_secs(30));
    complained.join().unwrap();
    let said = heard.lock().unwrap().clone();
    assert!(answered && !status.success(), "{status:?}");
    assert!(
        said.contains("server refused (not found): \"\"\"") && said.contains('…'),
        "{}",
        &said[..said.len().min(300)]
    );
    assert!(
        said.len() < 4096,
        "the message is clipped: {} bytes",
        said.len()
    );
    eprintln!("peak RSS with a 16 MiB reply: {peak} KiB");
    assert!(
        printed.join().unwrap() > (8 << 20) - 64,
        "the folder was printed"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}
