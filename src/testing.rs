//! In-memory streams for driving the protocol without sockets: used by the
//! unit tests, the property tests and the fuzz targets.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::net::Transport;

/// What the integration tests and the benchmark reach inside the crate:
/// raw transports and the TLS pieces, to play a peer by hand, and the S3
/// client, to look at what a server stored.
pub mod inside {
    pub use crate::client::connect::CHALLENGE_WAIT;
    pub use crate::net::tcp::TcpTransport;
    pub use crate::net::tls::{
        client_config, connect, fingerprint_of_file, TlsTransport, CERT_FILE,
    };
    pub use crate::storage::s3::client::{Endpoint, S3Client};
    pub use crate::storage::s3::record::part_size;
}
use crate::server::context::Context;
use crate::server::live::{Limits, Live};
use crate::server::uploads::UploadLocks;
use crate::storage::disk::DiskStore;
use crate::storage::Modes;

/// A stream whose reads come from a fixed buffer and whose writes are
/// collected.
#[derive(Debug, Default)]
pub struct MemoryStream {
    /// What the peer sends.
    pub input: Cursor<Vec<u8>>,
    /// What we sent.
    pub output: Vec<u8>,
}

impl MemoryStream {
    /// A stream that reads `input`.
    pub fn new(input: Vec<u8>) -> MemoryStream {
        MemoryStream {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemoryStream {}

/// A server context for tests: the given root, no size limit, overwrite
/// on, not durable, silent.
pub fn context(root: &Path) -> Context {
    Context {
        store: Arc::new(
            DiskStore::open(root, false, Modes::PRIVATE).unwrap_or_else(|e| panic!("{e}")),
        ),
        overwrite: true,
        timings: crate::server::timings::Timings::from_flags(5, 5, 5),
        locks: UploadLocks::default(),
        metrics: Default::default(),
        hooks: Default::default(),
        live: Arc::new(Live::new(Limits {
            max_file_size: u64::MAX,
            floor: None,
            max_per_address: 1_000,
            anonymous_quota: 1 << 30,
            anonymous_max_files: crate::server::quota::MIN_DEFAULT_FILES,
        })),
        name_order: Default::default(),
        fds: Arc::new(crate::server::descriptors::FdBudget::new(1 << 20, 1 << 18)),
    }
}

pub use crate::server::harness::{login_bytes, serve_bytes, LoginEnd};

/// Request headers as the frames a client sends, one after another.
///
/// # Panics
/// On a value serde cannot write, which a test's `json!` never is.
pub fn request_frames(values: &[serde_json::Value]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| crate::wire::frame::encode_json(v).expect("a JSON value encodes"))
        .collect()
}

/// Bytes that look random and are the same on every run (xorshift from
/// `seed`): content-defined chunking cuts them as it would real data.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Sets `path`'s modification time `by` past now, as a change made behind
/// the server's back that keeps the size shows: what was kept about the
/// file before must be found stale.
///
/// # Panics
///
/// When the file cannot be opened or its time set (a test's setup).
pub fn modified_later(path: &Path, by: std::time::Duration) {
    let later = std::time::SystemTime::now() + by;
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(later))
        .unwrap_or_else(|e| panic!("setting the time of {}: {e}", path.display()));
}
