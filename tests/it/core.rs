//! The core product, end to end: the real binaries on loopback.

use std::fs;
use std::time::Duration;

use crate::support::*;
use serde_json::json;

#[test]
fn put_of_empty_small_and_multi_megabyte_files_arrives_identical() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let big = pattern(5 * 1024 * 1024 + 13, 1);
    sb.local_file("empty.txt", b"");
    sb.local_file("small.txt", b"hello, world\n");
    sb.local_file("big.bin", &big);
    let out = ClientRun::new(&sb, &server, &["put", "empty.txt", "small.txt", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("stored empty.txt (0 bytes"), "{text}");
    assert!(text.contains("stored small.txt (13 bytes"), "{text}");
    assert!(
        text.contains(&format!("stored big.bin ({} bytes", big.len())),
        "{text}"
    );
    assert_eq!(fs::read(sb.root().join("empty.txt")).unwrap(), b"");
    assert_eq!(
        fs::read(sb.root().join("small.txt")).unwrap(),
        b"hello, world\n"
    );
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), big);
    // The log line is written just after the reply.
    let put = server.wait_for_event(&[("cmd", "put"), ("path", "/big.bin"), ("result", "ok")]);
    assert_eq!(put["bytes"], 5242893, "{put}");
    assert_eq!(put["digest"], blake3::hash(&big).to_hex().as_str(), "{put}");
}

#[test]
fn wrong_secret_is_refused_and_logged() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("a.txt", b"x");
    let out = ClientRun::new(&sb, &server, &["put", "a.txt"])
        .env("FTP_SECRET", "not the secret")
        .run();
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("error: authentication failed"),
        "{}",
        stderr(&out)
    );
    assert_stderr_has(&out, "the secret from FTP_SECRET");
    assert!(!sb.root().join("a.txt").exists());
    server.wait_for_event(&[("event", "login"), ("result", "failed")]);
    // From a file: the error names the file to check.
    let copied = sb.path().join("copied-secret");
    std::fs::write(&copied, "a bad copy").unwrap();
    let file = copied.display().to_string();
    let out = ClientRun::new(&sb, &server, &["--secret-file", &file, "put", "a.txt"])
        .env_remove("FTP_SECRET")
        .run();
    assert_stderr_has(&out, &format!("the secret from the secret file {file}"));
    // Raw: the server sends an auth_failed frame, then closes.
    let mut raw = Raw::login(server.addr, b"wrong");
    assert_eq!(raw.reply().unwrap()["code"], "auth_failed");
    assert!(raw.closed_within(Duration::from_secs(5)));
}

#[test]
fn unauthenticated_peer_gets_nothing_read() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    // A put header instead of the 16-byte answer: it is taken as a (wrong)
    // answer and nothing is stored.
    let mut raw = Raw::connect(server.addr);
    let mut challenge = [0u8; 32];
    std::io::Read::read_exact(&mut raw.stream, &mut challenge).unwrap();
    raw.send_json(&json!({"cmd":"put","filename":"sneaky","filesize":3}));
    raw.send(b"abc");
    assert_eq!(raw.reply().unwrap()["code"], "auth_failed");
    assert!(!sb.root().join("sneaky").exists());
}

