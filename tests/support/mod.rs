//! Shared helpers for the integration tests: a real `ftp-server` process on
//! 127.0.0.1:0 in its own temp dir, the real `ftp-client` with a time
//! limit, and a raw protocol connection for sending exact bytes.

pub mod elsewhere;
pub mod freezer;
pub mod garage;
pub mod homes;
pub mod hostile;
pub mod http;
pub mod latency;
pub mod log;
pub mod process;
pub mod relay;
pub mod shared;
pub mod terminal;

pub use elsewhere::{login_and_list, served_quickly_from_elsewhere};
pub use process::{fds_of, status_kib, threads_of};
pub use terminal::{at_terminal, at_terminal_to, at_terminal_when, When};

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use ftp::wire::frame;

use shared::{answer_challenge, listening_addr, Pattern};

pub use homes::{alice_server, held_under, ALICE};
pub use log::{field, has_fields, message};

/// The secret every test server uses unless a test says otherwise.
pub const SECRET: &str = "linhaifeng bang bang bang";

/// Longest any client process may run in a test.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// A temp dir holding a server's root and the client's working folder.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// The server's upload root.
    pub fn root(&self) -> PathBuf {
        self.path().join("root")
    }
    /// The client's working folder.
    pub fn work(&self) -> PathBuf {
        let w = self.path().join("work");
        fs::create_dir_all(&w).unwrap();
        w
    }
    /// The HOME both processes see, so that default secret files and
    /// history stay inside the sandbox.
    pub fn home(&self) -> PathBuf {
        let h = self.path().join("home");
        fs::create_dir_all(&h).unwrap();
        h
    }
    /// Writes a file in the client's working folder.
    pub fn local_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.work().join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
    pub fn start_server(&self, extra: &[&str]) -> ServerProcess {
        ServerProcess::start(self, extra, Some(SECRET))
    }
}

/// Deterministic pseudo-random bytes, so failures are reproducible.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    Pattern::new(seed).fill(&mut bytes);
    bytes
}

/// A running `ftp-server`, killed on drop.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts the server with `--listen 127.0.0.1:0 --root <sandbox>/root`
    /// plus `extra`, and waits for its `listening on` line.
    pub fn start(sandbox: &Sandbox, extra: &[&str], secret: Option<&str>) -> ServerProcess {
        ServerProcess::start_under(sandbox, &[], extra, secret)
    }

    /// The same, run by `wrapper` (such as `prlimit --nofile=100`).
    pub fn start_under(
        sandbox: &Sandbox,
        wrapper: &[&str],
        extra: &[&str],
        secret: Option<&str>,
    ) -> ServerProcess {
        let root = sandbox.root().to_string_lossy().into_owned();
        ServerProcess::launch(sandbox, wrapper, &root, extra, secret, &[])
            .unwrap_or_else(|log| panic!("the server did not start; log: {log}"))
    }

    /// Starts the server on `--root root` (a folder or s3://...) with
    /// `env` added; `Err` holds its log when it exits instead of listening.
    pub fn launch(
        sandbox: &Sandbox,
        wrapper: &[&str],
        root: &str,
        extra: &[&str],
        secret: Option<&str>,
        env: &[(&str, String)],
    ) -> Result<ServerProcess, String> {
        let log = sandbox.path().join(format!("server-{}.log", unique()));
        let server = env!("CARGO_BIN_EXE_ftp-server");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(server);
                c
            }
            None => Command::new(server),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--root", root]);
        // Tests read the log by its fields, as a shipper does, unless they
        // ask for a format.
        if !extra.contains(&"--log-format") {
            cmd.args(["--log-format", "json"]);
        }
        cmd.args(extra)
            .env("HOME", sandbox.home())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FTP_SECRET")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(s) = secret {
            cmd.env("FTP_SECRET", s);
        }
        let mut child = cmd.spawn().expect("spawn ftp-server");
        let Some(addr) = listening_addr(&mut child) else {
            let _ = child.wait();
            return Err(fs::read_to_string(&log).unwrap_or_default());
        };
        Ok(ServerProcess { child, addr, log })
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A client invocation.
pub struct ClientRun {
    pub cmd: Command,
}

impl ClientRun {
    /// `ftp-client --server ADDR ARGS...` in the sandbox's working folder,
    /// with the test secret in the environment.
    pub fn new(sandbox: &Sandbox, server: &ServerProcess, args: &[&str]) -> ClientRun {
        ClientRun::to(sandbox, &server.addr_string(), args)
    }

    /// The same, aimed at `addr` (a relay, say) instead of a server.
    pub fn to(sandbox: &Sandbox, addr: &str, args: &[&str]) -> ClientRun {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        cmd.arg("--server")
            .arg(addr)
            .args(args)
            .current_dir(sandbox.work())
            .env("HOME", sandbox.home())
            .env_remove("XDG_CONFIG_HOME")
            .env("FTP_SECRET", SECRET);
        ClientRun { cmd }
    }

