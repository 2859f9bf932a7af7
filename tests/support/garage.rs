//! A real S3 store for the tests: a single-node Garage on free loopback
//! ports in a temp dir (SQLite metadata, replication factor 1), set up
//! the way Garage's quick start does: layout, bucket, key.
//!
//! Without a `garage` binary the S3 suite is skipped with one line saying
//! how to install it, unless `FTP_REQUIRE_S3` is set (CI sets it), where
//! a missing binary fails the suite instead. The benchmark uses it too.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ftp::storage::s3::client::{Endpoint, S3Client};

/// The bucket every test server uses.
pub const BUCKET: &str = "ftp";
const REGION: &str = "garage";
const KEY_ID: &str = "GK0123456789abcdef01234567";
const KEY_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How long Garage may take to come up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Tests run in parallel; their Garages are set up one at a time, so that
/// ten nodes starting at once on two cores do not time each other out.
static SETTING_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running Garage, stopped when dropped.
pub struct Garage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
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
    /// Starts Garage with an empty bucket, or `None` (after saying so)
    /// when it is not installed and the suite may be skipped.
    pub fn start() -> Option<Garage> {
        let Some(binary) = find_binary() else {
            if std::env::var_os("FTP_REQUIRE_S3").is_some() {
                panic!("FTP_REQUIRE_S3 is set but there is no garage binary");
            }
            static SAID: std::sync::Once = std::sync::Once::new();
            // Past the test harness's capture, which would hide it.
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping the S3 suite: no garage binary; run it with \
                     `cargo install garage --version 2.5.0 --locked` first"
                );
            });
            return None;
        };
        let _one_at_a_time = SETTING_UP.lock().unwrap_or_else(|p| p.into_inner());
        // A node that cannot take its ports (another test's node, still
        // going away, holds one) is given up and started again on others.
        let mut tries = 0;
        loop {
            let mut garage = Garage::configure(binary.clone());
            garage.run_server();
            match garage.set_up() {
                Ok(()) => {
                    garage.wait_for_s3();
                    return Some(garage);
                }
                Err(why) if tries < 2 => {
                    tries += 1;
                    let _ = writeln!(std::io::stderr(), "garage again on new ports: {why}");
                }
                Err(why) => panic!("garage did not start: {why}; {}", garage.log()),
            }
        }
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
            child: None,
            s3_port,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn run_server(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn garage");
        self.child = Some(child);
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
    fn cli_ok(&mut self, args: &[&str]) -> Result<String, String> {
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
    fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Layout, bucket and key, once the node answers.
    fn set_up(&mut self) -> Result<(), String> {
        let node = self.cli_ok(&["node", "id", "-q"])?;
        let id = node
            .trim()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string();
        self.cli_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        self.cli_ok(&["layout", "apply", "--version", "1"])?;
        self.cli_ok(&["bucket", "create", BUCKET])?;
        self.cli_ok(&["key", "import", "--yes", "-n", "ftp", KEY_ID, KEY_SECRET])?;
        self.cli_ok(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "ftp",
        ])?;
        Ok(())
    }

    /// Waits until the bucket takes a write, not only a listing: right
    /// after the layout is applied, writes can fail for a moment.
    fn wait_for_s3(&self) {
        let client = self.client();
        let started = Instant::now();
        let probe = ".ready";
        let writable = || {
            client.check()?;
            client.put(probe, b"")?;
            client.delete(probe)
        };
        while let Err(e) = writable() {
            assert!(
                started.elapsed() < START_LIMIT,
                "S3 API not up: {e}; {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many multipart uploads in the bucket are unfinished, as
    /// Garage's admin API counts them.
    pub fn unfinished_uploads(&mut self) -> u64 {
        let out = self
            .cli_ok(&[
                "json-api",
                "GetBucketInfo",
                &format!("{{\"globalAlias\":\"{BUCKET}\"}}"),
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

    /// Where the store is, and the key to it.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.url(),
            region: REGION.into(),
            bucket: BUCKET.into(),
            key_id: KEY_ID.into(),
            secret: KEY_SECRET.into(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// A client of the bucket, for looking behind the servers' backs.
    pub fn client(&self) -> S3Client {
        S3Client::new(&self.endpoint()).unwrap()
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

    /// The store goes away (its process is killed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The store comes back, with what it held.
    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
        self.wait_for_s3();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
