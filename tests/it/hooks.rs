//! Hooks: what a command and a URL are told of uploads, downloads and
//! deletes, and that a slow, failing, absent or flooded hook never holds
//! a transfer up.

use std::time::{Duration, Instant};

use crate::support::http::{down_url, metrics_addr, scrape, Receiver};
use crate::support::*;

/// Runs the client as alice with `args`, and checks it succeeded.
fn alice(sb: &Sandbox, server: &ServerProcess, args: &[&str]) {
    let out = ClientRun::new(sb, server, args)
        .env("FTP_SECRET", ALICE)
        .run();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// The value of the hook counter for `event` and `result`, 0 if absent.
fn hook_count(metrics: &str, event: &str, result: &str) -> u64 {
    let key = format!("ftp_hooks_total{{event=\"{event}\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Waits until the metrics at `addr` count `at_least` of `event` and
/// `result`, and returns them.
fn wait_for_count(addr: &str, event: &str, result: &str, at_least: u64) -> String {
    let mut text = String::new();
    let counted = wait_until(Duration::from_secs(20), || {
        text = scrape(addr);
        hook_count(&text, event, result) >= at_least
    });
    assert!(counted, "never {at_least} {event} {result}:\n{text}");
    text
}

#[test]
fn a_hook_command_gets_the_event_as_json_on_stdin_and_in_its_environment() {
    let sb = Sandbox::new();
    let json = sb.path().join("upload.json");
    let env = sb.path().join("delete.env");
    // `tee` writes its stdin to the file: no shell between. The delete
    // hook asks for one by name, to see the environment.
    let on_upload = format!("tee '{}'", json.display());
    let on_delete = format!("sh -c 'env > \"$0\"' '{}'", env.display());
    let server = alice_server(
        &sb,
        "",
        &["--on-upload", &on_upload, "--on-delete", &on_delete],
    );
    let data = pattern(10_000, 7);
    sb.local_file("a b.txt", &data);
    alice(&sb, &server, &["mkdir", "docs"]);
    alice(&sb, &server, &["put", "a b.txt", "docs/a b.txt"]);
    assert!(wait_until(Duration::from_secs(10), || json.exists()
        && std::fs::read(&json).is_ok_and(|b| b.ends_with(b"}"))));
    let event: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(event["event"], "upload", "{event}");
    assert_eq!(event["user"], "alice");
    assert_eq!(event["path"], "/docs/a b.txt");
    assert_eq!(event["size"], 10_000);
    assert_eq!(event["blake3"], blake3::hash(&data).to_hex().as_str());
    assert_eq!(event["peer"], "127.0.0.1");
    assert_eq!(event["resumed"], false);
    let time: jiff::Timestamp = event["time"].as_str().unwrap().parse().unwrap();
    assert!(jiff::Timestamp::now().duration_since(time).as_secs() < 60);

    alice(&sb, &server, &["rm", "docs/a b.txt"]);
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&env).is_ok_and(|t| t.contains("FTP_RESUMED"))
    }));
    let vars = std::fs::read_to_string(&env).unwrap();
    for line in [
        "FTP_EVENT=delete",
        "FTP_USER=alice",
        "FTP_PATH=/docs/a b.txt",
        "FTP_SIZE=10000",
        "FTP_PEER=127.0.0.1",
        "FTP_BLAKE3=",
        "FTP_RESUMED=false",
    ] {
        assert!(vars.lines().any(|l| l == line), "no {line:?} in\n{vars}");
    }
}

