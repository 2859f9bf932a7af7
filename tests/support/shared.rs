//! What the integration tests and the benchmark (`benches/transfer.rs`)
//! both need: a server's `listening on` line, the answer to the login's
//! challenge, and the test pattern. It uses nothing else from `support`, so
//! that the bench can include it by path.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::Child;

use ftp::wire::auth::{respond, CHALLENGE_LEN};

/// The address in the first line a server prints on its piped stdout
/// (`listening on HOST:PORT`); `None` when it printed something else, or
/// nothing before it exited.
pub fn listening_addr(child: &mut Child) -> Option<SocketAddr> {
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    line.trim().strip_prefix("listening on ")?.parse().ok()
}

/// Reads the server's challenge from `stream` and answers it with `secret`.
pub fn answer_challenge(stream: &mut (impl Read + Write), secret: &[u8]) -> io::Result<()> {
    let mut challenge = [0u8; CHALLENGE_LEN];
    stream.read_exact(&mut challenge)?;
    stream.write_all(&respond(secret, &challenge))
}

/// Deterministic pseudo-random bytes (xorshift), so that failures are
/// reproducible: an endless stream for each seed.
pub struct Pattern {
    x: u64,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Pattern { x }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = self.x as u8;
        }
    }
}
