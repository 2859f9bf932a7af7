//! Accounts: per-user secrets and homes, quotas, folders, and the server
//! proving itself to the client.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::json;

const ALICE: &str = "alice's long secret";
const BOB: &str = "bob's other secret";

fn users_server(sb: &Sandbox) -> ServerProcess {
    let users = sb.path().join("users.toml");
    fs::write(sb.path().join("bob.key"), format!("{BOB}\n")).unwrap();
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nquota = \"1MiB\"\n\n\
             [[user]]\nname = \"bob\"\nsecret_file = \"bob.key\"\n"
        ),
    )
    .unwrap();
    sb.start_server(&["--users", users.to_str().unwrap()])
}

fn as_user(
    sb: &Sandbox,
    server: &ServerProcess,
    secret: &str,
    args: &[&str],
) -> std::process::Output {
    ClientRun::new(sb, server, args)
        .env("FTP_SECRET", secret)
        .run()
}

#[test]
fn two_users_with_the_seed_client_land_in_their_own_homes() {
    if !require("python3, to run the seed client", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let server = users_server(&sb);
    let a = sb.local_file("from-alice.txt", b"alice was here");
    let b = sb.local_file("from-bob.txt", b"bob was here");
    for (secret, file) in [(ALICE, &a), (BOB, &b)] {
        let out = seed_client(&server, secret, &[file]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    server.wait_for_event(&[("cmd", "put"), ("path", "/from-bob.txt"), ("result", "ok")]);
    assert_eq!(
        fs::read(sb.root().join("alice/from-alice.txt")).unwrap(),
        b"alice was here"
    );
    assert_eq!(
        fs::read(sb.root().join("bob/from-bob.txt")).unwrap(),
        b"bob was here"
    );
    assert!(!sb.root().join("from-alice.txt").exists());
    for user in ["alice", "bob"] {
        server.wait_for_event(&[("event", "login"), ("result", "ok"), ("user", user)]);
        // The connection's user is on its commands' events too.
        server.wait_for_event(&[("event", "command"), ("cmd", "put"), ("user", user)]);
    }
}

#[test]
fn a_user_cannot_list_or_fetch_another_users_files() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    sb.local_file("bobs-plan.txt", b"private");
    assert!(as_user(&sb, &server, BOB, &["put", "bobs-plan.txt"])
        .status
        .success());
    fs::remove_file(sb.work().join("bobs-plan.txt")).unwrap();

    let out = as_user(&sb, &server, ALICE, &["ls"]);
    assert_eq!(stdout(&out), "(no files)\n");
    let out = as_user(&sb, &server, ALICE, &["get", "bobs-plan.txt"]);
    assert_stderr_has(&out, "(not found)");
    let script = "cd ../bob\npwd\nls\ncd /\ncd ..\npwd\nget ../bob/bobs-plan.txt\n";
    let out = ClientRun::new(&sb, &server, &[])
        .env("FTP_SECRET", ALICE)
        .run_with_input(script);
    assert!(!stdout(&out).contains("bobs-plan"), "{}", stdout(&out));
    // `..` stops at the home, for cd and for a path in get alike.
    let e = stderr(&out);
    assert_eq!(e.matches("no such folder: /bob").count(), 2, "{e}");
    assert!(!sb.work().join("bobs-plan.txt").exists());

    // Raw: names that try to reach the other home are refused.
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    for req in [
        json!({"cmd":"get","filename":"../bob/bobs-plan.txt"}),
        json!({"cmd":"cd","path":"/../bob"}),
        json!({"cmd":"ls"}),
    ] {
        raw.send_json(&req);
        let reply = raw.reply().unwrap();
        assert!(!reply.to_string().contains("bobs-plan"), "{req}: {reply}");
    }
}

#[test]
fn uploads_over_quota_are_refused_and_nothing_is_stored() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    sb.local_file("big.bin", &pattern(1536 * 1024, 30));
    let out = as_user(&sb, &server, ALICE, &["put", "big.bin"]);
    assert!(!out.status.success());
    assert_stderr_has(&out, "server refused (quota exceeded): quota exceeded: storing 1572864 bytes would use 1572864 of 1048576 bytes");
    assert!(!sb.root().join("alice/big.bin").exists());
    assert!(!sb.root().join("alice/.ftp-partial/big.bin").exists());

    // Partial uploads count: 900 KiB kept from a broken upload, then 200 KiB more.
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"broken.bin","filesize":1_000_000}));
    raw.send(&pattern(900 * 1024, 31));
    let partial = sb.root().join("alice/.ftp-partial/broken.bin");
    assert!(wait_until(Duration::from_secs(10), || size_of(&partial) == 900 * 1024));
    drop(raw);
    server.wait_for_event(&[
        ("cmd", "put"),
        ("path", "/broken.bin"),
        ("result", "aborted"),
    ]);
    sb.local_file("more.bin", &pattern(200 * 1024, 32));
    let out = as_user(&sb, &server, ALICE, &["quota"]);
    assert_stdout_has(
        &out,
        "used 900.00 KiB of quota 1.00 MiB; 124.00 KiB available",
    );
    let out = as_user(&sb, &server, ALICE, &["put", "more.bin"]);
    assert_stderr_has(&out, "(quota exceeded)");
    assert!(!sb.root().join("alice/more.bin").exists());

    // A seed-style put over quota: the body is drained, nothing stored.
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"seed.bin","filesize":300_000}));
    raw.send(&pattern(300_000, 33));
    assert_eq!(raw.reply().unwrap()["code"], "quota_exceeded");
    assert!(!sb.root().join("alice/seed.bin").exists());

    // Bob has no quota.
    let out = as_user(&sb, &server, BOB, &["put", "big.bin"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_unknown_key_is_refused() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    let out = as_user(&sb, &server, "nobody's key", &["ls"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("error: authentication failed"),
        "{}",
        stderr(&out)
    );
    server.wait_for_event(&[("event", "login"), ("result", "failed")]);
}

#[test]
fn folders_inside_the_home() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    sb.local_file("n.txt", b"nested");
    let script = "mkdir docs/2026\ncd docs/2026\npwd\nput n.txt\nls\ncd ..\nrm 2026\ncd 2026\nrm n.txt\ncd ..\nrm 2026\ncd /\nrm docs/\nrm docs\nls\n";
    let out = ClientRun::new(&sb, &server, &[])
        .env("FTP_SECRET", BOB)
        .run_with_input(script);
    let o = stdout(&out);
    assert!(
        o.starts_with("created /docs/2026\n/docs/2026\n/docs/2026\nstored n.txt"),
        "{o}"
    );
    assert_stderr_has(&out, "folder 2026 is not empty");
    assert!(
        o.ends_with("removed n.txt\n/docs\nremoved 2026\n/\nremoved docs\n(no files)\n"),
        "{o}"
    );
    assert_stderr_has(&out, "invalid name");
    assert!(!sb.root().join("bob/docs").exists());
}

#[test]
fn users_file_errors_stop_the_server_with_line_and_reason() {
    let sb = Sandbox::new();
    let users = sb.path().join("users.toml");
    for (text, want) in [
        (
            "[[user]]\nname = \"alice\"\n",
            "users.toml:2: user \"alice\" needs `secret` or `secret_file`",
        ),
        (
            "[[user]]\nname = \"a\"\nsecret = \"k\"\nquota = \"12 parsecs\"\n",
            "users.toml:4: invalid size unit \"parsecs\"",
        ),
        (
            "[[user]]\nname = \"../root\"\nsecret = \"k\"\n",
            "users.toml:2: invalid user name \"../root\"",
        ),
        ("[[user]\n", "users.toml:1:"),
    ] {
        fs::write(&users, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
            .args(["--listen", "127.0.0.1:0", "--users"])
            .arg(&users)
            .arg("--root")
            .arg(sb.root())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.starts_with("error: ") && e.contains(want),
            "want {want:?}, got {e}"
        );
        assert!(out.stdout.is_empty(), "it must not start listening");
    }
}

/// What an impostor was sent: the answer to its challenge, and the rest.
type Recorded = std::thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

/// A server that sends `challenge`, then records everything it is sent:
/// the 16 bytes in answer to the challenge, and the rest.
fn impostor(challenge: [u8; 32]) -> (std::net::SocketAddr, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(&challenge).unwrap();
        let mut answer16 = [0u8; 16];
        s.read_exact(&mut answer16).unwrap();
        // A TLS ClientHello follows; answer it with nonsense, as an impostor
        // without a usable certificate would.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = s.write_all(&ftp::wire::frame::encode_json(&json!({"status":"ok"})).unwrap());
        let _ = s.read_to_end(&mut seen);
        (answer16.to_vec(), seen)
    });
    (addr, handle)
}

