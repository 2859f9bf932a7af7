//! Many files at once, as a user moves them: folders both ways with odd
//! names, wildcards, sync, kept modification times, a failure inside a
//! batch, an interrupted batch run again, and a link with latency on which
//! a round trip per file would show.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::support::latency::Latency;
use crate::support::*;

/// 2001-09-09 01:46:40 UTC: a time no test run could give a file.
const OLD: u64 = 1_000_000_000;

fn set_mtime(path: &Path, secs: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn mtime(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A tree with nested, empty, unicode and space names, an empty file, a
/// file large enough to go the resumable way, and a link to skip.
fn odd_tree(at: &Path) {
    fs::create_dir_all(at.join("sub/deep")).unwrap();
    fs::create_dir_all(at.join("empty folder")).unwrap();
    fs::write(at.join("a.txt"), b"alpha").unwrap();
    fs::write(at.join("sub/with space.txt"), b"spaced").unwrap();
    fs::write(at.join("sub/été ü.txt"), "unicode".as_bytes()).unwrap();
    fs::write(at.join("sub/empty.bin"), b"").unwrap();
    fs::write(at.join("sub/deep/big.bin"), pattern(300_000, 9)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", at.join("sub/link")).unwrap();
    set_mtime(&at.join("a.txt"), OLD);
}

/// Every regular file below `root`, relative, with its bytes; folders too.
fn contents(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    collect(root, root, &mut found);
    found.sort();
    found
}

fn collect(root: &Path, dir: &Path, found: &mut Vec<(String, Option<Vec<u8>>)>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        let kind = entry.file_type().unwrap();
        if name.contains(".ftp-part") {
            continue;
        }
        if kind.is_dir() {
            found.push((name, None));
            collect(root, &path, found);
        } else if kind.is_file() {
            found.push((name, Some(fs::read(&path).unwrap())));
        }
    }
}

#[test]
fn folders_go_both_ways_with_odd_names_times_kept_and_links_skipped() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    odd_tree(&sb.work().join("tree"));
    let out = ClientRun::new(&sb, &server, &["put", "-r", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stderr_has(&out, "skipped");
    assert_stdout_has(&out, "put: 5 files");
    assert!(
        stdout(&out).lines().count() == 1,
        "one summary line, not a line per file: {}",
        stdout(&out)
    );
    let mut expected = contents(&sb.work().join("tree"));
    expected.retain(|(name, _)| !name.ends_with("link"));
    assert_eq!(contents(&sb.root().join("tree")), expected);
    assert!(!sb.root().join("tree/sub/link").exists());
    assert_eq!(mtime(&sb.root().join("tree/a.txt")), OLD);

    let out = ClientRun::new(&sb, &server, &["get", "-r", "tree", "back"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&sb.work().join("back")), expected);
    assert_eq!(mtime(&sb.work().join("back/a.txt")), OLD);

    // -v names every file.
    let out = ClientRun::new(&sb, &server, &["get", "-rv", "tree/sub", "again"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "with space.txt");
    assert_eq!(
        fs::read(sb.work().join("again/deep/big.bin")).unwrap(),
        pattern(300_000, 9)
    );
}

#[test]
fn wildcards_paths_and_renames_work_on_both_sides() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    for name in ["a.log", "b.log", "c.txt"] {
        sb.local_file(name, name.as_bytes());
    }
    let out = ClientRun::new(&sb, &server, &["put", "*.log"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.root().join("a.log").exists() && sb.root().join("b.log").exists());
    assert!(!sb.root().join("c.txt").exists());

    let script = "mkdir logs\nmv a.log logs/a.log\nmv b.log logs/b.log\n\
                  get 'logs/*.log' fetched\nls logs\nrm 'logs/a*'\nls -R\n";
    fs::create_dir(sb.work().join("fetched")).unwrap();
    let out = ClientRun::new(&sb, &server, &[]).run_with_input(script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.work().join("fetched/a.log")).unwrap(), b"a.log");
    assert_eq!(fs::read(sb.work().join("fetched/b.log")).unwrap(), b"b.log");
    assert!(!sb.root().join("logs/a.log").exists());
    assert_eq!(fs::read(sb.root().join("logs/b.log")).unwrap(), b"b.log");
    let o = stdout(&out);
    assert!(o.contains("logs/b.log"), "ls -R shows paths: {o}");

    let out = ClientRun::new(&sb, &server, &["rm", "-r", "logs"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!sb.root().join("logs").exists());
}

#[test]
fn a_refused_file_does_not_stop_the_batch() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-file-size", "100000"]);
    let tree = sb.work().join("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..20 {
        fs::write(tree.join(format!("f{i:02}")), format!("file {i}")).unwrap();
    }
    fs::write(tree.join("f10"), pattern(200_000, 1)).unwrap();
    let out = ClientRun::new(&sb, &server, &["put", "-r", "tree"]).run();
    assert!(!out.status.success(), "a failed file fails the run");
    let e = stderr(&out);
    assert!(
        e.contains("f10") && e.contains("1 of 20 files failed"),
        "{e}"
    );
    assert_stdout_has(&out, "19 files");
    for i in (0..20).filter(|i| *i != 10) {
        let name = format!("f{i:02}");
        assert_eq!(
            fs::read(sb.root().join("tree").join(&name)).unwrap(),
            format!("file {i}").as_bytes()
        );
    }
    assert!(!sb.root().join("tree/f10").exists());
}

/// Runs `ftp-client ARGS`, which must succeed.
fn sync_ok(sb: &Sandbox, server: &ServerProcess, args: &[&str]) -> Output {
    let out = ClientRun::new(sb, server, args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// Thirty photos under `work/photos/2025`; the folder.
fn thirty_photos(sb: &Sandbox) -> PathBuf {
    let photos = sb.work().join("photos");
    fs::create_dir_all(photos.join("2025")).unwrap();
    for i in 0..30 {
        fs::write(
            photos.join(format!("2025/p{i}.jpg")),
            pattern(1000 + i, i as u64),
        )
        .unwrap();
    }
    photos
}

/// One photo edited, one new, one gone; a dry run with `--delete` names
/// them and changes nothing on the server.
fn change_three_and_preview(sb: &Sandbox, server: &ServerProcess, photos: &Path) {
    fs::write(photos.join("2025/p3.jpg"), b"edited").unwrap();
    fs::write(photos.join("new.jpg"), b"new").unwrap();
    fs::remove_file(photos.join("2025/p7.jpg")).unwrap();
    let dry = sync_ok(sb, server, &["sync", "-n", "--delete", "photos", ":photos"]);
    let d = stdout(&dry);
    assert!(d.contains("would send") && d.contains("p3.jpg"), "{d}");
    assert!(d.contains("would remove :photos/2025/p7.jpg"), "{d}");
    assert!(
        sb.root().join("photos/2025/p7.jpg").exists(),
        "a dry run changes nothing"
    );
    assert!(!sb.root().join("photos/new.jpg").exists());
}

/// And back: a copy made by sync, then brought up to date with `-c` and
/// `--delete` after the server's side changed and a stray appeared here.
fn sync_back_down(sb: &Sandbox, server: &ServerProcess, photos: &Path) {
    sync_ok(sb, server, &["sync", ":photos", "copy"]);
    assert_eq!(contents(&sb.work().join("copy")), contents(photos));
    fs::write(sb.work().join("copy/stray.txt"), b"x").unwrap();
    fs::write(
        sb.root().join("photos/2025/p1.jpg"),
        b"changed on the server",
    )
    .unwrap();
    sync_ok(sb, server, &["sync", "-c", "--delete", ":photos", "copy"]);
    assert_eq!(
        contents(&sb.work().join("copy")),
        contents(&sb.root().join("photos"))
    );
}

#[test]
fn sync_sends_only_what_differs_and_deletes_only_when_asked() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let photos = thirty_photos(&sb);
    let out = sync_ok(&sb, &server, &["sync", "photos", ":photos"]);
    assert_stdout_has(&out, "sync photos to :photos: 30 files sent, ");
    assert_eq!(contents(&sb.root().join("photos")), contents(&photos));

    // Nothing changed: nothing moves.
    let out = sync_ok(&sb, &server, &["sync", "photos", ":photos"]);
    assert_stdout_has(&out, ": 0 files sent, 0 B sent in");
    assert_stdout_has(&out, "; 30 up to date; 0 removed");

    change_three_and_preview(&sb, &server, &photos);
    let out = sync_ok(&sb, &server, &["sync", "photos", ":photos"]);
    assert_stdout_has(&out, "2 files sent, 9 B sent in");
    assert!(
        sb.root().join("photos/2025/p7.jpg").exists(),
        "no --delete, no removal"
    );
    sync_ok(&sb, &server, &["sync", "--delete", "photos", ":photos"]);
    assert_eq!(contents(&sb.root().join("photos")), contents(&photos));

    sync_back_down(&sb, &server, &photos);
}

#[test]
fn an_interrupted_batch_run_again_completes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let link = Latency::start(server.addr, Duration::from_millis(20));
    let tree = sb.work().join("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..100 {
        fs::write(tree.join(format!("f{i:03}")), pattern(4096, i)).unwrap();
    }
    fs::write(tree.join("big.bin"), pattern(3 << 20, 77)).unwrap();
    let mut first = ClientRun::to(
        &sb,
        &link.addr_string(),
        &["--limit-rate", "2MiB", "put", "-r", "tree"],
    )
    .spawn();
    std::thread::sleep(Duration::from_millis(900));
    let _ = first.kill();
    let _ = first.wait();
    let out = ClientRun::to(&sb, &link.addr_string(), &["put", "-r", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&sb.root().join("tree")), contents(&tree));
}

#[test]
fn pipelining_hides_the_round_trips_of_a_link_with_latency() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    // 50 ms a round trip: 200 files one after the other would take 10 s.
    let link = Latency::start(server.addr, Duration::from_millis(25));
    let tree = sb.work().join("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..200 {
        fs::write(tree.join(format!("f{i:03}")), pattern(4096, i)).unwrap();
    }
    let started = Instant::now();
    let out = ClientRun::to(&sb, &link.addr_string(), &["put", "-r", "tree"]).run();
    let put_time = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let started = Instant::now();
    let out = ClientRun::to(&sb, &link.addr_string(), &["get", "-r", "tree", "back"]).run();
    let get_time = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(contents(&sb.work().join("back")), contents(&tree));
    assert!(
        put_time < Duration::from_secs(5) && get_time < Duration::from_secs(5),
        "put -r {put_time:?}, get -r {get_time:?}: a round trip per file would be 10 s"
    );
}

#[test]
fn options_after_the_command_are_refused_not_taken_for_names() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("m.bin", b"data");
    let out = ClientRun::new(&sb, &server, &["put", "m.bin", "--limit-rate", "20MiB"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "option --limit-rate after a name");
    assert!(!sb.root().join("m.bin").exists(), "nothing was sent");
}

#[test]
fn dash_p_keeps_permission_bits_both_ways() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let tree = sb.work().join("tree");
    fs::create_dir(&tree).unwrap();
    let script = tree.join("run.sh");
    fs::write(&script, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let out = ClientRun::new(&sb, &server, &["put", "-rp", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&sb.root().join("tree/run.sh")), 0o750);
    let out = ClientRun::new(&sb, &server, &["get", "-rp", "tree", "back"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&sb.work().join("back/run.sh")), 0o750);
    // Without -p the server's default holds.
    let out = ClientRun::new(&sb, &server, &["put", "-r", "back"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&sb.root().join("back/run.sh")), 0o600);
}

#[test]
fn named_links_are_followed_and_single_files_keep_their_times() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let real = sb.local_file("real.txt", b"behind a link");
    set_mtime(&real, OLD);
    std::os::unix::fs::symlink(&real, sb.work().join("alias.txt")).unwrap();
    let out = ClientRun::new(&sb, &server, &["put", "alias.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(sb.root().join("alias.txt")).unwrap(),
        b"behind a link"
    );
    assert_eq!(
        mtime(&sb.root().join("alias.txt")),
        OLD,
        "a plain put keeps the time"
    );
    let out = ClientRun::new(&sb, &server, &["get", "alias.txt", "back.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        mtime(&sb.work().join("back.txt")),
        OLD,
        "a plain get keeps it too"
    );
    // So a sync right after finds nothing to do.
    fs::create_dir(sb.work().join("one")).unwrap();
    fs::copy(&real, sb.work().join("one/real.txt")).unwrap();
    set_mtime(&sb.work().join("one/real.txt"), OLD);
    let out = ClientRun::new(&sb, &server, &["put", "-r", "one"]).run();
    assert_stdout_has(&out, "put: 1 file,");
    let out = ClientRun::new(&sb, &server, &["sync", "-n", "one", ":one"]).run();
    assert_stdout_has(&out, "1 file up to date");
}

#[test]
fn dot_files_below_stay_hidden_in_a_recursive_listing_without_a() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root().join("d/sub")).unwrap();
    fs::write(sb.root().join("d/sub/.hidden"), b"h").unwrap();
    fs::write(sb.root().join("d/sub/shown"), b"s").unwrap();
    let out = ClientRun::new(&sb, &server, &["ls", "-R"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(".hidden"), "{}", stdout(&out));
    assert_stdout_has(&out, "d/sub/shown");
    let out = ClientRun::new(&sb, &server, &["ls", "-aR"]).run();
    assert_stdout_has(&out, "d/sub/.hidden");
}

#[test]
fn get_of_a_folder_without_r_says_to_use_r() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir(sb.root().join("photos")).unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "photos"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "get -r fetches it");
}

#[test]
fn mv_into_a_folder_moves_the_file_there() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir(sb.root().join("box")).unwrap();
    fs::write(sb.root().join("a.txt"), b"a").unwrap();
    fs::write(sb.root().join("b.txt"), b"b").unwrap();
    let script = "mv a.txt box\nmv b.txt box/\n";
    let out = ClientRun::new(&sb, &server, &[]).run_with_input(script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("box/a.txt")).unwrap(), b"a");
    assert_eq!(fs::read(sb.root().join("box/b.txt")).unwrap(), b"b");
    // Onto an existing file it is still refused, not replaced.
    fs::write(sb.root().join("c.txt"), b"c").unwrap();
    let out = ClientRun::new(&sb, &server, &["mv", "c.txt", "box/a.txt"]).run();
    assert!(!out.status.success());
    assert_eq!(fs::read(sb.root().join("box/a.txt")).unwrap(), b"a");
}
