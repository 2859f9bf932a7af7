//! End-to-end benchmark: ftp-server and ftp-client against a raw TCP copy of
//! the same bytes and against the original Python server, interleaved in
//! one run, reporting medians and ratios.
//!
//! `cargo bench --bench transfer`            full run (1 GiB, 10,000 idle connections)
//! `cargo bench --bench transfer -- --quick` tiny sizes, for CI
//!
//! Environment: FTP_BENCH_SIZE (bytes for bulk), FTP_BENCH_ROUNDS,
//! FTP_BENCH_FILES (files in the folder benchmark), FTP_BENCH_DELTA_SIZE
//! (the changed file of the delta section: 256 MiB, 8 MiB quick),
//! FTP_BENCH_IDLE (idle connections), FTP_BENCH_DISK_DIR (where the durable
//! comparison and its pipelined groups write; default target/bench-disk).

use std::path::Path;

#[path = "support/bulk.rs"]
mod bulk;
#[path = "support/burst.rs"]
mod burst;
#[path = "support/delta.rs"]
mod delta;
#[path = "support/durable.rs"]
mod durable;
#[path = "support/figures.rs"]
mod figures;
#[path = "support/files.rs"]
mod files;
#[path = "support/folders.rs"]
mod folders;
#[path = "support/groups.rs"]
mod groups;
#[path = "support/idle.rs"]
mod idle;
// The tests' Garage; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/garage.rs"]
mod garage;
#[path = "../tests/support/latency.rs"]
mod latency;
#[path = "support/limit.rs"]
mod limit;
#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/s3.rs"]
mod s3_bench;
#[path = "support/scp.rs"]
mod scp_bench;
#[path = "support/servers.rs"]
mod servers;
#[path = "../tests/support/shared.rs"]
mod shared;
#[path = "support/small.rs"]
mod small;
#[path = "support/tls.rs"]
mod tls_bench;

// The helpers every section uses, under the crate's root.
use figures::{median, mib, print_rates, rss_kib, Load};
use files::{copy_chunks, copy_full_chunks, write_pattern, Scratch};
use servers::{
    client, limit_server, limit_server_at, login, raise_fd_limit, run_client, spawn_self, Server,
};

const SECRET: &str = "benchmark secret";

struct Settings {
    size: u64,
    rounds: usize,
    small_secs: f64,
    burst: usize,
    idle: usize,
    folder_files: usize,
    group_files: usize,
    /// The big file the delta section changes.
    delta_size: usize,
}

fn settings() -> Settings {
    let quick = std::env::args().any(|a| a == "--quick");
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    Settings {
        size: env("FTP_BENCH_SIZE").unwrap_or(if quick { 4 << 20 } else { 1 << 30 }),
        rounds: env("FTP_BENCH_ROUNDS").unwrap_or(if quick { 1 } else { 5 }) as usize,
        small_secs: if quick { 0.3 } else { 3.0 },
        burst: if quick { 50 } else { 1000 },
        idle: env("FTP_BENCH_IDLE").unwrap_or(if quick { 100 } else { 10_000 }) as usize,
        folder_files: env("FTP_BENCH_FILES").unwrap_or(if quick { 200 } else { 10_000 }) as usize,
        group_files: if quick { 50 } else { 1000 },
        delta_size: env("FTP_BENCH_DELTA_SIZE").unwrap_or(if quick { 8 << 20 } else { 256 << 20 })
            as usize,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if helper_mode(&args) {
        return;
    }
    let s = settings();
    raise_fd_limit();
    let scratch = Scratch::new();
    // Server and clients share a HOME inside the scratch folder: the server
    // keeps its TLS certificate there and local clients trust it from
    // there, as on one machine, without touching the real home.
    std::env::set_var("HOME", scratch.dir.join("home"));
    std::env::remove_var("XDG_CONFIG_HOME");
    println!(
        "# ftp benchmark: {} bulk, {} rounds, scratch on {}",
        mib(s.size),
        s.rounds,
        scratch.kind
    );
    let source = scratch.dir.join("source.bin");
    write_pattern(&source, s.size);

    let ours = Server::ours(&scratch.dir.join("ours-root"), &[]);
    let seed = Server::seed(&scratch.dir.join("seed-root"));
    if seed.is_none() {
        println!("(python3 missing: seed-server comparisons skipped)");
    }
    let only: Vec<String> = args
        .iter()
        .skip_while(|a| *a != "--only")
        .skip(1)
        .take(1)
        .flat_map(|a| a.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let wanted = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    run_sections(&s, &scratch, &source, &ours, seed.as_ref(), wanted);
}

/// Runs one of the bench's helper processes (a receiver, the limit server)
/// when `args` ask for one; false when they do not.
fn helper_mode(args: &[String]) -> bool {
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1..]);
    if let Some(rest) = at("--raw-receive") {
        bulk::raw_receive(Path::new(&rest[0]));
    } else if let Some(rest) = at("--tar-receive") {
        folders::tar_receive(Path::new(&rest[0]));
    } else if let Some(rest) = at("--limit-server") {
        limit::serve(
            Path::new(&rest[0]),
            &rest[1],
            limit::Landing::from_args(rest),
        );
    } else if let Some(rest) = at("--tls-receive") {
        let sync = args.iter().any(|a| a == "--fsync");
        let plain = args.iter().any(|a| a == "--plain");
        tls_bench::receive(Path::new(&rest[0]), Path::new(&rest[1]), sync, plain);
    } else {
        return false;
    }
    true
}

/// The sections `wanted` names, in their fixed order.
fn run_sections(
    s: &Settings,
    scratch: &Scratch,
    source: &Path,
    ours: &Server,
    seed: Option<&Server>,
    wanted: impl Fn(&str) -> bool,
) {
    if wanted("bulk") {
        bulk::section(s, scratch, source, ours, seed);
    }
    if wanted("tls") {
        tls_bench::section(s, scratch, source, ours);
    }
    if wanted("scp") {
        scp_bench::section(s, scratch, source, ours);
    }
    if wanted("folders") {
        folders::section(s, scratch, ours);
    }
    if wanted("delta") {
        delta::section(s, scratch);
    }
    if wanted("s3") {
        s3_bench::section(s, scratch, source);
    }
    if wanted("durable") {
        durable::section(s, scratch, source);
    }
    let limits = || {
        [
            limit_server(scratch, limit::Landing::Plain),
            limit_server(scratch, limit::Landing::Atomic),
        ]
    };
    if wanted("small") {
        small::section(s, scratch, ours, seed, &limits());
    }
    if wanted("burst") {
        burst::section(s, ours, seed, &limits());
    }
    if wanted("idle") {
        idle::section(s, ours, seed);
    }
}
