//! A download never writes through a symbolic link the user keeps below
//! its target, whatever a server lists; `sync` without `--delete` never
//! removes a local folder.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::hostile::*;
use crate::support::*;
use serde_json::{json, Value};

/// A server that lists `entries` (name, is it a folder) for any `ls`, and
/// serves `hello` for any `get`.
fn lister(entries: &'static [(&'static str, bool)]) -> Hostile {
    Hostile::new(move |s| {
        while let Some(req) = request(s) {
            let ok = match req["cmd"].as_str() {
                Some("ls") => {
                    let files: Vec<Value> = entries
                        .iter()
                        .map(|(name, dir)| match dir {
                            true => json!({"name": name, "kind": "dir", "size": 0, "mtime": 0}),
                            false => json!({"name": name, "kind": "file", "size": 5, "mtime": 0}),
                        })
                        .collect();
                    send_json(s, &json!({"status": "ok", "files": files}))
                }
                Some("get") => {
                    let ready = json!({"status": "ok", "filename": "x", "filesize": 5,
                                       "offset": 0, "mtime": 0});
                    let digest = blake3::hash(b"hello").to_hex().to_string();
                    send_json(s, &ready)
                        && send(s, b"hello")
                        && send_json(s, &json!({"blake3": digest}))
                }
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

/// A folder outside the target, holding a file the user cares about, and
/// a link to it at `link`.
fn outside_behind(sb: &Sandbox, link: &Path) -> std::path::PathBuf {
    let outside = sb.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("notes.txt"), b"mine").unwrap();
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(&outside, link).unwrap();
    outside
}

fn untouched(outside: &Path) {
    assert_eq!(fs::read(outside.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(outside).unwrap().count(), 1, "nothing planted");
}

const THROUGH_A_LINK: &[(&str, bool)] = &[
    ("docs/notes.txt", false),
    ("docs/planted.sh", false),
    ("docs", true),
    ("docs/sub", true),
    ("ok.txt", false),
];

#[test]
fn get_r_writes_nothing_through_a_link_below_its_target() {
    let sb = Sandbox::new();
    let target = sb.work().join("dl/proj");
    let outside = outside_behind(&sb, &target.join("docs"));
    // The folder itself unlisted, as in the report, then listed too.
    for listing in [&THROUGH_A_LINK[..2], THROUGH_A_LINK] {
        let listing: &'static [(&str, bool)] = Box::leak(listing.to_vec().into_boxed_slice());
        let server = lister(listing);
        let out = server.client(&sb, &["get", "-r", "proj", "dl"]).run();
        assert!(!out.status.success(), "{}", stdout(&out));
        assert_stderr_has(&out, "dl/proj/docs, a symbolic link");
        untouched(&outside);
    }
    // What is not below the link still comes.
    assert_eq!(fs::read(target.join("ok.txt")).unwrap(), b"hello");
}

#[test]
fn sync_writes_nothing_through_a_link_below_its_target() {
    let sb = Sandbox::new();
    let target = sb.work().join("mirror");
    let outside = outside_behind(&sb, &target.join("docs"));
    let server = lister(THROUGH_A_LINK);
    let out = server.client(&sb, &["sync", ":proj", "mirror"]).run();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_stderr_has(&out, "mirror/docs, a symbolic link");
    untouched(&outside);
    assert_eq!(fs::read(target.join("ok.txt")).unwrap(), b"hello");
    assert!(fs::symlink_metadata(target.join("docs"))
        .unwrap()
        .is_symlink());
}

#[test]
fn sync_without_delete_keeps_a_folder_the_server_lists_as_a_file() {
    let sb = Sandbox::new();
    let target = sb.work().join("mirror");
    fs::create_dir_all(target.join("docs")).unwrap();
    fs::write(target.join("docs/draft.txt"), b"keep me").unwrap();
    let server = lister(&[("docs", false), ("ok.txt", false)]);
    let out = server.client(&sb, &["sync", ":proj", "mirror"]).run();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_stderr_has(&out, "a folder here and a file on the server: kept");
    assert_eq!(fs::read(target.join("docs/draft.txt")).unwrap(), b"keep me");
    assert_eq!(fs::read(target.join("ok.txt")).unwrap(), b"hello");
    // Asked to, it goes.
    let out = server
        .client(&sb, &["sync", "--delete", ":proj", "mirror"])
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(target.join("docs")).unwrap(), b"hello");
}
