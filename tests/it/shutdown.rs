//! SIGTERM: the server stops taking connections at once, lets running
//! commands finish within --shutdown-grace, keeps the partial files of
//! those it cuts off, and exits 0.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn sigterm(server: &ServerProcess) {
    let ok = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn sigterm_refuses_newcomers_and_lets_the_running_upload_finish() {
    let sb = Sandbox::new();
    let mut server = sb.start_server(&[]);
    let data = pattern(3 << 20, 21);
    sb.local_file("late.bin", &data);
    let upload = ClientRun::new(&sb, &server, &["--limit-rate", "2MiB", "put", "late.bin"]);
    let mut upload = upload.cmd;
    upload
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let upload = upload.spawn().unwrap();
    let partial = sb.root().join(".ftp-partial/late.bin");
    assert!(wait_until(Duration::from_secs(10), || size_of(&partial) > 0));
    sigterm(&server);
    server.wait_for_said(&[("event", "shutdown")], "shutting down");
    let newcomer = ClientRun::new(&sb, &server, &["echo", "hi"]).run();
    assert!(!newcomer.status.success());
    assert_stderr_has(&newcomer, "shutting down");
    let out = wait_output(upload, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("late.bin")).unwrap(), data);
    let status = wait_limited(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_lets_a_download_under_way_finish() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.root()).unwrap();
    // Larger than both ends' socket buffers can hold (a receive buffer
    // here grows to 32 MiB), so the reply is still under way at the signal.
    let data = pattern(48 << 20, 22);
    fs::write(sb.root().join("big.bin"), &data).unwrap();
    let mut server = sb.start_server(&[]);
    let into = sb.work().join("dl");
    fs::create_dir_all(&into).unwrap();
    let get = ["--limit-rate", "12MiB", "get", "big.bin", "dl/"];
    let download = ClientRun::new(&sb, &server, &get).spawn();
    let landed = into.join("big.bin");
    // Under way: some of it is here, not all.
    assert!(wait_until(Duration::from_secs(10), || {
        fs::read_dir(&into).is_ok_and(|mut d| d.next().is_some())
    }));
    sigterm(&server);
    server.wait_for_said(&[("event", "shutdown")], "shutting down");
    let out = wait_output(download, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&landed).unwrap(), data);
    let status = wait_limited(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_grace_period_that_runs_out_keeps_the_partial_for_a_resume() {
    let sb = Sandbox::new();
    let mut server = sb.start_server(&["--shutdown-grace", "1"]);
    let data = pattern(4 << 20, 22);
    sb.local_file("cut.bin", &data);
    let upload = ClientRun::new(&sb, &server, &["--limit-rate", "1MiB", "put", "cut.bin"]).spawn();
    let partial = sb.root().join(".ftp-partial/cut.bin");
    assert!(wait_until(Duration::from_secs(10), || size_of(&partial) > 0));
    sigterm(&server);
    let status = wait_limited(&mut server.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let shutdown = server.events_with(&[("event", "shutdown")]);
    assert!(
        shutdown
            .iter()
            .any(|e| message(e).contains("commands cut off")),
        "{}",
        server.log_text()
    );
    drop(wait_output(upload, Duration::from_secs(30)));
    let kept = size_of(&partial);
    assert!(kept > 0 && kept < data.len() as u64, "{kept}");
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["put", "cut.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    assert_eq!(fs::read(sb.root().join("cut.bin")).unwrap(), data);
}
