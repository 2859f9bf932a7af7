//! Idle authenticated connections held open: what each costs the server in
//! memory, threads and CPU.

use std::fs;
use std::thread;
use std::time::Duration;

use crate::loadgen;
use crate::{client, login, rss_kib, Server, Settings};

pub fn section(s: &Settings, ours: &Server, seed: Option<&Server>) {
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
