//! The seed's echo dialect: after a plaintext login, a client that sends
//! text instead of a frame gets every chunk back upper-cased, as the
//! seed's echo server does.
//!
//! The rule (docs/PROTOCOL.md): the first bytes after the login are text
//! when each is printable ASCII, tab, CR, LF, or a byte of a UTF-8
//! multibyte sequence. Four text bytes, or one to three followed by
//! [`SNIFF_WAIT`] of silence, make an echo connection. Any other byte
//! makes a framed one: a frame length below 16 MiB always has a zero
//! fourth byte, so no frame, however slowly it trickles in, is taken for
//! text.

use std::io;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::net::Transport;

/// How long a client that sent one to three text bytes has to send more
/// before it counts as an echo client (the seed's client sends "hi" and
/// waits for the answer).
pub const SNIFF_WAIT: Duration = Duration::from_millis(250);

/// Most bytes echoed per chunk, as the seed's `recv(1024)`.
const ECHO_CHUNK: usize = 1024;

/// What the first bytes after a plaintext login say.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// A frame starts with these bytes.
    Frames(Vec<u8>),
    /// Raw text to echo, starting with these bytes.
    Echo(Vec<u8>),
    /// The client left without a byte.
    Closed,
}

fn is_text(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e | 0x80..=0xf4)
}

/// Reads the first bytes of a plaintext session and tells the dialect.
/// The first byte may take the idle timeout; later ones [`SNIFF_WAIT`].
///
/// Fails when the connection breaks or stays silent past the idle timeout.
pub fn sniff<S: Transport>(s: &mut S, idle: Duration) -> Result<Opening> {
    let mut head = Vec::with_capacity(4);
    let mut byte = [0u8; 4];
    s.set_deadline(Some(Instant::now() + idle));
    let first = s.read(&mut byte);
    s.set_deadline(None);
    match first {
        Ok(0) => return Ok(Opening::Closed),
        Ok(n) => head.extend_from_slice(&byte[..n]),
        Err(e) => return Err(Error::io("reading the first command", e)),
    }
    while head.len() < 4 && head.iter().all(|&b| is_text(b)) {
        s.set_deadline(Some(Instant::now() + SNIFF_WAIT));
        let more = s.read(&mut byte[..4 - head.len()]);
        s.set_deadline(None);
        match more {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&byte[..n]),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(Opening::Echo(head)),
            Err(e) => return Err(Error::io("reading the first command", e)),
        }
    }
    Ok(match head.iter().all(|&b| is_text(b)) {
        true => Opening::Echo(head),
        false => Opening::Frames(head),
    })
}

/// Answers `first`, then every chunk until the client leaves, upper-cased
/// (ASCII only, as Python's `bytes.upper`). Returns the bytes echoed.
///
/// Fails when the connection breaks.
pub fn serve<S: Transport>(s: &mut S, first: Vec<u8>) -> Result<u64> {
    let mut chunk = first;
    let mut buf = [0u8; ECHO_CHUNK];
    // The rest of the first message is already here: answer it whole, as
    // the seed's client reads one reply per line.
    if chunk.len() == 4 {
        s.set_deadline(Some(Instant::now() + Duration::from_millis(20)));
        if let Ok(n) = s.read(&mut buf[..ECHO_CHUNK - 4]) {
            chunk.extend_from_slice(&buf[..n]);
        }
        s.set_deadline(None);
    }
    let mut total = 0u64;
    loop {
        chunk.make_ascii_uppercase();
        s.write_all(&chunk)
            .and_then(|()| s.flush())
            .map_err(|e| Error::io("echoing", e))?;
        total += chunk.len() as u64;
        let n = match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) => return Err(Error::io("reading text to echo", e)),
        };
        chunk = buf[..n].to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStream;

    fn sniffed(input: &[u8]) -> Opening {
        sniff(
            &mut MemoryStream::new(input.to_vec()),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn text_is_echo_and_frames_are_frames() {
        assert_eq!(sniffed(b"hello world"), Opening::Echo(b"hell".to_vec()));
        assert_eq!(sniffed(b"hi"), Opening::Echo(b"hi".to_vec()));
        assert_eq!(
            sniffed("你好".as_bytes()),
            Opening::Echo("你好".as_bytes()[..4].to_vec())
        );
        // A header of 60 bytes: '<' then zeros.
        assert_eq!(
            sniffed(&[60, 0, 0, 0, b'{']),
            Opening::Frames(vec![60, 0, 0, 0])
        );
        assert_eq!(
            sniffed(&[0xff, 0xff, 0xff, 0x7f]),
            Opening::Frames(vec![0xff, 0xff, 0xff, 0x7f])
        );
        assert_eq!(sniffed(b""), Opening::Closed);
    }

    #[test]
    fn echo_upper_cases_ascii_only() {
        let mut s = MemoryStream::new(b" and more".to_vec());
        let n = serve(&mut s, "héllo".as_bytes().to_vec()).unwrap();
        assert_eq!(s.output, "HéLLO AND MORE".as_bytes());
        assert_eq!(n, s.output.len() as u64);
    }
}
