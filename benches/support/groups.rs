//! Durable groups: many small puts pipelined on one connection, with
//! `--durable` and without, to a real disk. What flushing costs per file
//! when a run of puts arrives at once; beside it, the atomic limit server
//! doing the same with a flush per file and without any.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use ftp::wire::frame::{self, MAX_HEADER_LEN};
use ftp::{BatchOptions, BatchProgress, Step, Upload};

use crate::{client, login, median, write_pattern, Server, Settings};

/// Bytes in each file of a group.
const FILE: u64 = 4096;

/// Nothing to show: the bench times the batch as a whole.
struct Quiet;

impl BatchProgress for Quiet {}

/// The files of a group, and the servers that receive them.
pub struct Groups<'a> {
    pub files: Vec<PathBuf>,
    pub durable: &'a Server,
    pub plain: &'a Server,
    pub limit_durable: &'a Server,
    pub limit_atomic: &'a Server,
}

impl Groups<'_> {
    /// Writes `count` files of 4 KiB into `dir` (the scratch folder; only
    /// the servers' roots are on the disk).
    pub fn files(dir: &Path, count: usize) -> Vec<PathBuf> {
        fs::create_dir_all(dir).unwrap();
        (0..count)
            .map(|i| {
                let path = dir.join(format!("g{i:05}.bin"));
                write_pattern(&path, FILE);
                path
            })
            .collect()
    }

    /// Times every path once a round, the order rotating, and prints the
    /// medians and the ratios the issue sets its target on.
    pub fn section(&self, s: &Settings, shown: &str) {
        let mut took: [Vec<Duration>; 4] = Default::default();
        for round in 0..s.rounds {
            for step in 0..4 {
                let which = (step + round) % 4;
                took[which].push(match which {
                    0 => self.batch(self.durable),
                    1 => self.batch(self.plain),
                    2 => self.pipelined(self.limit_durable),
                    _ => self.pipelined(self.limit_atomic),
                });
            }
        }
        println!(
            "\n## {} pipelined puts of 4 KiB on one connection, to disk ({shown}; median of {} \
             interleaved rounds)",
            self.files.len(),
            s.rounds
        );
        println!("{:<52} {:>9} {:>9}", "path", "seconds", "files/s");
        let rows = [
            "ftp client library batch, server --durable",
            "ftp client library batch, server without --durable",
            "atomic limit, a flush per file (pipelined seed puts)",
            "atomic limit, no flush (pipelined seed puts)",
        ];
        let medians = took.each_ref().map(|t| median(t).as_secs_f64());
        for ((name, m), t) in rows.iter().zip(medians).zip(&took) {
            let each: Vec<String> = t
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            let rate = self.files.len() as f64 / m;
            println!(
                "{name:<52} {m:>9.2} {rate:>9.0}   rounds: {}",
                each.join(" ")
            );
        }
        println!(
            "durable / without, ftp-server: {:.2}x; the atomic limit flushing each file: {:.2}x",
            medians[0] / medians[1],
            medians[2] / medians[3]
        );
    }

    /// One batch of uploads through the client library, timed from the
    /// connect; the previous round's files are deleted first, untimed.
    fn batch(&self, server: &Server) -> Duration {
        self.forget(server);
        let steps = self.files.iter().map(|local| {
            Step::Upload(Upload {
                local: local.clone(),
                remote: name_of(local).to_string(),
                size: FILE,
            })
        });
        let t = Instant::now();
        let mut c = client(server.addr);
        let report = c.run_batch(steps.collect(), BatchOptions::default(), &mut Quiet);
        let took = t.elapsed();
        assert!(
            report.failures.is_empty() && report.stopped.is_none(),
            "a batch put failed: {:?} {:?}",
            report.failures,
            report.stopped
        );
        took
    }

    /// The same files as seed puts to the limit server, written by one
    /// thread while this one reads the replies, timed from the login.
    fn pipelined(&self, server: &Server) -> Duration {
        self.forget(server);
        let body = vec![7u8; FILE as usize];
        let t = Instant::now();
        let conn = login(server.addr).expect("log in to the limit server");
        let mut out = BufWriter::new(conn.try_clone().unwrap());
        let names: Vec<String> = self.files.iter().map(|f| name_of(f).to_string()).collect();
        let count = names.len();
        let writer = thread::spawn(move || {
            for name in names {
                let h = serde_json::json!({"cmd": "put", "filename": name, "filesize": FILE});
                out.write_all(&frame::encode_json(&h).unwrap()).unwrap();
                out.write_all(&body).unwrap();
            }
            out.flush().unwrap();
        });
        let mut conn = conn;
        for _ in 0..count {
            let reply = frame::read(&mut conn, MAX_HEADER_LEN).unwrap();
            assert!(reply.is_some(), "the limit server closed mid-group");
        }
        let took = t.elapsed();
        writer.join().unwrap();
        took
    }

    /// Deletes what an earlier round stored, so that every round creates
    /// its files rather than replacing them.
    fn forget(&self, server: &Server) {
        for f in &self.files {
            let _ = fs::remove_file(server.root.join(name_of(f)));
        }
    }
}

fn name_of(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap()
}