#[test]
fn traversal_names_write_nothing_outside_the_root() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let names = [
        "..\\escape.txt",
        "..",
        ".",
        "",
        "C:escape.txt",
        "a\u{0}b",
        "new\nline",
        "\u{1b}[31mred",
        "%2e%2e%2fescape.txt",
        ".ftp-partial",
        "sub/",
        "sub/..",
    ];
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    for name in names {
        // Seed-style: the body follows at once; the server drains it and
        // stays in step.
        raw.send_json(&json!({"cmd":"put","filename":name,"filesize":4}));
        raw.send(b"evil");
        let reply = raw.reply().expect("a reply");
        assert_eq!(reply["status"], "error", "{name:?}: {reply}");
        assert_eq!(reply["code"], "bad_name", "{name:?}: {reply}");
    }
    // Paths resolve inside the home, `..` stopping at it: into a folder
    // that is not there (not_found), or the home itself.
    for (name, code) in [
        ("/tmp/escape.txt", "not_found"),
        ("//server/share", "not_found"),
        ("sub/escape.txt", "not_found"),
        ("....//escape.txt", "not_found"),
        ("../escape.txt", "ok"),
    ] {
        raw.send_json(&json!({"cmd":"put","filename":name,"filesize":4}));
        raw.send(b"evil");
        let reply = raw.reply().expect("a reply");
        let got = reply["code"].as_str().unwrap_or("ok");
        assert_eq!(got, code, "{name:?}: {reply}");
    }
    // The connection still works after all of that.
    raw.send_json(&json!({"cmd":"echo","text":"still here"}));
    assert_eq!(raw.reply().unwrap()["text"], "STILL HERE");
    let outside: Vec<_> = fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!outside.iter().any(|n| n.contains("escape")), "{outside:?}");
    assert!(!std::path::Path::new("/tmp/escape.txt").exists());
    let inside: Vec<_> = fs::read_dir(sb.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".ftp-partial")
        .collect();
    assert_eq!(inside, ["escape.txt"], "only the one that came home");
}

#[test]
fn echo_unknown_command_and_one_shot_mode() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["echo", "hello", "seed"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "HELLO SEED\n");

    let out = ClientRun::new(&sb, &server, &["frobnicate"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "unknown command \"frobnicate\"; type 'help'");

    // The server answers an unknown command with an error and keeps going.
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"frobnicate","x":1}));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "unknown_command");
    raw.send_json(&json!({"cmd":"echo","text":"ok?","extra":"ignored"}));
    assert_eq!(raw.reply().unwrap()["text"], "OK?");
}

#[test]
fn piped_stdin_runs_commands_and_reports_failures_in_exit_status() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("a.txt", b"aaa");
    let script = "echo one\n\nput a.txt\nput missing.txt\nnonsense\necho two\n";
    let out = ClientRun::new(&sb, &server, &[]).run_with_input(script);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "a failed command must fail the run");
    assert!(
        !o.contains(">>:"),
        "no prompt when stdin is not a terminal: {o}"
    );
    assert!(o.starts_with("ONE\nstored a.txt (3 bytes"), "{o}");
    assert!(
        o.ends_with("TWO\n"),
        "the session goes on after errors: {o}"
    );
    assert!(
        e.contains("error: put missing.txt: cannot read missing.txt"),
        "{e}"
    );
    assert!(e.contains("unknown command \"nonsense\""), "{e}");
    assert_eq!(fs::read(sb.root().join("a.txt")).unwrap(), b"aaa");

    let out = ClientRun::new(&sb, &server, &[]).run_with_input("echo fine\nquit\necho never\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "FINE\n");
}

#[test]
fn client_killed_mid_upload_leaves_nothing_under_the_final_name() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"torn.bin","filesize":1_000_000}));
    raw.send(&pattern(300_000, 2));
    let partial = sb.root().join(".ftp-partial").join("torn.bin");
    let arrived = wait_until(Duration::from_secs(30), || size_of(&partial) == 300_000);
    assert!(
        arrived,
        "the partial file holds {} bytes of 300000; log: {}",
        size_of(&partial),
        server.log_text()
    );
    drop(raw);
    server.wait_for_event(&[("cmd", "put"), ("path", "/torn.bin"), ("result", "aborted")]);
    assert!(!sb.root().join("torn.bin").exists());
    // The listing does not show it either.
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    assert_eq!(stdout(&out), "(no files)\n");
}

