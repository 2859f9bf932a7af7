//! Figures and how they are printed: medians, rates, latencies, memory.

use std::fs;
use std::time::Duration;

/// Rows of MB/s for `size` bytes, each against the first row's median,
/// with every round's figure.
pub fn print_rates(size: u64, rows: &[(&str, &[Duration])]) {
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

pub struct Load {
    pub ops: usize,
    pub failures: usize,
    pub secs: f64,
    pub latencies: Vec<Duration>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

pub fn mib(n: u64) -> String {
    format!("{:.0} MiB", n as f64 / (1 << 20) as f64)
}

/// Resident memory from smaps_rollup, which is exact (VmRSS in `status`
/// lags behind by per-thread batching).
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Rss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}
