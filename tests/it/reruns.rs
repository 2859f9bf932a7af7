//! A batch that breaks, as a person meets it: Ctrl-C or a lost link says
//! one thing (what happened, how many landed, the command that finishes
//! the job), and running that command sends only what is missing.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::latency::Latency;
use crate::support::*;

/// 2,000 small files and, every 100th, one past the pipelined size, so
/// that a rate limit makes the batch last seconds.
fn large_tree(at: &Path) -> usize {
    fs::create_dir_all(at).unwrap();
    for i in 0..2000u64 {
        let len = match i % 100 {
            50 => 200_000,
            _ => 2048,
        };
        fs::write(at.join(format!("f{i:04}")), pattern(len, i)).unwrap();
    }
    2000
}

/// Regular files directly in `folder` (partial uploads live elsewhere).
fn files_in(folder: &Path) -> usize {
    fs::read_dir(folder).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count()
    })
}

fn spawn_with_output(run: ClientRun) -> Child {
    let mut cmd = run.cmd;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn ftp-client")
}

/// The number before `word` in `text` ("120 of 2000 files landed").
fn number_before(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} in {text}"));
    let digits: String = text[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn ctrl_c_in_a_large_batch_says_one_thing_and_the_rerun_sends_only_the_rest() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let link = Latency::start(server.addr, Duration::from_millis(25));
    let tree = sb.work().join("tree");
    let total = large_tree(&tree);
    let args = ["--limit-rate", "1MiB", "put", "-r", "tree"];
    let mut child = spawn_with_output(ClientRun::to(&sb, &link.addr_string(), &args));
    let landed_dir = sb.root().join("tree");
    assert!(
        wait_until(Duration::from_secs(30), || files_in(&landed_dir) >= 300),
        "the batch got going"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = &mut child;
    let out = wait_output(child, Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.lines().count() <= 5, "one thing, not a flood:\n{err}");
    assert!(err.contains("put -r tree stopped (interrupted)"), "{err}");
    assert!(err.contains("run `put -r tree` again to finish"), "{err}");
    assert!(!err.contains(&sb.work().display().to_string()), "{err}");
    let on_server = files_in(&landed_dir);
    let landed = number_before(&err, "of");
    assert_eq!(
        landed, on_server as u64,
        "stored is counted from the server's replies: {err}"
    );
    assert!(on_server < total, "Ctrl-C stopped it early: {on_server}");
    let missing = number_before(&err, "did not");
    assert_eq!(landed + missing, total as u64, "{err}");
    eprintln!(
        "after Ctrl-C, stderr was {} line(s): {err}",
        err.lines().count()
    );

    // The rerun sends only what is missing.
    let out = ClientRun::to(&sb, &link.addr_string(), &["put", "-r", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    let sent = total - on_server;
    assert!(
        summary.contains(&format!("put: {sent} files,"))
            && summary.contains(&format!("{on_server} already there")),
        "{summary}"
    );
    assert_eq!(files_in(&landed_dir), total);
    for i in [0u64, 50, 1999] {
        let name = format!("f{i:04}");
        assert_eq!(
            fs::read(landed_dir.join(&name)).unwrap(),
            fs::read(tree.join(&name)).unwrap()
        );
    }
}

#[test]
fn a_lost_link_says_so_once_and_never_blames_a_missing_server() {
    let sb = Sandbox::new();
    let mut server = sb.start_server(&[]);
    let tree = sb.work().join("tree");
    let total = large_tree(&tree);
    let args = ["--limit-rate", "1MiB", "put", "-r", "tree"];
    let child = spawn_with_output(ClientRun::new(&sb, &server, &args));
    let landed_dir = sb.root().join("tree");
    assert!(wait_until(Duration::from_secs(30), || files_in(
        &landed_dir
    ) >= 300));
    server.kill();
    let out = wait_output(child, Duration::from_secs(40));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.lines().count() <= 5, "one thing, not a flood:\n{err}");
    assert!(
        err.contains("put -r tree stopped (connection lost"),
        "{err}"
    );
    assert!(!err.contains("is ftp-server running there"), "{err}");
    let landed = number_before(&err, "of");
    assert!(landed as usize <= files_in(&landed_dir), "{err}");
    assert_eq!(landed + number_before(&err, "did not"), total as u64);
}

#[test]
fn failures_are_counted_and_the_failed_list_names_them_all() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let tree = sb.work().join("tree");
    fs::create_dir(&tree).unwrap();
    for i in 0..8 {
        fs::write(tree.join(format!("g{i}")), pattern(1000, i)).unwrap();
    }
    // A folder on the server where six of the files would go.
    for i in 0..6 {
        fs::create_dir_all(sb.root().join(format!("tree/g{i}/in"))).unwrap();
    }
    let args = ["put", "-r", "--failed-list", "left.txt", "tree"];
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.lines().count() <= 5, "{err}");
    assert!(err.contains("6 of 8 files failed"), "{err}");
    let listed = fs::read_to_string(sb.work().join("left.txt")).unwrap();
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("tree/g{i}")).collect();
    assert_eq!(names, expected, "named as typed");
    // With -v every failure is named as it happens.
    let out = ClientRun::new(&sb, &server, &["put", "-rv", "tree"]).run();
    let err = stderr(&out);
    assert_eq!(err.matches("error: put tree/g").count(), 6, "{err}");
}

