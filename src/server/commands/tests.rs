//! Paths in every command, recursive listings with digests, `rm -r`,
//! `mv`, `mkdir -p` and kept times and modes, driven over byte buffers.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};

use crate::testing::{context, request_frames, serve_bytes};
use crate::wire::frame::{self, encode_json};

fn replies(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(body)) = frame::read(&mut bytes, frame::MAX_REPLY_LEN) {
        match serde_json::from_slice(&body) {
            Ok(v) => out.push(v),
            // The raw bytes of a get.
            Err(_) => continue,
        }
    }
    out
}

fn put(name: &str, body: &[u8], extra: Value) -> Vec<u8> {
    let mut header = json!({"cmd":"put","filename":name,"filesize":body.len(),"digest":"blake3"});
    for (k, v) in extra.as_object().unwrap() {
        header[k] = v.clone();
    }
    let mut out = encode_json(&header).unwrap();
    out.extend_from_slice(body);
    out.extend(request_frames(&[
        json!({"blake3": blake3::hash(body).to_hex().to_string()}),
    ]));
    out
}

/// The names of one listing's entries, in the order they came.
fn names(pages: &[Value]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["files"].as_array().unwrap().clone())
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn files_are_named_by_paths_in_put_get_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut input = request_frames(&[
        json!({"cmd":"mkdir","path":"a/b"}),
        json!({"cmd":"cd","path":"a"}),
    ]);
    input.extend(put(
        "b/f.txt",
        b"hello",
        json!({"mtime": 1_000_000_000u64, "mode": 0o640}),
    ));
    input.extend(put("/top.txt", b"top", json!({})));
    input.extend(put("nowhere/f.txt", b"lost", json!({})));
    input.extend(request_frames(&[
        json!({"cmd":"rm","filename":"nowhere/x"}),
        json!({"cmd":"get","filename":"nowhere/x"}),
    ]));
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[2]["filename"], "b/f.txt", "{}", out[2]);
    assert_eq!(out[3]["filename"], "/top.txt");
    assert_eq!(out[4]["code"], "not_found", "{}", out[4]);
    assert_eq!(out[5]["code"], "not_found", "{}", out[5]);
    assert_eq!(out[6]["code"], "not_found", "{}", out[6]);
    // The first frame of a get is its ready reply.
    let ready = |name: &str| {
        let out = serve_bytes(
            &ctx,
            &request_frames(&[json!({"cmd":"get","filename":name})]),
        );
        frame::read_json::<_, Value>(&mut out.as_slice(), 1 << 20).unwrap()
    };
    let got = ready("a/b/f.txt");
    assert_eq!(
        (got["filename"].as_str(), got["filesize"].as_u64()),
        (Some("a/b/f.txt"), Some(5))
    );
    assert_eq!(got["mtime"], 1_000_000_000u64);
    assert_eq!(got["mode"], 0o640);
    assert_eq!(ready("../top.txt")["filesize"], 3);
    let input = request_frames(&[json!({"cmd":"rm","filename":"/a/b/f.txt"})]);
    assert_eq!(replies(&serve_bytes(&ctx, &input))[0]["entries"], 1);
    assert_eq!(ready("a/b/f.txt")["code"], "not_found");
    assert!(!dir.path().join("a/b/f.txt").exists());
    assert_eq!(fs::read(dir.path().join("top.txt")).unwrap(), b"top");
}

#[test]
fn mtime_and_mode_are_set_before_the_file_lands() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let input = put(
        "m",
        b"x",
        json!({"mtime": 1_234_567_890u64, "mode": 0o4755}),
    );
    assert_eq!(replies(&serve_bytes(&ctx, &input))[0]["status"], "ok");
    let meta = fs::metadata(dir.path().join("m")).unwrap();
    assert_eq!(meta.mtime(), 1_234_567_890);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "no set-id bits");
    // Without them: today's default mode and the time of the upload.
    let input = put("d", b"x", json!({}));
    serve_bytes(&ctx, &input);
    let meta = fs::metadata(dir.path().join("d")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.mtime() > 1_700_000_000);
}

