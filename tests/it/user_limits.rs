//! Per-account limits from the users file: read_only, allowed_from,
//! max_connections, and a rate the account's connections share. A login
//! a rule refuses gets `auth_failed`; only the log says which rule.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;

const ALICE: &str = "alice's long secret";
const BOB: &str = "bob's other secret";

fn start(sb: &Sandbox, alice_rules: &str) -> ServerProcess {
    let users = sb.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\nsecret = \"{ALICE}\"\n{alice_rules}\n\
             [[user]]\nname = \"bob\"\nsecret = \"{BOB}\"\nallowed_from = [\"127.0.0.0/8\", \"::1\"]\n"
        ),
    )
    .unwrap();
    sb.start_server(&["--users", users.to_str().unwrap()])
}

fn as_alice(sb: &Sandbox, server: &ServerProcess, args: &[&str]) -> std::process::Output {
    ClientRun::new(sb, server, args)
        .env("FTP_SECRET", ALICE)
        .run()
}

#[test]
fn a_read_only_account_may_get_and_list_but_not_put_rm_mv_or_mkdir() {
    let sb = Sandbox::new();
    let server = start(&sb, "read_only = true");
    fs::create_dir_all(sb.root().join("alice")).unwrap();
    fs::write(sb.root().join("alice/report.txt"), b"the numbers").unwrap();
    sb.local_file("new.txt", b"new");

    let got = as_alice(&sb, &server, &["get", "report.txt"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(
        fs::read(sb.work().join("report.txt")).unwrap(),
        b"the numbers"
    );
    assert!(as_alice(&sb, &server, &["ls"]).status.success());
    for args in [
        &["put", "new.txt"][..],
        &["rm", "report.txt"][..],
        &["mv", "report.txt", "moved.txt"][..],
        &["mkdir", "folder"][..],
    ] {
        let out = as_alice(&sb, &server, args);
        assert!(!out.status.success(), "{args:?} went through");
        assert_stderr_has(&out, "this account is read-only");
    }
    assert_eq!(
        fs::read(sb.root().join("alice/report.txt")).unwrap(),
        b"the numbers"
    );
    assert!(!sb.root().join("alice/new.txt").exists());
    assert!(!sb.root().join("alice/folder").exists());
}

#[test]
fn a_login_from_outside_allowed_from_is_refused_as_a_wrong_secret_is() {
    let sb = Sandbox::new();
    let server = start(&sb, "allowed_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]");
    let out = as_alice(&sb, &server, &["ls"]);
    assert!(
        stderr(&out).starts_with("error: authentication failed"),
        "{}",
        stderr(&out)
    );
    // The seed's plaintext login too.
    let mut plain = Raw::login(server.addr, ALICE.as_bytes());
    let reply = plain.reply().unwrap();
    assert_eq!(
        (&reply["code"], &reply["message"]),
        (&json!("auth_failed"), &json!("authentication failed"))
    );
    let refused = [("event", "login"), ("result", "refused"), ("user", "alice")];
    server.wait_for_said(&refused, "allowed_from: 127.0.0.1 is not in its ranges");
    assert!(
        !server.log_text().contains("10.0.0.0"),
        "the log names the rule, not the ranges"
    );
    let bob = ClientRun::new(&sb, &server, &["ls"])
        .env("FTP_SECRET", BOB)
        .run();
    assert!(bob.status.success(), "{}", stderr(&bob));
}

#[test]
fn max_connections_refuses_the_one_past_it_until_one_closes() {
    let sb = Sandbox::new();
    let server = start(&sb, "max_connections = 2");
    let mut held: Vec<Raw> = (0..2)
        .map(|_| Raw::login(server.addr, ALICE.as_bytes()))
        .collect();
    for raw in &mut held {
        raw.send_json(&json!({"cmd":"pwd"}));
        assert_eq!(raw.reply().unwrap()["status"], "ok");
    }
    let out = as_alice(&sb, &server, &["ls"]);
    assert!(
        stderr(&out).starts_with("error: authentication failed"),
        "{}",
        stderr(&out)
    );
    let refused = [("event", "login"), ("result", "refused"), ("user", "alice")];
    server.wait_for_said(&refused, "max_connections: 2 are open already");
    // Another account is not held to alice's limit.
    assert!(ClientRun::new(&sb, &server, &["ls"])
        .env("FTP_SECRET", BOB)
        .run()
        .status
        .success());
    drop(held.pop());
    assert!(wait_until(Duration::from_secs(10), || as_alice(
        &sb,
        &server,
        &["ls"]
    )
    .status
    .success()));
}

#[test]
fn two_connections_of_one_account_share_its_rate() {
    const RATE: u64 = 256 * 1024;
    let sb = Sandbox::new();
    let server = start(&sb, "rate = \"256KiB\"");
    fs::create_dir_all(sb.root().join("alice")).unwrap();
    let size = 384 * 1024;
    for name in ["one.bin", "two.bin"] {
        fs::write(sb.root().join("alice").join(name), pattern(size, 3)).unwrap();
    }
    let started = Instant::now();
    let gets: Vec<_> = ["one.bin", "two.bin"]
        .into_iter()
        .map(|name| {
            let run = ClientRun::new(&sb, &server, &["get", name]).env("FTP_SECRET", ALICE);
            thread::spawn(move || run.run())
        })
        .collect();
    for get in gets {
        let out = get.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let together = (2 * size) as f64 / elapsed;
    // Each alone at the rate would finish in half the time: together they
    // stay within 15% of the one rate.
    assert!(
        together <= RATE as f64 * 1.15,
        "{together:.0} bytes/s over {elapsed:.2} s"
    );
    assert_eq!(
        fs::read(sb.work().join("two.bin")).unwrap(),
        pattern(size, 3)
    );
    eprintln!("two downloads of one account: {together:.0} bytes/s together, rate {RATE}");
}