fn set_mtime(path: &Path, secs: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn reruns_of_get_r_and_put_r_move_only_what_differs() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let remote = sb.root().join("tree");
    fs::create_dir_all(remote.join("sub")).unwrap();
    for i in 0..20 {
        fs::write(remote.join(format!("sub/h{i:02}")), pattern(500, i)).unwrap();
    }
    let get = |extra: &[&str]| {
        let args = [&["get", "-r"], extra, &["tree"]].concat();
        let out = ClientRun::new(&sb, &server, &args).run();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(get(&[]).contains("get: 20 files,"));
    fs::write(remote.join("sub/h07"), b"changed on the server").unwrap();
    let again = get(&[]);
    assert!(
        again.contains("get: 1 file,") && again.contains("19 already there"),
        "{again}"
    );
    assert_eq!(
        fs::read(sb.work().join("tree/sub/h07")).unwrap(),
        b"changed on the server"
    );
    assert!(get(&["--force-all"]).contains("get: 20 files,"));

    // Same size and time, other bytes: only -c sees it.
    let local = sb.work().join("tree/sub/h03");
    let theirs = fs::metadata(remote.join("sub/h03")).unwrap();
    let when = theirs
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fs::write(&local, pattern(500, 99)).unwrap();
    set_mtime(&local, when);
    let put = |extra: &[&str]| {
        let args = [&["put", "-r"], extra, &["tree"]].concat();
        let out = ClientRun::new(&sb, &server, &args).run();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let plain = put(&[]);
    assert!(plain.contains("put: 0 files,"), "{plain}");
    let checked = put(&["-c"]);
    assert!(
        checked.contains("put: 1 file,") && checked.contains("19 already there"),
        "{checked}"
    );
    assert_eq!(fs::read(remote.join("sub/h03")).unwrap(), pattern(500, 99));
}

#[test]
fn put_with_two_names_stores_under_the_second_as_sftp_does() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("big.bin", &pattern(100_000, 1));
    sb.local_file("a.txt", b"a");
    sb.local_file("b.txt", b"b");
    sb.local_file("c.txt", b"c");
    let run = |args: &[&str]| {
        let out = ClientRun::new(&sb, &server, args).run();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    run(&["put", "big.bin", "big-r.bin"]);
    assert_eq!(
        fs::read(sb.root().join("big-r.bin")).unwrap(),
        pattern(100_000, 1)
    );
    assert!(!sb.root().join("big.bin").exists());
    // Into a folder that is there, or one named with a trailing /.
    fs::create_dir(sb.root().join("box")).unwrap();
    run(&["put", "a.txt", "box"]);
    assert_eq!(fs::read(sb.root().join("box/a.txt")).unwrap(), b"a");
    run(&["put", "a.txt", "new/"]);
    assert_eq!(fs::read(sb.root().join("new/a.txt")).unwrap(), b"a");
    // Three names or more: every one is uploaded, as before.
    run(&["put", "a.txt", "b.txt", "c.txt"]);
    assert_eq!(fs::read(sb.root().join("c.txt")).unwrap(), b"c");
    assert_eq!(fs::read(sb.root().join("b.txt")).unwrap(), b"b");
    // A folder under another name.
    fs::create_dir_all(sb.work().join("tree/in")).unwrap();
    fs::write(sb.work().join("tree/in/x"), b"x").unwrap();
    run(&["put", "-r", "tree", "copy"]);
    assert_eq!(fs::read(sb.root().join("copy/in/x")).unwrap(), b"x");
    // get's LOCAL with a trailing / is a folder, made when missing.
    run(&["get", "big-r.bin", "inbox/"]);
    assert_eq!(
        fs::read(sb.work().join("inbox/big-r.bin")).unwrap(),
        pattern(100_000, 1)
    );
    // A wildcard of several files needs a folder.
    let out = ClientRun::new(&sb, &server, &["put", "*.txt", "one-name"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "end one-name with / to name one");
}

fn mtime_of(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn get_r_and_sync_keep_the_servers_folder_times() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let there = sb.root().join("tree/inner/deeper");
    fs::create_dir_all(&there).unwrap();
    fs::write(there.join("f.txt"), b"f").unwrap();
    // Folder times set after their files, as a tree restored from a backup.
    for (folder, when) in [
        ("tree/inner/deeper", 1_100_000_000),
        ("tree/inner", 1_200_000_000),
    ] {
        fs::File::open(sb.root().join(folder))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(when))
            .unwrap();
    }
    let out = ClientRun::new(&sb, &server, &["get", "-r", "tree", "got"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mtime_of(&sb.work().join("got/inner")), 1_200_000_000);
    assert_eq!(mtime_of(&sb.work().join("got/inner/deeper")), 1_100_000_000);
    let out = ClientRun::new(&sb, &server, &["sync", ":tree", "synced"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mtime_of(&sb.work().join("synced/inner")), 1_200_000_000);
    assert_eq!(
        mtime_of(&sb.work().join("synced/inner/deeper")),
        1_100_000_000
    );
}

#[test]
fn get_of_a_file_identical_to_the_local_one_fetches_nothing_and_says_so() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("notes.txt", &pattern(50_000, 4));
    let out = ClientRun::new(&sb, &server, &["put", "notes.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ClientRun::new(&sb, &server, &["get", "notes.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "notes.txt is already the server's notes.txt");
    assert_stdout_has(&out, "nothing was fetched");
    // Changed on the server: fetched again.
    fs::write(sb.root().join("notes.txt"), b"newer").unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "-f", "notes.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "saved notes.txt");
    assert_eq!(fs::read(sb.work().join("notes.txt")).unwrap(), b"newer");
}

#[test]
fn ctrl_c_in_a_one_shot_transfer_says_what_stopped_and_how_to_resume() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("big.bin", &pattern(8 << 20, 8));
    let args = ["--limit-rate", "1MiB", "put", "big.bin"];
    let child = spawn_with_output(ClientRun::new(&sb, &server, &args));
    let partial = sb.root().join(".ftp-partial/big.bin");
    assert!(
        wait_until(Duration::from_secs(30), || size_of(&partial) > 0),
        "the upload got going"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = wait_output(child, Duration::from_secs(30));
    let err = stderr(&out);
    // As a shell's own interrupted commands end (128 + SIGINT), with the
    // file named.
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("error: put big.bin: upload interrupted"),
        "{err}"
    );
    assert!(err.contains("the same command resumes it"), "{err}");
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
}
