//! Every program of the seed against ours: the authenticated echo client
//! and server, the FtpClient and FtpServer that do not log in, and the
//! joined pair that the other tests use. The seed's programs are in
//! `tests/seed_*.py`, as written apart from Python 3's necessities.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::json;

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

/// A seed server started from a copy of its script in `dir` (so that
/// anything it writes beside itself stays there), stdout to a file;
/// killed on drop.
struct SeedServer {
    child: Child,
    addr: String,
}

impl SeedServer {
    fn start(script: &str, dir: &Path) -> SeedServer {
        let copy = dir.join(script);
        fs::copy(Path::new(SEEDS).join(script), &copy).unwrap();
        let log = dir.join(format!("{script}.out"));
        let child = Command::new("python3")
            .arg(&copy)
            .arg("0")
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut addr = None;
        assert!(wait_until(Duration::from_secs(10), || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            addr = text
                .lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(str::to_string);
            addr.is_some()
        }));
        SeedServer {
            child,
            addr: addr.unwrap(),
        }
    }
}

impl Drop for SeedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a seed client script with `stdin` as what the person types.
fn seed_client_typing(script: &str, addr: &str, stdin: &str, cwd: &Path) -> std::process::Output {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut child = Command::new("python3")
        .arg(Path::new(SEEDS).join(script))
        .args([host, port])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait_output(child, Duration::from_secs(30))
}

#[test]
fn the_seed_echo_client_gets_its_text_back_upper_cased() {
    if !require("python3, to run the seed programs", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = seed_client_typing(
        "seed_echo_client.py",
        &server.addr_string(),
        "hello world\nsecond line\nquit\n",
        &sb.work(),
    );
    let text = stdout(&out);
    assert!(
        text.contains("HELLO WORLD\n") && text.contains("SECOND LINE\n"),
        "{text}"
    );
    // Two bytes, then waiting for the answer: answered, not left waiting.
    let out = seed_client_typing(
        "seed_echo_client.py",
        &server.addr_string(),
        "hi\nquit\n",
        &sb.work(),
    );
    assert_stdout_has(&out, "HI\n");
    server.wait_for_said(&[("event", "echo")], "the seed's echo dialect");
}

#[test]
fn a_framed_client_writing_one_byte_at_a_time_is_never_taken_for_text() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    let frame = ftp::wire::frame::encode_json(&json!({"cmd":"echo","text":"slowly"})).unwrap();
    for b in frame {
        raw.send(&[b]);
        std::thread::sleep(Duration::from_millis(30));
    }
    let reply = raw.reply().unwrap();
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["text"], "SLOWLY");
}

fn ftp_client_seed_put(sb: &Sandbox, addr: &str, file: &Path) -> std::process::Output {
    let line = format!("put {}\n", file.display());
    seed_client_typing("seed_ftp_client.py", addr, &line, &sb.work())
}

#[test]
fn the_seed_ftp_client_uploads_only_to_an_anonymous_drop_box() {
    if !require("python3, to run the seed programs", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let data = pattern(300 * 1000, 11);
    let file = sb.local_file("drop.bin", &data);

    // Without --anonymous nothing is stored, and the log says why.
    let closed = sb.start_server(&[]);
    let _ = ftp_client_seed_put(&sb, &closed.addr_string(), &file);
    let failed = [("event", "login"), ("result", "failed")];
    closed.wait_for_said(&failed, "a frame came instead of the answer");
    assert!(!sb.root().join("anonymous/drop.bin").exists());
    drop(closed);

    let server = sb.start_server(&["--anonymous"]);
    let _ = ftp_client_seed_put(&sb, &server.addr_string(), &file);
    let landed = sb.root().join("anonymous/drop.bin");
    // The client closes without reading the challenge, which resets the
    // connection: everything it sent must land all the same.
    assert!(wait_until(Duration::from_secs(10), || size_of(&landed)
        == data.len() as u64));
    server.wait_for_event(&[("cmd", "put"), ("path", "/drop.bin"), ("result", "ok")]);
    assert_eq!(fs::read(&landed).unwrap(), data);
    // A name that exists is not replaced.
    let other = sb.local_file("drop.bin", b"replacement");
    let _ = ftp_client_seed_put(&sb, &server.addr_string(), &other);
    server.wait_for_refused_put("/drop.bin", "exists");
    assert_eq!(fs::read(&landed).unwrap(), data);
}

#[test]
fn anonymous_clients_may_only_put() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous"]);
    for request in [
        json!({"cmd":"ls"}),
        json!({"cmd":"get","filename":"x"}),
        json!({"cmd":"rm","filename":"x"}),
    ] {
        let mut raw = Raw::connect(server.addr);
        let mut challenge = [0u8; 32];
        std::io::Read::read_exact(&mut raw.stream, &mut challenge).unwrap();
        raw.send_json(&request);
        let reply = raw.reply().unwrap();
        assert_eq!(reply["code"], "forbidden", "{request}: {reply}");
    }
}

fn seed_ftp_server_root(dir: &Path) -> PathBuf {
    let root = dir.join("file_upload");
    fs::create_dir_all(&root).unwrap();
    root
}

#[test]
fn ftp_client_uploads_to_the_seed_ftp_server_with_the_flag() {
    if !require("python3, to run the seed programs", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let root = seed_ftp_server_root(sb.path());
    let server = SeedServer::start("seed_ftp_server.py", sb.path());
    let data = pattern(200_000, 12);
    sb.local_file("to-seed.bin", &data);
    // Without the flag the client waits its whole login limit for the
    // challenge: the reply timeout, set short here, bounds it.
    let refused = ClientRun::to(
        &sb,
        &server.addr,
        &["--reply-timeout", "2", "put", "to-seed.bin"],
    )
    .env("FTP_SECRET", SECRET)
    .run();
    assert!(!refused.status.success());
    assert_stderr_has(&refused, "no challenge came within 2 s");
    let out = ClientRun::to(
        &sb,
        &server.addr,
        &["--allow-unproven-server", "put", "to-seed.bin"],
    )
    .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stderr_has(&out, "no challenge came");
    assert_stdout_has(&out, "this server does not confirm uploads");
    let landed = root.join("to-seed.bin");
    assert!(wait_until(Duration::from_secs(10), || size_of(&landed)
        == data.len() as u64));
    assert_eq!(fs::read(&landed).unwrap(), data);
}

#[test]
fn ftp_client_echoes_through_the_seed_echo_server_with_the_flag() {
    if !require("python3, to run the seed programs", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let server = SeedServer::start("seed_echo_server.py", sb.path());
    let out = ClientRun::to(
        &sb,
        &server.addr,
        &["--allow-unproven-server", "echo", "hello seed"],
    )
    .run();
    assert_eq!(stdout(&out), "HELLO SEED\n", "{}", stderr(&out));
    let out = ClientRun::to(&sb, &server.addr, &["--allow-unproven-server", "ls"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "only echoes text");
    let out = ClientRun::to(&sb, &server.addr, &["echo", "hello"]).run();
    assert!(!out.status.success(), "without the flag nothing is sent");
}
