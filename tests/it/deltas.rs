//! Delta uploads: a changed file sends only its changes, ends
//! byte-identical, resumes after a cut, and a hostile recipe is refused
//! before anything is written.

use std::fs;
use std::io::Read;
use std::time::Duration;

use ftp::wire::delta::recipe::RecipeBuilder;
use serde_json::json;

use crate::support::latency::{Latency, Line};
use crate::support::*;

const OLD: usize = 3 * 1024 * 1024;

/// Puts `name` with its local content `data` and returns the client's
/// stdout; the stored file must then be `data`, byte for byte.
fn put(sb: &Sandbox, server: &ServerProcess, name: &str, data: &[u8], extra: &[&str]) -> String {
    sb.local_file(name, data);
    let mut args = extra.to_vec();
    args.extend(["put", name]);
    let out = ClientRun::new(sb, server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = fs::read(sb.root().join(name)).unwrap();
    assert!(
        blake3::hash(&stored) == blake3::hash(data),
        "{name}: stored file differs"
    );
    stdout(&out)
}

/// The share of the file the server copied, as the summary says it.
pub(crate) fn matched(text: &str) -> f64 {
    share_said(text, "% matched the stored file")
}

/// The percentage the summary gives just before `words`.
fn share_said(text: &str, words: &str) -> f64 {
    let end = text
        .find(words)
        .unwrap_or_else(|| panic!("no {words:?}: {text}"));
    let start = text[..end].rfind(' ').unwrap() + 1;
    text[start..end].parse().unwrap()
}

pub(crate) fn spliced(old: &[u8], at: usize, cut: usize, insert: &[u8]) -> Vec<u8> {
    let mut new = old[..at].to_vec();
    new.extend_from_slice(insert);
    new.extend_from_slice(&old[at + cut..]);
    new
}

/// A changed version of a file: its name, its bytes, and the least share
/// of the old file a delta must match.
type Change = (&'static str, Vec<u8>, f64);

/// An old file of noise from `seed`, and each kind of change to it, with
/// the least share of it a delta must match: insertions at the start,
/// middle and end, a deletion, a truncation, an append, ten times the size.
fn every_change(seed: u64) -> (Vec<u8>, Vec<Change>) {
    let old = pattern(OLD, seed);
    let new_bytes = pattern(100_000, seed + 1);
    let cases = vec![
        ("insert_start", spliced(&old, 0, 0, &new_bytes), 85.0),
        ("insert_middle", spliced(&old, OLD / 2, 0, &new_bytes), 85.0),
        ("insert_end", spliced(&old, OLD, 0, &new_bytes), 85.0),
        ("delete_middle", spliced(&old, OLD / 2, 200_000, &[]), 85.0),
        ("truncate", old[..OLD - 700_000].to_vec(), 85.0),
        (
            "append",
            [old.clone(), pattern(OLD / 2, seed + 2)].concat(),
            60.0,
        ),
        (
            "grow_10x",
            [old.clone(), pattern(9 * OLD, seed + 3)].concat(),
            9.0,
        ),
    ];
    (old, cases)
}

#[test]
fn every_kind_of_change_round_trips_sending_only_the_change() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let (old, cases) = every_change(1);
    for (name, new, at_least) in cases {
        put(&sb, &server, name, &old, &[]);
        let text = put(&sb, &server, name, &new, &[]);
        let share = matched(&text);
        assert!(share >= at_least, "{name}: only {share}% matched: {text}");
        assert!(text.contains("replaced the existing file"), "{text}");
    }
    // Shrunk to nothing: a plain put, and an empty file.
    put(&sb, &server, "shrink", &old, &[]);
    put(&sb, &server, "shrink", &[], &[]);
    // Nothing in common: sent whole, no recipe.
    put(&sb, &server, "other", &old, &[]);
    let text = put(&sb, &server, "other", &pattern(OLD, 9), &[]);
    assert!(!text.contains("matched"), "{text}");
}

#[test]
fn whole_file_turns_the_delta_off() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let old = pattern(OLD, 5);
    put(&sb, &server, "f", &old, &[]);
    // The first put asked for a signature, and was told there is none.
    let asked = || server.log_text().matches("sig f").count();
    let before = asked();
    assert!(before > 0);
    let new = spliced(&old, 1000, 0, b"x");
    let text = put(&sb, &server, "f", &new, &["--whole-file"]);
    assert!(!text.contains("matched"), "{text}");
    assert_eq!(asked(), before, "no signature was asked for");
}

