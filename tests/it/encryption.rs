//! The encrypted dialect seen from the outside: what an eavesdropper, a
//! tamperer and a relay that ends TLS with its own certificate get, and how
//! the client treats certificates it knows, does not know, or knew as
//! another.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::relay::{Meddle, Relay};
use crate::support::*;
use ftp::testing::inside::TcpTransport;
use ftp::testing::inside::{self as tls, TlsTransport};
use ftp::wire::binding::{BINDING_LEN, TLS_MARKER};
use ftp::{Fingerprint, Pin, PinVerifier, ServerIdentity};

/// A long random key, as the server generates them: the client sends its
/// proof to a server it meets for the first time without asking.
const STRONG: &str = "9c1f0e5a7b3d28c64e0f9a1b7c2d5e8f03a6b9c2d1e4f7a0b3c6d9e2f5a8b1c4";

#[test]
fn an_eavesdropper_sees_neither_names_nor_bytes() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let content = b"the launch code is 0000, do not tell anyone".repeat(100);
    sb.local_file("launch-plans.txt", &content);
    let relay = Relay::start(server.addr, Meddle::Nothing);
    let out = ClientRun::to(&sb, &relay.addr_string(), &["put", "launch-plans.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(sb.root().join("launch-plans.txt")).unwrap(),
        content
    );
    let out = ClientRun::to(&sb, &relay.addr_string(), &["ls"]).run();
    assert_stdout_has(&out, "launch-plans.txt");
    let capture = relay.capture();
    assert!(capture.len() > content.len(), "the relay saw the traffic");
    let text = String::from_utf8_lossy(&capture);
    assert!(!text.contains("launch"), "a name or the data leaked");
    assert!(!text.contains("\"cmd\""), "a header leaked");
}

#[test]
fn a_flipped_byte_fails_the_put_and_stores_nothing_corrupt() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(2 << 20, 5);
    sb.local_file("big.bin", &data);
    let relay = Relay::start(server.addr, Meddle::FlipAt(600_000));
    let out = ClientRun::to(&sb, &relay.addr_string(), &["put", "big.bin"]).run();
    assert!(!out.status.success(), "a tampered upload must fail");
    assert!(!sb.root().join("big.bin").exists());
    // What was kept is only what decrypted; the direct retry completes it.
    let out = ClientRun::new(&sb, &server, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("big.bin")).unwrap(), data);
}

#[test]
fn a_connection_cut_without_close_notify_never_commits() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let data = pattern(2 << 20, 6);
    sb.local_file("cut.bin", &data);
    let relay = Relay::start(server.addr, Meddle::CutAt(900_000));
    let out = ClientRun::to(&sb, &relay.addr_string(), &["put", "cut.bin"]).run();
    assert!(!out.status.success());
    server.wait_for_event(&[("cmd", "put"), ("path", "/cut.bin"), ("result", "aborted")]);
    assert!(!sb.root().join("cut.bin").exists());
    let out = ClientRun::new(&sb, &server, &["put", "cut.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    assert_eq!(fs::read(sb.root().join("cut.bin")).unwrap(), data);
}

/// Pins the real server's certificate (a server run by the sandbox's user)
/// for `addr`, a relay in front of it, as a client that met the server
/// there before would have.
fn pin_real_server_at(sb: &Sandbox, addr: &str) {
    let real = tls::fingerprint_of_file(&sb.home().join(".config/ftp/server-cert.pem")).unwrap();
    let known = sb.home().join(".config/ftp/known_servers");
    fs::write(known, format!("{addr} {real}\n")).unwrap();
}

#[test]
fn a_relay_that_cuts_tls_cannot_downgrade_a_pinned_server() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let content = b"pinned means encrypted, always. ".repeat(50);
    sb.local_file("pinned.txt", &content);
    for extra in [&[][..], &["--allow-unproven-server"]] {
        // Cut right after the TLS marker, on the first connection only, so
        // a plaintext retry would go through.
        let relay = Relay::start(server.addr, Meddle::CutFirstAt(TLS_MARKER.len()));
        pin_real_server_at(&sb, &relay.addr_string());
        let args = [extra, &["put", "pinned.txt"]].concat();
        let out = ClientRun::to(&sb, &relay.addr_string(), &args).run();
        assert!(!out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let error = err.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(
            error.contains("is pinned (") && error.contains("known_servers line 1"),
            "{err}"
        );
        assert!(!error.contains("--allow-unproven-server"), "{err}");
        let text = String::from_utf8_lossy(&relay.capture()).into_owned();
        assert!(!text.contains("pinned means"), "the file went in the clear");
    }
    assert!(!sb.root().join("pinned.txt").exists());
}

#[test]
fn a_withheld_challenge_does_not_turn_a_pinned_server_into_one_without_login() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let content = b"only over TLS. ".repeat(50);
    sb.local_file("late.txt", &content);
    let late = ftp::testing::inside::CHALLENGE_WAIT + Duration::from_millis(500);
    let relay = Relay::start_both(server.addr, Meddle::Nothing, Meddle::Hold(late));
    pin_real_server_at(&sb, &relay.addr_string());
    let args = ["--allow-unproven-server", "put", "late.txt"];
    let out = ClientRun::to(&sb, &relay.addr_string(), &args).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(sb.root().join("late.txt")).unwrap(), content);
    let text = String::from_utf8_lossy(&relay.capture()).into_owned();
    assert!(
        !text.contains("only over TLS"),
        "the file went in the clear"
    );
}