#[test]
fn malformed_header_gets_an_error_then_a_clean_close_and_the_server_lives() {
    let sb = Sandbox::new();
    let mut server = sb.start_server(&[]);
    let bad: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"cmd":"put","filename":"a","filesize":-5}"#.to_vec(),
        br#"{"cmd":"put","filename":"a","filesize":"12"}"#.to_vec(),
        br#"{"cmd":42}"#.to_vec(),
        vec![0xff, 0xfe, 0xfd],
    ];
    for body in bad {
        let mut raw = Raw::login(server.addr, SECRET.as_bytes());
        raw.send_frame(&body);
        let reply = raw.reply().expect("an error reply");
        assert_eq!(reply["code"], "bad_request", "{reply}");
        assert!(raw.closed_within(Duration::from_secs(5)));
    }
    // Oversized and negative lengths, refused before reading a body.
    for len in [100_000_000i32, 65_537, -1] {
        let mut raw = Raw::login(server.addr, SECRET.as_bytes());
        raw.send(&len.to_le_bytes());
        let reply = raw.reply().expect("an error reply");
        assert_eq!(reply["code"], "bad_request", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains("frame"),
            "{reply}"
        );
    }
    assert!(server.is_running());
    let out = ClientRun::new(&sb, &server, &["echo", "alive"]).run();
    assert_eq!(stdout(&out), "ALIVE\n");
}

#[test]
fn zero_setup_secret_file_is_created_and_shared() {
    let sb = Sandbox::new();
    let server = ServerProcess::start(&sb, &[], None);
    let secret_file = sb.home().join(".config/ftp/secret");
    let created = server.wait_for_said(&[("event", "start")], "created a new random secret");
    assert!(
        message(&created).contains(secret_file.to_str().unwrap()),
        "{created}"
    );
    // The line for another machine says where the copy goes, and to make
    // its folder first.
    let elsewhere = server.wait_for_said(&[("event", "start")], "from another machine");
    let log = message(&elsewhere);
    let copy = format!(
        "copy {} to ~/.config/ftp/secret there (it holds the secret; mkdir -p ~/.config/ftp",
        secret_file.display()
    );
    assert!(log.contains(&copy), "{log}");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = fs::read_to_string(&secret_file).unwrap();
    assert!(!log.contains(&secret), "the secret must not be logged");
    sb.local_file("file.txt", b"zero config");
    let out = ClientRun::new(&sb, &server, &["put", "file.txt"])
        .env_remove("FTP_SECRET")
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(sb.root().join("file.txt")).unwrap(),
        b"zero config"
    );
}

/// The permission bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// This process's umask, which the servers it starts inherit.
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// The warning the server logs for a secret or key file others can read.
fn exposure(path: &std::path::Path, mode: &str) -> String {
    let p = path.display();
    format!("{p} holds secrets but other users can read it (mode {mode}); run: chmod 600 {p}")
}

#[test]
fn key_and_secret_files_others_can_read_are_named_at_start() {
    let sb = Sandbox::new();
    let bob = sb.path().join("bob.key");
    fs::write(&bob, "bob's own key\n").unwrap();
    chmod(&bob, 0o640);
    let users = sb.path().join("users.toml");
    fs::write(
        &users,
        "[[user]]\nname = \"bob\"\nsecret_file = \"bob.key\"\n",
    )
    .unwrap();
    chmod(&users, 0o600);
    let tls_dir = sb.path().join("tls");
    let args = [
        "--users",
        users.to_str().unwrap(),
        "--tls-dir",
        tls_dir.to_str().unwrap(),
    ];
    let mut server = sb.start_server(&args);
    server.wait_for_said(&[("event", "warning")], &exposure(&bob, "640"));
    server.kill();
    let key = tls_dir.join("server-key.pem");
    chmod(&key, 0o644);
    let server = sb.start_server(&args);
    server.wait_for_said(&[("event", "warning")], &exposure(&key, "644"));
    drop(server);
    // The default secret file, created private, then opened up by hand.
    let mut server = ServerProcess::start(&sb, &[], None);
    let default = sb.home().join(".config/ftp/secret");
    server.wait_for_said(&[("event", "start")], "created a new random secret");
    server.kill();
    chmod(&default, 0o604);
    let server = ServerProcess::start(&sb, &[], None);
    server.wait_for_said(&[("event", "warning")], &exposure(&default, "604"));
}