#[test]
fn the_client_refuses_an_impostor_server() {
    let sb = Sandbox::new();
    let content = b"the crown jewels: do not send to strangers";
    sb.local_file("jewels.txt", content);
    let mut answers = Vec::new();
    for challenge in [[7u8; 32], [9u8; 32]] {
        let (addr, seen) = impostor(challenge);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        cmd.args(["--server", &addr.to_string(), "put", "jewels.txt"])
            .current_dir(sb.work())
            .env("HOME", sb.home())
            .env("FTP_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = wait_output(cmd.spawn().unwrap(), Duration::from_secs(30));
        assert!(!out.status.success());
        assert_stderr_has(&out, "the server did not prove it knows the secret");
        let (answer, seen) = seen.join().unwrap();
        let text = String::from_utf8_lossy(&seen);
        assert!(
            !text.contains("crown jewels") && !text.contains("jewels.txt"),
            "{text}"
        );
        answers.push(answer);
    }
    // Whatever the challenge, the client answers with the TLS marker and
    // never with an HMAC of our secret.
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], ftp::wire::binding::TLS_MARKER);
}

#[test]
fn the_original_python_server_needs_the_explicit_flag() {
    if !require("python3, to run the seed server", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    fs::create_dir_all(sb.root()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_server.py");
    let mut py = Command::new("python3")
        .arg(script)
        .arg(SECRET)
        .arg(sb.root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let data = pattern(200_000, 40);
    sb.local_file("to-seed.bin", &data);
    let client = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        cmd.args(["--server", &addr])
            .args(extra)
            .args(["put", "to-seed.bin"])
            .current_dir(sb.work())
            .env("HOME", sb.home())
            .env("FTP_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_output(cmd.spawn().unwrap(), Duration::from_secs(30))
    };
    let refused = client(&[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("did not complete a TLS handshake")
            && stderr(&refused).contains("--allow-unproven-server"),
        "{}",
        stderr(&refused)
    );
    assert!(!sb.root().join("to-seed.bin").exists());

    let allowed = client(&["--allow-unproven-server"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(stderr(&allowed).contains("warning: not checking that the server knows the secret"));
    assert_stdout_has(&allowed, "this server does not confirm uploads");
    assert!(wait_until(Duration::from_secs(10), || size_of(
        &sb.root().join("to-seed.bin")
    ) == data.len()
        as u64));
    assert_eq!(fs::read(sb.root().join("to-seed.bin")).unwrap(), data);
    let _ = py.kill();
    let _ = py.wait();
}

#[test]
fn uploads_in_flight_count_for_what_they_wrote_and_stop_at_the_quota() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    sb.local_file("first.bin", &pattern(600 * 1024, 60));
    sb.local_file("second.bin", &pattern(600 * 1024, 61));
    let slow = ClientRun::new(
        &sb,
        &server,
        &["--limit-rate", "200KiB", "put", "first.bin"],
    )
    .env("FTP_SECRET", ALICE)
    .spawn();
    let partial = sb.root().join("alice/.ftp-partial/first.bin");
    assert!(wait_until(Duration::from_secs(20), || size_of(&partial) > 0));
    // Only a little of the first file is on disk: the second fits beside
    // it, and the first is stopped where the two would pass the quota.
    let out = as_user(&sb, &server, ALICE, &["put", "second.bin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut slow = slow;
    assert!(!wait_limited(&mut slow, Duration::from_secs(30)).success());
    let put = server.wait_for_refused_put("/first.bin", "quota_exceeded");
    assert!(message(&put).contains("quota exceeded after"), "{put}");
    assert!(sb.root().join("alice/second.bin").exists());
    assert!(!sb.root().join("alice/first.bin").exists());
    assert!(bytes_under(&sb.root().join("alice")) <= 1 << 20);
}

/// Bytes of regular files under `dir`, partial uploads included: what the
/// server's quota must agree with.
fn bytes_under(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            bytes_under(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn the_quota_book_stays_exact_through_puts_replacements_removals_and_breaks() {
    let sb = Sandbox::new();
    let server = users_server(&sb);
    let home = sb.root().join("alice");
    let used = |sb: &Sandbox| {
        let out = as_user(sb, &server, ALICE, &["quota"]);
        let text = stdout(&out);
        text.split_whitespace().nth(1).unwrap().to_string()
    };
    let shown = |n: u64| {
        indicatif::HumanBytes(n)
            .to_string()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    sb.local_file("a.bin", &pattern(300_000, 1));
    sb.local_file("b.bin", &pattern(200_000, 2));
    for step in [&["put", "a.bin"][..], &["put", "b.bin"], &["rm", "b.bin"]] {
        let out = as_user(&sb, &server, ALICE, step);
        assert!(out.status.success(), "{step:?}: {}", stderr(&out));
        assert_eq!(used(&sb), shown(bytes_under(&home)), "after {step:?}");
    }
    // A smaller file replaces a larger one.
    sb.local_file("a.bin", &pattern(100_000, 3));
    assert!(as_user(&sb, &server, ALICE, &["put", "a.bin"])
        .status
        .success());
    assert_eq!(
        used(&sb),
        shown(bytes_under(&home)),
        "after the replacement"
    );
    // A broken upload leaves a partial, which counts.
    let mut raw = Raw::login(server.addr, ALICE.as_bytes());
    raw.send_json(&json!({"cmd":"put","filename":"cut.bin","filesize":500_000}));
    raw.send(&pattern(150_000, 4));
    drop(raw);
    server.wait_for_event(&[("cmd", "put"), ("path", "/cut.bin"), ("result", "aborted")]);
    assert_eq!(used(&sb), shown(bytes_under(&home)), "with a partial");
}
