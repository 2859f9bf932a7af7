//! What the server remembers about each host that has not logged in yet:
//! the back-off its failed logins earned, how many it failed this minute,
//! how many of its logins run at once (the rest wait their turn), and when
//! its last refusal was logged.
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

/// Failed logins from one address that are answered without delay.
const FREE_FAILURES: u32 = 3;
/// How long an address's failures are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The window the per-minute cap on failures counts in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most addresses remembered at once.
const MAX_TRACKED_ADDRESSES: usize = 65_536;
/// Refusals of one host are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);
/// TLS handshakes one host may start in a second, after a burst of as
/// many, unless the server is told otherwise: each costs the server an
/// ECDHE and a signature, and a replayed ClientHello costs its sender
/// nothing. Enough for an office behind one address, and a script that
/// runs one command after another.
pub(crate) const HANDSHAKES_PER_SECOND: u32 = 64;

/// The host an address belongs to, for limits and back-off: an IPv4
/// address, or the /64 an IPv6 address is in (one host often has many).
pub(crate) fn host_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// Failures since `window_start`, for the per-minute cap.
    in_window: u32,
    window_start: Instant,
}

/// Failed logins by host: the delay they earn, and the cap per minute;
/// and the pace of each host's TLS handshakes.
#[derive(Debug)]
pub(crate) struct Backoff {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    per_minute: u32,
    /// By host, when its next handshake would be due if they came at the
    /// allowed pace (a generic cell rate: a burst of
    /// [`HANDSHAKES_PER_SECOND`] is let through at once).
    handshakes: Mutex<HashMap<IpAddr, Instant>>,
    handshakes_per_second: u32,
    /// Longest delay before a challenge to an address that keeps failing.
    max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        let max_delay = crate::server::timings::Timings::default().max_backoff;
        Backoff::new(u32::MAX, HANDSHAKES_PER_SECOND, max_delay)
    }
}

impl Backoff {
    /// Remembers failures, refusing a host that failed `per_minute` times
    /// within a minute until that minute is over, and paces each host's
    /// TLS handshakes to `handshakes_per_second` (at least 1); the delay
    /// before a challenge grows to `max_delay` at most.
    pub(crate) fn new(per_minute: u32, handshakes_per_second: u32, max_delay: Duration) -> Backoff {
        Backoff {
            max_delay,
            failures: Mutex::new(HashMap::new()),
            per_minute,
            handshakes: Mutex::new(HashMap::new()),
            handshakes_per_second: handshakes_per_second.max(1),
        }
    }

    /// Books a TLS handshake for `ip`: how long it must wait so that its
    /// host starts at most the set number a second (after a burst of as
    /// many). The wait is booked whether or not it is taken.
    pub(crate) fn handshake_wait(&self, ip: IpAddr) -> Duration {
        let rate = self.handshakes_per_second;
        let interval = Duration::from_secs(1) / rate;
        let burst = interval * (rate - 1);
        let now = Instant::now();
        let mut due = self.handshakes.lock();
        if due.len() >= MAX_TRACKED_ADDRESSES {
            due.retain(|_, at| *at > now);
        }
        let at = due.entry(host_key(ip)).or_insert(now);
        let next = (*at).max(now);
        *at = next + interval;
        next.saturating_duration_since(now + burst)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock()
    }

    /// How long to wait before challenging `ip`.
    pub(crate) fn delay(&self, ip: IpAddr) -> Duration {
        match self.lock().get(&host_key(ip)) {
            Some(f) if f.count >= FREE_FAILURES && f.last.elapsed() < FAILURE_MEMORY => {
                let shift = (f.count - FREE_FAILURES).min(6);
                Duration::from_millis(125 << shift).min(self.max_delay)
            }
            _ => Duration::ZERO,
        }
    }

    /// When `ip` has used up its failures for this minute: how long until
    /// it may try again.
    pub(crate) fn locked_out(&self, ip: IpAddr) -> Option<Duration> {
        let map = self.lock();
        let f = map.get(&host_key(ip))?;
        let left = FAILURE_WINDOW.checked_sub(f.window_start.elapsed())?;
        (f.in_window >= self.per_minute).then_some(left)
    }

