//! The worker threads that run connections while they have work: a login,
//! a command, a transfer.
//!
//! A bounded set of workers takes jobs in arrival order within each
//! account, the accounts taking turns ([`FairQueue`]), so a burst of
//! clients waits its turn in a queue, in order, instead of a thousand
//! threads contending for two cores, where some finish at once and others
//! wait half a second. The bound is not a wall, though: a worker may block
//! on a slow peer (a long upload, a TLS handshake), and if every worker
//! blocks, queued jobs would wait for them. So when the queue has not
//! moved for [`STALL`], the pool grows, as .NET's thread pool does when it
//! sees starvation, up to a fixed bound; the extra threads leave once
//! idle.

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::logging::{Event, Kind};
use parking_lot::{Condvar, Mutex, MutexGuard};

use super::fair::FairQueue;

/// Work for one connection.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Whose work a job is: jobs of one key run in order, and keys take
/// turns. The server uses the account (or an anonymous client's host).
pub(crate) type JobKey = u64;

/// How long an idle thread waits for a job before it exits.
const KEEP_IDLE: Duration = Duration::from_secs(5);

/// How long queued jobs may wait without any worker taking one before the
/// pool grows: long against a command's CPU time, short against a person.
pub(crate) const STALL: Duration = Duration::from_millis(50);

/// Runs jobs on a bounded, growing set of threads, first come first served.
#[derive(Clone)]
pub(crate) struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes an idle worker for a queued job.
    wake: Condvar,
    /// Wakes the stall watcher when the queue stops being empty.
    watch: Condvar,
    stack_size: usize,
    /// Threads kept for a steady load.
    core: usize,
    /// Threads at most, however stalled.
    max: usize,
}

#[derive(Default)]
struct State {
    jobs: FairQueue<JobKey, Job>,
    idle: usize,
    threads: usize,
    /// When a worker last took a job (or a thread was added).
    moved: Option<Instant>,
    watcher: bool,
}

impl State {
    /// Work that waits for a thread, queued or not.
    fn demand(&self) -> usize {
        self.jobs.len()
    }
}

impl Workers {
    /// Workers whose threads have `stack_size` bytes of stack: `core` of
    /// them for a steady load, up to `max` when they all block.
    pub(crate) fn new(stack_size: usize, core: usize, max: usize) -> Workers {
        let core = core.max(1);
        Workers {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                watch: Condvar::new(),
                stack_size,
                core,
                max: max.max(core),
            }),
        }
    }

    /// Queues `job` in `key`'s line; a waiting thread takes it, or a new
    /// one while there are fewer than the core.
    ///
    /// Fails when there is no thread at all and none can be created; the
    /// job is dropped then.
    pub(crate) fn run(&self, key: JobKey, job: Job) -> io::Result<()> {
        let inner = &self.inner;
        let mut state = inner.lock();
        state.jobs.push(key, job);
        if state.idle >= state.jobs.len() {
            drop(state);
            inner.wake.notify_one();
            return Ok(());
        }
        if state.threads < inner.core {
            if let Err(e) = Inner::spawn(inner, &mut state) {
                if state.threads == 0 {
                    state.jobs.unpush(&key);
                    return Err(e);
                }
            }
            return Ok(());
        }
        // Every core thread is busy: the job waits its turn, and the
        // watcher makes sure the turn comes.
        Inner::watch_over(inner, &mut state);
        Ok(())
    }

    /// Threads waiting for a job right now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.inner.lock().idle
    }

    /// Threads there are now, busy or not.
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        self.inner.lock().threads
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Makes sure the stall watcher runs, and tells it there is demand.
    fn watch_over(inner: &Arc<Inner>, state: &mut State) {
        if !state.watcher {
            let watched = inner.clone();
            let started = thread::Builder::new()
                .name("ftp-workers".into())
                .stack_size(64 * 1024)
                .spawn(move || watch(&watched));
            state.watcher = started.is_ok();
        }
        inner.watch.notify_one();
    }

    /// Starts one more worker.
    fn spawn(inner: &Arc<Inner>, state: &mut State) -> io::Result<()> {
        let worker = inner.clone();
        thread::Builder::new()
            .name("ftp-worker".into())
            .stack_size(inner.stack_size)
            .spawn(move || work(&worker))?;
        state.threads += 1;
        state.moved = Some(Instant::now());
        Ok(())
    }
}

