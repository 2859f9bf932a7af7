//! A real S3 store for the tests: a single-node Garage on free loopback
//! ports in a temp dir (SQLite metadata, replication factor 1), set up
//! the way Garage's quick start does: layout, bucket, key.
//!
//! The S3 tests share one node ([`Garage::shared`]), started by the first
//! that asks, each test under a prefix (or a bucket) of its own: starting
//! a node takes seconds, and a node per test made the suite wait for each.
//! A test that stops the store has a node of its own ([`Garage::own`]).
//! A missing `garage` binary fails the test, saying how to install it.
//! The benchmark uses this file too.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ftp::testing::inside::{Endpoint, S3Client};

/// The bucket every test server uses.
pub const BUCKET: &str = "ftp";
const REGION: &str = "garage";
const KEY_ID: &str = "GK0123456789abcdef01234567";
const KEY_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How long Garage may take to come up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// What to run without a `garage` binary.
const INSTALL: &str = "cargo install garage --version 2.5.0 --locked";

/// Nodes are set up one at a time, so that two starting at once on two
/// cores do not time each other out.
static SETTING_UP: Mutex<()> = Mutex::new(());

/// The node the S3 tests share.
static SHARED: OnceLock<Garage> = OnceLock::new();

/// A running Garage, stopped when dropped.
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    s3_port: u16,
}

