//! get, ls, resume after every kind of interruption, integrity checks and
//! the overwrite policy, through the real binaries.

use std::fs;
use std::time::Duration;

use crate::support::*;

const BIG: usize = 16 * 1024 * 1024;

/// Starts a rate-limited put of `name` and SIGKILLs the client once the
/// server holds at least `at_least` bytes of partial data.
fn killed_put(sb: &Sandbox, server: &ServerProcess, name: &str, at_least: u64) -> u64 {
    let mut child = ClientRun::new(sb, server, &["--limit-rate", "4MiB", "put", name]).spawn();
    let partial = sb.root().join(".ftp-partial").join(name);
    let reached = wait_until(Duration::from_secs(30), || size_of(&partial) >= at_least);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the upload never got going");
    server.wait_for_event(&[
        ("cmd", "put"),
        ("path", &format!("/{name}")),
        ("result", "aborted"),
    ]);
    assert!(
        !sb.root().join(name).exists(),
        "nothing under the final name yet"
    );
    size_of(&partial)
}

fn resumed_at(stdout: &str) -> u64 {
    let at = stdout.find("resumed at byte ").expect("says it resumed") + "resumed at byte ".len();
    stdout[at..]
        .split(';')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn put_killed_with_sigkill_resumes_and_sends_only_the_rest() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(BIG, 10);
    sb.local_file("big.bin", &data);
    let kept = killed_put(&sb, &server, "big.bin", 2 * 1024 * 1024);

    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let offset = resumed_at(&text);
    assert!(offset >= kept && offset < BIG as u64, "{text}");
    // The rate counts only this run's bytes.
    let rest = BIG as u64 - offset;
    assert!(
        text.contains(&format!(
            "stored big.bin ({BIG} bytes; resumed at byte {offset}"
        )),
        "{text}"
    );
    let put = server.wait_for_event(&[("cmd", "put"), ("path", "/big.bin"), ("result", "ok")]);
    assert_eq!(put["resumed"], true, "{put}");
    assert_eq!(put["bytes"], rest, "{put}");
    assert!(
        message(&put).contains(&format!("resumed at {offset} ")),
        "{put}"
    );
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), data);
    assert!(!sb.root().join(".ftp-partial/big.bin").exists());
}

#[test]
fn corrupted_partial_data_is_detected_and_never_committed() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(BIG, 11);
    sb.local_file("big.bin", &data);
    killed_put(&sb, &server, "big.bin", 1024 * 1024);
    let partial = sb.root().join(".ftp-partial/big.bin");
    let mut bytes = fs::read(&partial).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&partial, &bytes).unwrap();

    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(
        &out,
        "the server's partial data did not match, so it was sent again",
    );
    let put = [("cmd", "put"), ("path", "/big.bin")];
    server.wait_for_event(&[put[0], put[1], ("result", "ok")]);
    let refused = [
        put[0],
        put[1],
        ("result", "error"),
        ("code", "digest_mismatch"),
    ];
    assert!(
        !server.events_with(&refused).is_empty(),
        "{}",
        server.log_text()
    );
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), data);
}

#[test]
fn upload_resumes_after_a_server_restart() {
    let sb = Sandbox::new();
    let data = pattern(BIG, 12);
    sb.local_file("big.bin", &data);
    let mut server = sb.start_server(&[]);
    let mut child =
        ClientRun::new(&sb, &server, &["--limit-rate", "4MiB", "put", "big.bin"]).spawn();
    let partial = sb.root().join(".ftp-partial/big.bin");
    assert!(wait_until(Duration::from_secs(30), || size_of(&partial) >= 1024 * 1024));
    server.kill(); // SIGKILL: no chance to clean up
    let status = wait_limited(&mut child, Duration::from_secs(30));
    assert!(
        !status.success(),
        "the client must report the lost connection"
    );
    assert!(
        !sb.root().join("big.bin").exists(),
        "no torn file after a crash"
    );

    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(resumed_at(&stdout(&out)) > 0);
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), data);
}

