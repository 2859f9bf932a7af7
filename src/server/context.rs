//! What every connection of one server shares.

use std::sync::Arc;

use crate::server::descriptors::FdBudget;
use crate::server::hooks::Hooks;
use crate::server::live::Live;
use crate::server::metrics::Metrics;
use crate::server::order::NameOrder;
use crate::server::timings::Timings;
use crate::server::uploads::UploadLocks;
use crate::storage::Store;

/// Policies and state shared by every connection of one server.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where the files are.
    pub(crate) store: Arc<dyn Store>,
    /// Whether a put may replace an existing file.
    pub(crate) overwrite: bool,
    /// Names being uploaded right now.
    pub(crate) locks: UploadLocks,
    /// Every wait, window and deadline.
    pub(crate) timings: Timings,
    /// What the server counts, for `--metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// The hooks told of uploads, downloads and deletes.
    pub(crate) hooks: Arc<Hooks>,
    /// The limits, rates and quotas a reload of the config file changes.
    pub(crate) live: Arc<Live>,
    /// The turns in which commands change a home's names (see
    /// [`crate::server::order`]).
    pub(crate) name_order: Arc<NameOrder>,
    /// The descriptors replies may hold open, by account.
    pub(crate) fds: Arc<FdBudget>,
}
