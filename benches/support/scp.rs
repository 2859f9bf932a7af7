//! scp, the tool people would otherwise use, on the same bytes: an sshd of
//! our own on a loopback port with throwaway keys, each cipher interleaved
//! with ftp-client's encrypted put. Needs `sshd` (Debian's
//! openssh-server); skipped, with a line saying so, without it.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{median, mib, run_client, Scratch, Server, Settings};

const SSHD: &str = "/usr/sbin/sshd";
const CIPHERS: [&str; 2] = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"];

pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ssh-keygen failed");
}

pub(crate) fn start_sshd(dir: &Path) -> Option<Sshd> {
    fs::create_dir_all(dir).ok()?;
    keygen(&dir.join("host_key"));
    keygen(&dir.join("user_key"));
    fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).ok()?;
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
         AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\n\
         StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         Subsystem sftp internal-sftp\n",
        d = dir.display()
    );
    fs::write(dir.join("sshd_config"), config).ok()?;
    let _ = fs::create_dir_all("/run/sshd");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let sshd = Sshd { child, port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            return Some(sshd);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn scp(sshd: &Sshd, dir: &Path, cipher: &str, source: &Path, dst: &Path) -> Duration {
    let t = Instant::now();
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let out = Command::new("scp")
        .args(["-q", "-B", "-c", cipher, "-P", &sshd.port.to_string(), "-i"])
        .arg(dir.join("user_key"))
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg(source)
        .arg(format!("{user}@127.0.0.1:{}", dst.display()))
        .output()
        .expect("run scp");
    assert!(
        out.status.success(),
        "scp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Both scp ciphers and ftp-client's put, interleaved.
pub fn section(s: &Settings, scratch: &Scratch, source: &Path, ours: &Server) {
    if !Path::new(SSHD).exists() {
        println!("\n(sshd missing: scp comparison skipped; apt-get install openssh-server)");
        return;
    }
    let dir = scratch.dir.join("ssh");
    let Some(sshd) = start_sshd(&dir) else {
        println!("\n(sshd did not start: scp comparison skipped)");
        return;
    };
    let dst = scratch.dir.join("scp.bin");
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); CIPHERS.len() + 1];
    for round in 0..s.rounds {
        for step in 0..=CIPHERS.len() {
            let which = (step + round) % (CIPHERS.len() + 1);
            let d = match CIPHERS.get(which) {
                Some(cipher) => scp(&sshd, &dir, cipher, source, &dst),
                None => {
                    ours.forget_upload(source);
                    run_client(ours.addr, &["put", source.to_str().unwrap()], &scratch.dir)
                }
            };
            runs[which].push(d);
            let _ = fs::remove_file(&dst);
        }
    }
    let rate = |d: Duration| s.size as f64 / d.as_secs_f64() / 1e6;
    let ours_rate = rate(median(&runs[CIPHERS.len()]));
    println!(
        "\n## against scp, {} (median of {} interleaved rounds)",
        mib(s.size),
        s.rounds
    );
    println!("{:<44} {:>10} {:>12}", "path", "MB/s", "ours vs it");
    for (i, cipher) in CIPHERS.iter().enumerate() {
        let r = rate(median(&runs[i]));
        println!(
            "{:<44} {r:>10.0} {:>11.2}x",
            format!("scp -c {cipher}"),
            ours_rate / r
        );
    }
    println!(
        "{:<44} {ours_rate:>10.0}",
        "put, ftp-client process over TLS"
    );
}