#[test]
fn a_signature_stale_behind_the_servers_back_is_cut_again() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let old = pattern(OLD, 6);
    put(&sb, &server, "f", &old, &[]);
    // The first delta cuts and keeps the stored file's signature.
    let first = spliced(&old, 10, 0, b"first");
    matched(&put(&sb, &server, "f", &first, &[]));
    // Changed on the server's disk: same size, other bytes, a later time.
    let mut behind = first.clone();
    behind[..OLD / 2].copy_from_slice(&pattern(OLD / 2, 7));
    fs::write(sb.root().join("f"), &behind).unwrap();
    ftp::testing::modified_later(&sb.root().join("f"), Duration::from_secs(5));
    // Built on the file as it is now: only a trusted stale signature
    // would copy the old bytes (and fail its digest).
    let next = spliced(&behind, OLD - 10, 0, b"next");
    let share = matched(&put(&sb, &server, "f", &next, &[]));
    assert!(share > 95.0, "{share}");
    server.wait_for_event(&[("cmd", "sig"), ("path", "/f"), ("result", "ok")]);
}

/// Logs in raw, asks for `name`'s signature and returns its BLAKE3 and
/// chunk count, with the connection ready for the next request.
pub(crate) fn raw_signature(server: &ServerProcess, name: &str) -> (Raw, String, u64) {
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd": "sig", "filename": name}));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    let chunks = reply["chunks"].as_u64().unwrap();
    let mut entries = vec![0u8; chunks as usize * 36];
    raw.stream.read_exact(&mut entries).unwrap();
    (raw, reply["blake3"].as_str().unwrap().to_string(), chunks)
}

/// Sends a delta put of `filesize` bytes built by `recipe` and returns
/// the reply to it (after `ready`, when there is one).
pub(crate) fn hostile_put(
    raw: &mut Raw,
    base: &str,
    filesize: u64,
    recipe: &[u8],
) -> serde_json::Value {
    raw.send_json(&json!({
        "cmd": "put", "filename": "f", "filesize": filesize, "resume": true,
        "digest": "blake3", "delta": {"base": base, "recipe": recipe.len()},
    }));
    let ready = raw.reply().unwrap();
    if ready["status"] != "ok" {
        return ready;
    }
    raw.send(recipe);
    raw.reply().unwrap()
}

#[test]
fn hostile_recipes_are_refused_before_anything_is_written() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-file-size", "64MiB"]);
    let old = pattern(OLD, 8);
    put(&sb, &server, "f", &old, &[]);
    let partial = sb.root().join(".ftp-partial/f");
    let recipe = |ops: &dyn Fn(&mut RecipeBuilder)| {
        let mut b = RecipeBuilder::default();
        ops(&mut b);
        b.encode()
    };
    let (_, base, chunks) = raw_signature(&server, "f");
    let chunks = chunks as u32;
    let cases: Vec<(u64, Vec<u8>, &str, &str)> = vec![
        // A chunk the old file does not have.
        (
            65_536,
            recipe(&|b| b.copy(chunks)),
            "bad_request",
            "of an old file that has",
        ),
        // Copies that run past the old file's end.
        (
            OLD as u64,
            recipe(&|b| (0..=chunks).for_each(|i| b.copy(i))),
            "bad_request",
            "of an old file that has",
        ),
        // The declared size is not what the recipe builds.
        (
            OLD as u64 + 1,
            recipe(&|b| (0..chunks).for_each(|i| b.copy(i))),
            "bad_request",
            "builds",
        ),
        // A terabyte from one chunk: refused by the size limit first.
        (1 << 40, recipe(&|b| b.copy(0)), "too_large", "too large"),
        // Garbage.
        (
            10,
            vec![7, 1, 2, 3],
            "bad_request",
            "unknown recipe operation",
        ),
    ];
    for (filesize, bytes, code, says) in cases {
        let (mut raw, _, _) = raw_signature(&server, "f");
        let reply = hostile_put(&mut raw, &base, filesize, &bytes);
        assert_eq!(reply["code"], code, "{reply}");
        assert!(reply["message"].as_str().unwrap().contains(says), "{reply}");
        assert!(!partial.exists(), "nothing written for {reply}");
        assert_eq!(fs::read(sb.root().join("f")).unwrap(), old);
    }
}

