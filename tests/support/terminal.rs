//! The real `ftp-client` at a pseudo-terminal made by `script`, with
//! keys typed at set delays, or once the screen shows what a person would
//! wait to see: what a person at a terminal does.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    let keys = keys
        .into_iter()
        .map(|(ms, k)| (When::After(ms), k))
        .collect();
    at_terminal_when(sb, server, args, keys)
}

/// When a key string is typed.
pub enum When {
    /// This many milliseconds after the one before.
    After(u64),
    /// Once the screen has shown each of these texts, in order, after
    /// what the string before waited for: the reply to the last command
    /// and then the prompt, say, so that no key lands while a command
    /// still runs however slow the machine.
    Shows(&'static [&'static str]),
}

/// Like [`at_terminal`], each key string typed when its [`When`] says.
pub fn at_terminal_when(
    sb: &Sandbox,
    server: &ServerProcess,
    args: &[&str],
    keys: Vec<(When, &'static [u8])>,
) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run_at_terminal(sb, &server.addr_string(), &args, keys)
}

/// `ftp-client --server ADDR ARGS` at a pseudo-terminal made by `script`,
/// typing `keys` (each after its delay in ms); see [`at_terminal`].
pub fn at_terminal_to(
    sb: &Sandbox,
    addr: &str,
    args: &[String],
    keys: Vec<(u64, &'static [u8])>,
) -> Output {
    let keys = keys
        .into_iter()
        .map(|(ms, k)| (When::After(ms), k))
        .collect();
    run_at_terminal(sb, addr, args, keys)
}

fn run_at_terminal(
    sb: &Sandbox,
    addr: &str,
    args: &[String],
    keys: Vec<(When, &'static [u8])>,
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
    let screen = Arc::new(Mutex::new(Vec::new()));
    let shown = watch(child.stdout.take().unwrap(), screen.clone());
    let mut input = child.stdin.take().unwrap();
    let seen = screen.clone();
    let typist = std::thread::spawn(move || type_keys(&mut input, &seen, keys));
    let mut out = wait_output(child, Duration::from_secs(60));
    let typed = typist.join().unwrap();
    shown.join().unwrap();
    out.stdout = std::mem::take(&mut *screen.lock().unwrap());
    if let Err(text) = typed {
        panic!(
            "the screen never showed {text:?}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    out
}

/// Types `keys` into `input`, each when its moment comes. Gives up
/// (closing the client's input, which ends it) on a text the screen never
/// shows, and says which.
fn type_keys(
    input: &mut impl Write,
    seen: &Mutex<Vec<u8>>,
    keys: Vec<(When, &'static [u8])>,
) -> Result<(), &'static str> {
    let mut from = 0;
    for (when, k) in keys {
        match when {
            When::After(ms) => std::thread::sleep(Duration::from_millis(ms)),
            When::Shows(texts) => from = wait_to_see(seen, from, texts)?,
        }
        // A client that has ended takes no more keys; the test then says
        // what its screen showed.
        if input.write_all(k).is_err() {
            return Ok(());
        }
    }
    std::thread::sleep(Duration::from_millis(400));
    Ok(())
}

/// Copies what the terminal shows into `screen` as it comes.
fn watch(mut from: impl Read + Send + 'static, screen: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            screen.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// Waits (30 s at most) until `screen`, past byte `from`, shows each of
/// `texts` in order; where the last one ends, or the text not shown.
fn wait_to_see(
    screen: &Mutex<Vec<u8>>,
    mut from: usize,
    texts: &[&'static str],
) -> Result<usize, &'static str> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for text in texts {
        loop {
            let shown = screen.lock().unwrap();
            let found = shown[from.min(shown.len())..]
                .windows(text.len())
                .position(|w| w == text.as_bytes());
            if let Some(at) = found {
                from += at + text.len();
                break;
            }
            drop(shown);
            if Instant::now() > deadline {
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(from)
}
