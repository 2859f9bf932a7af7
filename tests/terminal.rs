//! The client at a real terminal: prompt, line editing, completion and
//! progress bar, driven through a pseudo-terminal made by `script`.

mod support;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

#[test]
fn prompt_with_completion_and_progress_at_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed, so no pseudo-terminal");
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("report-2026.txt", b"quarterly numbers");
    let client = format!(
        "{} --server {}",
        env!("CARGO_BIN_EXE_ftp-client"),
        server.addr_string()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &client, "/dev/null"])
        .current_dir(sb.work())
        .env("HOME", sb.home())
        .env("FTP_SECRET", SECRET)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // Tab completes a local path after `put`, then a remote name after `get`.
    let keys: [&[u8]; 4] = [b"put rep\t\r", b"ls\r", b"get rep\t copy.txt\r", b"quit\r"];
    let ok = std::thread::spawn(move || {
        for k in keys {
            std::thread::sleep(Duration::from_millis(400));
            input.write_all(k).unwrap();
        }
        std::thread::sleep(Duration::from_millis(400));
    });
    let out = wait_output(child, Duration::from_secs(30));
    ok.join().unwrap();
    let screen = stdout(&out);
    assert!(screen.contains(">>: "), "the prompt is shown: {screen}");
    assert!(
        screen.contains("stored report-2026.txt (17 bytes"),
        "{screen}"
    );
    assert!(
        screen.contains("saved report-2026.txt to copy.txt"),
        "{screen}"
    );
    assert!(
        screen.contains("B/s eta"),
        "a progress bar was drawn: {screen}"
    );
    assert_eq!(
        fs::read(sb.root().join("report-2026.txt")).unwrap(),
        b"quarterly numbers"
    );
    assert_eq!(
        fs::read(sb.work().join("copy.txt")).unwrap(),
        b"quarterly numbers"
    );
}
