//! The session's unit tests: whole sessions over byte buffers.

use super::*;
use crate::testing::{context, request_frames, serve_bytes};
use crate::wire::frame::encode_json;
use crate::wire::message::Listing;
use serde_json::{json, Value};
use std::fs;

fn replies(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(body)) = frame::read(&mut bytes, frame::MAX_REPLY_LEN) {
        out.push(serde_json::from_slice(&body).unwrap());
    }
    out
}

fn with_body(header: Value, body: &[u8]) -> Vec<u8> {
    let mut v = encode_json(&header).unwrap();
    v.extend_from_slice(body);
    v
}

#[test]
fn seed_style_put_lands_and_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let input = with_body(
        json!({"cmd":"put","filename":"a.txt","filesize":5}),
        b"hello",
    );
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["status"], "ok");
    assert_eq!(out[0]["size"], 5);
    assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"hello");
}

#[test]
fn put_with_ack_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let body = b"some bytes";
    let mut input = with_body(
        json!({"cmd":"put","filename":"d","filesize":body.len(),"ack":true,"digest":"blake3"}),
        body,
    );
    input.extend(request_frames(&[
        json!({"blake3": blake3::hash(body).to_hex().to_string()}),
    ]));
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0], json!({"status":"ok","offset":0}));
    assert_eq!(out[1]["status"], "ok", "{}", out[1]);
    assert_eq!(fs::read(dir.path().join("d")).unwrap(), body);
}

#[test]
fn wrong_digest_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut input = with_body(
        json!({"cmd":"put","filename":"d","filesize":3,"digest":"blake3"}),
        b"abc",
    );
    input.extend(request_frames(&[
        json!({"blake3": blake3::hash(b"abd").to_hex().to_string()}),
    ]));
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["code"], "digest_mismatch");
    assert!(!dir.path().join("d").exists());
    assert!(!crate::storage::disk::files::partial_path(dir.path(), "d").exists());
}

#[test]
fn refused_seed_put_is_drained_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut input = with_body(
        json!({"cmd":"put","filename":"..\\x","filesize":4}),
        b"evil",
    );
    input.extend(request_frames(&[json!({"cmd":"echo","text":"next"})]));
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["code"], "bad_name");
    assert_eq!(out[1]["text"], "NEXT");
}

#[test]
fn too_large_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path());
    let limits = ctx.live.get();
    ctx.live = std::sync::Arc::new(crate::server::live::Live::new(
        crate::server::live::Limits {
            max_file_size: 10,
            ..limits
        },
    ));
    let input = request_frames(&[json!({"cmd":"put","filename":"big","filesize":11,"ack":true})]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["code"], "too_large");
    assert!(out[0]["message"].as_str().unwrap().contains("11 > 10"));
    // A huge unannounced body is not drained: reply, then close.
    let input = request_frames(&[
        json!({"cmd":"put","filename":"big","filesize":1u64 << 40}),
        json!({"cmd":"echo","text":"never"}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["code"], "too_large");
}

#[test]
fn truncated_body_keeps_partial_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let input = with_body(json!({"cmd":"put","filename":"r","filesize":10}), b"12345");
    assert!(replies(&serve_bytes(&ctx, &input)).is_empty());
    assert!(!dir.path().join("r").exists());
    let partial = crate::storage::disk::files::partial_path(dir.path(), "r");
    assert_eq!(fs::read(&partial).unwrap(), b"12345");
    // Resume: the server offers offset 5, takes the rest, checks the
    // digest of the whole file.
    let mut input = with_body(
        json!({"cmd":"put","filename":"r","filesize":10,"resume":true,"digest":"blake3"}),
        b"67890",
    );
    input.extend(request_frames(&[
        json!({"blake3": blake3::hash(b"1234567890").to_hex().to_string()}),
    ]));
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0], json!({"status":"ok","offset":5}));
    assert_eq!(out[1]["received"], 5);
    assert_eq!(fs::read(dir.path().join("r")).unwrap(), b"1234567890");
}

#[test]
fn get_sends_ready_bytes_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("g"), b"0123456789").unwrap();
    let ctx = context(dir.path());
    let input = request_frames(&[json!({"cmd":"get","filename":"g","offset":4})]);
    let out = serve_bytes(&ctx, &input);
    let mut cur = out.as_slice();
    let ready: Value = frame::read_json(&mut cur, 1 << 20).unwrap();
    assert_eq!(ready["filesize"], 10);
    assert_eq!(&cur[..6], b"456789");
    cur = &cur[6..];
    let digest: crate::wire::message::Digest = frame::read_json(&mut cur, 1 << 20).unwrap();
    assert_eq!(digest.blake3, blake3::hash(b"0123456789").to_hex().as_str());
    let input = request_frames(&[json!({"cmd":"get","filename":"g","offset":11})]);
    assert_eq!(
        replies(&serve_bytes(&ctx, &input))[0]["code"],
        "invalid_offset"
    );
}

#[test]
fn folders_stay_inside_the_home() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let input = request_frames(&[
        json!({"cmd":"mkdir","path":"a/b"}),
        json!({"cmd":"cd","path":"a/b"}),
        json!({"cmd":"cd","path":"../../../.."}),
        json!({"cmd":"pwd"}),
        json!({"cmd":"cd","path":"/a"}),
        json!({"cmd":"ls"}),
        json!({"cmd":"rm","filename":"b"}),
        json!({"cmd":"cd","path":"nowhere"}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["path"], "/a/b");
    assert_eq!(out[1]["path"], "/a/b");
    assert_eq!(out[2]["path"], "/");
    assert_eq!(out[3]["path"], "/");
    let listing: Listing = serde_json::from_value(out[5].clone()).unwrap();
    assert_eq!(listing.files[0].name, "b");
    assert_eq!(out[6]["filename"], "b");
    assert_eq!(out[7]["code"], "not_found");
}
