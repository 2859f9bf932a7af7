//! The load generator of the small-files and burst sections: one thread
//! drives every client's connections at once with non-blocking sockets and
//! edge-triggered epoll. A thread per client with blocking sockets cost
//! about as much CPU as the server it measured, and on two cores that hid
//! the server's own cost; this one tallies its CPU time next to each
//! server's, so the output shows that it costs less.
//!
//! Each put is the seed client's, the same bytes for every server: connect,
//! read the 32-byte challenge, send the 16-byte answer and one put frame of
//! 1 KiB, half-close, read to the end. Its latency runs from the connect to
//! that end. Each client puts its own file (`s{client}.bin`), as separate
//! users do: ftp-server lets an account's new upload of a name take over
//! one still running (it cuts that connection, for a client killed and run
//! again), so names shared between clients of one account would measure
//! takeovers instead of puts. A server that answers puts must have answered `ok`: a put
//! refused, or cut off before its reply, counts as failed.

use std::fs;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ftp::wire::auth::{respond, CHALLENGE_LEN};
use ftp::wire::frame;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};

use crate::{Load, Server, SECRET};

/// A put not done in this long counts as failed.
const STUCK: Duration = Duration::from_secs(10);
/// How often stuck puts are looked for.
const SWEEP: Duration = Duration::from_millis(100);
/// Connections opened at the start of a run between looks at the ready ones.
const CONNECT_BATCH: usize = 32;
/// Bytes in each put's file.
const BODY: usize = 1024;
/// Bytes of a reply kept to check it: an `ok` frame is far shorter.
const REPLY_KEPT: usize = 4096;

/// The load generator, with the CPU time it and each server spent under
/// its load.
#[derive(Default)]
pub struct Generator {
    costs: Vec<Costs>,
}

/// CPU time of the generator and of one server over the runs against it.
struct Costs {
    server: String,
    generator: Duration,
    served: Duration,
    wall: Duration,
    puts: usize,
}

/// When a client stops making puts.
#[derive(Clone, Copy)]
enum Until {
    /// Starts none after this instant.
    Deadline(Instant),
    /// After this many.
    Count(usize),
}

impl Generator {
    /// `clients` each putting back to back for `secs` seconds; `name` is
    /// the server's name in [`Generator::print_costs`].
    pub fn timed(&mut self, name: &str, server: &Server, clients: usize, secs: f64) -> Load {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        self.measure(name, server, clients, Until::Deadline(end), secs)
    }

    /// `clients` released at once, each making `puts` puts, a connection
    /// each.
    pub fn burst(&mut self, name: &str, server: &Server, clients: usize, puts: usize) -> Load {
        self.measure(name, server, clients, Until::Count(puts), 1.0)
    }

    /// One line per server: the CPU the generator and the server used while
    /// loaded, as a share of one core and per put.
    pub fn print_costs(&self) {
        println!("CPU while loaded, share of one core (per put): load generator vs server");
        for c in &self.costs {
            let share = |cpu: Duration| 100.0 * cpu.as_secs_f64() / c.wall.as_secs_f64();
            let per_put = |cpu: Duration| cpu.as_secs_f64() * 1e6 / c.puts.max(1) as f64;
            println!(
                "  against {:<28} generator {:>3.0}% ({:>4.0} us)   server {:>3.0}% ({:>4.0} us)",
                c.server,
                share(c.generator),
                per_put(c.generator),
                share(c.served),
                per_put(c.served)
            );
        }
    }

    fn measure(
        &mut self,
        name: &str,
        server: &Server,
        clients: usize,
        until: Until,
        secs: f64,
    ) -> Load {
        let (own, served, started) = (own_cpu(), cpu_of(server.pid()), Instant::now());
        let load = Driver::new(server, clients, until).run(secs);
        let costs = match self.costs.iter_mut().position(|c| c.server == name) {
            Some(i) => &mut self.costs[i],
            None => {
                self.costs.push(Costs {
                    server: name.to_string(),
                    generator: Duration::ZERO,
                    served: Duration::ZERO,
                    wall: Duration::ZERO,
                    puts: 0,
                });
                self.costs.last_mut().unwrap()
            }
        };
        costs.wall += started.elapsed();
        costs.generator += own_cpu().saturating_sub(own);
        costs.served += cpu_of(server.pid()).saturating_sub(served);
        costs.puts += load.ops + load.failures;
        load
    }
}

