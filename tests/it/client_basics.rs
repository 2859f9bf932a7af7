//! What a user of the client counts on: it keeps its server folder across
//! reconnects, gives up on a dead link and says the same command resumes,
//! finds servers by name with the default port, shows its help with no
//! server, and does not replace a local file behind the user's back.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::freezer::Freezer;
use crate::support::relay::{Meddle, Relay};
use crate::support::*;

/// A scripted session whose input comes in parts: `parts[i]` is written
/// after waiting `parts[i].0` ms; stdin closes after the last.
fn session_in_parts(mut run: ClientRun, parts: &[(u64, &str)]) -> Output {
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = run.cmd.spawn().expect("spawn ftp-client");
    let mut input = child.stdin.take().unwrap();
    let parts: Vec<(u64, String)> = parts.iter().map(|(d, t)| (*d, t.to_string())).collect();
    let writer = thread::spawn(move || {
        for (delay, text) in parts {
            thread::sleep(Duration::from_millis(delay));
            let _ = input.write_all(text.as_bytes());
        }
    });
    let out = wait_output(child, CLIENT_LIMIT);
    writer.join().unwrap();
    out
}

#[test]
fn after_the_servers_idle_cut_off_the_client_goes_back_to_its_folder() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--idle-timeout", "1"]);
    sb.local_file("a.txt", b"into the folder");
    let run = ClientRun::new(&sb, &server, &[]);
    let out = session_in_parts(
        run,
        &[
            (0, "mkdir tree/sub\ncd tree/sub\n"),
            // Past the server's idle timeout: the connection is closed.
            (2500, "put a.txt\npwd\n"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stderr_has(&out, "reconnected");
    assert_eq!(
        fs::read(sb.root().join("tree/sub/a.txt")).unwrap(),
        b"into the folder"
    );
    assert!(!sb.root().join("a.txt").exists(), "it landed in /");
    assert!(stdout(&out).ends_with("/tree/sub\n"), "{}", stdout(&out));
}

#[test]
fn a_folder_removed_meanwhile_refuses_the_command_until_cd() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--idle-timeout", "1"]);
    sb.local_file("a.txt", b"not in the wrong place");
    let root = sb.root();
    let run = ClientRun::new(&sb, &server, &[]);
    let mut child = {
        let mut cmd = run.cmd;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"mkdir gone\ncd gone\n").unwrap();
    assert!(wait_until(Duration::from_secs(10), || root
        .join("gone")
        .is_dir()));
    thread::sleep(Duration::from_millis(500));
    fs::remove_dir(root.join("gone")).unwrap();
    thread::sleep(Duration::from_millis(2000));
    input
        .write_all(b"put a.txt\nls\ncd ..\nput a.txt\n")
        .unwrap();
    drop(input);
    let out = wait_output(child, CLIENT_LIMIT);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the server folder /gone could not be entered again")
            && err.contains("so nothing was run; cd to a folder to go on"),
        "{err}"
    );
    // put and ls were refused; `cd ..` from the lost folder went home, and
    // the second put landed there, on purpose.
    assert_eq!(
        err.matches("could not be entered again").count(),
        2,
        "{err}"
    );
    assert_eq!(
        fs::read(root.join("a.txt")).unwrap(),
        b"not in the wrong place"
    );
    assert!(stdout(&out).lines().any(|l| l == "/"), "{}", stdout(&out));
}