    /// Records a failed login from `ip`.
    pub(crate) fn note_failure(&self, ip: IpAddr) {
        let ip = host_key(ip);
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&ip) {
            make_room(&mut map);
        }
        let now = Instant::now();
        let entry = map.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            in_window: 0,
            window_start: now,
        });
        if entry.last.elapsed() >= FAILURE_MEMORY {
            entry.count = 0;
        }
        if entry.window_start.elapsed() >= FAILURE_WINDOW {
            entry.in_window = 0;
            entry.window_start = now;
        }
        entry.count = entry.count.saturating_add(1);
        entry.in_window = entry.in_window.saturating_add(1);
        entry.last = now;
    }

    /// Forgets `ip`'s failures after a good login.
    pub(crate) fn forget(&self, ip: IpAddr) {
        self.lock().remove(&host_key(ip));
    }
}

/// Drops hosts whose failures are forgotten; if still full, the one that
/// failed longest ago (not all of them, which would let every one start
/// afresh).
fn make_room(map: &mut HashMap<IpAddr, Failures>) {
    map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
    if map.len() >= MAX_TRACKED_ADDRESSES {
        let oldest = map.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip);
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
}

/// Logins under way per host, and the connections waiting for a turn:
/// one host can have only so many logins running, however many it opens.
#[derive(Debug)]
pub(crate) struct Turns<T> {
    hosts: Mutex<HashMap<IpAddr, HostTurns<T>>>,
    per_host: usize,
}

#[derive(Debug)]
struct HostTurns<T> {
    running: usize,
    /// Those waiting, with when each began to.
    queue: VecDeque<(Instant, T)>,
}

