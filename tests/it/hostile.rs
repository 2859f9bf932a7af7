//! Hostile input against a real server: every case gets a clear error or a
//! clean close, the server stays up, and nothing lands outside the root.
//! Then property tests over the same session code with random input.

use std::fs;
use std::io::Read;
use std::net::Shutdown;
use std::path::Path;

use crate::support::*;
use proptest::prelude::*;
use serde_json::json;

/// What a case must produce.
#[derive(Debug)]
enum Expect {
    /// An error reply with this code.
    Code(&'static str),
    /// The server closes without a reply (the peer itself hung up mid-frame).
    Closed,
}

fn frame_of(len: i32, body: &[u8]) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn json_frame(v: serde_json::Value) -> Vec<u8> {
    ftp::wire::frame::encode_json(&v).unwrap()
}

fn put_named(name: &str) -> Vec<u8> {
    let mut v = json_frame(json!({"cmd":"put","filename":name,"filesize":4}));
    v.extend_from_slice(b"EVIL");
    v
}

fn hostile_cases() -> Vec<(String, Vec<u8>, Expect)> {
    use Expect::*;
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let mut cases: Vec<(String, Vec<u8>, Expect)> = vec![
        ("truncated length".into(), vec![7, 0], Closed),
        (
            "truncated header".into(),
            frame_of(50, b"{\"cmd\":"),
            Closed,
        ),
        (
            "negative length".into(),
            frame_of(-1, b""),
            Code("bad_request"),
        ),
        (
            "most negative length".into(),
            frame_of(i32::MIN, b""),
            Code("bad_request"),
        ),
        ("zero length".into(), frame_of(0, b""), Code("bad_request")),
        (
            "huge length".into(),
            frame_of(i32::MAX, b""),
            Code("bad_request"),
        ),
        (
            "100 MB length".into(),
            frame_of(100_000_000, b"{"),
            Code("bad_request"),
        ),
        (
            "not UTF-8".into(),
            frame_of(4, &[0xc3, 0x28, 0xa0, 0xa1]),
            Code("bad_request"),
        ),
        (
            "not JSON".into(),
            frame_of(5, b"hello"),
            Code("bad_request"),
        ),
        (
            "JSON array".into(),
            json_frame(json!(["put", "a", 1])),
            Code("bad_request"),
        ),
        (
            "JSON string".into(),
            json_frame(json!("put")),
            Code("bad_request"),
        ),
        (
            "JSON number".into(),
            json_frame(json!(42)),
            Code("bad_request"),
        ),
        (
            "deep nesting".into(),
            frame_of(deep.len() as i32, deep.as_bytes()),
            Code("bad_request"),
        ),
        (
            "deep object".into(),
            {
                let d = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
                frame_of(d.len() as i32, d.as_bytes())
            },
            Code("bad_request"),
        ),
        (
            "cmd is a number".into(),
            json_frame(json!({"cmd":1})),
            Code("bad_request"),
        ),
        (
            "cmd is an array".into(),
            json_frame(json!({"cmd":["put"]})),
            Code("bad_request"),
        ),
        (
            "cmd missing".into(),
            json_frame(json!({"filename":"a"})),
            Code("bad_request"),
        ),
        (
            "unknown command".into(),
            json_frame(json!({"cmd":"delete_everything"})),
            Code("unknown_command"),
        ),
        (
            "unknown command, seed style".into(),
            json_frame(json!({"cmd":"__init__"})),
            Code("unknown_command"),
        ),
        (
            "put without filename".into(),
            json_frame(json!({"cmd":"put","filesize":1})),
            Code("bad_request"),
        ),
        (
            "put without filesize".into(),
            json_frame(json!({"cmd":"put","filename":"a"})),
            Code("bad_request"),
        ),
        (
            "get without filename".into(),
            json_frame(json!({"cmd":"get"})),
            Code("bad_request"),
        ),
        (
            "filename is a number".into(),
            json_frame(json!({"cmd":"put","filename":5,"filesize":1})),
            Code("bad_request"),
        ),
    ];
    for (what, size) in [
        ("negative", json!(-1)),
        ("float", json!(1.5)),
        ("string", json!("10")),
        ("null", json!(null)),
        ("1e30", json!(1e30)),
        ("array", json!([1])),
    ] {
        cases.push((
            format!("filesize {what}"),
            json_frame(json!({"cmd":"put","filename":"a","filesize":size})),
            Code("bad_request"),
        ));
    }
    let long = "n".repeat(300);
    let names = [
        "..\\x",
        "..",
        ".",
        "",
        "\\x",
        "\\\\server\\share\\x",
        "C:x",
        "c:\\x",
        "Z:",
        "a\\b",
        "x\0y",
        "\0",
        "line\nbreak",
        "carriage\rreturn",
        "tab\tname",
        "\u{1b}[31mred",
        "\u{1b}]0;title\u{7}",
        "\u{9b}2J",
        "\u{7f}",
        "..../",
        "a/",
        "a/..",
        "%2e%2e%2fx",
        "%2E%2E%2Fx",
        "..%2f..%2fx",
        "..%5cx",
        "x%00.txt",
        long.as_str(),
        ".ftp-partial",
    ];
    // Paths resolve inside the home (`..` stops there) into folders that
    // are not there.
    for path in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "//server/share",
        "a/b",
        "....//x",
        ".../...//x",
    ] {
        cases.push((format!("path {path:?}"), put_named(path), Code("not_found")));
        cases.push((
            format!("get path {path:?}"),
            json_frame(json!({"cmd":"get","filename":path})),
            Code("not_found"),
        ));
    }
    for name in names {
        cases.push((format!("name {name:?}"), put_named(name), Code("bad_name")));
        cases.push((
            format!("get {name:?}"),
            json_frame(json!({"cmd":"get","filename":name})),
            Code("bad_name"),
        ));
    }
    cases
}

