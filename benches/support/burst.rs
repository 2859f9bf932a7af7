//! Many clients at once, each making a few puts on a connection each: the
//! latency of admission under a burst.

use crate::loadgen;
use crate::{Load, Server, Settings};

/// Puts each client of the burst makes, each on a connection of its own.
const BURST_PUTS: usize = 3;

/// The burst against both limit servers, interleaved over the rounds (a
/// single burst's p99 is its 30th-worst put, and this machine is noisy),
/// then once against the seed's server.
pub fn section(s: &Settings, ours: &Server, seed: Option<&Server>, limits: &[Server; 2]) {
    println!(
        "\n## {} clients at once, {} puts of 1 KiB each, a connection per put (medians of {} \
         interleaved rounds)",
        s.burst, BURST_PUTS, s.rounds
    );
    println!(
        "{:<40} {:>7} {:>7} {:>8}   p99 of each round",
        "server", "failed", "p50 ms", "p99 ms"
    );
    let mut rows: Vec<(&str, Vec<Load>)> = vec![
        ("minimal reference server (limit)", Vec::new()),
        ("atomic limit (partial, BLAKE3, rename)", Vec::new()),
        ("ftp-server", Vec::new()),
    ];
    let servers = [
        ("limit", &limits[0]),
        ("atomic limit", &limits[1]),
        ("ftp-server", ours),
    ];
    let mut generator = loadgen::Generator::default();
    for round in 0..s.rounds {
        for step in 0..3 {
            let which = (step + round) % 3;
            let (name, server) = servers[which];
            let load = generator.burst(name, server, s.burst, BURST_PUTS);
            rows[which].1.push(load);
        }
    }
    if let Some(seed) = seed {
        let load = generator.burst("seed Python server", seed, s.burst, BURST_PUTS);
        rows.push(("seed Python server", vec![load]));
    }
    let p99s: Vec<f64> = rows
        .iter()
        .map(|(name, loads)| print_row(name, loads))
        .collect();
    println!(
        "ftp-server's p99 against the limit's: {:.2}x; against the atomic limit's: {:.2}x",
        p99s[2] / p99s[0],
        p99s[2] / p99s[1]
    );
    generator.print_costs();
}

/// Prints a server's row (failures, median p50 and p99 over the rounds,
/// each round's p99) and returns its median p99.
fn print_row(name: &str, loads: &[Load]) -> f64 {
    let failed: usize = loads.iter().map(|l| l.failures).sum();
    let middle = |pct: f64| {
        let mut v: Vec<f64> = loads.iter().map(|l| l.pct(pct)).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let each: Vec<String> = loads
        .iter()
        .map(|l| format!("{:.0}", l.pct(99.0)))
        .collect();
    println!(
        "{:<40} {:>7} {:>7.1} {:>8.1}   {}",
        name,
        failed,
        middle(50.0),
        middle(99.0),
        each.join(" ")
    );
    middle(99.0)
}
