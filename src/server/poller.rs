//! Where connections wait between commands: one thread watches every idle
//! socket with epoll and hands a readable one back to a worker, as Apache
//! httpd's event MPM does. An idle connection holds no thread, and idle
//! timeouts live in one ordered set, not in sleeping threads. A small
//! periodic chore (giving up login turns waited for too long) runs here
//! too, rather than on a thread of its own.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use polling::{Event, Events};

/// Something that waits in the poller: a connection, with the socket it
/// owns. The socket must stay open for as long as the item lives.
pub(crate) trait Parkable: Send + 'static {
    /// The socket to watch.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
}

struct Parked<T> {
    items: HashMap<usize, (T, RawFd, Instant)>,
    deadlines: BTreeSet<(Instant, usize)>,
    next_key: usize,
    /// When the poller's thread wakes by itself (`None`: it does not, or
    /// it is not waiting): a new deadline before it needs a wake-up.
    sleeps_until: Option<Instant>,
}

/// Work the poller's thread does every so often, besides its sockets.
struct Chore {
    every: Duration,
    next: Instant,
    work: Box<dyn Fn() + Send>,
}

struct Inner<T> {
    poller: polling::Poller,
    parked: Mutex<Parked<T>>,
    chore: Mutex<Option<Chore>>,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, Parked<T>> {
        self.parked.lock()
    }

    /// Takes an item out, unregistering its socket first, so that the
    /// socket is never closed while epoll still watches it.
    fn take(&self, parked: &mut Parked<T>, key: usize) -> Option<T> {
        let (item, fd, deadline) = parked.items.remove(&key)?;
        parked.deadlines.remove(&(deadline, key));
        // SAFETY: `fd` belongs to `item`, which is alive here.
        let _ = self.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) });
        Some(item)
    }
}

/// The poller thread and its parked items.
pub(crate) struct Poller<T> {
    inner: Arc<Inner<T>>,
}

impl<T: Parkable> Poller<T> {
    /// Starts the thread. `ready` gets each item whose socket turned
    /// readable (or closed); `expired` each one still silent at its
    /// deadline.
    ///
    /// Fails when epoll or the thread cannot be created.
    pub(crate) fn start(
        ready: impl Fn(T) + Send + 'static,
        expired: impl Fn(T) + Send + 'static,
    ) -> io::Result<Poller<T>> {
        let inner = Arc::new(Inner {
            poller: polling::Poller::new()?,
            parked: Mutex::new(Parked {
                items: HashMap::new(),
                deadlines: BTreeSet::new(),
                next_key: 0,
                sleeps_until: None,
            }),
            chore: Mutex::new(None),
        });
        let watched = inner.clone();
        thread::Builder::new()
            .name("ftp-poller".into())
            .spawn(move || watch(&watched, ready, expired))?;
        Ok(Poller { inner })
    }

    /// Parks `item` until its socket is readable or `deadline` passes.
    /// Gives it back when it has no socket or cannot be watched.
    pub(crate) fn park(&self, item: T, deadline: Instant) -> Option<T> {
        self.add(item, deadline, Event::readable)
    }

    /// Parks `item` until its socket has room to write or `deadline`
    /// passes: a reply waiting for its peer to read.
    pub(crate) fn park_writable(&self, item: T, deadline: Instant) -> Option<T> {
        self.add(item, deadline, Event::writable)
    }

    /// Parks `item` until `deadline` whatever its socket does (but an
    /// error or hang-up, which epoll always reports, wakes it early).
    pub(crate) fn park_until(&self, item: T, deadline: Instant) -> Option<T> {
        self.add(item, deadline, Event::none)
    }

    fn add(&self, item: T, deadline: Instant, interest: fn(usize) -> Event) -> Option<T> {
        let Some(fd) = item.fd().map(|fd| fd.as_raw_fd()) else {
            return Some(item);
        };
        let mut parked = self.inner.lock();
        let key = parked.next_key;
        parked.next_key = parked.next_key.wrapping_add(1);
        let sooner = parked.sleeps_until.is_none_or(|at| deadline < at);
        // SAFETY: the socket stays open while the item is parked: it is
        // deleted from the poller in `take` before the item leaves.
        let added = unsafe { self.inner.poller.add(fd, interest(key)) };
        if added.is_err() {
            return Some(item);
        }
        parked.items.insert(key, (item, fd, deadline));
        parked.deadlines.insert((deadline, key));
        drop(parked);
        // The poller sleeps until the first deadline: it needs waking only
        // when this one comes sooner.
        if sooner {
            let _ = self.inner.poller.notify();
        }
        None
    }

    /// Has the poller's thread run `work` every `every` as well, between
    /// its rounds: small chores that would otherwise need a thread of
    /// their own. `work` must not wait.
    pub(crate) fn every(&self, every: Duration, work: impl Fn() + Send + 'static) {
        *self.inner.chore.lock() = Some(Chore {
            every,
            next: Instant::now() + every,
            work: Box::new(work),
        });
        let _ = self.inner.poller.notify();
    }

