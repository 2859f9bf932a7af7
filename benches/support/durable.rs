//! Durable put to a real disk against `dd conv=fsync`, the same put without
//! `--durable`, and a raw rustls copy that syncs its file; then many small
//! puts pipelined, with and without `--durable` (`groups`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::groups::Groups;
use crate::limit::Landing;
use crate::tls_bench;
use crate::{limit_server_at, median, mib, print_rates, run_client, Scratch, Server, Settings};

pub fn section(s: &Settings, scratch: &Scratch, source: &Path) {
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
        let Some(took) = dd_synced(source, &dir.join("dd.bin")) else {
            println!("\n(dd not available: durable comparison skipped)");
            return;
        };
        dd.push(took);
        synced.push(put(&durable));
        unsynced.push(put(&plain));
        tls_synced.push(raw_tls.copy(source).0);
    }
    println!(
        "\n## durable put of {} to disk ({}; median of {} rounds)",
        mib(s.size),
        shown(&dir),
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
    drop(raw_tls);
    Groups {
        files: Groups::files(&scratch.dir.join("groups"), s.group_files),
        durable: &durable,
        plain: &plain,
        limit_durable: &limit_server_at(&dir.join("limit-durable"), Landing::Durable),
        limit_atomic: &limit_server_at(&dir.join("limit-atomic"), Landing::Atomic),
    }
    .section(s, &shown(&dir));
    drop((durable, plain));
    let _ = fs::remove_dir_all(&dir);
}

/// How long `dd` takes to copy `source` to `target` and flush it; `None`
/// when dd is missing or fails. The copy is removed.
fn dd_synced(source: &Path, target: &Path) -> Option<Duration> {
    let t = Instant::now();
    let ok = Command::new("dd")
        .arg(format!("if={}", source.display()))
        .arg(format!("of={}", target.display()))
        .args(["bs=256K", "conv=fsync", "status=none"])
        .status()
        .is_ok_and(|s| s.success());
    let took = t.elapsed();
    let _ = fs::remove_file(target);
    ok.then_some(took)
}

/// How the report names `dir`: relative to the project when it is inside
/// (`target/bench-disk`), so that figures quoted from it do not carry one
/// machine's folders; otherwise as `FTP_BENCH_DISK_DIR` gave it.
fn shown(dir: &Path) -> String {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.strip_prefix(project)
        .unwrap_or(dir)
        .display()
        .to_string()
}