/// A tree with an empty folder, unicode and spaces, and a link to a
/// folder outside that must be neither followed nor listed.
fn tree(root: &Path, outside: &Path) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("sub/.ftp-partial")).unwrap();
    fs::write(root.join("sub/.ftp-partial/half"), b"partial").unwrap();
    fs::write(root.join("a.txt"), b"a").unwrap();
    fs::write(root.join("sub/Übung mit Leerzeichen.txt"), b"u").unwrap();
    fs::write(root.join("sub/deeper/z"), b"zz").unwrap();
    fs::write(outside.join("secret"), b"keep me").unwrap();
    symlink(outside, root.join("sub/door")).unwrap();
}

#[test]
fn a_recursive_listing_walks_the_tree_depth_first_without_links() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tree(dir.path(), outside.path());
    let ctx = context(dir.path());
    let input = request_frames(&[
        json!({"cmd":"ls","pages":true,"recursive":true}),
        json!({"cmd":"ls","pages":true,"path":"sub"}),
        json!({"cmd":"ls","pages":true,"path":"sub/door"}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    let all = names(&out[..1]);
    let mut sorted = all.clone();
    sorted.sort();
    let expected = [
        "a.txt",
        "empty",
        "sub",
        "sub/deeper",
        "sub/deeper/z",
        "sub/Übung mit Leerzeichen.txt",
    ];
    let mut want: Vec<_> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sorted, want);
    let at = |n: &str| all.iter().position(|x| x == n).unwrap();
    assert!(at("sub") < at("sub/deeper") && at("sub/deeper") < at("sub/deeper/z"));
    assert_eq!(names(&out[1..2]).len(), 2, "{}", out[1]);
    assert_eq!(out[2]["code"], "bad_name", "{}", out[2]);
}

#[test]
fn digests_are_listed_kept_and_computed_again_for_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut input = put("up.bin", b"uploaded", json!({}));
    input.extend(request_frames(&[
        json!({"cmd":"ls","pages":true,"digests":true}),
    ]));
    fs::write(dir.path().join("behind"), b"one").unwrap();
    let out = replies(&serve_bytes(&ctx, &input));
    let digest_of = |page: &Value, name: &str| {
        page["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["blake3"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        digest_of(&out[1], "up.bin"),
        blake3::hash(b"uploaded").to_hex().as_str()
    );
    assert_eq!(
        digest_of(&out[1], "behind"),
        blake3::hash(b"one").to_hex().as_str()
    );
    // Changed behind the server's back, same size, a second later.
    let path = dir.path().join("behind");
    fs::write(&path, b"two").unwrap();
    crate::testing::modified_later(&path, std::time::Duration::from_secs(2));
    let out = replies(&serve_bytes(
        &ctx,
        &request_frames(&[json!({"cmd":"ls","digests":true})]),
    ));
    assert_eq!(
        digest_of(&out[0], "behind"),
        blake3::hash(b"two").to_hex().as_str()
    );
}

#[test]
fn rm_r_removes_a_tree_and_only_the_link_of_a_planted_link() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tree(dir.path(), outside.path());
    let ctx = context(dir.path());
    let input = request_frames(&[
        json!({"cmd":"rm","filename":"sub"}),
        json!({"cmd":"rm","filename":"sub","recursive":true}),
        json!({"cmd":"rm","filename":"empty","recursive":true}),
        json!({"cmd":"rm","filename":"gone","recursive":true}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["code"], "not_empty");
    // sub, deeper, z, the unicode file and the link.
    assert_eq!(out[1]["entries"], 5, "{}", out[1]);
    assert_eq!(out[2]["entries"], 1);
    assert_eq!(out[3]["code"], "not_found");
    assert!(!dir.path().join("sub").exists());
    assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"keep me");
}

#[test]
fn rm_r_leaves_a_running_upload_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("d/.ftp-partial")).unwrap();
    fs::write(dir.path().join("d/.ftp-partial/f"), b"run").unwrap();
    fs::write(dir.path().join("d/g"), b"g").unwrap();
    let ctx = context(dir.path());
    let held = ctx.locks.try_lock("d/f").unwrap();
    let out = replies(&serve_bytes(
        &ctx,
        &request_frames(&[json!({"cmd":"rm","filename":"d","recursive":true})]),
    ));
    assert_eq!(out[0]["code"], "busy", "{}", out[0]);
    assert!(
        out[0]["message"].as_str().unwrap().contains("/d is left"),
        "{}",
        out[0]
    );
    assert!(dir.path().join("d/.ftp-partial/f").exists() && !dir.path().join("d/g").exists());
    drop(held);
    let out = replies(&serve_bytes(
        &ctx,
        &request_frames(&[json!({"cmd":"rm","filename":"d","recursive":true})]),
    ));
    assert_eq!(out[0]["entries"], 1, "{}", out[0]);
    assert!(!dir.path().join("d").exists());
}