#[test]
fn every_hostile_input_gets_a_clear_error_and_the_server_survives() {
    let sb = Sandbox::new();
    let mut server = sb.start_server(&[]);
    let cases = hostile_cases();
    assert!(cases.len() > 90);
    for (what, bytes, expect) in &cases {
        let mut raw = Raw::login(server.addr, SECRET.as_bytes());
        raw.send(bytes);
        if matches!(expect, Expect::Closed) {
            raw.stream.shutdown(Shutdown::Write).unwrap();
        }
        match expect {
            Expect::Code(code) => {
                let reply = raw.reply().unwrap_or_else(|| panic!("{what}: no reply"));
                assert_eq!(reply["status"], "error", "{what}: {reply}");
                assert_eq!(reply["code"], *code, "{what}: {reply}");
                let message = reply["message"].as_str().unwrap();
                assert!(message.len() > 10, "{what}: message too vague: {message}");
            }
            Expect::Closed => {
                let mut rest = Vec::new();
                let _ = raw.stream.read_to_end(&mut rest);
                assert!(rest.is_empty(), "{what}: unexpected reply");
            }
        }
        assert!(server.is_running(), "{what}: the server died");
    }
    let outside: Vec<String> = fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in &outside {
        assert!(
            ["root", "home", "work"].contains(&name.as_str()) || name.ends_with(".log"),
            "{name}"
        );
    }
    assert!(!Path::new("/x").exists() && !Path::new("/etc/passwd.EVIL").exists());
    let stored: Vec<_> = fs::read_dir(sb.root())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".ftp-partial")
        .collect();
    assert!(stored.is_empty(), "{stored:?}");
    let out = ClientRun::new(&sb, &server, &["echo", "survived"]).run();
    assert_eq!(stdout(&out), "SURVIVED\n");
}

#[test]
fn a_symlink_inside_the_root_leads_nowhere() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let outside = sb.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), b"top secret").unwrap();
    fs::create_dir_all(sb.root()).unwrap();
    std::os::unix::fs::symlink(&outside, sb.root().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), sb.root().join("s.txt")).unwrap();

    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    for (req, code) in [
        (json!({"cmd":"cd","path":"escape"}), "bad_name"),
        (json!({"cmd":"mkdir","path":"escape/new"}), "bad_name"),
        (json!({"cmd":"get","filename":"s.txt"}), "bad_name"),
        (
            json!({"cmd":"put","filename":"s.txt","filesize":0,"ack":true}),
            "exists",
        ),
        (
            json!({"cmd":"put","filename":"escape","filesize":0,"ack":true}),
            "exists",
        ),
    ] {
        raw.send_json(&req);
        let reply = raw.reply().unwrap();
        assert_eq!(reply["code"], code, "{req}: {reply}");
    }
    raw.send_json(&json!({"cmd":"ls"}));
    let listing = raw.reply().unwrap();
    assert_eq!(listing["files"], json!([]), "links are not listed");
    assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"top secret");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn rm_does_not_follow_a_planted_partial_folder() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let outside = sb.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("notes.txt"), b"not the server's to delete").unwrap();
    fs::create_dir_all(sb.root()).unwrap();
    fs::write(sb.root().join("notes.txt"), b"uploaded").unwrap();
    // A local user plants `.ftp-partial` as a link to a folder of theirs.
    std::os::unix::fs::symlink(&outside, sb.root().join(".ftp-partial")).unwrap();
    let out = ClientRun::new(&sb, &server, &["rm", "notes.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!sb.root().join("notes.txt").exists());
    assert_eq!(
        fs::read(outside.join("notes.txt")).unwrap(),
        b"not the server's to delete"
    );
}

#[test]
fn invisible_characters_in_names_are_shown_escaped() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    fs::create_dir_all(sb.root()).unwrap();
    // Each would make a name read as another one on the terminal.
    for name in ["zero\u{200b}width", "iso\u{2066}late", "line\u{2028}sep"] {
        fs::write(sb.root().join(name), b"x").unwrap();
    }
    let out = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    for escaped in ["zero\\u{200b}width", "iso\\u{2066}late", "line\\u{2028}sep"] {
        assert!(shown.contains(escaped), "{escaped} not in {shown}");
    }
    assert!(
        !shown.contains(['\u{200b}', '\u{2066}', '\u{2028}']),
        "{shown}"
    );
}

