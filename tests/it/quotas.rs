//! Hostile peers against takeover and quotas: an anonymous client cannot
//! splice another's upload, a slow upload reserves nothing it has not
//! written, uploads racing past a quota are stopped where they would
//! exceed it, a replacement's partial counts, and a quota bounds files
//! and folders as well as bytes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::*;
use serde_json::json;

fn partial(sb: &Sandbox, home: &str, name: &str) -> std::path::PathBuf {
    sb.root().join(home).join(".ftp-partial").join(name)
}

/// A client that skips the login (as the seed's FtpClient does), with the
/// header of a put of `filesize` bytes sent.
fn anonymous_put(
    server: &ServerProcess,
    name: &str,
    filesize: usize,
    extra: &[(&str, bool)],
) -> Raw {
    let mut raw = Raw::connect(server.addr);
    let mut put = json!({"cmd":"put","filename":name,"filesize":filesize});
    for (flag, on) in extra {
        put[flag] = json!(on);
    }
    raw.send_json(&put);
    raw
}

/// Waits until `path` holds `len` bytes: the server has stored them.
fn stored(path: &Path, len: usize) {
    assert!(
        wait_until(Duration::from_secs(20), || size_of(path) == len as u64),
        "{} holds {} bytes, not {len}",
        path.display(),
        size_of(path)
    );
}

#[test]
fn an_anonymous_upload_cannot_be_cut_or_resumed_by_another_anonymous_client() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous"]);
    let data = pattern(1000, 1);
    let mut a = anonymous_put(&server, "victim.bin", 1000, &[]);
    a.send(&data[..600]);
    stored(&partial(&sb, "anonymous", "victim.bin"), 600);

    let mut b = anonymous_put(&server, "victim.bin", 1000, &[("resume", true)]);
    let reply = b.reply().unwrap();
    assert_eq!(reply["code"], "busy", "{reply}");
    // A goes on as if nothing happened, and its file is its own.
    a.send(&data[600..]);
    let done = a.reply().unwrap();
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(
        fs::read(sb.root().join("anonymous/victim.bin")).unwrap(),
        data
    );

    // An upload whose connection is gone may be resumed by anyone.
    let mut c = anonymous_put(&server, "dead.bin", 1000, &[]);
    c.send(&data[..600]);
    stored(&partial(&sb, "anonymous", "dead.bin"), 600);
    drop(c);
    server.wait_for_event(&[("cmd", "put"), ("path", "/dead.bin"), ("result", "aborted")]);
    let mut d = anonymous_put(&server, "dead.bin", 1000, &[("resume", true)]);
    let ready = d.reply().unwrap();
    assert_eq!(ready["offset"], 600, "{ready}");
    d.send(&data[600..]);
    assert_eq!(d.reply().unwrap()["status"], "ok");
    assert_eq!(
        fs::read(sb.root().join("anonymous/dead.bin")).unwrap(),
        data
    );
}

#[test]
fn a_slow_upload_reserves_nothing_it_has_not_written() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous", "--anonymous-quota", "1MiB"]);
    // Declares nearly the whole quota, then trickles.
    let mut slow = anonymous_put(&server, "slow.bin", (1 << 20) - 4096, &[]);
    slow.send(&pattern(10_000, 2));
    stored(&partial(&sb, "anonymous", "slow.bin"), 10_000);

    let data = pattern(100 * 1024, 3);
    let mut other = anonymous_put(&server, "other.bin", data.len(), &[]);
    other.send(&data);
    let reply = other.reply().unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(
        fs::read(sb.root().join("anonymous/other.bin")).unwrap(),
        data
    );
}

