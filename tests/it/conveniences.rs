//! What users and operators expect around the protocol: listings that hide
//! dot-files, shell completions and man pages, Ctrl-C that stops only the
//! transfer, and a prompt that does not list the server on every line.

use std::process::Command;

use crate::support::http::{metrics_addr, scrape};
use crate::support::*;

#[test]
fn ls_hides_dot_files_unless_asked_and_shows_human_sizes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    std::fs::write(sb.root().join(".gitkeep"), b"").unwrap();
    std::fs::write(sb.root().join("big.bin"), vec![0u8; 3 << 20]).unwrap();
    let plain = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(plain.status.success(), "{}", stderr(&plain));
    let text = stdout(&plain);
    assert!(!text.contains(".gitkeep"), "{text}");
    assert!(
        text.contains("     3145728  ") && text.contains("big.bin"),
        "{text}"
    );
    let all = ClientRun::new(&sb, &server, &["ls", "-ah"]).run();
    let text = stdout(&all);
    assert!(
        text.contains(".gitkeep") && text.contains("3.00 MiB  "),
        "{text}"
    );
    let bad = ClientRun::new(&sb, &server, &["ls", "-z"]).run();
    assert!(!bad.status.success());
    assert_stderr_has(
        &bad,
        "error: ls: unknown option -z; usage: ls [-ahR] [PATH]",
    );
}

#[test]
fn both_programs_print_completions_and_a_man_page() {
    for (program, flag) in [
        (env!("CARGO_BIN_EXE_ftp-client"), "--server"),
        (env!("CARGO_BIN_EXE_ftp-server"), "--listen"),
    ] {
        let out = Command::new(program)
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(stdout(&out).contains(flag), "{program}: {}", stdout(&out));
        let out = Command::new(program)
            .args(["completions", "nosuchshell"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).starts_with("error: unknown shell"),
            "{}",
            stderr(&out)
        );
        let out = Command::new(program).arg("man").output().unwrap();
        assert!(out.status.success());
        let name = std::path::Path::new(program)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert_stdout_has(&out, &format!(".TH {name} 1"));
        let page = stdout(&out);
        // NAME is one line, "name \- what it is"; then the other sections.
        let name_section = page.split(".SH NAME\n").nth(1).unwrap();
        let next = name_section.lines().nth(1).unwrap_or_default();
        assert!(next.starts_with(".SH SYNOPSIS"), "{name_section}");
        let mut wanted = vec![".SH OPTIONS", ".SH FILES", ".SH ENVIRONMENT"];
        if name == "ftp-client" {
            wanted.insert(1, ".SH COMMANDS");
        }
        let at: Vec<usize> = wanted.iter().map(|s| page.find(s).unwrap()).collect();
        assert!(at.is_sorted(), "{wanted:?} in order: {page}");
        assert_stdout_has(&out, "FTP_SECRET");
    }
}

#[test]
fn ctrl_c_stops_the_transfer_keeps_the_partial_and_returns_to_the_prompt() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(3 << 20, 9);
    sb.local_file("big.bin", &data);
    // At 1 MiB/s the put is a third done when Ctrl-C comes.
    let keys: Vec<(u64, &[u8])> = vec![
        (400, b"put big.bin\r"),
        (1200, b"\x03"),
        (600, b"echo still here\r"),
        (400, b"put big.bin\r"),
        (4000, b"quit\r"),
    ];
    let out = at_terminal(&sb, &server, &["--limit-rate", "1MiB"], keys);
    let screen = stdout(&out);
    assert!(
        screen.contains("error: put big.bin: upload interrupted"),
        "{screen}"
    );
    assert!(
        screen.contains("STILL HERE"),
        "the client went on: {screen}"
    );
    assert!(
        screen.contains("stored big.bin (3145728 bytes; resumed at byte"),
        "{screen}"
    );
    assert_eq!(std::fs::read(sb.root().join("big.bin")).unwrap(), data);
    // It left by `quit`, not by the signal; the interrupted put counts as
    // a failed command.
    assert_eq!(out.status.code(), Some(1), "{screen}");
}

