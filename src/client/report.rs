//! What a transfer tells as it goes ([`Progress`]) and what it did once
//! over ([`PutReport`], [`GetReport`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::wire::message::PutDone;

/// Told how a transfer advances, to draw a progress bar.
pub trait Progress {
    /// A transfer of `total` bytes starts; `offset` of them were moved by an
    /// earlier attempt and will not be sent again.
    fn start(&mut self, _name: &str, _total: u64, _offset: u64) {}
    /// `n` more bytes moved.
    fn advance(&mut self, _n: u64) {}
    /// The transfer ended, well or not.
    fn finish(&mut self) {}
}

/// Progress that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    /// The server's reply.
    pub done: PutDone,
    /// Where the upload resumed; 0 when sent from the start.
    pub resumed_from: u64,
    /// Whether the partial data on the server was found bad and the file
    /// was sent again from the start.
    pub restarted: bool,
    /// Whether the server confirmed the upload. A server that speaks only
    /// the original protocol never does.
    pub confirmed: bool,
    /// Time on the wire.
    pub elapsed: Duration,
    /// Bytes the server copied from the file it had (a delta upload)
    /// instead of receiving them.
    pub matched: u64,
}

/// What a get did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetReport {
    /// Where the file was written.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes received in this run.
    pub received: u64,
    /// Where the download resumed; 0 when fetched from the start.
    pub resumed_from: u64,
    /// Whether local partial data was found bad and the file was fetched
    /// again.
    pub restarted: bool,
    /// Time on the wire.
    pub elapsed: Duration,
    /// Bytes taken from the local file it replaced (a delta download)
    /// instead of fetched.
    pub matched: u64,
}