#[test]
fn stored_files_and_folders_are_private_unless_shared() {
    for (flags, file, dir) in [(&[][..], 0o600, 0o700), (&["--shared-files"], 0o644, 0o755)] {
        let sb = Sandbox::new();
        let server = sb.start_server(flags);
        sb.local_file("a.txt", b"mine");
        let out = ClientRun::new(&sb, &server, &[]).run_with_input("put a.txt\nmkdir docs\n");
        assert!(out.status.success(), "{}", stderr(&out));
        // The umask the server inherits takes its bits away.
        let (file, dir) = (file & !umask(), dir & !umask());
        assert_eq!(mode_of(&sb.root().join("a.txt")), file, "{flags:?}");
        assert_eq!(mode_of(&sb.root().join("docs")), dir, "{flags:?}");
        assert_eq!(mode_of(&sb.root()), dir, "{flags:?}");
        // The secret came from the environment, yet the folder that holds
        // the TLS key is private.
        assert_eq!(mode_of(&sb.home().join(".config/ftp")), 0o700);
    }
}

#[test]
fn secret_file_flag_and_missing_secret_messages() {
    let sb = Sandbox::new();
    let key = sb.path().join("key");
    fs::write(&key, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let server = ServerProcess::start(&sb, &["--secret-file", key.to_str().unwrap()], None);
    let exposed = "other users can read it (mode 644); run: chmod 600";
    server.wait_for_said(&[("event", "warning")], exposed);
    let out = ClientRun::new(
        &sb,
        &server,
        &["--secret-file", key.to_str().unwrap(), "echo", "k"],
    )
    .env_remove("FTP_SECRET")
    .run();
    assert_eq!(stdout(&out), "K\n", "{}", stderr(&out));
    assert_stderr_has(&out, &format!("warning: {}", exposure(&key, "644")));
    // The seed's key, from the environment, matches the file's.
    let out = ClientRun::new(&sb, &server, &["echo", "e"]).run();
    assert_eq!(stdout(&out), "E\n", "{}", stderr(&out));
    // No secret anywhere: a clear message, not a crash.
    let out = ClientRun::new(&sb, &server, &["echo", "x"])
        .env_remove("FTP_SECRET")
        .env("HOME", sb.path().join("nohome").to_str().unwrap())
        .run();
    assert!(!out.status.success());
    let said = stderr(&out);
    let file = sb.path().join("nohome/.config/ftp/secret");
    assert!(
        said.starts_with(&format!(
            "error: no secret: {} does not exist",
            file.display()
        )),
        "{said}"
    );
    // Both cases: copy the server's file here, or start a server here.
    assert!(
        said.contains("copy the secret file its log names"),
        "{said}"
    );
    assert!(said.contains("start ftp-server once"), "{said}");
}

#[test]
fn missing_local_file_is_a_local_error() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["put", "nope.txt"]).run();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("error: put nope.txt: cannot read nope.txt: No such file"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one failed file, one error line: {e}");
}

#[test]
fn seed_python_client_uploads_intact() {
    if !require("python3, to run the seed client", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let text = sb.local_file(
        "notes.txt",
        b"line one\nline two\n\nlast line without newline",
    );
    let blob = sb.local_file("blob.bin", &pattern(2 * 1024 * 1024 + 7, 3));
    let out = seed_client(&server, SECRET, &[&text, &blob]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for_event(&[("cmd", "put"), ("path", "/blob.bin"), ("result", "ok")]);
    assert_eq!(
        fs::read(sb.root().join("notes.txt")).unwrap(),
        fs::read(&text).unwrap()
    );
    assert_eq!(
        fs::read(sb.root().join("blob.bin")).unwrap(),
        fs::read(&blob).unwrap()
    );
}

#[test]
fn verbose_logs_each_header_and_quiet_logs_nothing() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["-v"]);
    let out = ClientRun::new(&sb, &server, &["echo", "loud"]).run();
    assert!(out.status.success());
    server.wait_for_event(&[("event", "command"), ("cmd", "echo"), ("result", "ok")]);
    let header = r#"header of 28 bytes: {"cmd":"echo","text":"loud"}"#;
    server.wait_for_said(&[("event", "debug")], header);
    let log = server.log_text();
    assert!(!log.contains(SECRET), "the secret is never logged");
    drop(server);

    let server = sb.start_server(&["-q"]);
    let out = ClientRun::new(&sb, &server, &["echo", "hush"]).run();
    assert!(out.status.success());
    assert_eq!(server.log_text(), "");
}