/// Runs `args` through `proxy` with a 2 s stall timeout; returns the
/// output and how long it took.
fn through(sb: &Sandbox, proxy: &Freezer, args: &[&str]) -> (Output, Duration) {
    let mut all = vec!["--stall-timeout", "2"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let out = ClientRun::to(sb, &proxy.addr.to_string(), &all).run();
    (out, started.elapsed())
}

#[track_caller]
fn assert_lost_and_resumable(out: &Output, took: Duration) {
    let err = stderr(out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("error: ") && err.contains("connection lost ("),
        "{err}"
    );
    assert!(err.contains("run the same command to resume"), "{err}");
    assert!(took < Duration::from_secs(8), "took {took:?}: {err}");
}

#[test]
fn a_dead_link_stalls_an_upload_a_download_and_a_reply_wait() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    // Larger than every socket buffer on the way, so that writes block.
    let data = pattern(48 << 20, 5);
    sb.local_file("up.bin", &data);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("down.bin"), &data).unwrap();

    let up = Freezer::start(server.addr, Some(1 << 20), None);
    let (out, took) = through(&sb, &up, &["put", "up.bin"]);
    assert_lost_and_resumable(&out, took);
    assert_stderr_has(&out, "nothing moved for 2 s");

    let down = Freezer::start(server.addr, None, Some(1 << 20));
    let (out, took) = through(&sb, &down, &["get", "down.bin"]);
    assert_lost_and_resumable(&out, took);
    assert!(size_of(&sb.work().join(".down.bin.ftp-part")) > 0, "kept");

    // A reply that never comes: the link dies between two commands.
    let quiet = Freezer::start(server.addr, None, None);
    let run = ClientRun::to(&sb, &quiet.addr.to_string(), &["--stall-timeout", "2"]);
    let mut run = run;
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = run.cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"pwd\n").unwrap();
    thread::sleep(Duration::from_millis(1000));
    quiet.freeze();
    // Until the forwarding threads have seen it.
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    input.write_all(b"quota\n").unwrap();
    drop(input);
    let out = wait_output(child, CLIENT_LIMIT);
    assert_lost_and_resumable(&out, started.elapsed());
    assert_stdout_has(&out, "/");
}

#[test]
fn a_broken_pipe_and_the_servers_cut_off_say_the_same_command_resumes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--idle-timeout", "2"]);
    let data = pattern(48 << 20, 6);
    sb.local_file("big.bin", &data);
    // The path is cut mid-upload.
    let relay = Relay::start(server.addr, Meddle::CutAt(1 << 20));
    let started = Instant::now();
    let out = ClientRun::to(&sb, &relay.addr_string(), &["put", "big.bin"]).run();
    assert_lost_and_resumable(&out, started.elapsed());
    // The client's bytes stop reaching the server, which gives up after its
    // idle timeout and hangs up; the client's stall timeout is far off.
    let proxy = Freezer::start(server.addr, Some(1 << 20), None);
    let started = Instant::now();
    let out = ClientRun::to(
        &sb,
        &proxy.addr.to_string(),
        &["--stall-timeout", "60", "put", "big.bin"],
    )
    .run();
    assert_lost_and_resumable(&out, started.elapsed());
    // And the same command, on a working path, resumes.
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), data);
}

/// A loopback address whose port 8080 is free (others may hold
/// 127.0.0.1:8080).
fn free_8080() -> String {
    for last in 2..60 {
        let ip = format!("127.80.80.{last}");
        if TcpListener::bind((ip.as_str(), 8080)).is_ok() {
            return ip;
        }
    }
    panic!("no 127.80.80.x address has port 8080 free");
}

