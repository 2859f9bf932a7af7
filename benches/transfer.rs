//! End-to-end benchmark: ftp-server and ftp-client against a raw TCP copy of
//! the same bytes and against the original Python server, interleaved in
//! one run, reporting medians and ratios.
//!
//! `cargo bench --bench transfer`            full run (1 GiB, 10,000 idle connections)
//! `cargo bench --bench transfer -- --quick` tiny sizes, for CI
//!
//! Environment: FTP_BENCH_SIZE (bytes for bulk), FTP_BENCH_ROUNDS,
//! FTP_BENCH_FILES (files in the folder benchmark),
//! FTP_BENCH_IDLE (idle connections), FTP_BENCH_DISK_DIR (where the durable
//! comparison writes; default target/bench-disk).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ftp::client::trust::Trust;
use ftp::client::{Client, ClientOptions, NoProgress};
use ftp::config::secret::Secret;
use ftp::wire::auth::respond;
use ftp::wire::frame;

#[path = "support/folders.rs"]
mod folders;
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
#[path = "support/tls.rs"]
mod tls_bench;

const SECRET: &str = "benchmark secret";
const CHUNK: usize = 256 * 1024;

struct Settings {
    size: u64,
    rounds: usize,
    small_secs: f64,
    burst: usize,
    idle: usize,
    folder_files: usize,
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
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--raw-receive") {
        raw_receive(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--tar-receive") {
        folders::tar_receive(Path::new(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--limit-server") {
        limit::serve(Path::new(&args[i + 1]), &args[i + 2]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--tls-receive") {
        let sync = args.iter().any(|a| a == "--fsync");
        tls_bench::receive(Path::new(&args[i + 1]), Path::new(&args[i + 2]), sync);
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

    let only: Vec<String> = std::env::args()
        .skip_while(|a| a != "--only")
        .skip(1)
        .take(1)
        .flat_map(|a| a.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let wanted = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    if wanted("bulk") {
        bulk(&s, &scratch, &source, &ours, seed.as_ref());
    }
    if wanted("tls") {
        tls_bench::section(&s, &scratch, &source, &ours);
    }
    if wanted("scp") {
        scp_bench::section(&s, &scratch, &source, &ours);
    }
    if wanted("folders") {
        folders::section(&s, &scratch, &ours);
    }
    if wanted("s3") {
        s3_bench::section(&s, &scratch, &source);
    }
    if wanted("durable") {
        durable(&s, &scratch, &source);
    }
    if wanted("small") {
        small_puts(&s, &scratch, &ours, seed.as_ref(), &limit_server(&scratch));
    }
    if wanted("burst") {
        burst(&s, &ours, seed.as_ref(), &limit_server(&scratch));
    }
    if wanted("idle") {
        idle(&s, &ours, seed.as_ref());
    }
}

// ---------------------------------------------------------------- bulk

fn bulk(s: &Settings, scratch: &Scratch, source: &Path, ours: &Server, seed: Option<&Server>) {
    let mut raw = Vec::new();
    let mut put_lib = Vec::new();
    let mut put_cli = Vec::new();
    let mut get_cli = Vec::new();
    let mut seed_put = Vec::new();
    let raw_dst = scratch.dir.join("raw.bin");
    let get_dst = scratch.dir.join("got.bin");
    let rss_before = rss_kib(ours.pid());
    let (mut receiver, receiver_addr) = spawn_self(&["--raw-receive".as_ref(), raw_dst.as_ref()]);
    for round in 0..s.rounds {
        // Each round runs every path once; the order rotates so that no path
        // always runs first (right after the deletes of the previous round).
        for step in 0..5 {
            match (step + round) % 5 {
                0 => {
                    raw.push(raw_copy(receiver_addr, source));
                    let _ = fs::remove_file(&raw_dst);
                }
                1 => {
                    ours.forget_upload(source);
                    let t = Instant::now();
                    let mut c = client(ours.addr);
                    c.put(source, &mut NoProgress).expect("library put");
                    put_lib.push(t.elapsed());
                }
                2 => {
                    ours.forget_upload(source);
                    put_cli.push(run_client(
                        ours.addr,
                        &["put", source.to_str().unwrap()],
                        &scratch.dir,
                    ))
                }
                3 => {
                    get_cli.push(run_client(
                        ours.addr,
                        &["get", "source.bin", get_dst.to_str().unwrap()],
                        &scratch.dir,
                    ));
                    assert_eq!(fs::metadata(&get_dst).unwrap().len(), s.size);
                    let _ = fs::remove_file(&get_dst);
                }
                _ => {
                    if let Some(seed) = seed {
                        seed_put.push(seed_style_put(
                            seed,
                            source,
                            &seed.root.join("source.bin"),
                            s.size,
                        ));
                    }
                }
            }
        }
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    let rss_after = rss_kib(ours.pid());
    println!(
        "\n## bulk transfer of {} (median of {} interleaved rounds)",
        mib(s.size),
        s.rounds
    );
    println!("{:<44} {:>10} {:>8}", "path", "MB/s", "vs raw");
    let mut rows = vec![
        ("raw TCP copy, 256 KiB buffers (baseline)", &raw[..]),
        ("put, library client (BLAKE3 verified)", &put_lib),
        ("put, ftp-client process end to end", &put_cli),
        ("get, ftp-client process end to end", &get_cli),
    ];
    if !seed_put.is_empty() {
        rows.push(("put to the seed Python server", &seed_put));
    }
    print_rates(s.size, &rows);
    println!(
        "server RSS before/after the bulk rounds: {} / {} KiB (streams, never buffers a file)",
        rss_before, rss_after
    );
}

/// The baseline: copy the file over a fresh loopback connection into a
/// file, 256 KiB at a time, no protocol, no digest, and wait for the
/// receiver to say it has written everything. The receiver is a
/// long-lived process of its own, like the server, so that both paths
/// cross the same boundaries and neither starts cold.
fn raw_copy(receiver: SocketAddr, source: &Path) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(receiver).unwrap();
    copy_chunks(&mut File::open(source).unwrap(), &mut s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut done = Vec::new();
    s.read_to_end(&mut done).unwrap();
    assert_eq!(done, b"k");
    t.elapsed()
}

/// The raw receiver's process: each connection's bytes into `dst`, then
/// one byte back once they are written.
fn raw_receive(dst: &Path) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    for conn in listener.incoming() {
        let mut s = conn.unwrap();
        copy_full_chunks(&mut s, &mut File::create(dst).unwrap());
        s.write_all(b"k").unwrap();
    }
}

/// Starts this bench binary again in one of its helper modes (`--raw-
/// receive` and the like) and reads the address it listens on.
fn spawn_self(args: &[&std::ffi::OsStr]) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a helper process of the bench");
    let addr = first_line_addr(&mut child);
    (child, addr)
}

/// Rows of MB/s for `size` bytes, each against the first row's median,
/// with every round's figure.
fn print_rates(size: u64, rows: &[(&str, &[Duration])]) {
    let rate = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    let base = median(rows[0].1);
    for (name, v) in rows {
        let m = median(v);
        let all: Vec<String> = v.iter().map(|d| format!("{:.0}", rate(*d))).collect();
        println!(
            "{:<44} {:>10.0} {:>7.2}x   rounds: {}",
            name,
            rate(m),
            base.as_secs_f64() / m.as_secs_f64(),
            all.join(" ")
        );
    }
}

/// Copies until the end of `from`, 256 KiB at a time: the baseline loop.
fn copy_chunks(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).unwrap();
    }
}

/// Like [`copy_chunks`], but each write waits for a whole chunk (or the
/// end): what ftp-server does with a body, so that the raw baseline does
/// not pay for a page-cache write per partial socket read.
fn copy_full_chunks(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match frame::read_full(from, &mut buf).unwrap() {
            0 => break,
            filled => to.write_all(&buf[..filled]).unwrap(),
        }
    }
}

/// A put the way the seed's client makes it (no reply), timed until the
/// server has written every byte and closed.
fn seed_style_put(server: &Server, source: &Path, landed: &Path, size: u64) -> Duration {
    let _ = fs::remove_file(landed);
    let t = Instant::now();
    let mut s = login(server.addr).unwrap();
    let header = serde_json::json!({"cmd":"put","filename":"source.bin","filesize":size});
    s.write_all(&frame::encode_json(&header).unwrap()).unwrap();
    copy_chunks(&mut File::open(source).unwrap(), &mut s);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    let elapsed = t.elapsed();
    assert_eq!(fs::metadata(landed).map(|m| m.len()).unwrap_or(0), size);
    elapsed
}

// ------------------------------------------------------------- durable

fn durable(s: &Settings, scratch: &Scratch, source: &Path) {
    let dir = std::env::var_os("FTP_BENCH_DISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-disk"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let durable = Server::ours(&dir.join("root"), &["--durable"]);
    // The same put without --durable, to the same disk: what durability
    // itself costs, apart from the network and the encryption.
    let plain = Server::ours(&dir.join("plain-root"), &[]);
    // A raw rustls copy that syncs its file: what an encrypted transfer
    // to this disk can do at most, without our protocol.
    let raw_tls = tls_bench::RawTls::start(scratch, &dir.join("tls.bin"), true);
    let (mut dd, mut synced, mut unsynced, mut tls_synced) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let put = |server: &Server| {
        let took = run_client(server.addr, &["put", source.to_str().unwrap()], &dir);
        server.forget_upload(source);
        took
    };
    for _ in 0..s.rounds {
        let t = Instant::now();
        let ok = Command::new("dd")
            .arg(format!("if={}", source.display()))
            .arg(format!("of={}", dir.join("dd.bin").display()))
            .args(["bs=256K", "conv=fsync", "status=none"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("\n(dd not available: durable comparison skipped)");
            return;
        }
        dd.push(t.elapsed());
        let _ = fs::remove_file(dir.join("dd.bin"));
        synced.push(put(&durable));
        unsynced.push(put(&plain));
        tls_synced.push(raw_tls.copy(source).0);
    }
    println!(
        "\n## durable put of {} to disk ({}; median of {} rounds)",
        mib(s.size),
        dir.display(),
        s.rounds
    );
    println!("{:<44} {:>10} {:>8}", "path", "MB/s", "vs dd");
    print_rates(
        s.size,
        &[
            ("dd bs=256K conv=fsync (baseline)", &dd),
            ("ftp-client put, server --durable", &synced),
            ("ftp-client put, server without --durable", &unsynced),
            ("raw rustls copy + fsync", &tls_synced),
        ],
    );
    let ratio = median(&tls_synced).as_secs_f64() / median(&synced).as_secs_f64();
    println!("durable put against the raw rustls copy + fsync: {ratio:.2}x");
    drop((durable, plain, raw_tls));
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------- small puts

/// The minimal reference server, started afresh for a section.
fn limit_server(scratch: &Scratch) -> Server {
    let root = scratch.dir.join("limit-root");
    let (child, addr) = limit::start(&root, SECRET);
    Server { child, addr, root }
}

fn small_puts(
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
    let mut generator = loadgen::Generator::default();
    for clients in [1usize, 16] {
        let mut cells = Vec::new();
        let mut fresh =
            |name: &str, srv: &Server| generator.timed(name, srv, clients, s.small_secs);
        if let Some(seed) = seed {
            cells.push((
                format!("seed Python server, new connection each, {clients} clients"),
                fresh("seed Python server", seed),
            ));
        }
        let (mut limits, mut ourses) = (Vec::new(), Vec::new());
        for round in 0..s.rounds {
            if round % 2 == 0 {
                limits.push(fresh("limit", limit));
                ourses.push(fresh("ftp-server", ours));
            } else {
                ourses.push(fresh("ftp-server", ours));
                limits.push(fresh("limit", limit));
            }
        }
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
        let addr = ours.addr;
        let dir = small_dir.clone();
        // Each client uploads its own file, over its own connection.
        let kept = run_load_stateful(
            clients,
            s.small_secs,
            move |i| (client(addr), dir.join(format!("small{i}.bin"))),
            move |(c, file): &mut (Client, PathBuf)| c.put(file, &mut NoProgress).is_ok(),
        );
        cells.push((
            format!("ftp-server, ftp client library, one connection, {clients} clients"),
            kept,
        ));
        let base = cells[0].1.rate();
        for (name, r) in &cells {
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
        println!(
            "ftp-server against the limit, new connection each: {vs_limit:.2}x the rate (each \
             round: {})",
            each.join(" ")
        );
    }
    generator.print_costs();
}

/// The run whose rate is the median.
fn median_by_rate(mut runs: Vec<Load>) -> Load {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    runs.swap_remove(runs.len() / 2)
}

struct Load {
    ops: usize,
    failures: usize,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
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

// --------------------------------------------------------------- burst

/// Puts each client of the burst makes, each on a connection of its own.
const BURST_PUTS: usize = 3;

/// The burst against the limit server, interleaved over the rounds (a
/// single burst's p99 is its 30th-worst put, and this machine is noisy),
/// then once against the seed's server.
fn burst(s: &Settings, ours: &Server, seed: Option<&Server>, limit: &Server) {
    println!(
        "\n## {} clients at once, {} puts of 1 KiB each, a connection per put (medians of {} \
         interleaved rounds)",
        s.burst, BURST_PUTS, s.rounds
    );
    println!(
        "{:<36} {:>7} {:>7} {:>8}   p99 of each round",
        "server", "failed", "p50 ms", "p99 ms"
    );
    let mut rows: Vec<(&str, Vec<Load>)> = vec![
        ("minimal reference server (limit)", Vec::new()),
        ("ftp-server", Vec::new()),
    ];
    let mut generator = loadgen::Generator::default();
    for round in 0..s.rounds {
        for step in 0..2 {
            let which = (step + round) % 2;
            let (name, server) = [("limit", limit), ("ftp-server", ours)][which];
            let load = generator.burst(name, server, s.burst, BURST_PUTS);
            rows[which].1.push(load);
        }
    }
    if let Some(seed) = seed {
        let load = generator.burst("seed Python server", seed, s.burst, BURST_PUTS);
        rows.push(("seed Python server", vec![load]));
    }
    let mut p99s = Vec::new();
    for (name, loads) in &rows {
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
            "{:<36} {:>7} {:>7.1} {:>8.1}   {}",
            name,
            failed,
            middle(50.0),
            middle(99.0),
            each.join(" ")
        );
        p99s.push(middle(99.0));
    }
    println!(
        "ftp-server's p99 against the limit's: {:.2}x",
        p99s[1] / p99s[0]
    );
    generator.print_costs();
}

// ---------------------------------------------------------------- idle

fn idle(s: &Settings, ours: &Server, seed: Option<&Server>) {
    println!("\n## idle authenticated connections held");
    println!(
        "{:<36} {:>7} {:>11} {:>11} {:>10} {:>8} {:>9}",
        "server", "conns", "RSS before", "RSS after", "per conn", "threads", "idle CPU"
    );
    let tls = s.idle.min(if s.rounds <= 1 { 100 } else { 1000 });
    let mut rows: Vec<(&str, &Server, usize, bool)> = vec![
        ("ftp-server, plaintext logins", ours, s.idle, false),
        ("ftp-server, TLS logins", ours, tls, true),
    ];
    if let Some(seed) = seed {
        rows.push(("seed Python server", seed, s.idle.min(1000), false));
    }
    for (name, server, n, encrypted) in rows {
        let before = rss_kib(server.pid());
        let mut plain = Vec::with_capacity(n);
        let mut clients = Vec::new();
        for _ in 0..n {
            if encrypted {
                let mut c = client(server.addr);
                c.echo("x").expect("echo");
                clients.push(c);
            } else {
                match login(server.addr) {
                    Some(c) => plain.push(c),
                    None => break,
                }
            }
        }
        // Let every connection settle: finished workers leave after 5 s.
        thread::sleep(Duration::from_millis(6000));
        let after = rss_kib(server.pid());
        let held = plain.len() + clients.len();
        let (threads, cpu) = idle_cost(server.pid(), Duration::from_secs(3));
        println!(
            "{:<36} {:>7} {:>7} KiB {:>7} KiB {:>6.1} KiB {:>8} {:>8.2}%",
            name,
            held,
            before,
            after,
            (after.saturating_sub(before)) as f64 / held.max(1) as f64,
            threads,
            cpu
        );
        drop(plain);
        drop(clients);
        thread::sleep(Duration::from_millis(300));
    }
    println!("(each thread also holds a 16 KiB kernel stack that RSS does not show)");
}

/// The process's thread count, and the share of one core it used while
/// nothing happened for `span`.
fn idle_cost(pid: u32, span: Duration) -> (usize, f64) {
    let before = loadgen::cpu_of(pid);
    thread::sleep(span);
    let used = loadgen::cpu_of(pid).saturating_sub(before).as_secs_f64();
    let threads = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Threads:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    (threads, used / span.as_secs_f64() * 100.0)
}

// ------------------------------------------------------------- helpers

/// A server under test: its process, address and upload root.
struct Server {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
}

impl Server {
    fn ours(root: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "-q",
                "--idle-timeout",
                "600",
                "--max-connections",
                "20000",
                // Every client here comes from 127.0.0.1, where it stands
                // for clients on many hosts: the per-host limits would
                // otherwise queue or refuse the burst as one host's flood.
                "--max-per-address",
                "20000",
                "--max-logins-per-address",
                "20000",
            ])
            .arg("--root")
            .arg(root)
            .args(extra)
            .args(
                std::env::var("FTP_BENCH_SERVER_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .env("FTP_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ftp-server");
        let addr = first_line_addr(&mut child);
        Server {
            child,
            addr,
            root: root.to_path_buf(),
        }
    }

    fn seed(root: &Path) -> Option<Server> {
        fs::create_dir_all(root).ok()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(SECRET)
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = first_line_addr(&mut child);
        Some(Server {
            child,
            addr,
            root: root.to_path_buf(),
        })
    }

    /// Deletes what an earlier round stored under `source`'s name, outside
    /// the timed part, as the baselines delete their copies: replacing a
    /// 1 GiB file in tmpfs frees its pages inside the rename, which would
    /// time the previous round's clean-up.
    fn forget_upload(&self, source: &Path) {
        if let Some(name) = source.file_name() {
            let _ = fs::remove_file(self.root.join(name));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_line_addr(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .trim_start_matches("listening on ")
        .parse()
        .expect("listening line")
}

fn login(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    // A connection the server leaves unanswered this long counts as failed.
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut c = [0u8; 32];
    s.read_exact(&mut c).ok()?;
    s.write_all(&respond(SECRET.as_bytes(), &c)).ok()?;
    Some(s)
}

fn client(addr: SocketAddr) -> Client {
    let mut options = ClientOptions::new(Secret::new(SECRET.as_bytes().to_vec()).unwrap());
    options.trust = Trust::from_config_dir();
    Client::connect(&addr.to_string(), options).expect("connect")
}

fn run_client(addr: SocketAddr, args: &[&str], cwd: &Path) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-client"))
        .arg("--server")
        .arg(addr.to_string())
        .arg("--quiet")
        .args(args)
        .current_dir(cwd)
        .env("FTP_SECRET", SECRET)
        .output()
        .expect("run ftp-client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn write_pattern(path: &Path, size: u64) {
    let mut f = File::create(path).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(CHUNK as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn mib(n: u64) -> String {
    format!("{:.0} MiB", n as f64 / (1 << 20) as f64)
}

/// Resident memory from smaps_rollup, which is exact (VmRSS in `status`
/// lags behind by per-thread batching).
fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Rss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Where bulk data lives: a tmpfs, so the disk does not limit the network
/// comparison.
struct Scratch {
    dir: PathBuf,
    kind: &'static str,
}

impl Scratch {
    fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let (base, kind) = if shm.is_dir() {
            (shm.to_path_buf(), "tmpfs (/dev/shm)")
        } else {
            (std::env::temp_dir(), "the temp dir (no /dev/shm)")
        };
        let dir = base.join(format!("ftp-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Scratch { dir, kind }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
