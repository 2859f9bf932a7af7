//! Folders both ways on a real server: paths in put, get and rm, `ls`
//! of a path, recursive and with digests, `rm -r`, `mv`, `mkdir -p`, and
//! kept modification times, on the disk store and on a real Garage.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use crate::support::garage::{Garage, BUCKET};
use crate::support::*;
use serde_json::{json, Value};

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Asks and returns the one reply.
fn ask(raw: &mut Raw, request: Value) -> Value {
    raw.send_json(&request);
    raw.reply().expect("a reply")
}

/// Puts `body` as `path` in one round trip, with its digest.
fn put(raw: &mut Raw, path: &str, body: &[u8], mtime: Option<u64>) -> Value {
    let mut header = json!({"cmd":"put","filename":path,"filesize":body.len(),"digest":"blake3"});
    if let Some(t) = mtime {
        header["mtime"] = json!(t);
    }
    raw.send_json(&header);
    raw.send(body);
    raw.send_json(&json!({ "blake3": hex(body) }));
    raw.reply().expect("a reply")
}

/// Every entry of a paged listing, by name.
fn listing(raw: &mut Raw, request: Value) -> Vec<Value> {
    raw.send_json(&request);
    let mut entries = Vec::new();
    loop {
        let page = raw.reply().expect("a page");
        assert_eq!(page["status"], "ok", "{page}");
        entries.extend(page["files"].as_array().unwrap().iter().cloned());
        if page["more"] != json!(true) {
            return entries;
        }
    }
}

fn names(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

fn entry<'a>(entries: &'a [Value], name: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

/// The tree both stores get: nested, empty, unicode and space names.
fn build_tree(raw: &mut Raw) {
    for path in ["tree/sub dir/ünï", "tree/empty"] {
        let r = ask(raw, json!({"cmd":"mkdir","path":path,"parents":true}));
        assert_eq!(r["status"], "ok", "{r}");
    }
    let r = ask(raw, json!({"cmd":"mkdir","path":"tree","parents":true}));
    assert_eq!(
        r["path"], "/tree",
        "an existing folder is fine with parents"
    );
    assert_eq!(ask(raw, json!({"cmd":"cd","path":"tree"}))["path"], "/tree");
    let r = put(raw, "a.txt", b"alpha", Some(1_600_000_000));
    assert_eq!(r["filename"], "a.txt", "{r}");
    let r = put(raw, "sub dir/ünï/b c.txt", b"beta", None);
    assert_eq!(r["filename"], "sub dir/ünï/b c.txt", "{r}");
    assert_eq!(put(raw, "missing/x", b"x", None)["code"], "not_found");
    assert_eq!(ask(raw, json!({"cmd":"cd","path":"/"}))["path"], "/");
}

/// What both stores must list for the tree, and its digests.
fn check_tree_listing(raw: &mut Raw) {
    let all = listing(
        raw,
        json!({"cmd":"ls","pages":true,"path":"tree","recursive":true,"digests":true}),
    );
    let mut got = names(&all);
    let order: Vec<&str> = got.clone();
    got.sort();
    let want = [
        "a.txt",
        "empty",
        "sub dir",
        "sub dir/ünï",
        "sub dir/ünï/b c.txt",
    ];
    assert_eq!(got, want, "{all:?}");
    let at = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(at("sub dir") < at("sub dir/ünï") && at("sub dir/ünï") < at("sub dir/ünï/b c.txt"));
    assert_eq!(entry(&all, "a.txt")["blake3"], hex(b"alpha"));
    assert_eq!(entry(&all, "sub dir/ünï/b c.txt")["blake3"], hex(b"beta"));
    assert_eq!(entry(&all, "empty")["kind"], "dir");
    let one = listing(raw, json!({"cmd":"ls","pages":true,"path":"tree/sub dir"}));
    assert_eq!(names(&one), ["ünï"]);
}

/// Links a local user planted in the tree, to a folder outside the root
/// holding `target.txt`; that folder.
fn plant_links(sb: &Sandbox) -> PathBuf {
    let outside = sb.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("target.txt"), b"must survive").unwrap();
    symlink(&outside, sb.root().join("tree/sub dir/door")).unwrap();
    symlink(outside.join("target.txt"), sb.root().join("tree/file-link")).unwrap();
    outside
}

/// A file and a folder moved through paths; a folder into itself, or
/// onto a name that is taken, refused.
fn move_through_paths(raw: &mut Raw, sb: &Sandbox) {
    let r = ask(
        raw,
        json!({"cmd":"mv","from":"tree/a.txt","to":"tree/empty/a.txt"}),
    );
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str()),
        (Some("/tree/a.txt"), Some("/tree/empty/a.txt"))
    );
    let r = ask(raw, json!({"cmd":"mv","from":"tree/sub dir","to":"moved"}));
    assert_eq!(r["to"], "/moved", "{r}");
    let r = ask(raw, json!({"cmd":"mv","from":"moved","to":"moved/inner"}));
    assert_eq!(r["code"], "bad_name");
    let r = ask(raw, json!({"cmd":"mv","from":"tree","to":"moved"}));
    assert_eq!(r["code"], "exists");
    assert_eq!(
        fs::read(sb.root().join("moved/ünï/b c.txt")).unwrap(),
        b"beta"
    );
}

