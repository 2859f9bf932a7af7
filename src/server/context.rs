//! What every connection of one server shares.

use std::sync::Arc;
use std::time::Duration;

use crate::server::descriptors::FdBudget;
use crate::server::metrics::Metrics;
use crate::server::order::NameOrder;
use crate::server::uploads::UploadLocks;
use crate::storage::Store;

/// Policies and state shared by every connection of one server.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where the files are.
    pub store: Arc<dyn Store>,
    /// Largest file accepted.
    pub max_file_size: u64,
    /// Whether a put may replace an existing file.
    pub overwrite: bool,
    /// How long a peer may stay silent, and how long one header may take.
    pub idle_timeout: Duration,
    /// How long a peer may take to read one whole reply (a listing of many
    /// pages, say), however it trickles; then the connection is closed.
    pub reply_timeout: Duration,
    /// Names being uploaded right now.
    pub locks: UploadLocks,
    /// The least an upload's body must keep up, bytes per second averaged
    /// over a window; slower ones are dropped (their partial stays).
    pub min_rate: Option<(u64, Duration)>,
    /// What the server counts, for `--metrics`.
    pub metrics: Arc<Metrics>,
    /// Files and folders the anonymous drop box may hold, partial uploads
    /// included (`--anonymous-max-files`).
    pub anonymous_max_files: u64,
    /// The turns in which commands change a home's names (see
    /// [`crate::server::order`]).
    pub name_order: Arc<NameOrder>,
    /// The descriptors replies may hold open, by account.
    pub fds: Arc<FdBudget>,
}