#[test]
fn servers_are_found_without_a_port_and_from_ftp_server() {
    let sb = Sandbox::new();
    let ip = free_8080();
    // An IP alone listens on port 8080; a host alone dials it.
    let server = sb.start_server(&["--listen", &ip]);
    assert_eq!(server.addr_string(), format!("{ip}:8080"));
    let out = ClientRun::to(&sb, &ip, &["echo", "no port"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "NO PORT");
    // No --server: FTP_SERVER names it.
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-client"))
        .args(["echo", "from the environment"])
        .current_dir(sb.work())
        .env("HOME", sb.home())
        .env_remove("XDG_CONFIG_HOME")
        .env("FTP_SECRET", SECRET)
        .env("FTP_SERVER", &ip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "FROM THE ENVIRONMENT");
    let bad = ClientRun::to(&sb, "host:port", &["ls"]).run();
    assert!(!bad.status.success());
    assert_stderr_has(
        &bad,
        "error: --server: invalid server address \"host:port\"",
    );
    assert_stderr_has(&bad, "e.g. --server");
}

#[test]
fn listen_takes_a_bare_port_for_every_interface() {
    let sb = Sandbox::new();
    let port = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = sb.start_server(&["--listen", &format!(":{port}")]);
    assert_eq!(server.addr_string(), format!("0.0.0.0:{port}"));
    let out = ClientRun::to(&sb, &format!("127.0.0.1:{port}"), &["echo", "hi"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "HI");
    let bad = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .args(["--listen", "all:8080"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(err.contains("invalid listen address"), "{err}");
    assert!(err.contains("e.g. --listen 8080"), "{err}");
}

#[test]
fn help_needs_no_server_and_no_secret() {
    let sb = Sandbox::new();
    let client = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        c.current_dir(sb.work())
            .env("HOME", sb.home())
            .env_remove("FTP_SECRET")
            .env_remove("FTP_SERVER")
            .env_remove("XDG_CONFIG_HOME");
        c
    };
    // Nothing listens on port 1.
    let out = client()
        .args(["--server", "127.0.0.1:1", "help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "download files");
    let out = client().arg("--help").output().unwrap();
    assert_stdout_has(&out, "mkdir PATH");
    let out = client().arg("man").output().unwrap();
    assert_stdout_has(&out, "mkdir PATH");
    let out = client().args(["completions", "bash"]).output().unwrap();
    let script = stdout(&out);
    let top = script
        .lines()
        .find(|l| l.contains("opts=\"") && l.contains("--server"))
        .unwrap_or_else(|| panic!("{script}"));
    for word in ["put", "get", "ls", "mkdir", "quota", "help"] {
        assert!(top.contains(&format!(" {word} ")), "{word}: {top}");
    }
}

#[test]
fn get_replaces_a_different_local_file_with_a_note_and_force_says_nothing() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("a.txt"), b"the server's copy").unwrap();
    let local = sb.local_file("a.txt", b"mine");
    let out = ClientRun::new(&sb, &server, &["get", "a.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stderr_has(&out, "note: replaced the existing local file a.txt");
    assert_eq!(fs::read(&local).unwrap(), b"the server's copy");
    // The same bytes: nothing is replaced, nothing said.
    let out = ClientRun::new(&sb, &server, &["get", "a.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("replaced"), "{}", stderr(&out));
    fs::write(&local, b"mine again").unwrap();
    let out = ClientRun::new(&sb, &server, &["--force", "get", "a.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("replaced"), "{}", stderr(&out));
    assert_eq!(fs::read(&local).unwrap(), b"the server's copy");
}

#[test]
fn at_a_terminal_get_asks_before_replacing_a_different_file() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("a.txt"), b"the server's copy").unwrap();
    fs::write(sb.root().join("b.txt"), b"same size!").unwrap();
    let a = sb.local_file("a.txt", b"mine");
    let b = sb.local_file("b.txt", b"SAME SIZE!");
    let keys: Vec<(u64, &[u8])> = vec![
        (400, b"get a.txt\r"),
        (600, b"n\r"),
        (400, b"get b.txt\r"),
        (600, b"y\r"),
        (400, b"quit\r"),
    ];
    let out = at_terminal(&sb, &server, &[], keys);
    let screen = stdout(&out);
    assert!(
        screen.contains("overwrite a.txt? [y/N] n"),
        "the answer shows as it is typed: {screen}"
    );
    assert!(screen.contains("error: kept a.txt"), "{screen}");
    assert_eq!(fs::read(&a).unwrap(), b"mine");
    assert!(screen.contains("overwrite b.txt? [y/N]"), "{screen}");
    assert_eq!(fs::read(&b).unwrap(), b"same size!");
}

#[test]
fn a_get_into_a_missing_local_folder_says_so_before_asking_the_server() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::write(sb.root().join("a.txt"), b"aaa").unwrap();
    let out = ClientRun::new(&sb, &server, &["get", "a.txt", "nodir/x/a.txt"]).run();
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("no local folder nodir/x: make it first, or name a folder that exists"),
        "{e}"
    );
    assert!(
        server.events_with(&[("cmd", "get")]).is_empty(),
        "the server was asked for the file"
    );
    assert!(!sb.work().join("nodir").exists());
}
