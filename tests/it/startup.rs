//! Starting up: servers that share one config folder and start at the
//! same moment.

use std::thread;

use crate::support::*;

/// The fingerprint a server's log announces for its certificate.
fn fingerprint(server: &ServerProcess) -> String {
    let start = server.wait_for_said(&[("event", "start")], "TLS certificate");
    let (_, after) = message(&start).rsplit_once('(').unwrap();
    after.trim_end_matches(')').to_string()
}

#[test]
fn two_servers_starting_together_in_one_config_folder_both_start_with_one_identity() {
    for _ in 0..3 {
        let sb = Sandbox::new();
        // No secret given: both create (or read) the default secret file
        // too, in the same folder as the identity.
        let started: Vec<_> = thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let root = sb.root().to_string_lossy().into_owned();
                    let sb = &sb;
                    s.spawn(move || ServerProcess::launch(sb, &[], &root, &[], None, &[]))
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let servers: Vec<ServerProcess> = started
            .into_iter()
            .map(|s| s.unwrap_or_else(|log| panic!("a server did not start: {log}")))
            .collect();
        assert_eq!(fingerprint(&servers[0]), fingerprint(&servers[1]));
        let dir = sb.home().join(".config/ftp");
        let secret = std::fs::read_to_string(dir.join("secret")).unwrap();
        assert_eq!(secret.len(), 64, "{secret:?}");
        for server in &servers {
            let out = ClientRun::new(&sb, server, &["ls"])
                .env_remove("FTP_SECRET")
                .run();
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_second_server_on_a_port_in_use_says_what_to_do() {
    let sb = Sandbox::new();
    let first = sb.start_server(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .arg("--listen")
        .arg(first.addr.to_string())
        .arg("--root")
        .arg(sb.root())
        .env("HOME", sb.home())
        .env("FTP_SECRET", SECRET)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "error: listening on {} (another program, perhaps another ftp-server, listens there: \
         stop it, or choose another port with --listen): Address already in use",
        first.addr
    );
    assert!(e.contains(&want), "{e}");
    // The first one still serves.
    assert!(ClientRun::new(&sb, &first, &["ls"]).run().status.success());
}