/// A relay that ends TLS on both sides with a certificate of its own, as
/// an attacker on the path would. Returns its address and, once done,
/// what the client sent it inside TLS.
fn tls_terminating_relay(upstream: SocketAddr, dir: &Path) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let identity = ServerIdentity::load_or_create(dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        client.write_all(&[3u8; 32]).unwrap();
        let mut marker = [0u8; 16];
        client.read_exact(&mut marker).unwrap();
        assert_eq!(marker, TLS_MARKER);
        let transport = TcpTransport::new(client, Duration::from_secs(10)).unwrap();
        let Ok(mut inner) = TlsTransport::accept(identity.config.clone(), transport) else {
            return Vec::new(); // the client refused the certificate
        };
        let mut tag = [0u8; BINDING_LEN];
        if inner.read_exact(&mut tag).is_err() {
            return Vec::new();
        }
        let mut seen = tag.to_vec();
        // Pass the client's proof on to the real server, over TLS of its own.
        let mut up = TcpStream::connect(upstream).unwrap();
        up.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut challenge = [0u8; 32];
        up.read_exact(&mut challenge).unwrap();
        up.write_all(&TLS_MARKER).unwrap();
        let verifier = std::sync::Arc::new(PinVerifier::new(Pin::FirstUse));
        let mut up = tls::connect(tls::client_config(verifier).unwrap(), up).unwrap();
        up.write_all(&tag).unwrap();
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        let _ = inner.write_all(&answer);
        let _ = inner.flush();
        // Anything more the client sends would be a command or a file.
        let mut rest = [0u8; 4096];
        while let Ok(n) = inner.read(&mut rest) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&rest[..n]);
        }
        seen
    });
    (addr, handle)
}

#[test]
fn a_pinned_client_refuses_a_relay_with_its_own_certificate_at_the_handshake() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    sb.local_file("x.txt", b"not for the relay");
    let (relay, seen) = tls_terminating_relay(server.addr, &sb.path().join("mitm"));
    // This client talked to the real server at this address before.
    let real = tls::fingerprint_of_file(&sb.home().join(".config/ftp/server-cert.pem")).unwrap();
    let known = sb.home().join(".config/ftp/known_servers");
    fs::write(&known, format!("{relay} {real}\n")).unwrap();
    let out = ClientRun::to(&sb, &relay.to_string(), &["put", "x.txt"]).run();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("presented certificate") && err.contains("known_servers line 1"),
        "{err}"
    );
    assert!(seen.join().unwrap().is_empty(), "the relay read nothing");
    assert!(!sb.root().join("x.txt").exists());
}

#[test]
fn a_first_contact_client_refuses_such_a_relay_at_the_channel_bound_proof() {
    let sb = Sandbox::new();
    let server = ServerProcess::start(&sb, &[], Some(STRONG));
    sb.local_file("x.txt", b"not for the relay");
    let (relay, seen) = tls_terminating_relay(server.addr, &sb.path().join("mitm"));
    // A client with nothing pinned, on another machine as far as it knows.
    let elsewhere = sb.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let out = ClientRun::to(&sb, &relay.to_string(), &["put", "x.txt"])
        .env("HOME", elsewhere.to_str().unwrap())
        .env("FTP_SECRET", STRONG)
        .run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "authentication failed");
    let seen = seen.join().unwrap();
    assert_eq!(
        seen.len(),
        BINDING_LEN,
        "only the useless proof: no command, no file"
    );
    assert!(!sb.root().join("x.txt").exists());
    assert!(
        !elsewhere.join(".config/ftp/known_servers").exists(),
        "a server that never proved itself is not pinned"
    );
}

#[test]
fn first_use_is_pinned_and_a_changed_certificate_is_refused_until_its_fingerprint_is_given() {
    let sb = Sandbox::new();
    let server_home = sb.path().join("server-home");
    let mut server = ServerProcess::start(
        &sb,
        &["--tls-dir", server_home.to_str().unwrap()],
        Some(STRONG),
    );
    let addr = server.addr_string();
    let client = || ClientRun::to(&sb, &addr, &["echo", "hi"]).env("FTP_SECRET", STRONG);
    let out = client().run();
    assert_eq!(stdout(&out), "HI\n", "{}", stderr(&out));
    assert_stderr_has(&out, "note: first contact with");
    let known = sb.home().join(".config/ftp/known_servers");
    let line = fs::read_to_string(&known).unwrap();
    assert!(line.starts_with(&format!("{addr} SHA256:")), "{line}");
    let out = client().run();
    assert_eq!(stdout(&out), "HI\n");
    assert!(
        !stderr(&out).contains("first contact"),
        "said once: {}",
        stderr(&out)
    );

    // The certificate is lost: the server makes a new pair and says so.
    server.kill();
    fs::remove_file(server_home.join("server-cert.pem")).unwrap();
    let server = ServerProcess::start(
        &sb,
        &[
            "--tls-dir",
            server_home.to_str().unwrap(),
            "--listen",
            &addr,
        ],
        Some(STRONG),
    );
    let out = client().run();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("delete line 1 of {}", known.display())),
        "{err}"
    );
    server.wait_for_said(&[("event", "warning")], "server-key.pem.old");
    assert!(server_home.join("server-key.pem.old").exists());

    let new = tls::fingerprint_of_file(&server_home.join("server-cert.pem")).unwrap();
    assert!(
        err.contains(&format!("run again with --fingerprint {new}")),
        "{err}"
    );
    repin_with_checked_fingerprint(&sb, &addr, &new.to_string());
}

