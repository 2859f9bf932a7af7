//! The real `ftp-client` at a pseudo-terminal made by `script`, with
//! keys typed at set delays: what a person at a terminal does.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{wait_output, Sandbox, ServerProcess, SECRET};

/// Runs `ftp-client --server ADDR ARGS` on a pseudo-terminal made by
/// `script`, in the sandbox's work folder, typing each key string after
/// waiting its delay; returns what the terminal showed once the client
/// exits.
pub fn at_terminal(
    sb: &Sandbox,
    server: &ServerProcess,
    args: &[&str],
    keys: Vec<(u64, &'static [u8])>,
) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    at_terminal_to(sb, &server.addr_string(), &args, keys)
}

/// `ftp-client --server ADDR ARGS` at a pseudo-terminal made by `script`,
/// typing `keys` (each after its delay in ms); see [`at_terminal`].
pub fn at_terminal_to(
    sb: &Sandbox,
    addr: &str,
    args: &[String],
    keys: Vec<(u64, &'static [u8])>,
) -> Output {
    // `exec`, so that no shell stays between `script` and the client: dash
    // does not exec a `-c` command itself, and a Ctrl-C aimed at the client
    // would make that shell exit 130 once the client is done.
    let client = format!(
        "exec {} --server {} {}",
        env!("CARGO_BIN_EXE_ftp-client"),
        addr,
        args.join(" ")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &client, "/dev/null"])
        .current_dir(sb.work())
        .env("HOME", sb.home())
        .env_remove("XDG_STATE_HOME")
        .env("FTP_SECRET", SECRET)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let typist = std::thread::spawn(move || {
        for (delay, k) in keys {
            std::thread::sleep(Duration::from_millis(delay));
            input.write_all(k).unwrap();
        }
        std::thread::sleep(Duration::from_millis(400));
    });
    let out = wait_output(child, Duration::from_secs(60));
    typist.join().unwrap();
    out
}
