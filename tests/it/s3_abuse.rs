//! The object store under abuse (one real Garage that the tests share,
//! each test under a prefix of its own): the parts of abandoned uploads
//! count against a user's quota and against the anonymous one, resuming
//! such an upload cannot pass the quota, one peer cannot take the upload
//! memory from everyone else, and a key too long for S3 is refused before
//! anything is created.

use std::time::Duration;

use crate::support::garage::{Garage, BUCKET};
use crate::support::*;
use serde_json::json;

/// A server on the bucket under `prefix`, with a users file holding
/// alice (quota `quota`) and bob (no quota).
fn users_server(
    sb: &Sandbox,
    garage: &Garage,
    prefix: &str,
    quota: &str,
    extra: &[&str],
) -> ServerProcess {
    let users = sb.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\nsecret = \"alice secret\"\nquota = \"{quota}\"\n\
             [[user]]\nname = \"bob\"\nsecret = \"bob secret\"\n"
        ),
    )
    .unwrap();
    let mut args = vec!["--users", users.to_str().unwrap()];
    args.extend_from_slice(extra);
    let root = format!("s3://{BUCKET}/{prefix}");
    ServerProcess::launch(sb, &[], &root, &args, None, &garage.env())
        .unwrap_or_else(|log| panic!("the server did not start: {log}"))
}

/// The upload record of the file with key `key` below `prefix`.
fn record(garage: &Garage, prefix: &str, key: &str) -> Option<serde_json::Value> {
    let bytes = garage
        .client()
        .get_small(&format!("{prefix}/.ftp-partial/{key}"))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Waits until the upload of `key` was let go with `parts` parts stored.
fn wait_abandoned(garage: &Garage, prefix: &str, key: &str, parts: usize) {
    let abandoned = wait_until(Duration::from_secs(30), || {
        record(garage, prefix, key).is_some_and(|r| {
            r["updated"] == 0 && r["parts"].as_array().is_some_and(|p| p.len() == parts)
        })
    });
    assert!(
        abandoned,
        "the record of {key} does not show {parts} parts let go"
    );
}

fn put(name: &str, filesize: usize) -> serde_json::Value {
    json!({"cmd":"put","filename":name,"filesize":filesize,"ack":true})
}

/// Sends a whole upload on a logged-in connection; returns the reply.
fn put_whole(raw: &mut Raw, name: &str, data: &[u8]) -> serde_json::Value {
    raw.send_json(&put(name, data.len()));
    let ready = raw.reply().unwrap();
    if ready.get("code").is_some() {
        return ready;
    }
    raw.send(data);
    raw.reply().unwrap()
}

#[test]
fn resuming_an_abandoned_upload_cannot_pass_the_quota() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let server = users_server(&sb, garage, "resume-quota", "20MiB", &[]);
    // 16 MiB of parts of a 17 MiB file, left behind.
    let big = pattern(17 << 20, 1);
    let mut raw = Raw::login(server.addr, b"alice secret");
    raw.send_json(&put("big.bin", big.len()));
    assert_eq!(raw.reply().unwrap()["offset"], 0);
    raw.send(&big[..(16 << 20) + 4096]);
    drop(raw);
    wait_abandoned(garage, "resume-quota", "alice/big.bin", 2);
    // 4 MiB more fit beside them, exactly.
    let mut raw = Raw::login(server.addr, b"alice secret");
    let reply = put_whole(&mut raw, "four.bin", &pattern(4 << 20, 2));
    assert_eq!(reply["status"], "ok", "{reply}");
    raw.send_json(&json!({"cmd":"quota"}));
    // And four.bin's kept delta signature: 36 bytes a chunk and a head.
    let used = raw.reply().unwrap()["used"].as_u64().unwrap();
    assert!((20 << 20..(20 << 20) + 4096).contains(&used), "{used}");
    // Resuming the big one would need 1 MiB more than the quota.
    raw.send_json(&json!({"cmd":"put","filename":"big.bin","filesize":big.len(),"resume":true}));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    // Nor can a new upload of another name use the parts' room.
    let reply = put_whole(&mut raw, "one.bin", &pattern(1 << 20, 3));
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    drop(raw);
    // With the small file gone, the resume goes through, and the home
    // holds the big file alone.
    let mut raw = Raw::login(server.addr, b"alice secret");
    raw.send_json(&json!({"cmd":"rm","filename":"four.bin"}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&json!({"cmd":"put","filename":"big.bin","filesize":big.len(),"resume":true}));
    let ready = raw.reply().unwrap();
    assert_eq!(ready["offset"], 16 << 20, "{ready}");
    raw.send(&big[16 << 20..]);
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&json!({"cmd":"quota"}));
    assert_eq!(raw.reply().unwrap()["used"], big.len());
}

