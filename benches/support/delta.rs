//! Delta transfers across a slow line: the change to a big file
//! (8 scattered 4 KiB overwrites, 1/256 of it inserted in the middle, the
//! last 1/2560 cut) sent through the latency proxy at 25 ms each way and
//! 100 Mbit/s, by a whole put, a delta put and `rsync -a --no-whole-file`
//! over ssh; then fetched the same three ways. Times, and the bytes the
//! proxy carried both ways, against rsync's own totals. Figures are
//! printed, never asserted.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ftp::testing::noise;

use crate::latency::{Latency, Line};
use crate::scp_bench::{start_sshd, Sshd};
use crate::{median, mib, run_client, Scratch, Server, Settings};

/// Half the round trip, and the line's rate (100 Mbit/s).
const LINE: Line = Line {
    delay: Duration::from_millis(25),
    rate: Some(12_500_000),
};

/// One way of moving the file: its times and the proxy's bytes.
#[derive(Default)]
struct Runs {
    times: Vec<Duration>,
    bytes: Vec<u64>,
    /// rsync's own "Total bytes sent" plus "received".
    rsync_totals: Vec<u64>,
}

/// The old file and its changed version, `size` bytes of noise.
fn versions(size: usize) -> (Vec<u8>, Vec<u8>) {
    let old = noise(size, 0x9e37_79b9_7f4a_7c15);
    let mut new = old.clone();
    for i in 0..8 {
        let at = (i * 31 + 7) * (size / 256);
        new[at..at + 4096].copy_from_slice(&noise(4096, i as u64 + 1));
    }
    new.splice(size / 2..size / 2, noise(size / 256, 99));
    new.truncate(new.len() - size / 2560);
    (old, new)
}

struct Bench<'a> {
    work: PathBuf,
    server: &'a Server,
    link: Latency,
    ssh: Option<(Sshd, Latency)>,
}

impl Bench<'_> {
    /// One round of every row: puts of `new` over `old`, then gets.
    fn round(&self, old: &[u8], new: &[u8], rows: &mut [(&str, Runs)]) {
        let remote = self.server.root.join("big.bin");
        let local = self.client_dir().join("big.bin");
        let puts = [
            &["--whole-file", "put", "big.bin"][..],
            &["put", "big.bin"][..],
        ];
        for (i, args) in puts.iter().enumerate() {
            fs::write(&remote, old).unwrap();
            fs::write(&local, new).unwrap();
            let (d, b) = self.ours(args);
            push(&mut rows[i].1, d, b, None);
        }
        let dst = self.work.join("rsync-dst/big.bin");
        fs::write(&dst, old).unwrap();
        let to = format!("{}@127.0.0.1:{}", user(), dst.display());
        if let Some((d, b, t)) = self.rsync(local.to_str().unwrap(), &to) {
            push(&mut rows[2].1, d, b, Some(t));
        }
        let gets = [
            &["--whole-file", "get", "-f", "big.bin"][..],
            &["get", "-f", "big.bin"][..],
        ];
        for (i, args) in gets.iter().enumerate() {
            fs::write(&remote, new).unwrap();
            fs::write(&local, old).unwrap();
            let (d, b) = self.ours(args);
            push(&mut rows[3 + i].1, d, b, None);
        }
        let src = self.work.join("rsync-src/big.bin");
        fs::write(&src, new).unwrap();
        let here = self.work.join("rsync-local/big.bin");
        fs::write(&here, old).unwrap();
        let from = format!("{}@127.0.0.1:{}", user(), src.display());
        if let Some((d, b, t)) = self.rsync(&from, here.to_str().unwrap()) {
            push(&mut rows[5].1, d, b, Some(t));
        }
    }

    fn client_dir(&self) -> PathBuf {
        self.work.join("client")
    }

    /// Times `args` of ftp-client through the link, with the bytes it
    /// carried, after `setup` put the files in place.
    fn ours(&self, args: &[&str]) -> (Duration, u64) {
        let before = self.link.bytes();
        let d = run_client(self.link.addr, args, &self.client_dir());
        (d, self.link.bytes() - before)
    }

    /// rsync of `from` to `to` (one of them `user@127.0.0.1:PATH`) over
    /// ssh through the link: its time, the link's bytes, rsync's totals.
    fn rsync(&self, from: &str, to: &str) -> Option<(Duration, u64, u64)> {
        let (sshd, link) = self.ssh.as_ref()?;
        let _ = sshd;
        let ssh = format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o LogLevel=ERROR",
            link.addr.port(),
            self.work.join("ssh/user_key").display()
        );
        let before = link.bytes();
        let t = Instant::now();
        let out = Command::new("rsync")
            .args(["-a", "--no-whole-file", "--stats", "-e", &ssh, from, to])
            .output()
            .expect("run rsync");
        let d = t.elapsed();
        assert!(
            out.status.success(),
            "rsync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let total = |label: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| {
                    v.trim()
                        .replace(',', "")
                        .split(' ')
                        .next()
                        .unwrap_or("0")
                        .parse()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let totals = total("Total bytes sent:") + total("Total bytes received:");
        Some((d, link.bytes() - before, totals))
    }
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