fn work(inner: &Inner) {
    let mut state = inner.lock();
    loop {
        let job = loop {
            if let Some(job) = state.jobs.pop() {
                state.moved = Some(Instant::now());
                break job;
            }
            state.idle += 1;
            let waited = inner.wake.wait_for(&mut state, KEEP_IDLE);
            state.idle -= 1;
            if waited.timed_out() && state.jobs.is_empty() {
                state.threads -= 1;
                return;
            }
        };
        drop(state);
        job();
        state = inner.lock();
    }
}

/// Grows the pool while queued jobs wait and no worker takes one.
fn watch(inner: &Arc<Inner>) {
    let mut state = inner.lock();
    loop {
        while state.demand() == 0 {
            inner.watch.wait(&mut state);
        }
        let since = state.moved.map_or(STALL, |at| at.elapsed());
        let waiting = state.demand().saturating_sub(state.idle);
        if since >= STALL && waiting > 0 && state.threads < inner.max {
            let add = waiting.min(inner.core).min(inner.max - state.threads);
            Event::new(Kind::Debug).debug(format_args!(
                "all {} workers busy for {} ms with {waiting} jobs waiting: adding {add}",
                state.threads,
                since.as_millis()
            ));
            for _ in 0..add {
                if Inner::spawn(inner, &mut state).is_err() {
                    break;
                }
            }
        }
        // Look again when the queue will have been still for STALL, or a
        // whole STALL from now when it already has (and nothing could be
        // added).
        let since = state.moved.map_or(STALL, |at| at.elapsed());
        let next = match STALL.checked_sub(since) {
            Some(left) if !left.is_zero() => left,
            _ => STALL,
        };
        inner.watch.wait_for(&mut state, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn jobs_run_and_finished_threads_are_reused() {
        let workers = Workers::new(128 * 1024, 4, 8);
        let (tx, rx) = mpsc::channel();
        let ids: std::collections::HashSet<_> = (0..5)
            .map(|i| {
                let tx = tx.clone();
                workers
                    .run(
                        0,
                        Box::new(move || tx.send((i, thread::current().id())).unwrap()),
                    )
                    .unwrap();
                let got = rx.recv_timeout(Duration::from_secs(5)).unwrap().1;
                // Let the job's thread go back to waiting.
                assert!(wait(|| workers.idle() == 1));
                got
            })
            .collect();
        assert_eq!(ids.len(), 1, "one job after another runs on one thread");
        assert_eq!(workers.threads(), 1);
    }

    #[test]
    fn a_full_pool_queues_jobs_until_a_worker_is_free() {
        let workers = Workers::new(128 * 1024, 2, 2);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate_rx));
        let (tx, rx) = mpsc::channel();
        // Two jobs hold both threads until the gate opens.
        for _ in 0..2 {
            let gate = gate.clone();
            workers
                .run(
                    0,
                    Box::new(move || {
                        let _ = gate.lock().recv();
                    }),
                )
                .unwrap();
        }
        for i in 0..6 {
            let tx = tx.clone();
            workers
                .run(0, Box::new(move || tx.send(i).unwrap()))
                .unwrap();
        }
        thread::sleep(STALL * 3);
        assert_eq!(workers.threads(), 2, "never more than max");
        assert!(rx.try_recv().is_err(), "queued jobs wait their turn");
        gate_tx.send(()).unwrap();
        gate_tx.send(()).unwrap();
        let order: Vec<i32> = (0..6)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
    }

    #[test]
    fn blocked_workers_make_the_pool_grow() {
        let workers = Workers::new(128 * 1024, 2, 100);
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let (barrier, done) = (barrier.clone(), done.clone());
            workers
                .run(
                    0,
                    Box::new(move || {
                        // Every job waits for all the others: only possible if
                        // the pool grows past its core of 2.
                        barrier.wait();
                        done.fetch_add(1, Ordering::SeqCst);
                    }),
                )
                .unwrap();
        }
        assert!(wait(|| done.load(Ordering::SeqCst) == 8));
        assert!(workers.threads() >= 8);
    }

    #[test]
    fn a_pool_that_cannot_start_a_thread_refuses_the_job() {
        // No thread can have a stack this large.
        let workers = Workers::new(usize::MAX / 2, 2, 2);
        assert!(workers.run(0, Box::new(|| {})).is_err());
        assert_eq!(workers.threads(), 0);
    }

    fn wait(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }
}
