//! `ftp-server user add | remove | list` against the users file of a
//! running server, which picks each change up.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

const HEAD: &str = "# Our team. Keep this file 0600.\n[[user]]\nname = \"alice\" # the admin\nsecret = \"alice's long secret\"\n";

fn user_command(sb: &Sandbox, users: &str, args: &[&str]) -> Output {
    let root = sb.root().to_string_lossy().into_owned();
    let all = [&["--users", users, "--root", &root, "user"][..], args].concat();
    server_command(sb, &all)
}

/// A users file holding [`HEAD`]; its path.
fn users_file(sb: &Sandbox) -> PathBuf {
    let path = sb.path().join("users.toml");
    fs::write(&path, HEAD).unwrap();
    path
}

/// `user add bob` with a quota and a file limit: one line with bob's
/// secret and the client command, the file kept private; the secret.
fn add_bob(sb: &Sandbox, users: &str, path: &Path) -> String {
    let added = user_command(
        sb,
        users,
        &["add", "bob", "--quota", "1MiB", "--max-files", "50"],
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let line = stdout(&added);
    let (secret, rest) = line
        .trim_end()
        .strip_prefix("FTP_SECRET=")
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        rest.starts_with("ftp-client --server 127.0.0.1:8080 --fingerprint "),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    let text = fs::read_to_string(path).unwrap();
    assert!(text.starts_with(HEAD), "{text}");
    assert_eq!(
        fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    secret.to_string()
}

/// The words of `user list`'s row for `name`.
fn listed_row(rows: &str, name: &str) -> Vec<String> {
    rows.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {rows}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_user_added_logs_in_at_once_shows_in_the_list_and_is_gone_when_removed() {
    let sb = Sandbox::new();
    let path = users_file(&sb);
    let users = path.to_str().unwrap();
    let server = sb.start_server(&["--users", users]);
    let secret = add_bob(&sb, users, &path);

    server.wait_for_said(&[("event", "reload"), ("result", "ok")], "added bob");
    sb.local_file("hello.txt", b"hello, world");
    let put = ClientRun::new(&sb, &server, &["put", "hello.txt"])
        .env("FTP_SECRET", &secret)
        .run();
    assert!(put.status.success(), "{}", stderr(&put));
    assert_eq!(
        fs::read(sb.root().join("bob/hello.txt")).unwrap(),
        b"hello, world"
    );

    let listed = user_command(&sb, users, &["list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let rows = stdout(&listed);
    assert_eq!(
        listed_row(&rows, "bob"),
        ["bob", "1MiB", "50", "12", "1"],
        "{rows}"
    );
    assert_eq!(
        listed_row(&rows, "alice"),
        ["alice", "-", "-", "0", "0"],
        "{rows}"
    );

    let removed = user_command(&sb, users, &["remove", "bob"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    server.wait_for_said(&[("event", "reload"), ("result", "ok")], "removed bob");
    let refused = ClientRun::new(&sb, &server, &["ls"])
        .env("FTP_SECRET", &secret)
        .run();
    assert!(!refused.status.success());
    assert_stderr_has(&refused, "authentication failed");
    assert!(fs::read_to_string(&path).unwrap().starts_with(HEAD));
}

#[test]
fn user_commands_refuse_clearly_and_exit_non_zero() {
    let sb = Sandbox::new();
    let path = users_file(&sb);
    let users = path.to_str().unwrap();
    for (args, want) in [
        (&["add", "alice"][..], "already has a user \"alice\""),
        (&["remove", "zed"][..], "has no user \"zed\""),
        (&["add", "../up"][..], "invalid user name"),
    ] {
        let out = user_command(&sb, users, args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).starts_with("error: ") && stderr(&out).contains(want),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), HEAD);
}