#[test]
fn get_killed_with_sigkill_resumes_and_corruption_is_caught() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(BIG, 13);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("big.bin"), &data).unwrap();
    let partial = sb.work().join(".big.bin.ftp-part");

    for corrupt in [false, true] {
        let _ = fs::remove_file(sb.work().join("big.bin"));
        let mut child =
            ClientRun::new(&sb, &server, &["--limit-rate", "4MiB", "get", "big.bin"]).spawn();
        let reached = wait_until(Duration::from_secs(30), || {
            size_of(&partial) >= 2 * 1024 * 1024
        });
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(reached);
        assert!(!sb.work().join("big.bin").exists());
        if corrupt {
            let mut bytes = fs::read(&partial).unwrap();
            bytes[7] ^= 1;
            fs::write(&partial, &bytes).unwrap();
        }
        let out = ClientRun::new(&sb, &server, &["get", "big.bin"]).run();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        if corrupt {
            assert!(
                text.contains("the local partial data did not match, so it was fetched again"),
                "{text}"
            );
        } else {
            assert!(resumed_at(&text) >= 2 * 1024 * 1024, "{text}");
        }
        assert_eq!(fs::read(sb.work().join("big.bin")).unwrap(), data);
        assert!(!partial.exists());
    }
}

#[test]
fn get_of_a_missing_file_fails_clearly_and_leaves_nothing() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["get", "absent.txt"]).run();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: server refused (not found): no such file: absent.txt\n"
    );
    let left: Vec<_> = fs::read_dir(sb.work()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // A path that climbs stops at the home folder, as cd does: /etc is
    // looked for inside it, and nothing is written here.
    let out = ClientRun::new(&sb, &server, &["get", "../../etc/passwd"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "no such folder: /etc");
    assert!(fs::read_dir(sb.work()).unwrap().next().is_none());
}

#[test]
fn get_round_trip_and_to_a_chosen_path() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(3 * 1024 * 1024 + 1, 14);
    sb.local_file("up.bin", &data);
    sb.local_file("empty", b"");
    // Two names would be LOCAL REMOTE: one command each.
    let out = ClientRun::new(&sb, &server, &[]).run_with_input("put up.bin\nput empty\n");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::create_dir(sb.work().join("down")).unwrap();
    let script = "get up.bin down/copy.bin\nget up.bin down\nget empty down/e\n";
    let out = ClientRun::new(&sb, &server, &[]).run_with_input(script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.work().join("down/copy.bin")).unwrap(), data);
    assert_eq!(fs::read(sb.work().join("down/up.bin")).unwrap(), data);
    assert_eq!(fs::read(sb.work().join("down/e")).unwrap(), b"");
}

#[test]
fn ls_on_an_empty_root_and_on_many_files() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "(no files)\n");

    for i in 0..300 {
        fs::write(sb.root().join(format!("file{i:03}.txt")), vec![b'x'; i]).unwrap();
    }
    fs::create_dir(sb.root().join("folder")).unwrap();
    fs::write(sb.root().join("evil\u{1b}[2Jname"), b"").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sb.root().join("link")).unwrap();
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 302, "{text}");
    assert!(lines[0].ends_with("  evil\\u{1b}[2Jname"), "{}", lines[0]);
    assert!(lines[1].trim_start().starts_with("0  ") && lines[1].ends_with("  file000.txt"));
    assert!(lines[300].trim_start().starts_with("299  ") && lines[300].ends_with("file299.txt"));
    assert!(lines[301].ends_with("  folder/"));
    assert!(
        !text.contains('\u{1b}'),
        "no raw escape reaches the terminal"
    );
    assert!(!text.contains("link"), "links are not listed");
}

#[test]
fn overwrite_replaces_by_default_and_can_be_refused() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("f.txt", b"first");
    assert!(ClientRun::new(&sb, &server, &["put", "f.txt"])
        .run()
        .status
        .success());
    sb.local_file("f.txt", b"second version");
    let out = ClientRun::new(&sb, &server, &["put", "f.txt"]).run();
    assert_stdout_has(&out, "replaced the existing file");
    assert_eq!(
        fs::read(sb.root().join("f.txt")).unwrap(),
        b"second version"
    );
    drop(server);

    let server = sb.start_server(&["--no-overwrite"]);
    sb.local_file("f.txt", b"third");
    let out = ClientRun::new(&sb, &server, &["put", "f.txt"]).run();
    assert!(!out.status.success());
    assert_stderr_has(
        &out,
        "server refused (exists): f.txt already exists and this server does not overwrite files",
    );
    assert_eq!(
        fs::read(sb.root().join("f.txt")).unwrap(),
        b"second version"
    );
    sb.local_file("g.txt", b"new name is fine");
    assert!(ClientRun::new(&sb, &server, &["put", "g.txt"])
        .run()
        .status
        .success());
}

#[test]
fn get_does_not_follow_links_out_of_the_root() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    let secret = sb.path().join("outside.txt");
    fs::write(&secret, b"private").unwrap();
    std::os::unix::fs::symlink(&secret, sb.root().join("door")).unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "door"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "symbolic link");
    assert!(!sb.work().join("door").exists());
    // A put to that name is refused; the file behind the link is untouched.
    sb.local_file("door", b"replacement");
    let out = ClientRun::new(&sb, &server, &["put", "door"]).run();
    assert_stderr_has(&out, "door exists and is not a regular file");
    assert_eq!(fs::read(&secret).unwrap(), b"private");
}

