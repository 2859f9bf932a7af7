//! The seed's echo dialect: after a plaintext login, a client that sends
//! text instead of a frame gets every chunk back upper-cased, as the
//! seed's echo server does.
//!
//! The rule (docs/PROTOCOL.md): the first bytes after the login are text
//! when each is printable ASCII, tab, CR, LF, or a byte of a UTF-8
//! multibyte sequence. Four text bytes, or one to three followed by
//! [`Timings::sniff`](crate::server::timings::Timings::sniff) of silence, make an echo connection. Any other byte
//! makes a framed one: a frame length below 16 MiB always has a zero
//! fourth byte, so no frame, however slowly it trickles in, is taken for
//! text.

use std::io;
use std::os::fd::BorrowedFd;

use crate::net::now::{recv_now, send_all_now};

/// Most bytes echoed per chunk, as the seed's `recv(1024)`.
pub(crate) const ECHO_CHUNK: usize = 1024;

/// Most chunks echoed in one go before the connection waits its turn
/// again, so that a client that keeps talking cannot keep the poller.
const CHUNKS_PER_STEP: usize = 16;

/// Bytes to look at before deciding.
pub(crate) const SNIFF_LEN: usize = 4;

/// What the first bytes after a plaintext login are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstBytes {
    /// The start of a frame.
    Frames,
    /// Raw text to echo.
    Echo,
}

fn is_text(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e | 0x80..=0xf4)
}

/// Tells the dialect from the first bytes after a plaintext login, without
/// any I/O: `None` while one to three text bytes have come (then more
/// bytes, or [`Timings::sniff`](crate::server::timings::Timings::sniff) of silence, decide).
pub(crate) fn classify(head: &[u8]) -> Option<FirstBytes> {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if !head.iter().all(|&b| is_text(b)) {
        return Some(FirstBytes::Frames);
    }
    (head.len() == SNIFF_LEN).then_some(FirstBytes::Echo)
}

/// Whether an echo connection goes on after a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Echoed {
    /// It waits for more text.
    Open,
    /// The client closed.
    Closed,
}

/// Echoes `first` upper-cased (ASCII only, as Python's `bytes.upper`),
/// with whatever else has arrived joined to it (the seed's client reads
/// one reply per line), then every chunk that has come, without waiting;
/// adds the bytes echoed to `total`.
///
/// Fails when the connection breaks, or when the client leaves its echoes
/// unread until the socket's buffer is full.
pub(crate) fn echo_now(
    socket: BorrowedFd<'_>,
    first: Vec<u8>,
    total: &mut u64,
) -> io::Result<Echoed> {
    let mut chunk = first;
    let mut buf = [0u8; ECHO_CHUNK];
    for _ in 0..CHUNKS_PER_STEP {
        let room = ECHO_CHUNK.saturating_sub(chunk.len());
        if room > 0 {
            match recv_now(socket, &mut buf[..room]) {
                Ok(0) if chunk.is_empty() => return Ok(Echoed::Closed),
                Ok(n) => chunk.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if chunk.is_empty() {
            return Ok(Echoed::Open);
        }
        chunk.make_ascii_uppercase();
        send_all_now(socket, &chunk)?;
        *total += chunk.len() as u64;
        chunk.clear();
    }
    Ok(Echoed::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn text_is_echo_and_frames_are_frames() {
        assert_eq!(classify(b"hell"), Some(FirstBytes::Echo));
        assert_eq!(classify(b"hi"), None, "more bytes or silence decide");
        assert_eq!(classify(b""), None);
        assert_eq!(classify(&"你好".as_bytes()[..4]), Some(FirstBytes::Echo));
        // A header of 60 bytes: '<' then zeros.
        assert_eq!(classify(&[60, 0, 0, 0]), Some(FirstBytes::Frames));
        assert_eq!(classify(&[60]), None, "'<' alone is text so far");
        assert_eq!(classify(&[60, 0]), Some(FirstBytes::Frames));
        assert_eq!(
            classify(&[0xff, 0xff, 0xff, 0x7f]),
            Some(FirstBytes::Frames)
        );
    }

    #[test]
    fn fed_one_byte_at_a_time_the_answer_is_the_same() {
        for input in [&b"hello"[..], &[60, 0, 0, 0, b'{'][..]] {
            let mut decided = None;
            for n in 1..=input.len() {
                decided = decided.or(classify(&input[..n]));
            }
            assert_eq!(decided, classify(input));
        }
    }

    #[test]
    fn echo_upper_cases_ascii_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(b" and more").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut total = 0;
        let first = "héllo".as_bytes().to_vec();
        assert_eq!(
            echo_now(server.as_fd(), first, &mut total).unwrap(),
            Echoed::Open
        );
        let mut got = vec![0u8; "HéLLO AND MORE".len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, "HéLLO AND MORE".as_bytes());
        assert_eq!(total, got.len() as u64);
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let closed = echo_now(server.as_fd(), Vec::new(), &mut total).unwrap();
        assert_eq!(closed, Echoed::Closed);
    }
}
