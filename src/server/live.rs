//! The settings a reload of the config file puts in force while the
//! server runs: its limits, rates and quotas. Each is read where it is
//! used, so the next connection, upload or reply meets the new value,
//! and what is under way keeps the one it started with. The rest of the
//! settings need a restart: the listener, the workers, the store, the
//! hooks and the TLS identity are built from them once.

use std::time::Duration;

use parking_lot::RwLock;

/// The values in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest file accepted (`max-file-size`; `u64::MAX` for no limit).
    pub(crate) max_file_size: u64,
    /// The least an upload's body, and a reply waiting for its peer, must
    /// keep up: bytes a second averaged over a window (`min-rate`,
    /// `min-rate-window`); none when `min-rate` is 0.
    pub(crate) floor: Option<(u64, Duration)>,
    /// Most connections one host may hold open (`max-per-address`).
    pub(crate) max_per_address: usize,
    /// Bytes the anonymous drop box may use (`anonymous-quota`).
    pub(crate) anonymous_quota: u64,
    /// Files and folders it may hold, partial uploads included
    /// (`anonymous-max-files`).
    pub(crate) anonymous_max_files: u64,
}

/// The limits of a running server, which a reload replaces whole.
#[derive(Debug)]
pub(crate) struct Live(RwLock<Limits>);

impl Live {
    /// Limits in force from the start.
    pub(crate) fn new(limits: Limits) -> Live {
        Live(RwLock::new(limits))
    }

    /// The limits in force now.
    pub(crate) fn get(&self) -> Limits {
        *self.0.read()
    }

    /// Puts `limits` in force for what starts from now on.
    pub(crate) fn set(&self, limits: Limits) {
        *self.0.write() = limits;
    }
}
