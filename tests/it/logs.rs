//! The server's log as an operator reads it: JSON lines with fields a
//! shipper filters on, one event per line, and the text format's
//! sentences.

use serde_json::json;

use crate::support::*;

/// `jq 'select(.path=="x")'`, in Rust: the log's events whose `path` is
/// `path`.
fn select_path(server: &ServerProcess, path: &str) -> Vec<serde_json::Value> {
    server.events_with(&[("path", path)])
}

#[test]
fn every_line_about_one_upload_is_found_by_its_path() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(300_000, 5);
    sb.local_file("x.bin", &data);
    sb.local_file("other.bin", b"not this one");
    let script = "put x.bin\nput other.bin\nget x.bin back.bin\nrm other.bin\n";
    let out = ClientRun::new(&sb, &server, &[]).run_with_input(script);
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for_event(&[("cmd", "rm"), ("path", "/other.bin")]);

    let lines = server.log_text();
    assert!(!lines.contains(SECRET), "the secret is never logged");
    // One JSON object per line, each with its time, level and name.
    for line in lines.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["timestamp", "level", "event"] {
            assert!(event[key].is_string(), "no {key} in {line}");
        }
    }

    // A path is written from the user's home, as the hooks' events write it.
    let selected = select_path(&server, "/x.bin");
    let cmds: Vec<_> = selected.iter().filter_map(|e| field(e, "cmd")).collect();
    assert_eq!(cmds, ["put", "get"], "{selected:?}");
    let digest = blake3::hash(&data).to_hex().to_string();
    let put = &selected[0];
    assert_eq!(put["event"], "command");
    assert_eq!(put["result"], "ok");
    assert_eq!(put["bytes"], 300_000);
    assert_eq!(put["resumed"], false);
    assert_eq!(put["digest"], digest.as_str());
    assert!(put["duration_ms"].is_u64(), "{put}");
    // The connection's fields are on each of its events.
    assert_eq!(put["user"], "(shared secret)");
    let peer = field(put, "peer").unwrap_or_default();
    assert!(peer.starts_with("127.0.0.1:"), "{put}");
    let get = &selected[1];
    assert_eq!(
        (&get["result"], &get["bytes"]),
        (&json!("ok"), &json!(300_000))
    );
    // Every event of that connection is found by its peer.
    let connection = server.events_with(&[("peer", &peer)]);
    let names: Vec<_> = connection
        .iter()
        .filter_map(|e| field(e, "event"))
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("connected"),
        "{names:?}"
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("disconnected"),
        "{names:?}"
    );
    assert!(names.contains(&"login".to_string()), "{names:?}");
}

#[test]
fn a_refused_request_names_its_code_and_an_error_has_no_digest() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["rm", "nothing.txt"]).run();
    assert!(!out.status.success());
    let rm = server.wait_for_event(&[("cmd", "rm"), ("path", "/nothing.txt")]);
    assert_eq!(
        (&rm["result"], &rm["code"]),
        (&json!("error"), &json!("not_found"))
    );
    assert!(
        rm.get("digest").is_none() && rm.get("resumed").is_none(),
        "{rm}"
    );
}

#[test]
fn a_name_cannot_forge_a_log_line_in_either_format() {
    let forged = "a.txt\n{\"event\":\"login\",\"result\":\"ok\",\"user\":\"root\"}";
    for format in ["json", "text"] {
        let sb = Sandbox::new();
        let server = sb.start_server(&["--log-format", format]);
        let mut raw = Raw::login(server.addr, SECRET.as_bytes());
        raw.send_json(&json!({"cmd":"rm","filename":forged}));
        let reply = raw.reply().expect("a reply");
        assert_eq!(reply["status"], "error", "{reply}");
        raw.send_json(&json!({"cmd":"pwd"}));
        assert_eq!(raw.reply().expect("a reply")["status"], "ok");
        let log = server.log_text();
        let line_of_its_own = &forged["a.txt".len()..];
        assert!(!log.contains(line_of_its_own), "{format}: {log}");
        if format == "json" {
            // Each line is one event, and the name is whole in its field.
            let events = server.events();
            assert_eq!(events.len(), log.lines().count(), "{log}");
            let rm = server.wait_for_event(&[("cmd", "rm")]);
            assert_eq!(rm["path"], forged, "{rm}");
            assert!(server.events_with(&[("user", "root")]).is_empty());
        }
    }
}

#[test]
fn the_text_format_reads_as_sentences() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--log-format", "text"]);
    sb.local_file("t.bin", &pattern(1000, 2));
    let out = ClientRun::new(&sb, &server, &["put", "t.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let sentence = "put t.bin ok stored 1000 bytes (1000 bytes, ";
    assert!(wait_until(std::time::Duration::from_secs(10), || server
        .log_text()
        .contains(sentence)));
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains(sentence)).unwrap();
    // The connection's span, then the sentence; the fields a JSON line
    // carries are not repeated.
    assert!(line.contains("conn{peer=127.0.0.1:"), "{line}");
    for field in [
        "event=",
        "cmd=",
        "path=",
        "bytes=",
        "digest=",
        "duration_ms=",
    ] {
        assert!(!log.contains(field), "{field} in the text log:\n{log}");
    }
    assert!(!log.trim_start().starts_with('{'), "{log}");
}
