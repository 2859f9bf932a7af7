//! Connection slots: no host can take them all, and the server never
//! promises more connections than its open-file limit can hold.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::*;

/// Connects from `from` and reads what comes first: a challenge (32 bytes)
/// or a busy frame.
fn first_bytes(from: &str, to: SocketAddr) -> (TcpStream, Vec<u8>) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = vec![0u8; 200];
    let n = stream.read(&mut got).unwrap();
    got.truncate(n);
    (stream, got)
}

fn is_busy(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains("too_many_connections")
}

#[test]
fn one_address_cannot_take_every_slot() {
    let sb = Sandbox::new();
    let server = sb.start_server(&["--max-per-address", "2"]);
    let held: Vec<_> = (0..2)
        .map(|_| first_bytes("127.0.0.1", server.addr))
        .collect();
    assert!(held.iter().all(|(_, b)| b.len() == 32 && !is_busy(b)));
    let (_, third) = first_bytes("127.0.0.1", server.addr);
    assert!(is_busy(&third), "{}", String::from_utf8_lossy(&third));
    assert!(String::from_utf8_lossy(&third).contains("your address"));
    let (_, elsewhere) = first_bytes("127.0.0.2", server.addr);
    assert_eq!(elsewhere.len(), 32, "another address still gets in");
    drop(held);
    assert!(wait_until(Duration::from_secs(5), || !is_busy(
        &first_bytes("127.0.0.1", server.addr).1
    )));
}

#[test]
fn max_connections_fits_the_open_file_limit() {
    if !require("prlimit (util-linux)", has_prlimit()) {
        return;
    }
    let sb = Sandbox::new();
    let server = ServerProcess::start_under(
        &sb,
        &["prlimit", "--nofile=90:90", "--"],
        &["--max-connections", "10000"],
        Some(SECRET),
    );
    // Half of (90 - 64 spare) for the sockets = 13: fewer than one
    // address's login turns, so that all are challenged at once.
    server.wait_for_said(
        &[("event", "warning")],
        "--max-connections lowered from 10000 to 13",
    );
    let held: Vec<_> = (0..13)
        .map(|_| first_bytes("127.0.0.1", server.addr))
        .collect();
    assert!(held.iter().all(|(_, b)| b.len() == 32), "13 fit");
    let (_, over) = first_bytes("127.0.0.1", server.addr);
    assert!(is_busy(&over), "newcomers get busy, not a silent close");
    drop(held);
    assert!(wait_until(Duration::from_secs(10), || ClientRun::new(
        &sb,
        &server,
        &["echo", "still here"]
    )
    .run()
    .status
    .success()));
}

#[test]
fn out_of_file_descriptors_newcomers_are_told_busy_not_left_waiting() {
    if !require("prlimit (util-linux)", has_prlimit()) {
        return;
    }
    let sb = Sandbox::new();
    // How many descriptors the server needs to start depends on what it
    // inherits, so try limits upwards from one too few to start: at the
    // first that starts, accepting a connection needs one more than it has.
    let mut told = Vec::new();
    for limit in 4..=24 {
        let wrapper = format!("--nofile={limit}:{limit}");
        let root = sb.root().to_string_lossy().into_owned();
        let Ok(mut server) = ServerProcess::launch(
            &sb,
            &["prlimit", &wrapper, "--"],
            &root,
            &["-q"],
            Some(SECRET),
            &[],
        ) else {
            continue;
        };
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = vec![0u8; 300];
        let n = stream.read(&mut got).unwrap_or(0);
        got.truncate(n);
        server.kill();
        assert!(
            got.len() == 32 || is_busy(&got),
            "with {limit} descriptors the client got {:?}",
            String::from_utf8_lossy(&got)
        );
        told.push(String::from_utf8_lossy(&got).into_owned());
        if got.len() == 32 {
            break;
        }
    }
    assert!(
        told.iter()
            .any(|t| t.contains("run out of file descriptors")),
        "no limit ran the server out of descriptors: {told:?}"
    );
}
