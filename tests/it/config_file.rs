//! The config file: `ftp-server config` writes one, `--config` reads it,
//! and a flag on the command line wins over it.

use std::fs;

use crate::support::*;

#[test]
fn a_printed_config_loads_back_to_the_same_settings_and_serves_them() {
    let sb = Sandbox::new();
    let first = server_command(
        &sb,
        &["--max-file-size", "1KiB", "--workers", "3", "config"],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let text = stdout(&first);
    assert!(
        text.lines().any(|l| l == "max-file-size = \"1KiB\""),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "workers = 3"), "{text}");
    let file = sb.path().join("server.toml");
    fs::write(&file, &text).unwrap();
    let again = server_command(&sb, &["--config", file.to_str().unwrap(), "config"]);
    assert_eq!(stdout(&again), text);

    let server = sb.start_server(&["--config", file.to_str().unwrap()]);
    sb.local_file("ok.bin", &[1u8; 1024]);
    sb.local_file("big.bin", &[1u8; 1025]);
    let out = ClientRun::new(&sb, &server, &["put", "ok.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sb.root().join("ok.bin").exists());
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert_stderr_has(&out, "file too large: 1025 > 1024 bytes");
    assert!(!sb.root().join("big.bin").exists());
}

#[test]
fn a_flag_on_the_command_line_wins_over_the_file() {
    let sb = Sandbox::new();
    let file = sb.path().join("server.toml");
    fs::write(&file, "max-file-size = \"1KiB\"\nno-overwrite = true\n").unwrap();
    let config = file.to_str().unwrap();
    let server = sb.start_server(&["--config", config, "--max-file-size", "1MiB"]);
    sb.local_file("big.bin", &[1u8; 4096]);
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(size_of(&sb.root().join("big.bin")), 4096);
    // The file's other key still holds.
    let again = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert_stderr_has(
        &again,
        "already exists and this server does not overwrite files",
    );
    let shown = server_command(&sb, &["--config", config, "--no-overwrite=false", "config"]);
    assert!(stdout(&shown).lines().any(|l| l == "no-overwrite = false"));
}

#[test]
fn unknown_keys_and_bad_values_stop_the_start_naming_file_line_and_what_is_allowed() {
    let sb = Sandbox::new();
    let file = sb.path().join("server.toml");
    let cases = [
        (
            "workers = 4\nport = 21\n",
            ":2: unknown field `port`, expected one of `listen`",
        ),
        (
            "\n\nmax-file-size = \"lots\"\n",
            ":3: invalid size \"lots\"",
        ),
        (
            "log-format = \"xml\"\n",
            ":1: unknown log format \"xml\": use text or json",
        ),
    ];
    for (text, want) in cases {
        fs::write(&file, text).unwrap();
        let log = ServerProcess::launch(
            &sb,
            &[],
            &sb.root().to_string_lossy(),
            &["--config", file.to_str().unwrap()],
            Some(SECRET),
            &[],
        )
        .err()
        .expect("a bad config file stops the start");
        let want = format!("error: {}{want}", file.display());
        assert!(log.contains(&want), "want {want:?} in\n{log}");
    }
}
