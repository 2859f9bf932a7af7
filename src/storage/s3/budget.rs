//! A bound on the memory that uploads to the object store hold: a small
//! file waits in memory for its digest, a large one holds two parts. An
//! upload that would take the server past the bound is refused `busy`
//! (and retried by ftp-client) instead of growing the server without end.
//!
//! The bound is shared fairly: one upload (so one connection, which runs
//! one at a time) may hold at most a quarter of it, and one account's
//! uploads together at most half (all anonymous clients are one account).
//! So neither one peer that declares a huge file nor many connections of
//! one account or of the anonymous drop box can take it all: another
//! account's upload still finds room.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

/// One upload may hold this fraction of the whole.
const UPLOAD_SHARE: u64 = 4;

/// One account's uploads together may hold this fraction of the whole.
const ACCOUNT_SHARE: u64 = 2;

/// The memory all uploads may hold, and what each account holds of it.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    book: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    /// Bytes handed out.
    held: u64,
    /// Bytes handed out, by account.
    by_account: HashMap<String, u64>,
}

/// Why memory was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// More than one upload may ever hold: it can never be given.
    TooMuch {
        /// What one upload may hold.
        most: u64,
    },
    /// Not now: the account's share or the whole is taken.
    Busy,
}

/// Bytes taken from a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    account: String,
    bytes: u64,
}

impl Budget {
    /// A budget of `total` bytes.
    pub(crate) fn new(total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            book: Mutex::default(),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock()
    }

    /// The most one upload may hold.
    pub(crate) fn per_upload(&self) -> u64 {
        self.total / UPLOAD_SHARE
    }

    /// Takes `bytes` for an upload of the account with key `account`.
    ///
    /// Fails when one upload may not hold that much, or the account's
    /// share or the whole would be passed.
    pub(crate) fn take(
        self: &Arc<Self>,
        account: &str,
        bytes: u64,
    ) -> Result<Reservation, Refusal> {
        if bytes > self.per_upload() {
            let most = self.per_upload();
            return Err(Refusal::TooMuch { most });
        }
        let mut book = self.book();
        let mine = book.by_account.get(account).copied().unwrap_or(0);
        let fits = |held: u64, most: u64| held.checked_add(bytes).is_some_and(|n| n <= most);
        if !fits(mine, self.total / ACCOUNT_SHARE) || !fits(book.held, self.total) {
            return Err(Refusal::Busy);
        }
        book.held += bytes;
        book.by_account.insert(account.to_string(), mine + bytes);
        Ok(Reservation {
            budget: self.clone(),
            account: account.to_string(),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut book = self.budget.book();
        book.held = book.held.saturating_sub(self.bytes);
        let left = match book.by_account.get(&self.account) {
            Some(&mine) => mine.saturating_sub(self.bytes),
            None => 0,
        };
        match left {
            0 => book.by_account.remove(&self.account),
            n => book.by_account.insert(self.account.clone(), n),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_holds_at_most_half_and_one_upload_a_quarter() {
        let budget = Budget::new(100);
        assert_eq!(
            budget.take("a", 26).unwrap_err(),
            Refusal::TooMuch { most: 25 }
        );
        let a1 = budget.take("a", 25).unwrap();
        let a2 = budget.take("a", 25).unwrap();
        assert_eq!(budget.take("a", 1).unwrap_err(), Refusal::Busy);
        // Another account still finds room, up to the whole.
        let b1 = budget.take("b", 25).unwrap();
        let b2 = budget.take("b", 24).unwrap();
        assert_eq!(budget.take("c", 2).unwrap_err(), Refusal::Busy);
        let c = budget.take("c", 1).unwrap();
        drop(a1);
        assert!(budget.take("a", 25).is_ok());
        drop((a2, b1, b2, c));
        assert!(budget.book().by_account.is_empty());
        assert_eq!(budget.book().held, 0);
    }
}
