//! What users and operators expect around the protocol: listings that hide
//! dot-files, shell completions and man pages.

mod support;

use std::process::Command;

use support::*;

#[test]
fn ls_hides_dot_files_unless_asked_and_shows_human_sizes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    std::fs::write(sb.root().join(".gitkeep"), b"").unwrap();
    std::fs::write(sb.root().join("big.bin"), vec![0u8; 3 << 20]).unwrap();
    let plain = ClientRun::new(&sb, &server, &["ls"]).run();
    assert!(plain.status.success(), "{}", stderr(&plain));
    let text = stdout(&plain);
    assert!(!text.contains(".gitkeep"), "{text}");
    assert!(
        text.contains("     3145728  ") && text.contains("big.bin"),
        "{text}"
    );
    let all = ClientRun::new(&sb, &server, &["ls", "-ah"]).run();
    let text = stdout(&all);
    assert!(
        text.contains(".gitkeep") && text.contains("3.00 MiB  "),
        "{text}"
    );
    let bad = ClientRun::new(&sb, &server, &["ls", "-z"]).run();
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("error: usage: ls [-a] [-h]"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn both_programs_print_completions_and_a_man_page() {
    for (program, flag) in [
        (env!("CARGO_BIN_EXE_ftp-client"), "--server"),
        (env!("CARGO_BIN_EXE_ftp-server"), "--listen"),
    ] {
        let out = Command::new(program)
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(stdout(&out).contains(flag), "{program}: {}", stdout(&out));
        let out = Command::new(program)
            .args(["completions", "nosuchshell"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).starts_with("error: unknown shell"),
            "{}",
            stderr(&out)
        );
        let out = Command::new(program).arg("man").output().unwrap();
        assert!(out.status.success());
        let name = std::path::Path::new(program)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            stdout(&out).contains(&format!(".TH {name} 1")),
            "{}",
            stdout(&out)
        );
    }
}
