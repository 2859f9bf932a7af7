//! Accounts and limits changed without a restart: an edit of the users
//! file or a SIGHUP reloads it, and a SIGHUP applies the config file's
//! limits; a file that does not load is refused whole.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use serde_json::json;

const ALICE: &str = "alice's long secret";
const BOB: &str = "bob's other secret";

fn alice(quota: &str) -> String {
    format!("[[user]]\nname = \"alice\"\nsecret = \"{ALICE}\"\nquota = \"{quota}\"\n")
}

fn bob() -> String {
    format!("[[user]]\nname = \"bob\"\nsecret = \"{BOB}\"\n")
}

/// Replaces the users file as an editor does: a new file renamed over it.
fn rewrite(path: &Path, text: &str) {
    let staged = path.with_extension("new");
    fs::write(&staged, text).unwrap();
    fs::rename(&staged, path).unwrap();
}

fn start(sb: &Sandbox, text: &str) -> (ServerProcess, PathBuf) {
    let users = sb.path().join("users.toml");
    fs::write(&users, text).unwrap();
    (
        sb.start_server(&["--users", users.to_str().unwrap()]),
        users,
    )
}

fn ls_as(sb: &Sandbox, server: &ServerProcess, secret: &str) -> std::process::Output {
    ClientRun::new(sb, server, &["ls"])
        .env("FTP_SECRET", secret)
        .run()
}

/// Waits for the `n`th reload line in the log, and returns it.
fn reload_line(server: &ServerProcess, n: usize) -> String {
    let mut found = None;
    let seen = wait_until(Duration::from_secs(10), || {
        found = server
            .events_with(&[("event", "reload")])
            .iter()
            .map(|e| message(e).to_string())
            .filter(|m| m.contains("reloaded the accounts") || m.contains("is refused"))
            .nth(n - 1);
        found.is_some()
    });
    assert!(seen, "no reload {n} in:\n{}", server.log_text());
    found.unwrap_or_default()
}