#[test]
fn the_prompt_lists_the_server_only_when_completion_needs_it() {
    if !require("`script` (util-linux), for a pseudo-terminal", has_script()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("notes.txt", b"n");
    let keys: Vec<(u64, &[u8])> = vec![
        (400, b"echo one\r"),
        (300, b"pwd\r"),
        (300, b"put notes.txt\r"),
        // Two Tabs on one line: one listing, reused.
        (300, b"get no\t"),
        (300, b"\x15"),
        (300, b"rm no\t\r"),
        (400, b"quit\r"),
    ];
    let out = at_terminal(&sb, &server, &[], keys);
    let screen = stdout(&out);
    assert!(screen.contains("removed notes.txt"), "{screen}");
    server.wait_for_event(&[("cmd", "rm"), ("path", "/notes.txt"), ("result", "ok")]);
    let listings = server.events_with(&[("cmd", "ls"), ("result", "ok")]);
    assert_eq!(listings.len(), 1, "{}", server.log_text());
}

#[test]
fn metrics_are_scraped_during_and_after_a_transfer() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&server);
    let data = pattern(2 << 20, 3);
    sb.local_file("m.bin", &data);
    let client = ClientRun::new(&sb, &server, &["--limit-rate", "1MiB", "put", "m.bin"]).spawn();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let during = scrape(&addr);
    assert!(during.contains("ftp_connections_active 1\n"), "{during}");
    assert!(
        during.contains("ftp_uploads_committed_total 0\n"),
        "{during}"
    );
    let out = wait_output(client, std::time::Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for_event(&[("cmd", "put"), ("path", "/m.bin"), ("result", "ok")]);
    let after = scrape(&addr);
    for line in [
        "ftp_connections_total 1\n",
        "ftp_uploads_committed_total 1\n",
        "ftp_received_bytes_total 2097152\n",
        "ftp_commands_total{command=\"put\",result=\"ok\"} 1\n",
        "ftp_logins_total{result=\"ok\",dialect=\"tls\"} 1\n",
        "ftp_transfer_duration_seconds_count 1\n",
    ] {
        assert!(after.contains(line), "missing {line:?} in {after}");
    }
}

#[test]
fn a_peer_dripping_its_request_holds_neither_the_metrics_nor_its_connection() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let sb = Sandbox::new();
    let server = sb.start_server(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&server);
    let connected = Instant::now();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = slow.try_clone().unwrap();
    // One byte every 300 ms, never the blank line that ends a request; it
    // stops by itself once the server has hung up, or after 6 s.
    let dripper = std::thread::spawn(move || {
        for b in b"GET /metrics HTTP/1.1\r\nHost: s".iter().take(20) {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    assert!(scrape(&addr).contains("ftp_connections_total 0\n"));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "a scrape waited {:?} behind a slow peer",
        asked.elapsed()
    );
    // The slow peer is hung up on at the request deadline (2 s).
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let held = connected.elapsed();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(held < Duration::from_millis(3500), "held {held:?}");
    dripper.join().unwrap();
}

#[test]
fn output_closed_by_its_reader_ends_the_client_quietly_with_success() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    for args in [&["echo", "x"][..], &[][..]] {
        let mut child = ClientRun::new(&sb, &server, args).cmd;
        let mut child = child
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written: `| true`.
        drop(child.stdout.take());
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(b"echo one\necho two\n");
        }
        let out = wait_output(child, std::time::Duration::from_secs(20));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("error"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn output_closed_early_ends_quietly_with_success() {
    use std::process::{Command, Stdio};
    let runs: [(&str, &[&str]); 5] = [
        (env!("CARGO_BIN_EXE_ftp-client"), &["help"]),
        (env!("CARGO_BIN_EXE_ftp-client"), &["completions", "bash"]),
        (env!("CARGO_BIN_EXE_ftp-client"), &["man"]),
        (env!("CARGO_BIN_EXE_ftp-server"), &["completions", "zsh"]),
        (env!("CARGO_BIN_EXE_ftp-server"), &["config"]),
    ];
    let sb = Sandbox::new();
    for (program, args) in runs {
        // The reader is gone before the program writes: `| true`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = Command::new(program)
            .args(args)
            .env("HOME", sb.path())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_output(child, CLIENT_LIMIT);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}