#[test]
fn a_changed_base_or_too_long_a_recipe_is_refused_before_ready() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let old = pattern(OLD, 8);
    put(&sb, &server, "f", &old, &[]);
    let partial = sb.root().join(".ftp-partial/f");
    let (mut raw, base, _) = raw_signature(&server, "f");
    let mut data = RecipeBuilder::default();
    data.data(10);
    // A base that is not the stored file's: the client sends it whole.
    let other = blake3::hash(b"other").to_hex().to_string();
    let reply = hostile_put(&mut raw, &other, 10, &data.encode());
    assert_eq!(reply["code"], "base_changed", "{reply}");
    // A recipe past the limit is refused from its announced length.
    raw.send_json(&json!({
        "cmd": "put", "filename": "f", "filesize": 10, "resume": true,
        "digest": "blake3", "delta": {"base": base, "recipe": 8 * 1024 * 1024 + 1},
    }));
    let too_long = raw.reply().unwrap();
    assert_eq!(too_long["code"], "too_large", "{too_long}");
    assert!(!partial.exists());
    assert_eq!(fs::read(sb.root().join("f")).unwrap(), old);
}

#[test]
fn a_delta_upload_killed_on_a_slow_link_resumes_and_ends_identical() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let old = pattern(OLD, 11);
    put(&sb, &server, "big.bin", &old, &[]);
    // The middle third is new: 1 MiB of new bytes behind 1 MiB of copies.
    let mut new = old.clone();
    new[OLD / 3..2 * OLD / 3].copy_from_slice(&pattern(OLD / 3, 12));
    sb.local_file("big.bin", &new);
    // The client's own pace: a killed process's socket buffer would
    // otherwise still deliver what it had written.
    let line = Line {
        delay: Duration::from_millis(10),
        rate: Some(4 << 20),
    };
    let link = Latency::line(server.addr, line);
    let args = ["--limit-rate", "256KiB", "put", "big.bin"];
    let mut child = ClientRun::to(&sb, &link.addr_string(), &args).spawn();
    let partial = sb.root().join(".ftp-partial/big.bin");
    let target = OLD as u64 / 3 + 300_000;
    let reached = wait_until(Duration::from_secs(30), || size_of(&partial) >= target);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the upload never got going");
    server.wait_for_event(&[("cmd", "put"), ("path", "/big.bin"), ("result", "aborted")]);
    let kept = size_of(&partial);

    // Again, through the same link: only what did not arrive crosses it.
    let before = link.bytes();
    let out = ClientRun::to(&sb, &link.addr_string(), &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), new);
    let text = stdout(&out);
    let at = text.find("resumed at byte ").expect("resumed") + "resumed at byte ".len();
    let offset: u64 = text[at..]
        .split(';')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(offset >= kept, "{text}");
    let rest = 2 * OLD as u64 / 3 - kept;
    let moved = link.bytes() - before;
    assert!(
        moved < rest + 64 * 1024,
        "{moved} bytes for the {rest} not yet there"
    );
}