#[test]
fn mv_renames_files_and_folders_inside_the_home() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("a/b")).unwrap();
    fs::write(dir.path().join("a/b/f"), b"f").unwrap();
    fs::write(dir.path().join("x"), b"x").unwrap();
    symlink("/etc", dir.path().join("link")).unwrap();
    let ctx = context(dir.path());
    let input = request_frames(&[
        json!({"cmd":"mv","from":"a/b/f","to":"a/g"}),
        json!({"cmd":"mv","from":"a","to":"c"}),
        json!({"cmd":"mv","from":"c","to":"c/b/inside"}),
        json!({"cmd":"mv","from":"x","to":"c/g"}),
        json!({"cmd":"mv","from":"missing","to":"y"}),
        json!({"cmd":"mv","from":"x","to":"nowhere/y"}),
        json!({"cmd":"mv","from":"link","to":"y"}),
        json!({"cmd":"mv","from":"x","to":"../../y"}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(
        (out[0]["from"].as_str(), out[0]["to"].as_str()),
        (Some("/a/b/f"), Some("/a/g"))
    );
    assert_eq!(out[1]["to"], "/c");
    let codes: Vec<_> = out[2..7]
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["bad_name", "exists", "not_found", "not_found", "bad_name"]
    );
    assert_eq!(out[7]["to"], "/y");
    assert_eq!(fs::read(dir.path().join("c/g")).unwrap(), b"f");
    assert_eq!(fs::read(dir.path().join("y")).unwrap(), b"x");
}

#[test]
fn mkdir_takes_an_existing_folder_but_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"").unwrap();
    let ctx = context(dir.path());
    let input = request_frames(&[
        json!({"cmd":"mkdir","path":"a/b","parents":true}),
        json!({"cmd":"mkdir","path":"a/b","parents":true}),
        json!({"cmd":"mkdir","path":"a/b"}),
        json!({"cmd":"mkdir","path":"f","parents":true}),
        json!({"cmd":"mkdir","path":"/","parents":true}),
    ]);
    let out = replies(&serve_bytes(&ctx, &input));
    assert_eq!(out[0]["path"], "/a/b");
    assert_eq!(out[1]["path"], "/a/b");
    assert_eq!(out[2]["path"], "/a/b", "as mkdir -p, parents or not");
    assert_eq!(out[3]["code"], "exists", "{}", out[3]);
    assert_eq!(out[4]["path"], "/");
}

#[test]
fn an_internal_error_tells_the_client_what_failed_not_the_systems_text() {
    use crate::wire::message::ErrorCode;
    let e = std::io::Error::from_raw_os_error(libc::EACCES);
    let reply = super::refusals::internal("opening x", &e);
    assert_eq!(reply.code, ErrorCode::Internal);
    assert!(!reply.message.contains("os error"), "{}", reply.message);
    assert!(!reply.message.contains("Permission"), "{}", reply.message);
    let full =
        super::refusals::internal("writing", &std::io::Error::from_raw_os_error(libc::ENOSPC));
    assert_eq!(full.code, ErrorCode::NoSpace);
}
