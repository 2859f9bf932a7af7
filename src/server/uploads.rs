//! Uploads running right now: so that two connections never write the
//! same partial file, so that only the account that started an upload
//! may take it over, and so that a quota counts what running uploads
//! have written (not what they declared).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::server::quota::projected_bytes;

/// The uploads running right now, by key (the file's path from the
/// store's root, see [`crate::storage::Place::key`]), with what each has
/// written: so that two connections never write the same partial file,
/// and so that a quota counts what running uploads stored.
#[derive(Debug, Default, Clone)]
pub(crate) struct UploadLocks(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    registry: Mutex<Registry>,
    released: Condvar,
}

/// The running uploads by key, and what they hold summed by home, so
/// that charging a chunk costs the same however many uploads run.
#[derive(Debug, Default)]
struct Registry {
    names: HashMap<String, Holder>,
    homes: HashMap<String, Tally>,
}

/// Who runs an upload: only the same account may take it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A logged-in account, by name (`None`: the shared secret).
    Account(Option<String>),
    /// A client that did not log in. Anonymous clients are not one
    /// account: none may cut or resume another's running upload.
    Anonymous,
    /// The server itself, removing a partial upload for a moment: an
    /// upload waits for it.
    Server,
}

impl Owner {
    /// Whether an upload of `self` may wait for `holder` to let go
    /// (cutting its connection, if it has one): the same account running
    /// the upload again after losing the first, or the server's brief hold.
    fn may_take_over(&self, holder: &Owner) -> bool {
        match (self, holder) {
            (_, Owner::Server) => true,
            (Owner::Account(a), Owner::Account(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Holder {
    owner: Owner,
    /// The key of the home whose quota it counts against.
    home: String,
    tally: Tally,
    /// The holder's socket, for a takeover to cut.
    socket: Option<OwnedFd>,
}

/// What running uploads stored: one upload's, or a home's sum.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// Bytes charged against the quota: raised before a chunk is written.
    charged: u64,
    /// Bytes of it that the store's usage counts: noted after a write.
    counted: u64,
}

impl Registry {
    /// Changes the tally of the upload `key`, and its home's sum with it.
    fn adjust(&mut self, key: &str, change: impl FnOnce(&mut Tally)) {
        let Registry { names, homes } = self;
        let Some(holder) = names.get_mut(key) else {
            return;
        };
        let before = holder.tally;
        change(&mut holder.tally);
        let after = holder.tally;
        if before == after {
            return;
        }
        if !homes.contains_key(&holder.home) {
            homes.insert(holder.home.clone(), Tally::default());
        }
        if let Some(sum) = homes.get_mut(&holder.home) {
            // A home's sum holds every term subtracted here.
            sum.charged = sum.charged - before.charged + after.charged;
            sum.counted = sum.counted - before.counted + after.counted;
            if *sum == Tally::default() {
                homes.remove(&holder.home);
            }
        }
    }

    /// What the uploads running in `home` hold.
    fn sum(&self, home: &str) -> Tally {
        self.homes.get(home).copied().unwrap_or_default()
    }
}

/// Held while an upload runs; releases the name when dropped.
#[derive(Debug)]
pub(crate) struct UploadLock {
    locks: UploadLocks,
    key: String,
    home: String,
}

impl UploadLocks {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.0.registry.lock()
    }

    /// Claims `key` for the server itself (removing a partial upload);
    /// `None` if an upload holds it.
    pub(crate) fn try_lock(&self, key: &str) -> Option<UploadLock> {
        let mut registry = self.registry();
        if registry.names.contains_key(key) {
            return None;
        }
        Some(self.insert(&mut registry, key, "", Owner::Server, None))
    }

    /// Claims `key`, in the home with key `home`, for an upload by
    /// `owner`. When the same account holds it, the holder is taken over:
    /// a client killed mid-upload and run again at once finds its old
    /// connection still draining. The holder's socket is cut, and its
    /// release awaited for up to `wait`. `socket` is this upload's, for
    /// the next takeover. `None` if another owner holds it, or the holder
    /// did not let go in time.
    pub(crate) fn take_over(
        &self,
        key: &str,
        home: &str,
        owner: Owner,
        socket: Option<OwnedFd>,
        wait: Duration,
    ) -> Option<UploadLock> {
        let deadline = Instant::now() + wait;
        let mut registry = self.registry();
        while let Some(holder) = registry.names.get_mut(key) {
            if !owner.may_take_over(&holder.owner) {
                return None;
            }
            if let Some(old) = holder.socket.take() {
                let _ = rustix::net::shutdown(&old, rustix::net::Shutdown::Both);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.0.released.wait_for(&mut registry, left);
        }
        Some(self.insert(&mut registry, key, home, owner, socket))
    }

    fn insert(
        &self,
        registry: &mut Registry,
        key: &str,
        home: &str,
        owner: Owner,
        socket: Option<OwnedFd>,
    ) -> UploadLock {
        let holder = Holder {
            owner,
            home: home.to_string(),
            tally: Tally::default(),
            socket,
        };
        registry.names.insert(key.to_string(), holder);
        UploadLock {
            locks: self.clone(),
            key: key.to_string(),
            home: home.to_string(),
        }
    }
}

impl UploadLocks {
    /// Whether an upload runs in the home with key `home` (or the server
    /// holds a partial's name for a moment: it could be in any home).
    pub(crate) fn runs_in(&self, home: &str) -> bool {
        let registry = self.registry();
        let mut holders = registry.names.values();
        holders.any(|h| h.home == home || h.owner == Owner::Server)
    }

    /// Whether an upload runs anywhere below the folder with key `folder`
    /// (a `mv` or `rm -r` of it would take the upload's name away).
    pub(crate) fn runs_below(&self, folder: &str) -> bool {
        let prefix = format!("{folder}/");
        let registry = self.registry();
        registry.names.keys().any(|key| key.starts_with(&prefix))
    }
}

impl UploadLock {
    /// Notes how many bytes of this upload the store's usage counts; as
    /// many are charged to it, at least.
    pub(crate) fn set_counted(&self, n: u64) {
        self.locks.registry().adjust(&self.key, |t| {
            t.counted = n;
            t.charged = t.charged.max(n);
        });
    }

    /// Charges this upload at least `n` bytes: what it kept from an
    /// earlier attempt.
    pub(crate) fn hold(&self, n: u64) {
        let mut registry = self.locks.registry();
        registry.adjust(&self.key, |t| t.charged = t.charged.max(n));
    }

    /// Bytes this upload's home would hold with `n` more, counting what
    /// every upload running in it was charged; `used` measures what the
    /// store holds there. Charges nothing.
    ///
    /// Fails when `used` fails.
    pub(crate) fn projected<E>(
        &self,
        n: u64,
        used: impl FnOnce() -> Result<u64, E>,
    ) -> Result<u64, E> {
        let sum = self.locks.registry().sum(&self.home);
        Ok(projected_bytes(used()?, sum.charged, sum.counted, n))
    }

    /// Charges `n` more bytes to this upload if its home then holds at
    /// most `quota` (see [`UploadLock::projected`]). `Ok(Err(projected))`
    /// when it would not fit; nothing is charged then.
    ///
    /// Fails when `used` fails.
    pub(crate) fn charge<E>(
        &self,
        n: u64,
        quota: u64,
        used: impl FnOnce() -> Result<u64, E>,
    ) -> Result<Result<(), u64>, E> {
        // Measured with the registry locked, so that no upload's chunk is
        // charged between the measure and the sum.
        let mut registry = self.locks.registry();
        let sum = registry.sum(&self.home);
        let projected = projected_bytes(used()?, sum.charged, sum.counted, n);
        if projected > quota {
            return Ok(Err(projected));
        }
        registry.adjust(&self.key, |t| t.charged = t.charged.saturating_add(n));
        Ok(Ok(()))
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        let mut registry = self.locks.registry();
        registry.adjust(&self.key, |t| *t = Tally::default());
        registry.names.remove(&self.key);
        drop(registry);
        self.locks.0.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Owner {
        Owner::Account(Some("alice".into()))
    }

    fn lock(locks: &UploadLocks, key: &str, owner: Owner) -> Option<UploadLock> {
        let home = key.split('/').next().unwrap();
        locks.take_over(key, home, owner, None, Duration::ZERO)
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let locks = UploadLocks::default();
        let a = lock(&locks, "h/x", alice()).unwrap();
        assert!(locks.try_lock("h/x").is_none());
        assert!(lock(&locks, "h/x", Owner::Anonymous).is_none());
        drop(a);
        assert!(locks.try_lock("h/x").is_some());
    }

    #[test]
    fn an_upload_is_seen_below_every_folder_above_it_and_no_other() {
        let locks = UploadLocks::default();
        let _a = lock(&locks, "h/d/e/f", alice()).unwrap();
        assert!(locks.runs_below("h/d/e"));
        assert!(locks.runs_below("h/d"));
        assert!(locks.runs_below("h"));
        assert!(!locks.runs_below("h/d/e/f"), "a file holds nothing below");
        assert!(!locks.runs_below("h/d/ee"));
        assert!(!locks.runs_below("h/dd"));
    }

    #[test]
    fn only_the_same_account_takes_an_upload_over() {
        let locks = UploadLocks::default();
        let _a = lock(&locks, "h/x", alice()).unwrap();
        let bob = Owner::Account(Some("bob".into()));
        let long = Duration::from_secs(30);
        let started = Instant::now();
        assert!(locks.take_over("h/x", "h", bob, None, long).is_none());
        let shared = Owner::Account(None);
        assert!(locks.take_over("h/x", "", shared, None, long).is_none());
        let _b = lock(&locks, "anonymous/y", Owner::Anonymous).unwrap();
        let anonymous = Owner::Anonymous;
        assert!(locks
            .take_over("anonymous/y", "anonymous", anonymous, None, long)
            .is_none());
        assert!(
            started.elapsed() < long,
            "refused at once, not after a wait"
        );
    }

    #[test]
    fn an_upload_waits_for_the_servers_brief_hold() {
        let locks = UploadLocks::default();
        let held = locks.try_lock("anonymous/x").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        let wait = Duration::from_secs(5);
        assert!(locks
            .take_over("anonymous/x", "anonymous", Owner::Anonymous, None, wait)
            .is_some());
        release.join().unwrap();
    }

    #[test]
    fn a_chunk_is_charged_only_while_the_home_stays_within_its_quota() {
        let locks = UploadLocks::default();
        let a = lock(&locks, "h/x", alice()).unwrap();
        let b = lock(&locks, "h/y", alice()).unwrap();
        let elsewhere = lock(&locks, "hh/z", alice()).unwrap();
        elsewhere.set_counted(1000);
        let used = || Ok::<u64, ()>(0);
        // Declared sizes play no part: each upload holds what it charged.
        assert_eq!(a.charge(60, 100, used), Ok(Ok(())));
        assert_eq!(b.charge(40, 100, used), Ok(Ok(())));
        assert_eq!(b.charge(1, 100, used), Ok(Err(101)));
        // Written and counted by the store: not counted twice.
        a.set_counted(60);
        assert_eq!(a.charge(1, 100, || Ok::<u64, ()>(60)), Ok(Err(101)));
        assert_eq!(a.projected(0, || Ok::<u64, ()>(60)), Ok(100));
        drop(b);
        assert_eq!(a.charge(40, 100, || Ok::<u64, ()>(60)), Ok(Ok(())));
        assert_eq!(a.charge(1, 100, || Err(())), Err(()));
        // What an upload kept is charged to it from the start.
        let c = lock(&locks, "h/w", alice()).unwrap();
        c.hold(30);
        assert_eq!(c.projected(0, || Ok::<u64, ()>(60)), Ok(130));
        drop((a, c));
        // Gone with them: a new upload in the home sees the store alone.
        let d = lock(&locks, "h/v", alice()).unwrap();
        assert_eq!(d.projected(0, || Ok::<u64, ()>(60)), Ok(60));
        assert_eq!(elsewhere.projected(0, || Ok::<u64, ()>(1000)), Ok(1000));
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
            .take_over(path, "h", alice(), Some(socket), Duration::ZERO)
            .unwrap();
        // The holder notices its socket was cut and lets go.
        let holder = std::thread::spawn(move || {
            let mut buf = [0u8; 1];
            let _ = std::io::Read::read(&mut &held, &mut buf);
            drop(lock);
        });
        let taken = locks.take_over(path, "h", alice(), None, Duration::from_secs(5));
        assert!(taken.is_some());
        holder.join().unwrap();
        assert!(locks.try_lock(path).is_none(), "held by the new upload");
    }
}