/// The bytes the server took over the network for its `nth` put of
/// `name`, as its log says (`put NAME ok stored S bytes (N bytes, ...)`).
pub(crate) fn received_by(server: &ServerProcess, name: &str, nth: usize) -> u64 {
    let needle = format!("put {name} ok stored ");
    assert!(wait_until(Duration::from_secs(10), || {
        server.log_text().matches(&needle).count() >= nth
    }));
    let log = server.log_text();
    let line = log
        .lines()
        .filter(|l| l.contains(&needle))
        .nth(nth - 1)
        .unwrap();
    // "stored N bytes (M bytes, ...)", or "stored N bytes, resumed at K (M bytes, ...)".
    let said = &line[line.find(&needle).unwrap()..];
    let after = &said[said.find(" (").unwrap() + " (".len()..];
    after.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn put_r_and_sync_send_only_a_changed_files_changes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let tree = sb.work().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let old = pattern(OLD, 13);
    fs::write(tree.join("big.bin"), &old).unwrap();
    fs::write(tree.join("small.txt"), b"small").unwrap();
    let run = |args: &[&str]| {
        let out = ClientRun::new(&sb, &server, args).run();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run(&["put", "-r", "tree"]);
    let changed = spliced(&old, OLD / 2, 0, &pattern(50_000, 14));
    fs::write(tree.join("big.bin"), &changed).unwrap();
    run(&["put", "-r", "tree"]);
    assert_eq!(fs::read(sb.root().join("tree/big.bin")).unwrap(), changed);
    assert_eq!(received_by(&server, "tree/big.bin", 1), OLD as u64);
    let sent = received_by(&server, "tree/big.bin", 2);
    assert!(sent < OLD as u64 / 4, "{sent} bytes for a 50 kB change");

    let again = spliced(&changed, 1000, 0, &pattern(30_000, 15));
    fs::write(tree.join("big.bin"), &again).unwrap();
    // -v says per file what crossed and what the server copied.
    let out = ClientRun::new(&sb, &server, &["sync", "-v", "tree", ":tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("stored tree/big.bin"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no line for big.bin: {}", stdout(&out)));
    assert!(matched(&line) > 90.0, "{line}");
    assert!(line.contains(" bytes sent, "), "{line}");
    assert_eq!(fs::read(sb.root().join("tree/big.bin")).unwrap(), again);
    let sent = received_by(&server, "tree/big.bin", 3);
    assert!(sent < OLD as u64 / 4, "{sent} bytes for a 30 kB change");
}

/// Bytes the server sent of `path` (from the home) in its gets: a whole
/// get's file, or the ranges a delta asked for.
fn sent_of(server: &ServerProcess, path: &str) -> u64 {
    let gets = server.events_with(&[("cmd", "get"), ("path", path), ("result", "ok")]);
    gets.iter().filter_map(|e| e["bytes"].as_u64()).sum()
}

#[test]
fn get_r_and_sync_fetch_only_a_changed_files_changes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let old = pattern(OLD, 41);
    let changed = spliced(&old, OLD / 3, 0, &pattern(40_000, 42));
    fs::create_dir_all(sb.root().join("tree")).unwrap();
    fs::write(sb.root().join("tree/big.bin"), &changed).unwrap();
    fs::write(sb.root().join("tree/small.txt"), b"small").unwrap();
    let local = sb.work().join("tree");
    fs::create_dir_all(&local).unwrap();
    fs::write(local.join("big.bin"), &old).unwrap();
    let out = ClientRun::new(&sb, &server, &["sync", ":tree", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(local.join("big.bin")).unwrap(), changed);
    assert_eq!(fs::read(local.join("small.txt")).unwrap(), b"small");
    let sent = sent_of(&server, "/tree/big.bin");
    assert!(sent < OLD as u64 / 4, "{sent} bytes for a 40 kB change");

    // get -r over the copy, changed again on the server: the same.
    let again = spliced(&changed, 1000, 0, &pattern(30_000, 43));
    fs::write(sb.root().join("tree/big.bin"), &again).unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "-r", "-f", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(local.join("big.bin")).unwrap(), again);
    let both = sent_of(&server, "/tree/big.bin");
    assert!(
        both - sent < OLD as u64 / 4,
        "{} bytes for a 30 kB change",
        both - sent
    );
}

/// Gets `name` over the local file holding `local`, the server holding
/// `remote`; the local file must end as `remote`. Returns stdout.
fn get_over(
    sb: &Sandbox,
    server: &ServerProcess,
    name: &str,
    (local, remote): (&[u8], &[u8]),
) -> String {
    fs::write(sb.root().join(name), remote).unwrap();
    sb.local_file(name, local);
    let out = ClientRun::new(sb, server, &["get", "-f", name]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = fs::read(sb.work().join(name)).unwrap();
    assert!(
        blake3::hash(&got) == blake3::hash(remote),
        "{name}: fetched file differs"
    );
    stdout(&out)
}

fn matched_locally(text: &str) -> f64 {
    share_said(text, "% matched the local copy")
}

#[test]
fn a_get_over_an_old_copy_fetches_only_the_change() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let (old, cases) = every_change(31);
    for (name, new, at_least) in cases {
        let text = get_over(&sb, &server, name, (&old, &new));
        let share = matched_locally(&text);
        assert!(share >= at_least, "{name}: only {share}% matched: {text}");
    }
    // Shrunk to nothing, and nothing in common: whole downloads.
    get_over(&sb, &server, "shrink", (&old, &[]));
    let text = get_over(&sb, &server, "other", (&old, &pattern(OLD, 35)));
    assert!(!text.contains("matched"), "{text}");
    // --whole-file fetches everything.
    fs::write(sb.root().join("w"), spliced(&old, 5, 0, b"w")).unwrap();
    sb.local_file("w", &old);
    let out = ClientRun::new(&sb, &server, &["--whole-file", "get", "-f", "w"]).run();
    assert!(
        out.status.success() && !stdout(&out).contains("matched"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_first_upload_logs_its_signature_probe_as_none_not_as_an_error() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    put(&sb, &server, "fresh", &pattern(OLD, 51), &[]);
    let sig = server.wait_for_event(&[("cmd", "sig"), ("path", "/fresh")]);
    assert_eq!(
        (&sig["result"], &sig["code"]),
        (&json!("none"), &json!("not_found")),
        "{sig}"
    );
    let errors = server.events_with(&[("result", "error")]);
    assert!(errors.is_empty(), "{errors:?}");
}