/// `garage` on PATH or in cargo's bin folder.
fn find_binary() -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join("garage"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Garage {
    /// The node the S3 tests share, started by the first test that asks.
    ///
    /// It is started from a thread that lives as long as the test process
    /// and told to die with that thread, so however the process ends (a
    /// kill, a timeout) the node goes too; an ordinary exit also stops it
    /// and removes its folder.
    pub fn shared() -> &'static Garage {
        SHARED.get_or_init(|| {
            let binary = find_binary().unwrap_or_else(|| panic!("no garage binary: {INSTALL}"));
            let (started, start) = mpsc::channel();
            std::thread::Builder::new()
                .name("garage keeper".into())
                .spawn(move || {
                    let _ = started.send(Garage::launch(binary));
                    loop {
                        std::thread::park();
                    }
                })
                .expect("a thread for the shared garage");
            let garage = start
                .recv()
                .expect("the garage keeper answers")
                .unwrap_or_else(|why| panic!("{why}"));
            // SAFETY: registers a plain function, which touches only the
            // static that is set below before any exit can run it.
            unsafe { libc::atexit(stop_shared) };
            garage
        })
    }

    /// A node for one test alone: one that stops and restarts the store.
    pub fn own() -> Garage {
        Garage::start().unwrap_or_else(|| panic!("no garage binary: {INSTALL}"))
    }

    /// A node of its own with an empty bucket, or `None` when Garage is
    /// not installed (the benchmark then leaves its S3 figures out).
    pub fn start() -> Option<Garage> {
        let binary = find_binary()?;
        Some(Garage::launch(binary).unwrap_or_else(|why| panic!("{why}")))
    }

    /// A node with the bucket and the key, taking a write.
    fn launch(binary: PathBuf) -> Result<Garage, String> {
        let _one_at_a_time = SETTING_UP.lock().unwrap_or_else(|p| p.into_inner());
        // A node that cannot take its ports (another test's node, still
        // going away, holds one) is given up and started again on others.
        let mut tries = 0;
        loop {
            let garage = Garage::configure(binary.clone());
            garage.run_server();
            match garage.set_up() {
                Ok(()) => {
                    garage.wait_for_s3(BUCKET)?;
                    return Ok(garage);
                }
                Err(why) if tries < 2 => {
                    tries += 1;
                    let _ = writeln!(std::io::stderr(), "garage again on new ports: {why}");
                }
                Err(why) => return Err(format!("garage did not start: {why}; {}", garage.log())),
            }
        }
    }

    /// A bucket of its own on this node, for a test that counts what the
    /// whole bucket holds; `name` is the test's to keep apart.
    pub fn bucket(&self, name: &str) -> String {
        self.allow(name)
            .unwrap_or_else(|why| panic!("bucket {name}: {why}"));
        self.wait_for_s3(name).unwrap_or_else(|why| panic!("{why}"));
        name.to_string()
    }

    /// A node of its own: a temp dir, free ports, and a secret no other
    /// test's node has, so that its command line can never reach another.
    fn configure(binary: PathBuf) -> Garage {
        let dir = tempfile::tempdir().expect("temp dir");
        let (s3_port, rpc_port) = (free_port(), free_port());
        let root = dir.path();
        let secret: [u8; 32] = rand::random();
        let config = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{secret}\"\n\
             \n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            meta = root.join("meta").display(),
            data = root.join("data").display(),
            secret = hex::encode(secret),
        );
        fs::write(root.join("garage.toml"), config).unwrap();
        Garage {
            binary,
            dir,
            child: Mutex::new(None),
            s3_port,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Starts the node, which dies with the thread that started it.
    fn run_server(&self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent's between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn garage");
        *self.lock_child() = Some(child);
    }

    /// Runs `garage ARGS` against this node.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run garage")
    }

    /// Runs `garage ARGS` until it succeeds: right after start, and on a
    /// loaded machine, a call can time out. One that timed out may still
    /// have been carried out, so "already exists" (or, for the layout, an
    /// "invalid new layout version") counts as done.
    ///
    /// Fails with what Garage said once [`START_LIMIT`] has passed, or at
    /// once when the node has exited.
    fn cli_ok(&self, args: &[&str]) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let out = self.cli(args);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let lower = said.to_lowercase();
            let done_before =
                lower.contains("already exist") || lower.contains("invalid new layout version");
            if out.status.success() || done_before {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if started.elapsed() > START_LIMIT || self.has_exited() {
                return Err(format!("garage {args:?}: {said}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the node's process has ended (it could not bind, say).
    fn has_exited(&self) -> bool {
        self.lock_child()
            .as_mut()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Layout, bucket and key, once the node answers.
    fn set_up(&self) -> Result<(), String> {
        let node = self.cli_ok(&["node", "id", "-q"])?;
        let id = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        self.cli_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        self.cli_ok(&["layout", "apply", "--version", "1"])?;
        self.cli_ok(&["key", "import", "--yes", "-n", "ftp", KEY_ID, KEY_SECRET])?;
        self.allow(BUCKET)
    }

    /// Makes `bucket` and lets the key read and write it.
    fn allow(&self, bucket: &str) -> Result<(), String> {
        self.cli_ok(&["bucket", "create", bucket])?;
        self.cli_ok(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "ftp",
        ])?;
        Ok(())
    }

    /// Waits until `bucket` takes a write, not only a listing: right
    /// after the layout is applied, writes can fail for a moment.
    fn wait_for_s3(&self, bucket: &str) -> Result<(), String> {
        let client = self.client_of(bucket);
        let started = Instant::now();
        let probe = ".ready";
        let writable = || {
            client.check()?;
            client.put(probe, b"")?;
            client.delete(probe)
        };
        while let Err(e) = writable() {
            if started.elapsed() > START_LIMIT {
                return Err(format!("S3 API not up: {e}; {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// How many multipart uploads in `bucket` are unfinished, as Garage's
    /// admin API counts them.
    pub fn unfinished_uploads(&self, bucket: &str) -> u64 {
        let out = self
            .cli_ok(&[
                "json-api",
                "GetBucketInfo",
                &format!("{{\"globalAlias\":\"{bucket}\"}}"),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
        let info: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("GetBucketInfo: {e}: {out}"));
        info["unfinishedMultipartUploads"]
            .as_u64()
            .unwrap_or_else(|| panic!("GetBucketInfo: no count of uploads: {out}"))
    }

    /// Garage's own log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// Where `bucket` is, and the key to it.
    fn endpoint_of(&self, bucket: &str) -> Endpoint {
        Endpoint {
            url: self.url(),
            region: REGION.into(),
            bucket: bucket.into(),
            key_id: KEY_ID.into(),
            secret: KEY_SECRET.into(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A client of the bucket, for looking behind the servers' backs.
    pub fn client(&self) -> S3Client {
        self.client_of(BUCKET)
    }

    /// A client of another bucket of this node's.
    pub fn client_of(&self, bucket: &str) -> S3Client {
        S3Client::new(&self.endpoint_of(bucket)).unwrap()
    }

    /// The variables a server reads its store from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", KEY_SECRET.into()),
        ]
    }

    /// The store goes away (its process is killed). Only a node of one
    /// test's own can be stopped: the shared one is never `mut`.
    pub fn stop(&mut self) {
        self.kill();
    }

    fn kill(&self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The store comes back, with what it held.
    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
        self.wait_for_s3(BUCKET)
            .unwrap_or_else(|why| panic!("{why}"));
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops the shared node at the test process's exit, and removes its
/// folder, which a static never drops.
extern "C" fn stop_shared() {
    if let Some(garage) = SHARED.get() {
        garage.kill();
        let _ = fs::remove_dir_all(garage.dir.path());
    }
}