#[test]
fn seed_corpus_replays_without_panics() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let ctx = ftp::testing::context(&root);
    let mut count = 0;
    for entry in fs::read_dir(seeds).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        let _ = ftp::testing::serve_bytes(&ctx, &bytes);
        count += 1;
    }
    assert!(count >= 5);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the root"
    );
}

/// The commands the server knows, of those the headers are made with.
const KNOWN: [&str; 10] = [
    "put", "get", "ls", "echo", "mkdir", "cd", "rm", "prove", "quota", "pwd",
];

fn any_header() -> impl Strategy<Value = Vec<u8>> {
    let cmd = prop_oneof![
        proptest::sample::select(KNOWN.to_vec()).prop_map(String::from),
        "[a-z]{0,8}",
    ];
    let name = prop_oneof![
        "[a-zA-Z0-9._-]{0,20}",
        "(\\.\\./|/|\\\\|%2e|\\.){1,6}[a-z]{0,4}",
        any::<String>(),
    ];
    let size = prop_oneof![
        Just(json!(0)),
        (0u64..64).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f))
    ];
    (cmd, name, size, any::<bool>(), any::<bool>()).prop_map(|(cmd, name, size, ack, resume)| {
        serde_json::to_vec(&json!({
            "cmd": cmd, "filename": name, "path": name, "filesize": size,
            "ack": ack, "resume": resume, "text": name, "offset": 0,
        }))
        .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_or_escape(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let _ = ftp::testing::serve_bytes(&ftp::testing::context(&root), &input);
        prop_assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn random_logins_are_refused_in_a_frame_or_dropped_never_a_panic(
        tls in any::<bool>(),
        anonymous in any::<bool>(),
        piece in 1usize..64,
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ftp::testing::context(dir.path());
        // Half the cases ask for TLS first, so random bytes reach the
        // handshake rather than only the answer to the challenge.
        let mut input = match tls {
            true => ftp::wire::binding::TLS_MARKER.to_vec(),
            false => Vec::new(),
        };
        input.extend(&bytes);
        let (sent, end) = ftp::testing::login_bytes(&ctx, anonymous, &input, piece);
        // Only an anonymous server lets in a client that sends a frame's
        // length first; nothing random proves a secret.
        if end == ftp::testing::LoginEnd::In {
            prop_assert!(anonymous && !tls, "random bytes logged in");
        }
        if end == ftp::testing::LoginEnd::Refused && !tls {
            // After the challenge (none on an anonymous server), one
            // auth_failed frame a user can read.
            let challenge = if anonymous { 0 } else { 32 };
            let mut frame = &sent[challenge..];
            let reply: serde_json::Value = ftp::wire::frame::read_json(&mut frame, 1 << 16).unwrap();
            prop_assert_eq!(reply["code"].as_str(), Some("auth_failed"), "{}", reply);
            prop_assert!(frame.is_empty(), "nothing after the refusal");
        }
    }

    #[test]
    fn random_headers_get_replies_and_never_escape(
        headers in proptest::collection::vec(any_header(), 1..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut input = Vec::new();
        for h in &headers {
            input.extend(ftp::wire::frame::encode(h).unwrap());
            input.extend(&body);
        }
        let out = ftp::testing::serve_bytes(&ftp::testing::context(&root), &input);
        // Whatever comes back starts with a well-formed reply (a put whose
        // body was cut short gets none: the peer hung up). A success
        // answers a command the server knows, never a made-up one; a
        // refusal is one a user can act on: a code the client knows, and
        // a message without the system's error numbers.
        let mut cur = out.as_slice();
        if !out.is_empty() {
            let first: serde_json::Value = ftp::wire::frame::read_json(&mut cur, 1 << 24).unwrap();
            let asked: serde_json::Value = serde_json::from_slice(&headers[0]).unwrap();
            match first["status"].as_str() {
                Some("ok") => {
                    let cmd = asked["cmd"].as_str().unwrap_or_default();
                    prop_assert!(KNOWN.contains(&cmd), "{} answered ok: {}", cmd, first);
                }
                Some("error") => {
                    let code = serde_json::from_value::<ftp::wire::reply::ErrorCode>(first["code"].clone());
                    prop_assert!(code.is_ok(), "unknown code in {}", first);
                    let message = first["message"].as_str().unwrap_or_default();
                    prop_assert!(!message.is_empty() && !message.contains("os error"), "{}", first);
                }
                _ => prop_assert!(false, "not a reply: {}", first),
            }
        }
        prop_assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