#[test]
fn uploads_racing_past_the_quota_are_stopped_where_they_would_exceed_it() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous", "--anonymous-quota", "1MiB"]);
    let (a_data, b_data) = (pattern(600 * 1024, 4), pattern(600 * 1024, 5));
    let mut a = anonymous_put(&server, "a.bin", a_data.len(), &[]);
    a.send(&a_data[..300 * 1024]);
    stored(&partial(&sb, "anonymous", "a.bin"), 300 * 1024);
    // Each fits beside what the other has written: both are taken.
    let mut b = anonymous_put(&server, "b.bin", b_data.len(), &[]);
    b.send(&b_data[..500 * 1024]);
    stored(&partial(&sb, "anonymous", "b.bin"), 500 * 1024);
    // A's rest would take the drop box past 1 MiB: A is stopped there,
    // and what it stored goes.
    let _ = a.stream.write_all(&a_data[300 * 1024..]);
    let put = server.wait_for_refused_put("/a.bin", "quota_exceeded");
    assert!(message(&put).contains("quota exceeded after"), "{put}");
    assert!(!partial(&sb, "anonymous", "a.bin").exists());
    b.send(&b_data[500 * 1024..]);
    let reply = b.reply().unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    assert_eq!(fs::read(sb.root().join("anonymous/b.bin")).unwrap(), b_data);
    assert!(!sb.root().join("anonymous/a.bin").exists());
    assert!(held_under(&sb.root().join("anonymous")).0 <= 1 << 20);
}

#[test]
fn a_replacement_counts_until_it_has_replaced_the_file() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "quota = \"1MiB\"\n", &[]);
    let home = sb.root().join("alice");
    let data = pattern(600 * 1024, 6);
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"f.bin","filesize":data.len()}));
    raw.send(&data);
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    // Its partial would sit beside the old file: two copies do not fit.
    let put = json!({"cmd":"put","filename":"f.bin","filesize":data.len(),"ack":true});
    raw.send_json(&put);
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    assert!(held_under(&home).0 <= 1 << 20);
    // Once the old file is gone there is room again.
    raw.send_json(&json!({"cmd":"rm","filename":"f.bin"}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&put);
    assert_eq!(raw.reply().unwrap()["offset"], 0);
}

#[test]
fn a_quota_bounds_files_and_folders_and_an_ack_probe_leaves_nothing() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "quota = \"1MiB\"\nmax_files = 12\n", &[]);
    let home = sb.root().join("alice");
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    let answer = |raw: &mut Raw, request: serde_json::Value| {
        raw.send_json(&request);
        let reply = raw.reply().unwrap();
        reply.get("code").map(|c| c.to_string())
    };
    // Two folders at once, then one at a time.
    assert_eq!(answer(&mut raw, json!({"cmd":"mkdir","path":"a/b"})), None);
    let folders: Vec<_> = (0..12)
        .map(|i| answer(&mut raw, json!({"cmd":"mkdir","path":format!("d{i}")})))
        .collect();
    assert_eq!(folders.iter().filter(|c| c.is_none()).count(), 10);
    assert_eq!(folders[10].as_deref(), Some("\"quota_exceeded\""));
    // No room for an empty file either, and no partial is left for it.
    raw.send_json(&json!({"cmd":"put","filename":"e","filesize":0}));
    assert_eq!(raw.reply().unwrap()["code"], "quota_exceeded");
    raw.send_json(&json!({"cmd":"rm","filename":"d0"}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&json!({"cmd":"put","filename":"e","filesize":0}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    assert_eq!(held_under(&home), (0, 12));

    // An upload that asks for `ready` and leaves stores nothing.
    raw.send_json(&json!({"cmd":"rm","filename":"e"}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    for i in 0..3 {
        let mut probe = Raw::login(server.addr, ALICE.as_bytes());
        let put = json!({"cmd":"put","filename":format!("p{i}"),"filesize":100,"ack":true});
        assert_eq!(answer(&mut probe, put), None);
        drop(probe);
        server.wait_for_event(&[
            ("cmd", "put"),
            ("path", &format!("/p{i}")),
            ("result", "aborted"),
        ]);
    }
    assert_eq!(held_under(&home), (0, 11));
}

#[test]
fn clients_racing_to_add_files_and_folders_cannot_pass_the_limit_together() {
    let sb = Sandbox::new();
    let server = alice_server(&sb, "max_files = 20\n", &[]);
    let racers: Vec<_> = (0..8)
        .map(|r| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut raw = Raw::login(addr, ALICE.as_bytes());
                for i in 0..6 {
                    let request = match i % 2 {
                        0 => json!({"cmd":"mkdir","path":format!("r{r}/d{i}")}),
                        _ => json!({"cmd":"put","filename":format!("r{r}-f{i}"),"filesize":0}),
                    };
                    raw.send_json(&request);
                    assert!(raw.reply().is_some(), "every request is answered");
                }
            })
        })
        .collect();
    for racer in racers {
        racer.join().unwrap();
    }
    let (_, entries) = held_under(&sb.root().join("alice"));
    assert_eq!(entries, 20, "the limit is reached, never passed");
}

#[test]
fn anonymous_clients_are_bounded_in_files_too() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous", "--anonymous-max-files", "5"]);
    let codes: Vec<_> = (0..7)
        .map(|i| {
            let mut raw = anonymous_put(&server, &format!("e{i}"), 0, &[]);
            let reply = raw.reply().unwrap();
            reply.get("code").map(|c| c.to_string())
        })
        .collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 5, "{codes:?}");
    assert_eq!(codes[6].as_deref(), Some("\"quota_exceeded\""));
    assert_eq!(held_under(&sb.root().join("anonymous")), (0, 5));
}