#[test]
fn get_does_not_write_through_a_planted_partial_download_link() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("report.txt"), b"the server's report").unwrap();
    let victim = sb.path().join("victim.txt");
    fs::write(&victim, b"the user's own file").unwrap();
    let planted = sb.work().join(".report.txt.ftp-part");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "report.txt"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, ".report.txt.ftp-part is a symbolic link");
    assert_eq!(fs::read(&victim).unwrap(), b"the user's own file");
    assert!(!sb.work().join("report.txt").exists());
    // Once the link is gone the same command works.
    fs::remove_file(&planted).unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "report.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(sb.work().join("report.txt")).unwrap(),
        b"the server's report"
    );
}

#[test]
fn put_r_uploads_a_tree_and_skips_links() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let tree = sb.work().join("tree");
    fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    fs::create_dir_all(tree.join("empty")).unwrap();
    fs::write(tree.join("a.txt"), b"top").unwrap();
    let big = pattern(200_000, 50);
    fs::write(tree.join("sub/b.bin"), &big).unwrap();
    fs::write(tree.join("sub/deeper/c.txt"), b"deep").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();

    let out = ClientRun::new(&sb, &server, &[]).run_with_input("put -r tree\npwd\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("put: 3 files, 195.32 KiB moved"),
        "one summary line: {text}"
    );
    assert!(
        text.ends_with("/\n"),
        "returns to the folder it started in: {text}"
    );
    assert!(
        stderr(&out).contains("skipped") && stderr(&out).contains("link"),
        "{}",
        stderr(&out)
    );
    let root = sb.root().join("tree");
    assert_eq!(fs::read(root.join("a.txt")).unwrap(), b"top");
    assert_eq!(fs::read(root.join("sub/b.bin")).unwrap(), big);
    assert_eq!(fs::read(root.join("sub/deeper/c.txt")).unwrap(), b"deep");
    assert!(root.join("empty").is_dir());
    assert!(!root.join("link").exists());

    // Again: nothing differs, so nothing is sent.
    let out = ClientRun::new(&sb, &server, &["put", "-r", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("put: 0 files"), "{}", stdout(&out));
    // With --force-all the folders exist already, the files are replaced;
    // -v names every file.
    let out = ClientRun::new(&sb, &server, &["put", "-rv", "--force-all", "tree"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("stored tree/a.txt (3 bytes")
            && text.contains("stored tree/sub/deeper/c.txt (4 bytes"),
        "{text}"
    );
}

#[test]
fn a_killed_put_run_again_at_once_takes_the_upload_over_every_time() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(3 << 20, 77);
    sb.local_file("again.bin", &data);
    let partial = sb.root().join(".ftp-partial/again.bin");
    for round in 0..20 {
        let mut child =
            ClientRun::new(&sb, &server, &["--limit-rate", "8MiB", "put", "again.bin"]).spawn();
        // Kill it once it has sent something, without waiting for the
        // server to notice.
        assert!(wait_until(Duration::from_secs(10), || size_of(&partial)
            > 0
            || sb.root().join("again.bin").exists()));
        child.kill().unwrap();
        child.wait().unwrap();
        let out = ClientRun::new(&sb, &server, &["put", "again.bin"]).run();
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        assert_eq!(
            fs::read(sb.root().join("again.bin")).unwrap(),
            data,
            "round {round}"
        );
        fs::remove_file(sb.root().join("again.bin")).unwrap();
    }
}

#[test]
fn rm_also_removes_a_partial_upload_nobody_is_running() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&serde_json::json!({"cmd":"put","filename":"left.bin","filesize":1_000_000}));
    raw.send(&pattern(300_000, 4));
    drop(raw);
    server.wait_for_event(&[("cmd", "put"), ("path", "/left.bin"), ("result", "aborted")]);
    let partial = sb.root().join(".ftp-partial/left.bin");
    assert_eq!(size_of(&partial), 300_000);
    let out = ClientRun::new(&sb, &server, &["rm", "left.bin"]).run();
    assert_eq!(stdout(&out), "removed left.bin\n", "{}", stderr(&out));
    assert!(!partial.exists(), "the space is free again");
    let out = ClientRun::new(&sb, &server, &["rm", "left.bin"]).run();
    assert_stderr_has(&out, "no such file");
}