    pub fn env(mut self, key: &str, value: &str) -> ClientRun {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> ClientRun {
        self.cmd.env_remove(key);
        self
    }

    /// Runs with `stdin` as its input, killed if it takes too long.
    pub fn run_with_input(mut self, stdin: &str) -> Output {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn ftp-client");
        let mut input = child.stdin.take().unwrap();
        let text = stdin.to_string();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(text.as_bytes());
        });
        let out = wait_output(child, CLIENT_LIMIT);
        let _ = writer.join();
        out
    }

    pub fn run(self) -> Output {
        self.run_with_input("")
    }

    /// Starts without waiting, stdin closed, output discarded.
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.cmd.spawn().expect("spawn ftp-client")
    }
}

/// `ftp-server ARGS` run to its end in the sandbox without serving
/// (`config`, `user ...`), with the test secret in the environment.
pub fn server_command(sandbox: &Sandbox, args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .args(args)
        .current_dir(sandbox.path())
        .env("HOME", sandbox.home())
        .env_remove("XDG_CONFIG_HOME")
        .env("FTP_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ftp-server");
    wait_output(child, CLIENT_LIMIT)
}

/// Waits for `child` with a time limit, collecting its output.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let status = wait_limited(&mut child, limit);
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Waits for a process, killing it (and failing the test) after `limit`.
pub fn wait_limited(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fails unless the process wrote `needle` to stderr, showing all of it.
#[track_caller]
pub fn assert_stderr_has(o: &Output, needle: &str) {
    let said = stderr(o);
    assert!(said.contains(needle), "no {needle:?} in stderr:\n{said}");
}

/// Fails unless the process wrote `needle` to stdout, showing all of it.
#[track_caller]
pub fn assert_stdout_has(o: &Output, needle: &str) {
    let said = stdout(o);
    assert!(said.contains(needle), "no {needle:?} in stdout:\n{said}");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits until `cond` holds, for up to `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Size of a file, 0 if it does not exist.
pub fn size_of(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// A raw protocol connection, for sending exactly the bytes a test wants.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// Connects without logging in.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Raw { stream }
    }

    /// Connects and answers the challenge with `secret`.
    pub fn login(addr: SocketAddr, secret: &[u8]) -> Raw {
        let mut raw = Raw::connect(addr);
        answer_challenge(&mut raw.stream, secret).unwrap();
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one JSON header frame.
    pub fn send_json(&mut self, v: &serde_json::Value) {
        let f = frame::encode_json(v).unwrap();
        self.send(&f);
    }

    /// Sends a frame whose body is `body` exactly.
    pub fn send_frame(&mut self, body: &[u8]) {
        self.send(&frame::encode(body).unwrap());
    }

    /// Reads one reply frame as JSON; `None` when the server closed.
    pub fn reply(&mut self) -> Option<serde_json::Value> {
        match frame::read(&mut self.stream, frame::MAX_REPLY_LEN) {
            Ok(Some(body)) => Some(serde_json::from_slice(&body).expect("reply is JSON")),
            _ => None,
        }
    }

    /// Whether the server closes the connection within `limit`; see
    /// [`closed_within`].
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        closed_within(&mut self.stream, limit)
    }
}

/// Whether the peer closes `stream` within `limit`: true on an end of file
/// or a reset, false when `limit` passes with the connection still open.
/// Bytes that arrive first (an error frame before the close) are skipped.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 256];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => match e.kind() {
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => return true,
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => continue,
                _ => panic!("reading while waiting for the close: {e}"),
            },
        }
    }
}

/// Whether a test that needs `what` can run, given whether it is `present`.
/// When it is missing the test is skipped (false, after saying so) unless
/// `FTP_REQUIRE_TOOLS` is set, as CI sets it: then the test fails, because a
/// test that passes without running proves nothing.
#[track_caller]
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os("FTP_REQUIRE_TOOLS").is_some() {
        panic!("FTP_REQUIRE_TOOLS is set but {test} cannot run: it needs {what}");
    }
    // Past the test harness's capture, which would hide it.
    let _ = writeln!(std::io::stderr(), "skipped {test}: it needs {what}");
    false
}

/// Whether python3 can run, for the tests of the original Python programs.
pub fn has_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the original Python client (`tests/seed_client.py`) against
/// `server` with `secret`, uploading `files`, within 60 s.
pub fn seed_client(server: &ServerProcess, secret: &str, files: &[&Path]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_client.py");
    let child = Command::new("python3")
        .arg(script)
        .arg("127.0.0.1")
        .arg(server.addr.port().to_string())
        .arg(secret)
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    wait_output(child, Duration::from_secs(60))
}

/// Whether `script` (util-linux) is here to make a pseudo-terminal.
pub fn has_script() -> bool {
    Command::new("script").arg("--version").output().is_ok()
}

/// Whether `prlimit` (util-linux) is here to start the server with fewer
/// file descriptors.
pub fn has_prlimit() -> bool {
    Command::new("prlimit").arg("--version").output().is_ok()
}