/// Starts a server on the users file `text` with `extra` flags; `Err`
/// holds its log when it refuses to start.
fn launch_with_users(sb: &Sandbox, text: &str, extra: &[&str]) -> Result<ServerProcess, String> {
    let users = sb.path().join("users.toml");
    fs::write(&users, text).unwrap();
    let mut args = vec!["--users", users.to_str().unwrap()];
    args.extend_from_slice(extra);
    let root = sb.root().to_string_lossy().into_owned();
    ServerProcess::launch(sb, &[], &root, &args, None, &[])
}

#[test]
fn secrets_that_are_one_hmac_key_are_refused_as_duplicates() {
    use md5::Digest;
    let sb = Sandbox::new();
    let a = "[[user]]\nname = \"a\"\nsecret = \"k\"\n";
    for b in ["secret = \"k\\u0000\"", "secret = \"k\\u0000\\u0000\""] {
        let text = format!("{a}[[user]]\nname = \"b\"\n{b}\n");
        let Err(log) = launch_with_users(&sb, &text, &[]) else {
            panic!("the server started with {b}");
        };
        assert!(
            log.contains("users.toml:5: user \"b\" has the same secret as another user"),
            "{log}"
        );
    }
    // A key longer than a block is hashed: its MD5 is the same key.
    let long = "x".repeat(100);
    let digest = md5::Md5::digest(long.as_bytes());
    assert_ne!(digest.last(), Some(&b'\n'), "the file would lose that byte");
    fs::write(sb.path().join("b.key"), digest).unwrap();
    let text = format!(
        "[[user]]\nname = \"a\"\nsecret = \"{long}\"\n[[user]]\nname = \"b\"\nsecret_file = \"b.key\"\n"
    );
    let Err(log) = launch_with_users(&sb, &text, &[]) else {
        panic!("the server started with a key and its MD5");
    };
    assert!(log.contains("user \"b\" has the same secret"), "{log}");
}

#[test]
fn a_user_named_anonymous_is_refused_beside_the_anonymous_drop_box() {
    let sb = Sandbox::new();
    let text = "[[user]]\nname = \"anonymous\"\nsecret = \"k\"\n";
    let Err(log) = launch_with_users(&sb, text, &["--anonymous"]) else {
        panic!("the server started");
    };
    assert!(
        log.contains("error: ")
            && log.contains("users.toml:2: user \"anonymous\" would share ROOT/anonymous")
            && log.contains("rename the user"),
        "{log}"
    );
    // Without --anonymous the name is an ordinary one.
    let ok = launch_with_users(&sb, text, &[]);
    assert!(ok.is_ok());
}