/// The fingerprint of the certificate at `addr`, checked out of band, is
/// given once: it replaces the pin, and later runs need no flag.
fn repin_with_checked_fingerprint(sb: &Sandbox, addr: &str, new: &str) {
    let client = |extra: &[&str]| {
        let args: Vec<&str> = extra.iter().copied().chain(["echo", "hi"]).collect();
        ClientRun::to(sb, addr, &args)
            .env("FTP_SECRET", STRONG)
            .run()
    };
    let out = client(&["--fingerprint", new]);
    assert_eq!(stdout(&out), "HI\n", "{}", stderr(&out));
    assert_stderr_has(&out, "replaced its pinned certificate");
    let known = sb.home().join(".config/ftp/known_servers");
    assert_eq!(
        fs::read_to_string(&known).unwrap(),
        format!("{addr} {new}\n")
    );
    let out = client(&[]);
    assert_eq!(stdout(&out), "HI\n", "{}", stderr(&out));
}

#[test]
fn a_guessable_secret_goes_to_an_unknown_server_only_with_its_fingerprint() {
    let sb = Sandbox::new();
    let tls_dir = sb.path().join("tls");
    let server = sb.start_server(&["--tls-dir", tls_dir.to_str().unwrap()]);
    let out = ClientRun::new(&sb, &server, &["echo", "hi"]).run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "pass --fingerprint SHA256:");
    let start = server.wait_for_said(&[("event", "start")], "--fingerprint SHA256:");
    let fp = message(&start)
        .split("--fingerprint ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    Fingerprint::parse(fp).unwrap();
    let out = ClientRun::new(&sb, &server, &["--fingerprint", fp, "echo", "hi"]).run();
    assert_eq!(stdout(&out), "HI\n", "{}", stderr(&out));
    // The fingerprint given once is remembered: later runs need no flag.
    let out = ClientRun::new(&sb, &server, &["echo", "again"]).run();
    assert_eq!(stdout(&out), "AGAIN\n", "{}", stderr(&out));
    let wrong = Fingerprint::of(b"another certificate").to_string();
    let out = ClientRun::new(&sb, &server, &["--fingerprint", &wrong, "echo", "hi"]).run();
    assert_stderr_has(&out, "as given with --fingerprint");
}

#[test]
fn a_long_patterned_passphrase_is_not_taken_for_a_random_key() {
    let long = "Summer2024Summer2024Summer2024Summer2024Summer";
    let sb = Sandbox::new();
    let server = ServerProcess::start(&sb, &[], Some(long));
    // A client on another machine, meeting this server for the first time,
    // with no terminal to ask at.
    let elsewhere = sb.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let out = ClientRun::new(&sb, &server, &["echo", "hi"])
        .env("HOME", elsewhere.to_str().unwrap())
        .env("FTP_SECRET", long)
        .run();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_stderr_has(&out, "not a long random key");
    assert_stderr_has(&out, "pass --fingerprint SHA256:");
    assert!(
        server
            .events_with(&[("event", "login"), ("result", "ok")])
            .is_empty(),
        "the proof was sent"
    );
}

#[test]
fn a_wrong_secret_over_tls_gets_the_usual_message() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let out = ClientRun::new(&sb, &server, &["echo", "hi"])
        .env("FTP_SECRET", "not the secret")
        .run();
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("error: authentication failed"),
        "{}",
        stderr(&out)
    );
    let failed = [("event", "login"), ("result", "failed")];
    server.wait_for_said(&failed, "wrong proof over TLS");
}

#[test]
fn require_tls_turns_away_the_seed_client_and_serves_ftp_client() {
    if !require("python3, to run the seed client", has_python()) {
        return;
    }
    let sb = Sandbox::new();
    let server = sb.start_server(&["--require-tls"]);
    let file = sb.local_file("plain.txt", b"in the clear");
    let _ = seed_client(&server, SECRET, &[&file]);
    let refused = [("event", "login"), ("result", "refused")];
    server.wait_for_said(&refused, "plaintext logins are off");
    assert!(!sb.root().join("plain.txt").exists());
    let out = ClientRun::new(&sb, &server, &["put", "plain.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read(sb.root().join("plain.txt")).unwrap(),
        b"in the clear"
    );
}