/// The section: puts, then gets, each way a round, medians.
pub fn section(s: &Settings, scratch: &Scratch) {
    let size = s.delta_size;
    let work = scratch.dir.join("delta");
    for dir in ["client", "root", "rsync-dst", "rsync-src", "rsync-local"] {
        fs::create_dir_all(work.join(dir)).unwrap();
    }
    let (old, new) = versions(size);
    let server = Server::ours(&work.join("root"), &[]);
    let ssh = match (Path::new("/usr/sbin/sshd").exists(), which("rsync")) {
        (true, true) => start_sshd(&work.join("ssh")).map(|sshd| {
            let link = Latency::line(SocketAddr::from(([127, 0, 0, 1], sshd.port)), LINE);
            (sshd, link)
        }),
        _ => None,
    };
    if ssh.is_none() {
        println!("\n(sshd or rsync missing: the rsync rows are left out)");
    }
    let bench = Bench {
        link: Latency::line(server.addr, LINE),
        server: &server,
        ssh,
        work: work.clone(),
    };
    let mut rows: Vec<(&str, Runs)> = [
        "put, whole",
        "put, delta",
        "rsync push",
        "get, whole",
        "get, delta",
        "rsync pull",
    ]
    .into_iter()
    .map(|name| (name, Runs::default()))
    .collect();
    for _ in 0..s.rounds {
        bench.round(&old, &new, &mut rows);
    }
    print(size as u64, s.rounds, &rows);
}

fn push(runs: &mut Runs, d: Duration, bytes: u64, totals: Option<u64>) {
    runs.times.push(d);
    runs.bytes.push(bytes);
    runs.rsync_totals.extend(totals);
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn print(size: u64, rounds: usize, rows: &[(&str, Runs)]) {
    println!(
        "\n## delta: {} changed in place, through 25 ms each way at 100 Mbit/s (median of {rounds})",
        mib(size)
    );
    println!(
        "{:<14} {:>9} {:>14} {:>16} {:>14}",
        "path", "seconds", "vs whole", "bytes on line", "rsync totals"
    );
    let mid = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort();
        v.get(v.len() / 2).copied()
    };
    for (i, (name, runs)) in rows.iter().enumerate() {
        if runs.times.is_empty() {
            continue;
        }
        let whole = median(&rows[i / 3 * 3].1.times).as_secs_f64();
        let secs = median(&runs.times).as_secs_f64();
        let totals = mid(&runs.rsync_totals).map_or(String::new(), |t| t.to_string());
        println!(
            "{name:<14} {secs:>9.2} {:>13.1}% {:>16} {totals:>14}",
            secs / whole * 100.0,
            mid(&runs.bytes).unwrap_or(0),
        );
    }
    for (ours, rsync) in [(1, 2), (4, 5)] {
        let (a, b) = (&rows[ours].1, &rows[rsync].1);
        if let (Some(x), Some(t), false) = (mid(&a.bytes), mid(&b.rsync_totals), b.times.is_empty())
        {
            println!(
                "{}: {:.2}x rsync's time, {:.2}x its byte totals, {:.2}x its bytes on the line",
                rows[ours].0,
                median(&a.times).as_secs_f64() / median(&b.times).as_secs_f64(),
                x as f64 / t.max(1) as f64,
                x as f64 / mid(&b.bytes).unwrap_or(1).max(1) as f64,
            );
        }
    }
}
