//! `ftp-server check-usage`: a home measured with the server's own walk,
//! in bounded descriptors however many folders it holds.

use std::fs;
use std::process::Command;

use crate::support::*;

const USERS: &str = "[[user]]\nname = \"alice\"\nsecret = \"alice's long secret\"\n\
                     quota = \"1MiB\"\nmax_files = 5000\n\
                     [[user]]\nname = \"bob\"\nsecret = \"bob's long secret\"\n";

/// `ftp-server check-usage ARGS` over the sandbox's root, with at most
/// 32 descriptors open.
fn check_usage(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let users = sb.path().join("users.toml");
    fs::write(&users, USERS).unwrap();
    let root = sb.root();
    Command::new("prlimit")
        .args(["--nofile=32:32", env!("CARGO_BIN_EXE_ftp-server")])
        .arg("--users")
        .arg(&users)
        .arg("--root")
        .arg(&root)
        .arg("check-usage")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_home_of_a_thousand_folders_in_one_is_measured_in_a_few_descriptors() {
    let sb = Sandbox::new();
    let wide = sb.root().join("alice/wide");
    fs::create_dir_all(&wide).unwrap();
    for i in 0..1000 {
        fs::create_dir(wide.join(format!("d{i}"))).unwrap();
    }
    fs::write(wide.join("d7/f"), vec![1u8; 1000]).unwrap();
    fs::create_dir_all(sb.root().join("bob")).unwrap();
    let out = check_usage(&sb, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "alice /alice: 1000 bytes, 1002 files and folders\n");
    assert_stdout_has(&out, "bob /bob: 0 bytes, 0 files and folders\n");
}

#[test]
fn a_home_over_its_quota_is_named_and_the_check_fails() {
    let sb = Sandbox::new();
    let home = sb.root().join("alice");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("big"), vec![0u8; 2 << 20]).unwrap();
    let out = check_usage(&sb, &["alice"]);
    assert!(!out.status.success());
    assert_stdout_has(
        &out,
        "alice /alice: 2097152 bytes, 1 files and folders (over its quota",
    );
    assert!(!stdout(&out).contains("bob"), "only the user asked for");
    assert_stderr_has(&out, "error: 1 of 1 homes are over a limit");
    let out = check_usage(&sb, &["carol"]);
    assert_stderr_has(&out, "no user \"carol\"");
}
