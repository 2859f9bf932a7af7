//! Uploads running right now: so that two connections never write the
//! same partial file, and so that a quota counts uploads that have not
//! written their bytes yet.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The uploads running right now, by key (the file's path from the
/// store's root, see [`crate::storage::Place::key`]), with their declared
/// sizes: so that two connections never write the same partial file, and
/// so that a quota counts uploads that have not written their bytes yet.
#[derive(Debug, Default, Clone)]
pub struct UploadLocks(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    holders: Mutex<HashMap<String, Holder>>,
    released: Condvar,
}

#[derive(Debug)]
struct Holder {
    size: u64,
    /// Bytes of this upload that the store's usage counts already.
    counted: Arc<AtomicU64>,
    /// The holder's socket, for a takeover to cut.
    socket: Option<OwnedFd>,
}

/// Held while an upload runs; releases the name when dropped.
#[derive(Debug)]
pub struct UploadLock {
    locks: UploadLocks,
    key: String,
    counted: Arc<AtomicU64>,
}

impl UploadLocks {
    fn holders(&self) -> MutexGuard<'_, HashMap<String, Holder>> {
        self.0.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `key` for an upload of `size` bytes; `None` if another
    /// upload holds it.
    pub fn try_lock(&self, key: &str, size: u64) -> Option<UploadLock> {
        self.take_over(key, size, None, Duration::ZERO)
    }

    /// Claims `key`, taking it over from the upload that holds it: a
    /// client killed mid-upload and run again at once finds its old
    /// connection still draining. The holder's socket is cut, and its
    /// release awaited for up to `wait`. `socket` is this upload's, for
    /// the next takeover. `None` if the holder did not let go in time.
    pub fn take_over(
        &self,
        key: &str,
        size: u64,
        socket: Option<OwnedFd>,
        wait: Duration,
    ) -> Option<UploadLock> {
        let deadline = Instant::now() + wait;
        let mut holders = self.holders();
        while let Some(holder) = holders.get_mut(key) {
            if let Some(old) = holder.socket.take() {
                let _ = rustix::net::shutdown(&old, rustix::net::Shutdown::Both);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            holders = self
                .0
                .released
                .wait_timeout(holders, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let counted = Arc::new(AtomicU64::new(0));
        let holder = Holder {
            size,
            counted: counted.clone(),
            socket,
        };
        holders.insert(key.to_string(), holder);
        Some(UploadLock {
            locks: self.clone(),
            key: key.to_string(),
            counted,
        })
    }

    /// The other uploads running below the folder with key `dir` (`""`
    /// for the root): the sum of their declared sizes, and of the bytes
    /// of theirs the store's usage counts already.
    pub fn others_below(&self, dir: &str, except: &str) -> (u64, u64) {
        let below = |k: &str| {
            dir.is_empty()
                || k.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        self.holders()
            .iter()
            .filter(|(k, _)| below(k) && k.as_str() != except)
            .fold((0u64, 0u64), |(size, counted), (_, h)| {
                let c = h.counted.load(Ordering::Relaxed);
                (size.saturating_add(h.size), counted.saturating_add(c))
            })
    }
}

impl UploadLock {
    /// Notes how many bytes of this upload the store's usage counts.
    pub fn set_counted(&self, n: u64) {
        self.counted.store(n, Ordering::Relaxed);
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        self.locks.holders().remove(&self.key);
        self.locks.0.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let locks = UploadLocks::default();
        let a = locks.try_lock("h/x", 5).unwrap();
        a.set_counted(2);
        assert!(locks.try_lock("h/x", 5).is_none());
        let _b = locks.try_lock("h/y", 7).unwrap();
        let _c = locks.try_lock("other/z", 9).unwrap();
        let _d = locks.try_lock("hh/z", 11).unwrap();
        assert_eq!(locks.others_below("h", "h/y"), (5, 2));
        assert_eq!(locks.others_below("", "h/y"), (25, 2));
        drop(a);
        assert!(locks.try_lock("h/x", 1).is_some());
    }

    #[test]
    fn a_takeover_cuts_the_holder_and_waits_for_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (held, _) = listener.accept().unwrap();
        let locks = UploadLocks::default();
        let path = "h/x";
        let socket = held.try_clone().unwrap().into();
        let lock = locks
            .take_over(path, 5, Some(socket), Duration::ZERO)
            .unwrap();
        // The holder notices its socket was cut and lets go.
        let holder = std::thread::spawn(move || {
            let mut buf = [0u8; 1];
            let _ = std::io::Read::read(&mut &held, &mut buf);
            drop(lock);
        });
        let taken = locks.take_over(path, 5, None, Duration::from_secs(5));
        assert!(taken.is_some());
        holder.join().unwrap();
        assert!(locks.try_lock(path, 1).is_none(), "held by the new upload");
    }
}