impl<T> Turns<T> {
    /// At most `per_host` logins at once per host.
    pub(crate) fn new(per_host: usize) -> Turns<T> {
        Turns {
            hosts: Mutex::new(HashMap::new()),
            per_host: per_host.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, HostTurns<T>>> {
        self.hosts.lock()
    }

    /// Gives `host` a turn now and returns `item`, or queues it behind
    /// the host's running logins and returns `None`.
    pub(crate) fn begin(&self, host: IpAddr, item: T) -> Option<T> {
        let mut hosts = self.lock();
        let turns = hosts.entry(host).or_insert_with(|| HostTurns {
            running: 0,
            queue: VecDeque::new(),
        });
        if turns.running < self.per_host {
            turns.running += 1;
            return Some(item);
        }
        turns.queue.push_back((Instant::now(), item));
        None
    }

    /// Ends one of `host`'s turns; returns the next item in its queue,
    /// which has the turn now.
    pub(crate) fn end(&self, host: IpAddr) -> Option<T> {
        let mut hosts = self.lock();
        let turns = hosts.get_mut(&host)?;
        if let Some((_, next)) = turns.queue.pop_front() {
            return Some(next);
        }
        turns.running = turns.running.saturating_sub(1);
        if turns.running == 0 {
            hosts.remove(&host);
        }
        None
    }

    /// How many of `host`'s connections wait for a turn.
    #[cfg(test)]
    pub(crate) fn waiting(&self, host: IpAddr) -> usize {
        self.lock().get(&host).map_or(0, |t| t.queue.len())
    }

    /// Takes every waiting item, for a shutdown.
    pub(crate) fn drain(&self) -> Vec<T> {
        let mut hosts = self.lock();
        hosts
            .values_mut()
            .flat_map(|t| t.queue.drain(..).map(|(_, item)| item))
            .collect()
    }

    /// Takes the items that have waited `wait` or longer, with how many
    /// logins their host has under way: they are told to come back.
    pub(crate) fn overdue(&self, wait: Duration) -> Vec<(T, usize)> {
        let mut hosts = self.lock();
        let mut out = Vec::new();
        for turns in hosts.values_mut() {
            // Each queue is in arrival order.
            while turns
                .queue
                .front()
                .is_some_and(|(at, _)| at.elapsed() >= wait)
            {
                if let Some((_, item)) = turns.queue.pop_front() {
                    out.push((item, turns.running));
                }
            }
        }
        out
    }
}

/// When each host's refusals were last logged, so that a host turned away
/// thousands of times a second costs one log line a second.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    hosts: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl RefusalLog {
    /// Whether to log a refusal of `host` now; if so, also how many went
    /// unlogged since the last line.
    pub(crate) fn should_log(&self, host: IpAddr) -> Option<u64> {
        let mut hosts = self.hosts.lock();
        let now = Instant::now();
        if hosts.len() >= MAX_TRACKED_ADDRESSES {
            hosts.retain(|_, (at, _)| now.duration_since(*at) < REFUSAL_LOG_EVERY);
        }
        match hosts.get_mut(&host) {
            Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                hosts.insert(host, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_slow_down_only_their_address() {
        let backoff = Backoff::default();
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        let good: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(backoff.delay(bad), Duration::ZERO);
            backoff.note_failure(bad);
        }
        assert_eq!(backoff.delay(bad), Duration::from_millis(125));
        for _ in 0..20 {
            backoff.note_failure(bad);
        }
        assert_eq!(backoff.delay(bad), Duration::from_secs(8));
        assert_eq!(backoff.delay(good), Duration::ZERO);
        backoff.forget(bad);
        assert_eq!(backoff.delay(bad), Duration::ZERO);
    }

    #[test]
    fn a_host_starts_a_burst_of_handshakes_then_a_paced_few() {
        let backoff = Backoff::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..HANDSHAKES_PER_SECOND {
            assert_eq!(backoff.handshake_wait(a), Duration::ZERO);
        }
        let interval = Duration::from_secs(1) / HANDSHAKES_PER_SECOND;
        let first = backoff.handshake_wait(a);
        assert!(first > Duration::ZERO && first <= interval, "{first:?}");
        let later = backoff.handshake_wait(a);
        assert!(later > first + interval / 2, "{later:?}");
        assert_eq!(backoff.handshake_wait(b), Duration::ZERO, "another host");
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(host_key(a), host_key(b));
        assert_ne!(host_key(a), host_key(other));
        let backoff = Backoff::default();
        for _ in 0..FREE_FAILURES + 1 {
            backoff.note_failure(a);
        }
        assert!(backoff.delay(b) > Duration::ZERO, "same /64, same back-off");
        assert_eq!(backoff.delay(other), Duration::ZERO);
    }

    #[test]
    fn a_host_that_fails_too_often_in_a_minute_is_locked_out() {
        let backoff = Backoff::new(5, HANDSHAKES_PER_SECOND, Duration::from_secs(8));
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..4 {
            backoff.note_failure(bad);
        }
        assert_eq!(backoff.locked_out(bad), None);
        backoff.note_failure(bad);
        let left = backoff
            .locked_out(bad)
            .expect("the fifth failure locks it out");
        assert!(left <= FAILURE_WINDOW);
        assert_eq!(backoff.locked_out("10.0.0.2".parse().unwrap()), None);
    }

    #[test]
    fn logins_beyond_a_hosts_turns_wait_in_order() {
        let turns = Turns::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(turns.begin(a, 1), Some(1));
        assert_eq!(turns.begin(a, 2), Some(2));
        assert_eq!(turns.begin(a, 3), None);
        assert_eq!(turns.begin(a, 4), None);
        assert_eq!(turns.begin(b, 5), Some(5), "another host has its own turns");
        assert_eq!(turns.waiting(a), 2);
        assert_eq!(turns.end(a), Some(3));
        assert_eq!(turns.end(a), Some(4));
        assert_eq!(turns.end(a), None);
        assert_eq!(turns.end(a), None);
        assert_eq!(turns.begin(a, 6), Some(6), "its turns came back");
    }

    #[test]
    fn a_turn_waited_for_too_long_is_given_up_in_order() {
        let turns = Turns::new(1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(turns.begin(a, 1), Some(1));
        assert_eq!(turns.begin(a, 2), None);
        assert_eq!(turns.begin(a, 3), None);
        assert!(turns.overdue(Duration::from_secs(60)).is_empty());
        assert_eq!(turns.overdue(Duration::ZERO), vec![(2, 1), (3, 1)]);
        assert_eq!(turns.waiting(a), 0);
        assert_eq!(turns.end(a), None, "nobody was left to take the turn");
    }

    #[test]
    fn refusals_of_a_host_are_logged_once_a_second_with_a_count() {
        let log = RefusalLog::default();
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(log.should_log(host), Some(0));
        for _ in 0..100 {
            assert_eq!(log.should_log(host), None);
        }
        assert_eq!(log.should_log("10.0.0.2".parse().unwrap()), Some(0));
    }
}
