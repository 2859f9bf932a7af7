//! One order for the names of a home.
//!
//! Every command that changes which names a home holds, or what the quota
//! book says about them, takes the home's turn first and holds it for its
//! namespace step only: the start of an upload (the entry and quota checks
//! and the partial file they allow), its commit (the size of the file it
//! replaces, the rename, and the book's change), `mkdir`, `mv`, `rm` and
//! `rm -r`, and a measure of the home's usage. No turn is held while a
//! peer is read from or written to: an upload's body arrives between its
//! start and its commit, outside the turn.
//!
//! What the order rules out:
//! - a commit that reads the size of the file it replaces, then renames,
//!   while a `mv` takes that file away in between (the book would drop a
//!   file that still exists, and its entry, and the quota would be open);
//! - two creations passing `max_files` together, each having checked the
//!   count before the other made its entry;
//! - a `mv` of a folder while an upload below it starts: the `mv` sees
//!   the upload's lock and refuses, or the upload's walk to its folder
//!   finds the folder gone (see `mv` in the folder commands);
//! - a measure of a home that sees a moved name twice or not at all.
//!
//! The turn is re-entrant, so that a step that measures the home (which
//! takes the turn itself) can run inside another. It is always taken
//! before an upload lock's registry, never while that registry is held.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

/// How many homes' turns exist; homes share one by the hash of their key,
/// so that memory does not grow with the accounts.
const TURNS: usize = 64;

/// The turns of every home of one server.
#[derive(Debug)]
pub(crate) struct NameOrder([ReentrantMutex<()>; TURNS]);

impl Default for NameOrder {
    fn default() -> NameOrder {
        NameOrder(std::array::from_fn(|_| ReentrantMutex::new(())))
    }
}

/// Held while a command changes a home's names; the next one waits.
pub(crate) type Turn<'a> = ReentrantMutexGuard<'a, ()>;

impl NameOrder {
    /// Waits for the turn of the home with key `home`, and holds it until
    /// the guard is dropped.
    pub(crate) fn enter(&self, home: &str) -> Turn<'_> {
        let mut hasher = DefaultHasher::new();
        home.hash(&mut hasher);
        self.0[(hasher.finish() % TURNS as u64) as usize].lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether another thread could take `home`'s turn right now.
    fn free_elsewhere(order: &NameOrder, home: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        home.hash(&mut hasher);
        let turn = &order.0[(hasher.finish() % TURNS as u64) as usize];
        std::thread::scope(|s| s.spawn(|| turn.try_lock().is_some()).join().unwrap())
    }

    #[test]
    fn a_home_takes_turns_and_a_turn_can_be_taken_again_inside_itself() {
        let order = NameOrder::default();
        let outer = order.enter("alice");
        let inner = order.enter("alice");
        assert!(!free_elsewhere(&order, "alice"));
        drop(inner);
        assert!(!free_elsewhere(&order, "alice"), "the outer turn holds");
        drop(outer);
        assert!(free_elsewhere(&order, "alice"));
    }
}
