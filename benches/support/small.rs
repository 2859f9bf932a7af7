//! 1 KiB puts for a fixed time per cell: the minimal reference server (as
//! it is, and paying ftp-server's atomic landing) and ftp-server with a
//! connection per put, and the client library on one connection, at 1 and
//! 16 clients.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ftp::{Client, NoProgress};

use crate::loadgen;
use crate::{client, write_pattern, Load, Scratch, Server, Settings};

pub fn section(
    s: &Settings,
    scratch: &Scratch,
    ours: &Server,
    seed: Option<&Server>,
    limits: &[Server; 2],
) {
    let small_dir = scratch.dir.join("small");
    fs::create_dir_all(&small_dir).unwrap();
    for i in 0..16 {
        write_pattern(&small_dir.join(format!("small{i}.bin")), 1024);
    }
    println!(
        "\n## 1 KiB puts for {:.1} s per cell into {} (the limits and ftp-server with a \
         connection each: median of {} interleaved cells)",
        s.small_secs, scratch.kind, s.rounds
    );
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "workload", "ops/s", "p50 ms", "p99 ms"
    );
    let small = Small {
        s,
        ours,
        seed,
        limits,
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
    limits: &'a [Server; 2],
    dir: PathBuf,
}

/// The servers measured with a connection per put, in the order of their
/// rows: the plain limit, the atomic limit, ftp-server.
const FRESH: [&str; 3] = [
    "minimal reference server (limit)",
    "atomic limit (partial, BLAKE3, rename)",
    "ftp-server, new connection each",
];

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
        let runs = self.interleaved(generator, clients);
        // Each round's ratio of ftp-server to each limit, to show the spread.
        let each = |limit: &[Load]| -> String {
            let ratios = limit.iter().zip(&runs[2]).map(|(l, o)| o.rate() / l.rate());
            ratios
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let each = [each(&runs[0]), each(&runs[1])];
        let [plain, atomic, ours] = runs.map(median_by_rate);
        let vs = [ours.rate() / plain.rate(), ours.rate() / atomic.rate()];
        for (name, load) in FRESH.iter().zip([plain, atomic, ours]) {
            cells.push((format!("{name}, {clients} clients"), load));
        }
        cells.push((
            format!("ftp-server, ftp client library, one connection, {clients} clients"),
            self.one_connection(clients),
        ));
        print_cells(&cells);
        for (i, which) in ["limit", "atomic limit"].iter().enumerate() {
            println!(
                "ftp-server / {which}, new connection each, {clients} clients: {:.2}x the rate \
                 (each round: {})",
                vs[i], each[i]
            );
        }
    }

    /// The limits' and ftp-server's cells of a connection per put, one of
    /// each a round, the order rotating from round to round.
    fn interleaved(&self, generator: &mut loadgen::Generator, clients: usize) -> [Vec<Load>; 3] {
        let secs = self.s.small_secs;
        let servers = [&self.limits[0], &self.limits[1], self.ours];
        let mut runs: [Vec<Load>; 3] = Default::default();
        for round in 0..self.s.rounds {
            for step in 0..3 {
                let which = (step + round) % 3;
                let load = generator.timed(FRESH[which], servers[which], clients, secs);
                runs[which].push(load);
            }
        }
        runs
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
