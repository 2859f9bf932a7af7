//! Giving memory back to the system once a burst is over. A thousand slow
//! readers hold a thousand outboxes of 64 KiB chunks; when they are gone,
//! glibc keeps the freed chunks in its per-thread arenas, and the server
//! would stay at its peak for good. Trimming now and then returns the free
//! pages (`malloc_trim` releases them from every arena, not only at the
//! top of the heap).

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often at most: a trim walks every arena, which costs a few
/// milliseconds of one thread when the heap is large.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// When the heap was last trimmed.
#[derive(Debug)]
pub(super) struct Trimmer {
    last: Mutex<Instant>,
}

impl Default for Trimmer {
    fn default() -> Trimmer {
        Trimmer {
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Trimmer {
    /// Trims the heap if [`TRIM_EVERY`] has passed since the last time;
    /// meant for a poller's chore, which runs often.
    pub(super) fn now_and_then(&self) {
        let mut last = self.last.lock();
        if last.elapsed() < TRIM_EVERY {
            return;
        }
        *last = Instant::now();
        trim();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointer and only rearranges the
    // allocator's free lists, under the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_comes_at_most_once_in_its_interval() {
        let trimmer = Trimmer::default();
        let before = *trimmer.last.lock();
        trimmer.now_and_then();
        assert_eq!(*trimmer.last.lock(), before, "too soon after the start");
        *trimmer.last.lock() = Instant::now() - TRIM_EVERY;
        trimmer.now_and_then();
        assert!(
            *trimmer.last.lock() > before,
            "trimmed once its interval passed"
        );
    }
}