/// Where one connection is in its put.
enum Step {
    /// Reading the challenge; this much of it is in.
    Challenge(usize),
    /// Writing the answer and the put frame; this much has gone.
    Send(usize),
    /// Reading until the server closes.
    Drain,
}

/// One put's connection.
struct Conn {
    fd: OwnedFd,
    started: Instant,
    step: Step,
    challenge: [u8; CHALLENGE_LEN],
    out: Vec<u8>,
    /// The first bytes the server sent after the challenge.
    reply: Vec<u8>,
    /// Whether epoll also reports it writable (only once a write blocked).
    writable: bool,
}

/// Every client's connection, driven from one thread.
struct Driver {
    epoll: OwnedFd,
    addr: SocketAddr,
    /// Whether the server answers each put (see [`Server::replies`]).
    replies: bool,
    until: Until,
    /// Each client's put frame, with its 1 KiB body, built once.
    requests: Vec<Vec<u8>>,
    conns: Vec<Option<Conn>>,
    made: Vec<usize>,
    latencies: Vec<Duration>,
    failures: usize,
}

impl Driver {
    fn new(server: &Server, clients: usize, until: Until) -> Driver {
        let requests = (0..clients)
            .map(|i| {
                let header =
                    serde_json::json!({"cmd":"put","filename":format!("s{i}.bin"),"filesize":BODY});
                let mut request = frame::encode_json(&header).unwrap();
                request.resize(request.len() + BODY, b'x');
                request
            })
            .collect();
        Driver {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll"),
            addr: server.addr,
            replies: server.replies,
            until,
            requests,
            conns: (0..clients).map(|_| None).collect(),
            made: vec![0; clients],
            latencies: Vec::new(),
            failures: 0,
        }
    }

    fn run(mut self, secs: f64) -> Load {
        let mut events = Vec::with_capacity(1024);
        let timespec = |d: Duration| rustix::event::Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        for client in 0..self.conns.len() {
            self.start(client);
            // Serves what is ready now and then, so that the first clients
            // of a burst do not wait for the last to connect.
            if client % CONNECT_BATCH == CONNECT_BATCH - 1 {
                self.poll(&mut events, &timespec(Duration::ZERO));
            }
        }
        let mut last_sweep = Instant::now();
        while self.conns.iter().any(Option::is_some) {
            self.poll(&mut events, &timespec(SWEEP));
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.fail_stuck();
            }
        }
        self.latencies.sort();
        Load {
            ops: self.latencies.len(),
            failures: self.failures,
            secs,
            latencies: self.latencies,
        }
    }

    /// Waits up to `timeout` for sockets to be ready and moves their puts on.
    fn poll(&mut self, events: &mut Vec<epoll::Event>, timeout: &rustix::event::Timespec) {
        events.clear();
        let spare = rustix::buffer::spare_capacity(events);
        match epoll::wait(&self.epoll, spare, Some(timeout)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        for event in events.iter() {
            self.advance(event.data.u64() as usize);
        }
    }

    /// Opens `client`'s next put, if it is to make one.
    fn start(&mut self, client: usize) {
        while match self.until {
            Until::Deadline(end) => Instant::now() < end,
            Until::Count(n) => self.made[client] < n,
        } {
            self.made[client] += 1;
            match self.connect(client) {
                Ok(conn) => {
                    self.conns[client] = Some(conn);
                    return;
                }
                Err(_) => self.failures += 1,
            }
        }
    }

    fn connect(&self, client: usize) -> rustix::io::Result<Conn> {
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        let started = Instant::now();
        match rustix::net::connect(&fd, &self.addr) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // Closing the socket takes it out of the epoll set: no delete.
        let key = EventData::new_u64(client as u64);
        epoll::add(&self.epoll, &fd, key, EventFlags::IN | EventFlags::ET)?;
        Ok(Conn {
            fd,
            started,
            step: Step::Challenge(0),
            challenge: [0; CHALLENGE_LEN],
            out: Vec::new(),
            reply: Vec::new(),
            writable: false,
        })
    }

    /// Moves `client`'s put on as far as its socket allows; a finished or
    /// failed put makes way for that client's next.
    fn advance(&mut self, client: usize) {
        let Some(conn) = self.conns[client].as_mut() else {
            return;
        };
        match conn.advance(&self.requests, &self.epoll, client) {
            Ok(false) => return,
            Ok(true) if !self.replies || conn.answered_ok() => {
                self.latencies.push(conn.started.elapsed())
            }
            Ok(true) | Err(_) => self.failures += 1,
        }
        self.conns[client] = None;
        self.start(client);
    }

    fn fail_stuck(&mut self) {
        for client in 0..self.conns.len() {
            if self.conns[client]
                .as_ref()
                .is_some_and(|c| c.started.elapsed() > STUCK)
            {
                self.conns[client] = None;
                self.failures += 1;
                self.start(client);
            }
        }
    }
}