#[test]
fn a_slow_http_hook_delays_no_put_and_gets_the_download_event() {
    let sb = Sandbox::new();
    let receiver = Receiver::start(200, Duration::from_secs(4));
    let server = sb.start_server(&[
        "--on-upload",
        &receiver.url,
        "--on-download",
        &receiver.url,
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&server);
    sb.local_file("one.bin", &pattern(1000, 1));
    sb.local_file("two.bin", &pattern(1000, 2));
    let started = Instant::now();
    let put = |name| ClientRun::new(&sb, &server, &["put", name]).run();
    assert!(put("one.bin").status.success());
    assert!(wait_until(Duration::from_secs(10), || receiver
        .bodies()
        .len()
        == 1));
    // The receiver holds the first event for 4 s; the next put is done
    // before it answers.
    assert!(put("two.bin").status.success());
    let elapsed = started.elapsed();
    assert_eq!(receiver.answered(), 0, "the puts took {elapsed:?}");
    std::fs::remove_file(sb.work().join("one.bin")).unwrap();
    assert!(ClientRun::new(&sb, &server, &["get", "one.bin"])
        .run()
        .status
        .success());
    let text = wait_for_count(&metrics, "upload", "ok", 2);
    assert_eq!(hook_count(&text, "upload", "attempt_failed"), 0, "{text}");
    wait_for_count(&metrics, "download", "ok", 1);
    let bodies = receiver.bodies();
    let download = bodies.iter().find(|b| b.contains("\"download\"")).unwrap();
    let event: serde_json::Value = serde_json::from_str(download).unwrap();
    assert_eq!(
        (event["path"].as_str(), event["size"].as_u64()),
        (Some("/one.bin"), Some(1000))
    );
    assert_eq!(event["user"], serde_json::Value::Null);
}

#[test]
fn a_failing_http_hook_is_retried_then_counted() {
    let sb = Sandbox::new();
    let receiver = Receiver::start(500, Duration::ZERO);
    let server = sb.start_server(&["--on-upload", &receiver.url, "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    sb.local_file("f.bin", b"data");
    assert!(ClientRun::new(&sb, &server, &["put", "f.bin"])
        .run()
        .status
        .success());
    let text = wait_for_count(&metrics, "upload", "failed", 1);
    // The first run and three retries.
    assert_eq!(hook_count(&text, "upload", "attempt_failed"), 4, "{text}");
    assert_eq!(receiver.bodies().len(), 4);
    let hook = |result| [("event", "hook"), ("path", "/f.bin"), ("result", result)];
    server.wait_for_event(&hook("gave_up"));
    let failed = server.events_with(&hook("failed"));
    assert!(
        failed
            .iter()
            .any(|e| message(e) == "upload hook for /f.bin (4 of 4): answered HTTP 500"),
        "{failed:?}"
    );
    // One select by path finds the upload and its hook's lines alike.
    let about_f = server.events_with(&[("path", "/f.bin")]);
    let names: Vec<_> = about_f.iter().filter_map(|e| field(e, "event")).collect();
    assert!(names.starts_with(&["command".to_string()]), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "hook").count(),
        5,
        "{names:?}"
    );
    assert_eq!(std::fs::read(sb.root().join("f.bin")).unwrap(), b"data");
}

#[test]
fn a_hook_that_is_down_or_hangs_is_counted_and_the_transfer_goes_on() {
    let sb = Sandbox::new();
    let url = down_url();
    let server = sb.start_server(&[
        "--on-upload",
        &url,
        "--on-download",
        "sleep 30",
        "--hook-timeout",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&server);
    sb.local_file("f.bin", b"data");
    assert!(ClientRun::new(&sb, &server, &["put", "f.bin"])
        .run()
        .status
        .success());
    std::fs::remove_file(sb.work().join("f.bin")).unwrap();
    assert!(ClientRun::new(&sb, &server, &["get", "f.bin"])
        .run()
        .status
        .success());
    assert_eq!(std::fs::read(sb.work().join("f.bin")).unwrap(), b"data");
    wait_for_count(&metrics, "upload", "failed", 1);
    server.wait_for_said(
        &[("event", "hook"), ("path", "/f.bin"), ("result", "failed")],
        "download hook for /f.bin (1 of 4): still running after 1s; killed",
    );
}

#[test]
fn past_the_queue_bound_events_are_dropped_and_counted() {
    let sb = Sandbox::new();
    // Two threads hold one event each for 30 s, and one waits in the
    // queue: the rest are dropped. Durable puts sent together commit as a group, whose
    // events are fired as each reply goes out.
    let server = sb.start_server(&[
        "--durable",
        "--on-upload",
        "sleep 30",
        "--hook-queue",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&server);
    let names: Vec<String> = (0..8).map(|i| format!("f{i}.bin")).collect();
    for name in &names {
        sb.local_file(name, b"x");
    }
    let mut args = vec!["put"];
    args.extend(names.iter().map(String::as_str));
    let out = ClientRun::new(&sb, &server, &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    // At most three are held (two running, one waiting), at least the
    // first is: how many more depends on when the threads take theirs.
    let text = wait_for_count(&metrics, "upload", "dropped", 5);
    let dropped = hook_count(&text, "upload", "dropped");
    assert!((5..=7).contains(&dropped), "{text}");
    server.wait_for_said(
        &[("event", "hook"), ("result", "dropped")],
        "hook queue full",
    );
    assert!(!server.events_with(&[("event", "commit")]).is_empty());
}

/// Whether `name` left anything in the root, partial data included.
fn kept_anything(sb: &Sandbox, name: &str) -> bool {
    sb.root().join(name).exists() || sb.root().join(".ftp-partial").join(name).exists()
}

#[test]
fn an_upload_check_refuses_with_its_reason_and_keeps_nothing() {
    let sb = Sandbox::new();
    // A scanner reads the upload on stdin, says what it found on stdout.
    let scanner = "sh -c 'if grep -q EICAR; then echo \"stdin: Eicar-Test-Signature FOUND\"; \
                   exit 1; fi'";
    let server = sb.start_server(&["--on-upload-check", scanner, "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);
    sb.local_file("clean.txt", b"nothing to see");
    sb.local_file(
        "bad.txt",
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!",
    );
    let ok = ClientRun::new(&sb, &server, &["put", "clean.txt"]).run();
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(
        std::fs::read(sb.root().join("clean.txt")).unwrap(),
        b"nothing to see"
    );
    let refused = ClientRun::new(&sb, &server, &["put", "bad.txt"]).run();
    assert!(!refused.status.success());
    assert_stderr_has(&refused, "stdin: Eicar-Test-Signature FOUND");
    assert!(!kept_anything(&sb, "bad.txt"));
    let text = scrape(&metrics);
    assert_eq!(hook_count(&text, "upload_check", "ok"), 1, "{text}");
    assert_eq!(hook_count(&text, "upload_check", "refused"), 1, "{text}");
}

#[test]
fn an_upload_check_that_hangs_errs_or_is_down_refuses_the_upload() {
    let sb = Sandbox::new();
    sb.local_file("f.txt", b"some bytes");
    let refusing = Receiver::start(403, Duration::ZERO);
    let failing = Receiver::start(500, Duration::ZERO);
    let down = down_url();
    for check in [
        "sleep 30",
        "/nonexistent/scanner",
        &failing.url,
        &down,
        &refusing.url,
    ] {
        let server = sb.start_server(&["--on-upload-check", check, "--hook-timeout", "1"]);
        let out = ClientRun::new(&sb, &server, &["put", "f.txt"]).run();
        assert!(!out.status.success(), "{check}");
        let why = match check == refusing.url {
            true => "upload check refused it: HTTP 403",
            false => "upload check could not decide",
        };
        assert_stderr_has(&out, why);
        assert!(!kept_anything(&sb, "f.txt"), "{check}");
    }
    // The URL was sent the upload's bytes.
    assert_eq!(refusing.bodies(), ["some bytes"]);
}
