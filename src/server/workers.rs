//! Threads for connections. Every connection runs on a thread of its own,
//! as the design asks; a thread whose connection has ended waits a few
//! seconds for the next one instead of exiting, so a busy server does not
//! create and destroy a thread for every short connection.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Work for one connection.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a finished thread waits for a new connection.
const KEEP_IDLE: Duration = Duration::from_secs(5);

/// Most finished threads kept waiting; more exit at once.
const MAX_IDLE: usize = 64;

/// Runs each job on its own thread, reusing finished threads.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
    stack_size: usize,
}

struct Inner {
    state: Mutex<State>,
    wake: Condvar,
}

/// Invariant: `jobs.len() <= idle`: a job is queued only for a thread
/// that is waiting for it.
#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: usize,
}

impl Workers {
    /// Workers whose threads have `stack_size` bytes of stack.
    pub fn new(stack_size: usize) -> Workers {
        Workers {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            stack_size,
        }
    }

    /// Runs `job` on a waiting thread, or on a new one.
    ///
    /// Fails when no thread is waiting and a new one cannot be created;
    /// the job is dropped then.
    pub fn run(&self, job: Job) -> io::Result<()> {
        let mut state = self.inner.lock();
        if state.idle > state.jobs.len() {
            state.jobs.push_back(job);
            drop(state);
            self.inner.wake.notify_one();
            return Ok(());
        }
        drop(state);
        let inner = self.inner.clone();
        thread::Builder::new()
            .stack_size(self.stack_size)
            .spawn(move || work(&inner, job))
            .map(|_| ())
    }

    /// Threads waiting for a connection right now.
    pub fn idle(&self) -> usize {
        self.inner.lock().idle
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn work(inner: &Inner, mut job: Job) {
    loop {
        job();
        let mut state = inner.lock();
        if state.idle >= MAX_IDLE {
            return;
        }
        state.idle += 1;
        let give_up = Instant::now() + KEEP_IDLE;
        job = loop {
            if let Some(next) = state.jobs.pop_front() {
                state.idle -= 1;
                break next;
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                state.idle -= 1;
                return;
            }
            state = inner
                .wake
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_and_finished_threads_are_reused() {
        let workers = Workers::new(128 * 1024);
        let (tx, rx) = mpsc::channel();
        for i in 0..4 {
            let tx = tx.clone();
            workers
                .run(Box::new(move || {
                    tx.send((i, thread::current().id())).unwrap()
                }))
                .unwrap();
            // Let the job finish so its thread waits for the next one.
            let _ = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(wait(|| workers.idle() == 1));
        }
        // Jobs one after another run on the one waiting thread.
        let ids: std::collections::HashSet<_> = (0..3)
            .map(|i| {
                let tx = tx.clone();
                workers
                    .run(Box::new(move || {
                        tx.send((i, thread::current().id())).unwrap()
                    }))
                    .unwrap();
                let got = rx.recv_timeout(Duration::from_secs(5)).unwrap().1;
                assert!(wait(|| workers.idle() == 1));
                got
            })
            .collect();
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn concurrent_jobs_get_threads_of_their_own() {
        let workers = Workers::new(128 * 1024);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let (tx, rx) = mpsc::channel();
        for _ in 0..8 {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            workers
                .run(Box::new(move || {
                    // Every job waits for all the others: only works if
                    // each has a thread.
                    barrier.wait();
                    tx.send(()).unwrap();
                }))
                .unwrap();
        }
        for _ in 0..8 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }

    fn wait(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }
}
