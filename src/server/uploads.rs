//! Uploads running right now: so that two connections never write the
//! same partial file, and so that a quota counts uploads that have not
//! written their bytes yet.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The uploads running right now, by partial file, with their declared
/// sizes: so that two connections never write the same partial file, and
/// so that a quota counts uploads that have not written their bytes yet.
#[derive(Debug, Default, Clone)]
pub struct UploadLocks(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    holders: Mutex<HashMap<PathBuf, Holder>>,
    released: Condvar,
}

#[derive(Debug)]
struct Holder {
    size: u64,
    /// The holder's socket, for a takeover to cut.
    socket: Option<OwnedFd>,
}

/// Held while an upload runs; releases the name when dropped.
#[derive(Debug)]
pub struct UploadLock {
    locks: UploadLocks,
    path: PathBuf,
}

impl UploadLocks {
    fn holders(&self) -> MutexGuard<'_, HashMap<PathBuf, Holder>> {
        self.0.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `path` for an upload of `size` bytes; `None` if another
    /// upload holds it.
    pub fn try_lock(&self, path: &Path, size: u64) -> Option<UploadLock> {
        self.take_over(path, size, None, Duration::ZERO)
    }

    /// Claims `path`, taking it over from the upload that holds it: a
    /// client killed mid-upload and run again at once finds its old
    /// connection still draining. The holder's socket is cut, and its
    /// release awaited for up to `wait`. `socket` is this upload's, for
    /// the next takeover. `None` if the holder did not let go in time.
    pub fn take_over(
        &self,
        path: &Path,
        size: u64,
        socket: Option<OwnedFd>,
        wait: Duration,
    ) -> Option<UploadLock> {
        let deadline = Instant::now() + wait;
        let mut holders = self.holders();
        while let Some(holder) = holders.get_mut(path) {
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
        holders.insert(path.to_path_buf(), Holder { size, socket });
        Some(UploadLock {
            locks: self.clone(),
            path: path.to_path_buf(),
        })
    }

    /// The other uploads running below `dir`: their partial files and
    /// declared sizes.
    pub fn others_below(&self, dir: &Path, except: &Path) -> Vec<(PathBuf, u64)> {
        self.holders()
            .iter()
            .filter(|(p, _)| p.starts_with(dir) && p.as_path() != except)
            .map(|(p, h)| (p.clone(), h.size))
            .collect()
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        self.locks.holders().remove(&self.path);
        self.locks.0.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let locks = UploadLocks::default();
        let a = locks.try_lock(Path::new("/h/x"), 5).unwrap();
        assert!(locks.try_lock(Path::new("/h/x"), 5).is_none());
        let _b = locks.try_lock(Path::new("/h/y"), 7).unwrap();
        let _c = locks.try_lock(Path::new("/other/z"), 9).unwrap();
        assert_eq!(
            locks.others_below(Path::new("/h"), Path::new("/h/y")),
            [(PathBuf::from("/h/x"), 5)]
        );
        drop(a);
        assert!(locks.try_lock(Path::new("/h/x"), 1).is_some());
    }

    #[test]
    fn a_takeover_cuts_the_holder_and_waits_for_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (held, _) = listener.accept().unwrap();
        let locks = UploadLocks::default();
        let path = Path::new("/h/x");
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
