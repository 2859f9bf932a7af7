//! A bound on the memory that uploads to the object store hold: a small
//! file waits in memory for its digest, a large one holds two parts. An
//! upload that would take the server past the bound is refused `busy`
//! (and retried by ftp-client) instead of growing the server without end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What all uploads to the store may hold at once.
pub const UPLOAD_MEMORY: u64 = 1 << 30;

/// Bytes left to hand out.
#[derive(Debug)]
pub struct Budget(AtomicU64);

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Arc<Budget> {
        Arc::new(Budget(AtomicU64::new(bytes)))
    }

    /// Takes `bytes`, or `None` when fewer are left.
    pub fn take(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .ok()?;
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_are_refused_past_the_bound_until_given_back() {
        let budget = Budget::new(10);
        let a = budget.take(6).unwrap();
        assert!(budget.take(5).is_none());
        let b = budget.take(4).unwrap();
        drop(a);
        assert!(budget.take(6).is_some());
        drop(b);
        assert!(budget.take(10).is_some());
        assert!(budget.take(11).is_none());
    }
}