/// A folder that holds something is removed only when asked to be,
/// with all it holds.
fn remove_through_paths(raw: &mut Raw, sb: &Sandbox) {
    let r = ask(raw, json!({"cmd":"rm","filename":"moved"}));
    assert_eq!(r["code"], "not_empty");
    let r = ask(raw, json!({"cmd":"rm","filename":"moved","recursive":true}));
    // moved, ünï, b c.txt and the link door.
    assert_eq!(r["entries"], 4, "{r}");
    let r = ask(raw, json!({"cmd":"rm","filename":"tree","recursive":true}));
    assert_eq!(r["filename"], "tree", "{r}");
    assert!(!sb.root().join("tree").exists() && !sb.root().join("moved").exists());
}

#[test]
fn a_tree_on_disk_is_listed_moved_and_removed_through_paths() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    build_tree(&mut raw);
    // Planted on disk by a local user: never followed, never listed.
    let outside = plant_links(&sb);
    check_tree_listing(&mut raw);
    let all = listing(&mut raw, json!({"cmd":"ls","pages":true,"path":"tree"}));
    assert_eq!(entry(&all, "a.txt")["mtime"], 1_600_000_000u64);
    let r = ask(&mut raw, json!({"cmd":"ls","path":"tree/sub dir/door"}));
    assert_eq!(r["code"], "bad_name", "{r}");

    // Changed behind the server's back: a fresh digest.
    let a = sb.root().join("tree/a.txt");
    fs::write(&a, b"ALPHA").unwrap();
    let all = listing(&mut raw, json!({"cmd":"ls","path":"tree","digests":true}));
    assert_eq!(entry(&all, "a.txt")["blake3"], hex(b"ALPHA"));

    move_through_paths(&mut raw, &sb);
    remove_through_paths(&mut raw, &sb);
    assert_eq!(
        fs::read(outside.join("target.txt")).unwrap(),
        b"must survive"
    );
}

#[test]
fn a_tree_on_garage_is_listed_moved_and_removed_through_paths() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let root = format!("s3://{BUCKET}/folders");
    let server = ServerProcess::launch(&sb, &[], &root, &[], Some(SECRET), &garage.env())
        .unwrap_or_else(|log| panic!("the server did not start: {log}"));
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    build_tree(&mut raw);
    check_tree_listing(&mut raw);
    let store = garage.client();
    // Listed digests are kept beside the objects, for the next listing.
    let kept = store.get_small("folders/.ftp-partial/.ftp-partial/tree/a.txt");
    assert!(kept.is_ok(), "no digest kept for tree/a.txt");

    let r = ask(
        &mut raw,
        json!({"cmd":"mv","from":"tree/a.txt","to":"tree/empty/a.txt"}),
    );
    assert_eq!(r["to"], "/tree/empty/a.txt", "{r}");
    assert!(store.head("folders/tree/a.txt").is_err());
    assert!(store.head("folders/tree/empty/a.txt").is_ok());
    let all = listing(
        &mut raw,
        json!({"cmd":"ls","path":"tree/empty","digests":true}),
    );
    assert_eq!(entry(&all, "a.txt")["blake3"], hex(b"alpha"));
    let r = ask(
        &mut raw,
        json!({"cmd":"mv","from":"tree/sub dir","to":"moved"}),
    );
    assert_eq!(r["code"], "forbidden", "{r}");
    assert!(r["message"].as_str().unwrap().contains("one by one"), "{r}");
    let r = ask(
        &mut raw,
        json!({"cmd":"mv","from":"tree/empty/a.txt","to":"tree/sub dir"}),
    );
    assert_eq!(r["code"], "exists", "{r}");

    let r = ask(
        &mut raw,
        json!({"cmd":"rm","filename":"tree","recursive":true}),
    );
    assert_eq!(r["status"], "ok", "{r}");
    let left = store.list_page("folders/tree/", None, None, 10).unwrap();
    assert!(left.contents.is_empty(), "{:?}", left.contents);
    let digests = store
        .list_page("folders/.ftp-partial/.ftp-partial/tree/", None, None, 10)
        .unwrap();
    assert!(
        digests.contents.is_empty(),
        "digests stay: {:?}",
        digests.contents
    );
    let r = ask(
        &mut raw,
        json!({"cmd":"rm","filename":"tree","recursive":true}),
    );
    assert_eq!(r["code"], "not_found", "{r}");
}
