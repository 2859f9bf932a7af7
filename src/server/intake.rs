//! Taking the next request off a logged-in connection without ever
//! waiting: the bytes that have arrived go into the frame decoder, and the
//! first bytes of a plaintext session are told apart from the seed's raw
//! echo. The poller calls this when the socket turns readable, and a worker
//! after each request, for the next one already sent behind it.

use std::time::Instant;

use super::connection::Conn;
use crate::config::logging::{Event, Kind};
use crate::error::Result;
use crate::server::echo::{self, FirstBytes};
use crate::wire::frame::MAX_HEADER_LEN;

/// Most reads one step of a header makes before the connection waits its
/// turn again, so that one fast peer cannot keep the poller to itself.
const READS_PER_STEP: usize = 16;

/// What reading a request without waiting came to.
pub(super) enum Pulled {
    /// A whole header (or a frame that cannot be one), for a worker.
    Request(Conn, Result<Vec<u8>>),
    /// The rest has not come yet.
    Wait(Conn),
    /// The seed's echo dialect, starting with these bytes.
    Echo(Conn, Vec<u8>),
    /// The connection is over (logged); what it still holds (a group of
    /// staged puts) is the caller's to finish.
    Ended(Conn),
}

/// Takes what has arrived of the next request, never waiting.
pub(super) fn pull(mut conn: Conn) -> Pulled {
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..READS_PER_STEP {
        let wanted = match conn.incoming.wanted(MAX_HEADER_LEN) {
            Ok(0) => {
                let header = std::mem::take(&mut conn.incoming).into_body();
                conn.turn = None;
                return Pulled::Request(conn, Ok(header));
            }
            Ok(n) => n,
            Err(e) => return Pulled::Request(conn, Err(e)),
        };
        let room = match conn.sniffing {
            true => echo::SNIFF_LEN - conn.incoming.received().len(),
            false => wanted,
        };
        let room = room.min(buf.len());
        let n = match conn.transport.read_now(&mut buf[..room]) {
            Ok(0) => return ended(conn),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Pulled::Wait(conn),
            Err(e) => {
                Event::new(Kind::Dropped).info(format_args!(
                    "connection dropped: {}",
                    crate::error::reason(&e)
                ));
                return Pulled::Ended(conn);
            }
        };
        conn.incoming.extend(&buf[..n]);
        if conn.sniffing {
            match echo::classify(conn.incoming.received()) {
                Some(FirstBytes::Echo) => {
                    let (conn, first) = start_echo(conn);
                    return Pulled::Echo(conn, first);
                }
                Some(FirstBytes::Frames) => conn.sniffing = false,
                None => conn.text_since = conn.text_since.or(Some(Instant::now())),
            }
        }
    }
    Pulled::Wait(conn)
}

pub(super) fn start_echo(mut conn: Conn) -> (Conn, Vec<u8>) {
    Event::new(Kind::Echo).info(format_args!(
        "raw text instead of a frame: the seed's echo dialect"
    ));
    let first = std::mem::take(&mut conn.incoming).received().to_vec();
    conn.sniffing = false;
    conn.text_since = None;
    (conn, first)
}

/// The peer closed while a request was expected.
fn ended(conn: Conn) -> Pulled {
    match conn.incoming.is_empty() {
        true => Event::new(Kind::Disconnected).info(format_args!(
            "disconnected after {} s",
            conn.started.elapsed().as_secs()
        )),
        false => Event::new(Kind::Dropped).info(format_args!(
            "connection dropped: closed in the middle of a request header"
        )),
    }
    Pulled::Ended(conn)
}