    /// Closes every waiting item but those `keep` picks (for a shutdown
    /// that lets replies under way finish); returns how many it closed.
    pub(crate) fn close_unless(&self, keep: impl Fn(&T) -> bool) -> usize {
        let mut parked = self.inner.lock();
        let keys: Vec<usize> = parked
            .items
            .iter()
            .filter(|(_, (item, _, _))| !keep(item))
            .map(|(key, _)| *key)
            .collect();
        let items: Vec<T> = keys
            .into_iter()
            .filter_map(|k| self.inner.take(&mut parked, k))
            .collect();
        drop(parked);
        items.len()
    }

    /// How many items wait now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn watch<T>(inner: &Inner<T>, ready: impl Fn(T), expired: impl Fn(T)) {
    let mut events = Events::new();
    loop {
        let chore = inner.chore.lock().as_ref().map(|c| c.next);
        let next = {
            let mut parked = inner.lock();
            let next = match (parked.deadlines.first().map(|(at, _)| *at), chore) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Set under the lock that `add` reads it under: a deadline
            // added after this is either seen here or wakes the wait.
            parked.sleeps_until = next;
            next
        };
        let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
        events.clear();
        if inner.poller.wait(&mut events, timeout).is_err() {
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        let woken: Vec<T> = {
            let mut parked = inner.lock();
            events
                .iter()
                .filter_map(|ev| inner.take(&mut parked, ev.key))
                .collect()
        };
        woken.into_iter().for_each(&ready);
        let now = Instant::now();
        let stale: Vec<T> = {
            let mut parked = inner.lock();
            let keys: Vec<usize> = parked
                .deadlines
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, key)| *key)
                .collect();
            keys.into_iter()
                .filter_map(|k| inner.take(&mut parked, k))
                .collect()
        };
        stale.into_iter().for_each(&expired);
        do_chore(inner, now);
    }
}

/// Runs the chore when it is due.
fn do_chore<T>(inner: &Inner<T>, now: Instant) {
    let mut chore = inner.chore.lock();
    if let Some(c) = chore.as_mut().filter(|c| c.next <= now) {
        c.next = now + c.every;
        (c.work)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;

    impl Parkable for TcpStream {
        fn fd(&self) -> Option<BorrowedFd<'_>> {
            use std::os::fd::AsFd;
            Some(self.as_fd())
        }
    }

    #[test]
    fn readable_sockets_come_back_and_silent_ones_expire() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (expired_tx, expired_rx) = mpsc::channel();
        let poller = Poller::start(
            move |s: TcpStream| ready_tx.send(s.peer_addr().unwrap()).unwrap(),
            move |s: TcpStream| expired_tx.send(s.peer_addr().unwrap()).unwrap(),
        )
        .unwrap();
        let mut talker = TcpStream::connect(addr).unwrap();
        let quiet = TcpStream::connect(addr).unwrap();
        for _ in 0..2 {
            let deadline = Instant::now() + Duration::from_millis(300);
            assert!(poller
                .park(listener.accept().unwrap().0, deadline)
                .is_none());
        }
        assert_eq!(poller.len(), 2);
        talker.write_all(b"x").unwrap();
        let woke = ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(woke, talker.local_addr().unwrap());
        let gone = expired_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(gone, quiet.local_addr().unwrap());
        assert!(poller.is_empty());
    }

    #[test]
    fn a_timer_ignores_a_readable_socket_until_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (expired_tx, expired_rx) = mpsc::channel();
        let poller = Poller::start(
            move |_: TcpStream| ready_tx.send(()).unwrap(),
            move |_: TcpStream| expired_tx.send(Instant::now()).unwrap(),
        )
        .unwrap();
        let mut talker = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let start = Instant::now();
        poller.park_until(
            listener.accept().unwrap().0,
            start + Duration::from_millis(300),
        );
        talker.write_all(b"x").unwrap();
        let due = expired_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(due >= start + Duration::from_millis(300));
        assert!(ready_rx.try_recv().is_err(), "its bytes did not wake it");
    }

    #[test]
    fn a_sooner_deadline_wakes_a_poller_waiting_for_a_later_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (expired_tx, expired_rx) = mpsc::channel();
        let poller = Poller::start(
            |_: TcpStream| {},
            move |s: TcpStream| expired_tx.send(s.peer_addr().unwrap()).unwrap(),
        )
        .unwrap();
        let (_late, soon) = (
            TcpStream::connect(addr).unwrap(),
            TcpStream::connect(addr).unwrap(),
        );
        let start = Instant::now();
        poller.park(
            listener.accept().unwrap().0,
            start + Duration::from_secs(60),
        );
        poller.park(
            listener.accept().unwrap().0,
            start + Duration::from_millis(200),
        );
        let gone = expired_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(gone, soon.local_addr().unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(poller.len(), 1, "the later one still waits");
    }
}