fn sighup(server: &ServerProcess) {
    let pid = i32::try_from(server.child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

#[test]
fn a_user_added_to_the_file_logs_in_without_a_restart() {
    let sb = Sandbox::new();
    let (mut server, users) = start(&sb, &alice("1MiB"));
    let refused = ls_as(&sb, &server, BOB);
    assert!(!refused.status.success());
    rewrite(&users, &format!("{}\n{}", alice("1MiB"), bob()));
    let line = reload_line(&server, 1);
    assert!(
        line.contains("the users file changed") && line.contains("added bob"),
        "{line}"
    );
    let out = ls_as(&sb, &server, BOB);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.is_running());
}

#[test]
fn sighup_reloads_and_no_longer_ends_the_server() {
    let sb = Sandbox::new();
    let (mut server, _) = start(&sb, &alice("1MiB"));
    sighup(&server);
    let line = reload_line(&server, 1);
    assert!(
        line.contains("SIGHUP: reloaded the accounts") && line.ends_with("no change"),
        "{line}"
    );
    assert!(server.is_running());
    let out = ls_as(&sb, &server, ALICE);
    assert!(out.status.success(), "{}", stderr(&out));

    // One shared secret: nothing to reload, and the server goes on.
    let mut plain = sb.start_server(&[]);
    sighup(&plain);
    plain.wait_for_said(
        &[("event", "reload")],
        "SIGHUP: nothing to reload (no users file)",
    );
    assert!(plain.is_running());
    assert!(ClientRun::new(&sb, &plain, &["ls"]).run().status.success());
}

#[test]
fn a_file_that_does_not_load_is_refused_whole_and_the_old_accounts_stay() {
    let sb = Sandbox::new();
    let (server, users) = start(&sb, &alice("1MiB"));
    // Bob is fine, but the file as a whole is not: nobody is added.
    rewrite(
        &users,
        &format!("{}\n{}\nshell = \"/bin/sh\"\n", alice("1MiB"), bob()),
    );
    let line = reload_line(&server, 1);
    assert!(
        line.contains("the accounts in force stay") && line.contains("unknown field `shell`"),
        "{line}"
    );
    assert!(line.contains("users.toml:10:"), "{line}");
    assert!(ls_as(&sb, &server, ALICE).status.success());
    assert!(!ls_as(&sb, &server, BOB).status.success());
}

#[test]
fn a_removed_user_is_told_at_the_next_request_and_a_changed_quota_applies_at_once() {
    let sb = Sandbox::new();
    let (server, users) = start(&sb, &format!("{}\n{}", alice("1MiB"), bob()));
    let mut alice_conn = Raw::login(server.addr, ALICE.as_bytes());
    let mut bob_conn = Raw::login(server.addr, BOB.as_bytes());
    alice_conn.send_json(&json!({"cmd":"quota"}));
    assert_eq!(alice_conn.reply().unwrap()["quota"], 1 << 20);
    bob_conn.send_json(&json!({"cmd":"quota"}));
    assert!(bob_conn.reply().unwrap()["status"] == "ok");

    rewrite(&users, &alice("2KiB"));
    let line = reload_line(&server, 1);
    assert!(
        line.contains("alice: quota 1048576 -> 2048") && line.contains("removed bob"),
        "{line}"
    );

    alice_conn.send_json(&json!({"cmd":"quota"}));
    assert_eq!(alice_conn.reply().unwrap()["quota"], 2048);
    bob_conn.send_json(&json!({"cmd":"quota"}));
    let reply = bob_conn.reply().unwrap();
    assert_eq!(reply["code"], "auth_failed", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains("account bob was removed from this server"),
        "{message}"
    );
    assert!(bob_conn.closed_within(Duration::from_secs(5)));
    // A changed secret applies to the next login.
    rewrite(&users, &alice("2KiB").replace(ALICE, "alice's new secret"));
    reload_line(&server, 2);
    assert!(!ls_as(&sb, &server, ALICE).status.success());
    assert!(ls_as(&sb, &server, "alice's new secret").status.success());
}

#[test]
fn sighup_applies_the_config_files_limits_and_names_what_needs_a_restart() {
    let sb = Sandbox::new();
    let users = sb.path().join("users.toml");
    fs::write(&users, alice("10MiB")).unwrap();
    let config = sb.path().join("server.toml");
    let settings = |size: &str, workers: u32| {
        let text =
            format!("users = \"users.toml\"\nmax-file-size = \"{size}\"\nworkers = {workers}\n");
        fs::write(&config, text).unwrap();
    };
    settings("1MiB", 8);
    let mut server = sb.start_server(&["--config", config.to_str().unwrap()]);
    sb.local_file("big.bin", &pattern(1536 << 10, 9));
    let put = || {
        ClientRun::new(&sb, &server, &["put", "big.bin"])
            .env("FTP_SECRET", ALICE)
            .run()
    };
    let refused = put();
    assert!(!refused.status.success());
    assert_stderr_has(&refused, "file too large: 1572864 > 1048576 bytes");

    // The limit applies at once; the workers wait for a restart.
    settings("2MiB", 4);
    sighup(&server);
    let applied = server.wait_for_event(&[("event", "reload"), ("result", "applied")]);
    assert!(
        message(&applied).contains("changed: max-file-size: \"1MiB\" -> \"2MiB\"; in force now"),
        "{applied}"
    );
    let later = server.wait_for_event(&[("event", "reload"), ("result", "needs_restart")]);
    let later = message(&later);
    assert!(
        later.contains("changed: workers: 8 -> 4; a restart applies it"),
        "{later}"
    );
    assert!(!later.contains("max-file-size"), "{later}");
    let stored = put();
    assert!(stored.status.success(), "{}", stderr(&stored));
    assert_eq!(
        fs::read(sb.root().join("alice/big.bin")).unwrap(),
        pattern(1536 << 10, 9)
    );
    assert!(server.is_running());
}

#[test]
fn sighup_refuses_a_config_file_that_would_not_start_the_server() {
    let sb = Sandbox::new();
    fs::write(sb.path().join("users.toml"), alice("1MiB")).unwrap();
    let config = sb.path().join("server.toml");
    fs::write(
        &config,
        "users = \"users.toml\"\nmax-file-size = \"1MiB\"\n",
    )
    .unwrap();
    let mut server = sb.start_server(&["--config", config.to_str().unwrap()]);
    fs::write(
        &config,
        "users = \"users.toml\"\nmax-file-size = \"huge\"\n",
    )
    .unwrap();
    sighup(&server);
    let said = server.wait_for_said(
        &[("event", "reload"), ("result", "refused")],
        "the settings in force stay",
    );
    let said = message(&said);
    assert!(
        said.contains("would not start the server:")
            && said.contains("server.toml:2: invalid size \"huge\""),
        "{said}"
    );
    // The accounts were reloaded all the same, and the server runs on.
    reload_line(&server, 1);
    assert!(server.is_running());
    assert!(ls_as(&sb, &server, ALICE).status.success());
}
