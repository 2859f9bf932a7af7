//! One address against everyone else: floods of connections that stall
//! somewhere in the login, or in a request header, while a user on another
//! address logs in and lists. The stalls wait in the poller, so the user
//! is served as if nothing happened, and the server holds no thread and
//! little memory for them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::*;
use ftp::wire::binding::TLS_MARKER;
use ftp::wire::frame;
use serde_json::json;

/// Connections in each flood, all from 127.0.0.1.
const FLOOD: usize = 990;

/// How one flooding connection misbehaves.
#[derive(Clone, Copy)]
enum Stall {
    /// One byte of the sixteen-byte answer, then nothing.
    OneByteAnswer,
    /// The TLS marker, then no ClientHello.
    TlsMarker,
    /// Nothing at all (against an anonymous server, which listens first).
    Silence,
    /// Most of a 64 KiB header, never finished (anonymous server).
    LargeHeader,
}

fn open_flood(addr: SocketAddr, stall: Stall) -> Vec<TcpStream> {
    let mut header = (frame::MAX_HEADER_LEN as i32).to_le_bytes().to_vec();
    header.push(b'{');
    header.resize(60 * 1024, b' ');
    (0..FLOOD)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            let sent = match stall {
                Stall::OneByteAnswer => s.write_all(&[7]),
                Stall::TlsMarker => s.write_all(&TLS_MARKER),
                Stall::Silence => Ok(()),
                Stall::LargeHeader => s.write_all(&header),
            };
            sent.ok().map(|()| s)
        })
        .collect()
}

/// Ten logins and listings from another address while `stall` floods the
/// server from 127.0.0.1: median at most 100 ms, worst at most 1 s, and
/// no thread per flooding connection.
fn user_is_served_during(stall: Stall, extra: &[&str]) {
    let sb = Sandbox::new();
    let mut args = vec!["-q"];
    args.extend_from_slice(extra);
    let mut server = sb.start_server(&args);
    login_and_list(server.addr).expect("served before the flood");
    let threads_before = threads_of(server.child.id());
    let flood = open_flood(server.addr, stall);
    assert!(flood.len() >= FLOOD - 10, "opened {}", flood.len());
    served_quickly_from_elsewhere(server.addr);
    let threads = threads_of(server.child.id());
    assert!(
        threads <= threads_before + 10,
        "{threads} threads during a flood of {FLOOD} (from {threads_before})"
    );
    assert!(server.is_running());
    drop(flood);
}

#[test]
fn one_byte_answers_from_one_address_do_not_slow_anyone_else() {
    user_is_served_during(Stall::OneByteAnswer, &[]);
}

#[test]
fn tls_markers_without_a_handshake_do_not_slow_anyone_else() {
    user_is_served_during(Stall::TlsMarker, &[]);
}

#[test]
fn silent_peers_on_an_anonymous_server_do_not_slow_anyone_else() {
    user_is_served_during(Stall::Silence, &["--anonymous"]);
}

#[test]
fn stalled_large_headers_on_an_anonymous_server_do_not_slow_anyone_else() {
    user_is_served_during(Stall::LargeHeader, &["--anonymous"]);
}

#[test]
fn a_parked_connection_holds_no_more_than_its_header_so_far() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["-q", "--idle-timeout", "60"]);
    let before = status_kib(server.child.id(), "VmRSS");
    // Logged-in users' requests that claim 64 KiB and send 60 KiB of it.
    let mut header = (frame::MAX_HEADER_LEN as i32).to_le_bytes().to_vec();
    header.push(b'{');
    header.resize(60 * 1024, b' ');
    let n = 200;
    let held: Vec<Raw> = (0..n)
        .map(|_| {
            let mut raw = Raw::login(server.addr, SECRET.as_bytes());
            raw.send(&header);
            raw
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || {
        status_kib(server.child.id(), "VmRSS") >= before + (n as u64 * 50)
    }));
    std::thread::sleep(Duration::from_millis(300));
    let per_conn = (status_kib(server.child.id(), "VmRSS") - before) / n as u64;
    assert!(
        per_conn <= 100,
        "{per_conn} KiB per connection parked with 60 KiB of a header"
    );
    // The requests are still taken when they are finished.
    let mut last = held.into_iter().next().unwrap();
    last.send(&vec![b' '; frame::MAX_HEADER_LEN - (60 * 1024 - 4)]);
    assert_eq!(last.reply().unwrap()["code"], "bad_request");
}

#[test]
fn wrong_guesses_from_one_address_stop_at_the_cap_per_minute() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-failed-logins", "5"]);
    let started = Instant::now();
    let mut answered = 0;
    let mut locked_out = 0;
    for _ in 0..100 {
        let mut raw = Raw::connect(server.addr);
        let mut challenge = [0u8; 32];
        if raw.stream.read_exact(&mut challenge).is_err() {
            continue;
        }
        if raw.stream.write_all(&[0u8; 16]).is_err() {
            continue;
        }
        match raw.reply() {
            Some(r) if r.to_string().contains("too many failed logins") => locked_out += 1,
            Some(_) => answered += 1,
            None => {}
        }
        if started.elapsed() > Duration::from_secs(40) {
            break;
        }
    }
    let failed = server.events_with(&[("event", "login"), ("result", "failed")]);
    let wrong = failed
        .iter()
        .filter(|e| message(e).contains("wrong answer"))
        .count();
    assert!(wrong <= 5, "{wrong} wrong answers were checked");
    assert!(answered + locked_out > 0);
    // The address is refused with a reason, at once.
    let mut raw = Raw::connect(server.addr);
    let refusal = raw.reply().expect("a refusal in place of the challenge");
    assert_eq!(refusal["code"], "too_many_connections", "{refusal}");
    assert!(refusal.to_string().contains("too many failed logins"));
    // Another address logs in.
    login_and_list(server.addr).expect("another address is not locked out");
}

#[test]
fn refusals_of_one_address_are_logged_once_a_second() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-per-address", "5"]);
    let started = Instant::now();
    let held: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    let secs = started.elapsed().as_secs() + 1;
    let refused = [("event", "refused")];
    assert!(wait_until(Duration::from_secs(5), || !server
        .events_with(&refused)
        .is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    let refusals = server.events_with(&refused);
    let lines = refusals.len() as u64;
    assert!(
        lines <= secs + 1,
        "{lines} refusal lines for 295 refusals in {secs} s"
    );
    // Each line says how many like it were left out.
    assert!(
        refusals.iter().all(|e| e["skipped"].is_u64()),
        "{refusals:?}"
    );
    drop(held);
}

#[test]
fn require_tls_refuses_plaintext_anonymous_uploads_too() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--anonymous", "--require-tls"]);
    let mut raw = Raw::connect(server.addr);
    let mut put =
        frame::encode_json(&json!({"cmd":"put","filename":"a.txt","filesize":3})).unwrap();
    put.extend_from_slice(b"abc");
    raw.send(&put);
    let reply = raw.reply().expect("a refusal");
    assert_eq!(reply["code"], "auth_failed", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("encrypted"),
        "{reply}"
    );
    assert!(closed_within(&mut raw.stream, Duration::from_secs(5)));
    assert!(!sb.root().join("anonymous/a.txt").exists());
    let refused = [("event", "login"), ("result", "refused")];
    server.wait_for_said(
        &refused,
        "anonymous uploads are plaintext, and TLS is required",
    );
}