impl Conn {
    /// Reads and writes until the socket would block (false) or the server
    /// has closed after the put (true).
    fn advance(&mut self, requests: &[Vec<u8>], ep: &OwnedFd, key: usize) -> Result<bool, Errno> {
        loop {
            match self.step {
                Step::Challenge(got) => {
                    let Some(n) = again(rustix::io::read(&self.fd, &mut self.challenge[got..]))?
                    else {
                        return Ok(false);
                    };
                    if n == 0 {
                        return Err(Errno::CONNRESET);
                    }
                    if got + n < CHALLENGE_LEN {
                        self.step = Step::Challenge(got + n);
                        continue;
                    }
                    self.out
                        .extend_from_slice(&respond(SECRET.as_bytes(), &self.challenge));
                    self.out.extend_from_slice(&requests[key]);
                    self.step = Step::Send(0);
                }
                Step::Send(sent) => {
                    let Some(n) = again(rustix::io::write(&self.fd, &self.out[sent..]))? else {
                        if !self.writable {
                            self.writable = true;
                            let flags = EventFlags::IN | EventFlags::OUT | EventFlags::ET;
                            epoll::modify(ep, &self.fd, EventData::new_u64(key as u64), flags)?;
                            continue;
                        }
                        return Ok(false);
                    };
                    if sent + n < self.out.len() {
                        self.step = Step::Send(sent + n);
                        continue;
                    }
                    rustix::net::shutdown(&self.fd, Shutdown::Write)?;
                    self.step = Step::Drain;
                }
                Step::Drain => {
                    let mut sink = [0u8; 256];
                    match again(rustix::io::read(&self.fd, &mut sink))? {
                        None => return Ok(false),
                        Some(0) => return Ok(true),
                        Some(n) => {
                            let room = REPLY_KEPT.saturating_sub(self.reply.len());
                            self.reply.extend_from_slice(&sink[..n.min(room)]);
                        }
                    }
                }
            }
        }
    }
}

impl Conn {
    /// Whether the server's first frame after the put says `ok`.
    fn answered_ok(&self) -> bool {
        let Ok(Some(header)) = frame::read(&mut &self.reply[..], REPLY_KEPT) else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&header)
            .is_ok_and(|reply| reply["status"] == "ok")
    }
}

/// `Some(n)` for `n` bytes moved, `None` when the socket would block.
fn again(r: rustix::io::Result<usize>) -> Result<Option<usize>, Errno> {
    match r {
        Ok(n) => Ok(Some(n)),
        Err(Errno::AGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// CPU time (user and system) this process has used so far.
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given a pointer to.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time (user and system) process `pid` has used so far, from
/// `/proc/PID/stat`, in clock ticks of 10 ms.
pub fn cpu_of(pid: u32) -> Duration {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = text.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis(10 * (field(11) + field(12)))
}