#[test]
fn abandoned_anonymous_parts_count_against_the_anonymous_quota() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let root = format!("s3://{BUCKET}/anon");
    let args = ["--anonymous", "--anonymous-quota", "20MiB"];
    let server = ServerProcess::launch(&sb, &[], &root, &args, Some(SECRET), &garage.env())
        .unwrap_or_else(|log| panic!("{log}"));
    let anonymous_put = |name: &str, filesize: usize| {
        let mut raw = Raw::connect(server.addr);
        raw.send_json(&put(name, filesize));
        raw
    };
    // Two clients without a secret each leave 8 MiB of parts.
    for name in ["a.bin", "b.bin"] {
        let mut raw = anonymous_put(name, 12 << 20);
        assert_eq!(raw.reply().unwrap()["offset"], 0);
        raw.send(&pattern((8 << 20) + 4096, 4));
        drop(raw);
        wait_abandoned(garage, "anon", &format!("anonymous/{name}"), 1);
    }
    // 16 MiB held: 8 MiB more do not fit in 20, 4 MiB do.
    let mut raw = anonymous_put("c.bin", 8 << 20);
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    let mut raw = anonymous_put("d.bin", 4 << 20);
    assert_eq!(raw.reply().unwrap()["offset"], 0);
    raw.send(&pattern(4 << 20, 5));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    let mut raw = anonymous_put("e.bin", 1);
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
}

#[test]
fn a_path_too_long_for_an_s3_key_is_refused_before_anything_is_created() {
    let garage = Garage::shared();
    // It counts the multipart uploads of a whole bucket: one of its own.
    let bucket = garage.bucket("long-keys");
    let sb = Sandbox::new();
    let root = format!("s3://{bucket}/long");
    let server = ServerProcess::launch(&sb, &[], &root, &[], Some(SECRET), &garage.env())
        .unwrap_or_else(|log| panic!("{log}"));
    let folder = vec!["d".repeat(250); 4].join("/");
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"mkdir","path":folder}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&json!({"cmd":"cd","path":folder}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    // "long/" and the folder take 1,009 bytes: an 11-byte name makes a
    // 1,020-byte key, whose record (13 bytes longer) does not fit.
    let data = pattern(9 << 20, 6);
    for resume in [false, true] {
        raw.send_json(
            &json!({"cmd":"put","filename":"eleven-name","filesize":data.len(),
            "ack":true,"resume":resume}),
        );
        let reply = raw.reply().unwrap();
        assert_eq!(reply["code"], "bad_name", "{reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains("path too long for the object store")
                && message.contains("1033 bytes, and at most 1024 fit"),
            "{message}"
        );
    }
    let key = format!("long/{folder}/eleven-name");
    assert_eq!(key.len(), 1020);
    let store = garage.client_of(&bucket);
    assert!(store.head(&key).is_err());
    assert_eq!(
        garage.unfinished_uploads(&bucket),
        0,
        "a multipart upload was created"
    );
    // A 1,011-byte key, whose record takes exactly 1,024, is stored.
    let reply = put_whole(&mut raw, "ok", &data);
    assert_eq!(reply["status"], "ok", "{reply}");
    let key = format!("long/{folder}/ok");
    assert_eq!(store.head(&key).unwrap().size, data.len() as u64);
    // A folder whose marker would pass 1,024 bytes is refused too.
    raw.send_json(&json!({"cmd":"mkdir","path":"e".repeat(20)}));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "bad_name", "{reply}");
}

#[test]
fn one_peer_cannot_take_the_upload_memory_from_another_user() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    // One upload may hold 16 MiB (an 8 MiB file's two parts), one
    // account 32 MiB, all 64 MiB.
    let extra = ["--upload-memory", "64MiB", "--anonymous"];
    let server = users_server(&sb, garage, "hog", "10TiB", &extra);
    let small = pattern(100_000, 7);
    let bob_puts = |name: &str| {
        let mut bob = Raw::login(server.addr, b"bob secret");
        let reply = put_whole(&mut bob, name, &small);
        assert_eq!(reply["status"], "ok", "{reply}");
    };
    // A peer that declares 3 TB is refused at once, saying why.
    let mut alice = Raw::login(server.addr, b"alice secret");
    alice.send_json(&put("huge.bin", 3_000_000_000_000));
    let reply = alice.reply().unwrap();
    assert_eq!(reply["code"], "too_large", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains("--upload-memory"), "{message}");
    // Alice's uploads take her half; her third waits.
    let mut held = Vec::new();
    for i in 0..3 {
        let mut raw = Raw::login(server.addr, b"alice secret");
        raw.send_json(&put(&format!("a{i}.bin"), 8 << 20));
        held.push((raw.reply().unwrap(), raw));
    }
    let codes: Vec<_> = held.iter().map(|(r, _)| r["code"].clone()).collect();
    assert_eq!(
        codes,
        [json!(null), json!(null), json!("busy")],
        "{held:?}",
        held = held.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    bob_puts("while-alice.bin");
    drop(held);
    for i in 0..2 {
        server.wait_for_event(&[
            ("cmd", "put"),
            ("path", &format!("/a{i}.bin")),
            ("result", "aborted"),
        ]);
    }
    // Sixty-four clients without a secret, 8 MiB each: half the memory
    // at most, and bob's small upload still goes through.
    let mut anonymous = Vec::new();
    for i in 0..64 {
        let mut raw = Raw::connect(server.addr);
        raw.send_json(&put(&format!("n{i}.bin"), 8 << 20));
        anonymous.push((raw.reply().unwrap(), raw));
    }
    let replies: Vec<_> = anonymous.iter().map(|(r, _)| r).collect();
    let ready = replies.iter().filter(|r| r["offset"] == 0).count();
    assert_eq!(ready, 2, "{replies:?}");
    assert!(replies
        .iter()
        .all(|r| r["offset"] == 0 || r["code"] == "busy"));
    bob_puts("while-anonymous.bin");
}
