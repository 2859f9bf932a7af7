//! 1 KiB puts for a fixed time per cell: the minimal reference server and
//! ftp-server with a connection per put, and the client library on one
//! connection, at 1 and 16 clients.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ftp::client::{Client, NoProgress};

use crate::loadgen;
use crate::{client, write_pattern, Load, Scratch, Server, Settings};

pub fn section(
    s: &Settings,
    scratch: &Scratch,
    ours: &Server,
    seed: Option<&Server>,
    limit: &Server,
) {
    let small_dir = scratch.dir.join("small");
    fs::create_dir_all(&small_dir).unwrap();
    for i in 0..16 {
        write_pattern(&small_dir.join(format!("small{i}.bin")), 1024);
    }
    println!(
        "\n## 1 KiB puts for {:.1} s per cell (limit and ftp-server with a connection each: \
         median of {} interleaved cells)",
        s.small_secs, s.rounds
    );
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "workload", "ops/s", "p50 ms", "p99 ms"
    );
    let small = Small {
        s,
        ours,
        seed,
        limit,
        dir: small_dir,
    };
    let mut generator = loadgen::Generator::default();
    for clients in [1usize, 16] {
        small.cells(&mut generator, clients);
    }
    generator.print_costs();
}

/// The servers and files of the section.
struct Small<'a> {
    s: &'a Settings,
    ours: &'a Server,
    seed: Option<&'a Server>,
    limit: &'a Server,
    dir: PathBuf,
}

impl Small<'_> {
    /// Measures and prints the cells for `clients` clients at once.
    fn cells(&self, generator: &mut loadgen::Generator, clients: usize) {
        let mut cells = Vec::new();
        if let Some(seed) = self.seed {
            cells.push((
                format!("seed Python server, new connection each, {clients} clients"),
                generator.timed("seed Python server", seed, clients, self.s.small_secs),
            ));
        }
        let (limits, ourses) = self.interleaved(generator, clients);
        let each: Vec<String> = limits
            .iter()
            .zip(&ourses)
            .map(|(l, o)| format!("{:.2}", o.rate() / l.rate()))
            .collect();
        let (limit_rate, ours_fresh) = (median_by_rate(limits), median_by_rate(ourses));
        let vs_limit = ours_fresh.rate() / limit_rate.rate();
        cells.push((
            format!("minimal reference server (limit), {clients} clients"),
            limit_rate,
        ));
        cells.push((
            format!("ftp-server, new connection each, {clients} clients"),
            ours_fresh,
        ));
        cells.push((
            format!("ftp-server, ftp client library, one connection, {clients} clients"),
            self.one_connection(clients),
        ));
        print_cells(&cells);
        println!(
            "ftp-server against the limit, new connection each: {vs_limit:.2}x the rate (each \
             round: {})",
            each.join(" ")
        );
    }

    /// The limit's and ftp-server's cells of a connection per put, one of
    /// each a round, in alternating order.
    fn interleaved(
        &self,
        generator: &mut loadgen::Generator,
        clients: usize,
    ) -> (Vec<Load>, Vec<Load>) {
        let secs = self.s.small_secs;
        let mut fresh = |name: &str, srv: &Server| generator.timed(name, srv, clients, secs);
        let (mut limits, mut ourses) = (Vec::new(), Vec::new());
        for round in 0..self.s.rounds {
            if round % 2 == 0 {
                limits.push(fresh("limit", self.limit));
                ourses.push(fresh("ftp-server", self.ours));
            } else {
                ourses.push(fresh("ftp-server", self.ours));
                limits.push(fresh("limit", self.limit));
            }
        }
        (limits, ourses)
    }

    /// The client library, `put` after `put` on one connection a client.
    fn one_connection(&self, clients: usize) -> Load {
        let addr = self.ours.addr;
        let dir = self.dir.clone();
        // Each client uploads its own file, over its own connection.
        run_load_stateful(
            clients,
            self.s.small_secs,
            move |i| (client(addr), dir.join(format!("small{i}.bin"))),
            move |(c, file): &mut (Client, PathBuf)| c.put(file, &mut NoProgress).is_ok(),
        )
    }
}

/// One line a cell, its rate against the first cell's.
fn print_cells(cells: &[(String, Load)]) {
    let base = cells[0].1.rate();
    for (name, r) in cells {
        println!(
            "{:<52} {:>9.0} {:>9.2} {:>9.2}  {:>6.1}x{}",
            name,
            r.rate(),
            r.pct(50.0),
            r.pct(99.0),
            r.rate() / base,
            if r.failures > 0 {
                format!("  {} failed", r.failures)
            } else {
                String::new()
            }
        );
    }
}

/// The run whose rate is the median.
fn median_by_rate(mut runs: Vec<Load>) -> Load {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    runs.swap_remove(runs.len() / 2)
}

fn run_load_stateful<S: 'static>(
    clients: usize,
    secs: f64,
    setup: impl Fn(usize) -> S + Send + Sync + 'static,
    op: impl Fn(&mut S) -> bool + Send + Sync + 'static,
) -> Load {
    let setup = Arc::new(setup);
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (setup, op, barrier) = (setup.clone(), op.clone(), barrier.clone());
            thread::spawn(move || {
                let mut state = setup(i);
                barrier.wait();
                let end = Instant::now() + Duration::from_secs_f64(secs);
                let (mut lat, mut fails) = (Vec::new(), 0);
                while Instant::now() < end {
                    let t = Instant::now();
                    if op(&mut state) {
                        lat.push(t.elapsed());
                    } else {
                        fails += 1;
                    }
                }
                (lat, fails)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for h in handles {
        let (l, f) = h.join().unwrap();
        latencies.extend(l);
        failures += f;
    }
    latencies.sort();
    Load {
        ops: latencies.len(),
        failures,
        secs,
        latencies,
    }
}
