//! Under systemd: the notify protocol against a datagram socket the test
//! holds as NOTIFY_SOCKET, and socket activation with a listener the test
//! passes as descriptor 3.

use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::shared::listening_addr;
use crate::support::*;

/// The datagrams that arrive within `limit`, until `done` says enough.
fn messages_until(
    sock: &UnixDatagram,
    limit: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) && Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string());
        }
    }
    got
}

fn signal(server: &ServerProcess, sig: i32) {
    let pid = i32::try_from(server.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn the_server_tells_systemd_ready_reloading_stopping_status_and_pings_the_watchdog() {
    let sb = Sandbox::new();
    let path = sb.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let env = [
        ("NOTIFY_SOCKET", path.to_string_lossy().into_owned()),
        ("WATCHDOG_USEC", "200000".to_string()),
    ];
    let root = sb.root().to_string_lossy().into_owned();
    let mut server = ServerProcess::launch(&sb, &[], &root, &[], Some(SECRET), &env).unwrap();

    let ready = messages_until(&sock, Duration::from_secs(10), |m| !m.is_empty());
    assert_eq!(
        ready.first().map(String::as_str),
        Some("READY=1\nSTATUS=serving; 0 connections open"),
        "{ready:?}"
    );
    let pings = messages_until(&sock, Duration::from_secs(10), |m| {
        m.iter()
            .filter(|m| m.starts_with("WATCHDOG=1\nSTATUS=serving;"))
            .count()
            >= 2
    });
    assert!(pings.len() >= 2, "{pings:?}");

    signal(&server, libc::SIGHUP);
    let reload = messages_until(&sock, Duration::from_secs(10), |m| {
        m.iter().any(|m| m == "READY=1")
    });
    let reloading: Vec<_> = reload
        .iter()
        .filter(|m| !m.starts_with("WATCHDOG"))
        .collect();
    assert!(
        reloading.len() == 2 && reloading[0].starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload:?}"
    );
    assert_eq!(reloading[1], "READY=1");

    signal(&server, libc::SIGTERM);
    let stopping = messages_until(&sock, Duration::from_secs(10), |m| {
        m.iter().any(|m| m.starts_with("STOPPING=1"))
    });
    assert!(
        stopping
            .iter()
            .any(|m| m == "STOPPING=1\nSTATUS=shutting down"),
        "{stopping:?}"
    );
    assert!(wait_until(Duration::from_secs(10), || !server.is_running()));
}

#[test]
fn a_listener_passed_as_fd_3_is_served_and_connections_made_before_the_start_wait_for_it() {
    let sb = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Made while no server runs: it waits in the passed socket's backlog.
    let mut early = Raw::connect(addr);
    let fd = listener.as_raw_fd();
    let log = sb.path().join("server.log");
    let mut cmd = Command::new("sh");
    // systemd sets LISTEN_PID to the server's own pid; exec keeps the
    // shell's.
    cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ftp-server"))
        .args(["--root", &sb.root().to_string_lossy()])
        .env("HOME", sb.home())
        .env_remove("XDG_CONFIG_HOME")
        .env("FTP_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap());
    // The passed socket must be descriptor 3 in the server, without
    // close-on-exec, as systemd leaves it. A dup clears close-on-exec,
    // also when the listener is descriptor 3 already.
    unsafe {
        cmd.pre_exec(move || {
            let copy = libc::dup(fd);
            if copy == -1 || libc::dup2(copy, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(copy);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let said = listening_addr(&mut child);
    let mut server = ServerProcess { child, addr, log };
    assert_eq!(said, Some(addr), "{}", server.log_text());

    shared::answer_challenge(&mut early.stream, SECRET.as_bytes()).unwrap();
    early.send_json(&serde_json::json!({"cmd":"ls"}));
    assert_eq!(early.reply().unwrap()["status"], "ok");
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.is_running());
}

/// A config file written by `ftp-server config`, with a users file that
/// `ftp-server user add alice` filled: the config's path and alice's
/// secret.
fn config_with_alice(sb: &Sandbox) -> (PathBuf, String) {
    let config = sb.path().join("server.toml");
    let users = sb.path().join("users.toml");
    let run = |args: &[&str]| server_command(sb, args);
    let root = sb.root().to_string_lossy().into_owned();
    let written = run(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        &root,
        "--users",
        users.to_str().unwrap(),
        "config",
    ]);
    fs::write(&config, stdout(&written)).unwrap();
    let added = run(&["--config", config.to_str().unwrap(), "user", "add", "alice"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let secret = stdout(&added)
        .trim_start_matches("FTP_SECRET=")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    (config, secret)
}

/// The unit's `ExecStart=` command line, with this build's binary and
/// `config` in place of the installed paths.
fn unit_command(unit: &str, config: &Path) -> Vec<String> {
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    exec.split_whitespace()
        .map(|w| match w {
            "/usr/local/bin/ftp-server" => env!("CARGO_BIN_EXE_ftp-server").to_string(),
            "/etc/ftp-server/server.toml" => config.to_string_lossy().into_owned(),
            other => other.to_string(),
        })
        .collect()
}

/// The shipped unit's ExecStart, run as systemd would (a notify socket,
/// no terminal) with its config file path pointed at a temp dir: the
/// command line the unit gives must start a server that says READY=1 and
/// serves a user added with `ftp-server user add`.
#[test]
fn the_shipped_units_command_starts_a_server_that_serves_an_added_user() {
    let sb = Sandbox::new();
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/ftp-server.service"
    ))
    .unwrap();
    assert!(unit.lines().any(|l| l == "Type=notify"), "{unit}");
    let (config, secret) = config_with_alice(&sb);
    let words = unit_command(&unit, &config);
    let notify = sb.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let log = sb.path().join("unit.log");
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .env("HOME", sb.home())
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child);
    let server = ServerProcess {
        child,
        addr: addr.unwrap_or(([127, 0, 0, 1], 0).into()),
        log,
    };
    assert!(addr.is_some(), "{}", server.log_text());
    let ready = messages_until(&sock, Duration::from_secs(10), |m| !m.is_empty());
    assert!(ready[0].starts_with("READY=1"), "{ready:?}");
    let out = ClientRun::new(&sb, &server, &["ls"])
        .env("FTP_SECRET", &secret)
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
}
