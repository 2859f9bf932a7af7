//! How the process's open-file limit is shared out, so that no account
//! can take the descriptors everyone else needs.
//!
//! Half of the descriptors (after a reserve) are for connections: one
//! socket each, which is what `--max-connections` is fitted to. The other
//! half is a pool for what replies hold open while their peer reads them:
//! a download's file, a listing's folders (two per level it has gone
//! down). Each account may hold at most a share of that pool; a reply that
//! would pass either bound is refused `busy` before it opens anything, and
//! only that account meets the refusal. What a running request holds for
//! its own length (an upload's partial file, a folder handle) is bounded
//! by the workers and comes out of the reserve.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

/// Descriptors kept free for the listener, logs, the users file, the
/// sweeper and the requests the workers run.
pub(crate) const SPARE_FDS: u64 = 64;

/// The share of the pool one account may hold: a quarter.
const ACCOUNT_SHARE: usize = 4;

/// The reply descriptors held now, in all and by account.
#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_account: HashMap<String, usize>,
}

/// The pool of descriptors that replies hold, with each account's bound.
#[derive(Debug)]
pub(crate) struct FdBudget {
    pool: usize,
    per_account: usize,
    held: Mutex<Held>,
}

/// Why a reply could not have its descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FdRefusal {
    /// The account holds its share already.
    Account {
        /// Held now by the account's replies.
        held: usize,
        /// Its share.
        max: usize,
    },
    /// The whole pool is held.
    Server,
}

impl fmt::Display for FdRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdRefusal::Account { held, max } => write!(
                f,
                "your replies not yet read hold {held} of the {max} open files an account may \
                 have; read them or close those connections, then try again"
            ),
            FdRefusal::Server => write!(
                f,
                "the server has no open files to spare for this reply; try again shortly"
            ),
        }
    }
}

impl FdBudget {
    /// A pool of `pool` descriptors, each account holding at most
    /// `per_account`.
    pub(crate) fn new(pool: usize, per_account: usize) -> FdBudget {
        FdBudget {
            pool,
            per_account: per_account.min(pool),
            held: Mutex::default(),
        }
    }

    /// The pool that the process's open-file limit leaves after the
    /// connections' half (see the module's note); each account a quarter.
    /// The limit is raised to its hard limit first.
    pub(crate) fn for_this_process() -> FdBudget {
        let pool = usize::try_from(raise_open_file_limit().saturating_sub(SPARE_FDS) / 2)
            .unwrap_or(usize::MAX)
            .max(ACCOUNT_SHARE);
        FdBudget::new(pool, pool / ACCOUNT_SHARE)
    }

    /// Takes `n` descriptors of the pool for a reply of `account`, until
    /// the lease drops.
    ///
    /// Fails when the account or the pool has too few left.
    pub(crate) fn take(self: &Arc<Self>, account: &str, n: usize) -> Result<FdLease, FdRefusal> {
        let mut held = self.held.lock();
        let mine = held.by_account.get(account).copied().unwrap_or(0);
        if mine + n > self.per_account {
            return Err(FdRefusal::Account {
                held: mine,
                max: self.per_account,
            });
        }
        if held.total + n > self.pool {
            return Err(FdRefusal::Server);
        }
        held.total += n;
        *held.by_account.entry(account.to_string()).or_default() += n;
        Ok(FdLease {
            budget: self.clone(),
            account: account.to_string(),
            n,
        })
    }

    /// Descriptors the replies of `account` hold now.
    #[cfg(test)]
    pub(crate) fn held_by(&self, account: &str) -> usize {
        self.held
            .lock()
            .by_account
            .get(account)
            .copied()
            .unwrap_or(0)
    }
}

/// Descriptors of the pool held by one reply; given back on drop.
#[derive(Debug)]
pub(crate) struct FdLease {
    budget: Arc<FdBudget>,
    account: String,
    n: usize,
}

impl Drop for FdLease {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock();
        held.total -= self.n;
        if let Some(mine) = held.by_account.get_mut(&self.account) {
            *mine -= self.n;
            if *mine == 0 {
                held.by_account.remove(&self.account);
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one; returns the limit
/// now in force.
pub(super) fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_holds_its_share_and_the_others_go_on() {
        let budget = Arc::new(FdBudget::new(100, 40));
        let a: Vec<FdLease> = (0..4).map(|_| budget.take("a", 10).unwrap()).collect();
        let refused = budget.take("a", 10).unwrap_err();
        assert_eq!(refused, FdRefusal::Account { held: 40, max: 40 });
        assert!(refused.to_string().contains("40 of the 40"), "{refused}");
        let b = budget.take("b", 40).unwrap();
        assert_eq!(budget.take("c", 30).unwrap_err(), FdRefusal::Server);
        drop(a);
        assert_eq!(budget.held_by("a"), 0);
        assert!(budget.take("c", 30).is_ok());
        drop(b);
    }
}
