//! Taking the next request off a logged-in connection without ever
//! waiting. [`Intake`] is the state machine, with no I/O inside: the bytes
//! that came go in, and it says how many more it takes, when a whole header
//! is in hand, or that the first bytes of a plaintext session are the
//! seed's raw echo. The connection's `pull` feeds it from its transport.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::logging::{Event, Kind};
use crate::server::echo::{self, FirstBytes};
use crate::wire::frame::{Incoming, MAX_HEADER_LEN};

/// The request header arriving, and on a plaintext login, whether the
/// session speaks in frames at all.
#[derive(Debug)]
pub(super) struct Intake {
    incoming: Incoming,
    /// A plaintext login whose first bytes may be the seed's raw echo.
    sniffing: bool,
    /// When one to three text bytes came, on a connection still sniffing.
    text_since: Option<Instant>,
}

/// What the intake needs next.
#[derive(Debug)]
pub(super) enum Wanted {
    /// At most this many more bytes: a header's rest, never past it.
    Bytes(usize),
    /// A whole header (or a frame that cannot be one), for a worker.
    Header(Result<Vec<u8>>),
}

impl Intake {
    /// A session's intake, starting with what its login took of the first
    /// request; `sniffing` when the seed's echo may come instead.
    pub(super) fn new(incoming: Incoming, sniffing: bool) -> Intake {
        Intake {
            incoming,
            sniffing,
            text_since: None,
        }
    }

    /// How many bytes to read next, or the header that is whole.
    pub(super) fn wanted(&mut self) -> Wanted {
        match self.incoming.wanted(MAX_HEADER_LEN) {
            Ok(0) => Wanted::Header(Ok(std::mem::take(&mut self.incoming).into_body())),
            Ok(n) if self.sniffing => {
                Wanted::Bytes(n.min(echo::SNIFF_LEN.saturating_sub(self.received())))
            }
            Ok(n) => Wanted::Bytes(n),
            Err(e) => Wanted::Header(Err(e.into())),
        }
    }

    fn received(&self) -> usize {
        self.incoming.received().len()
    }

    /// Takes bytes that came (at most what [`Intake::wanted`] said), at
    /// `now`. Returns the text to echo when they are the seed's echo
    /// dialect rather than a frame.
    pub(super) fn received_bytes(&mut self, bytes: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.incoming.extend(bytes);
        if !self.sniffing {
            return None;
        }
        match echo::classify(self.incoming.received()) {
            Some(FirstBytes::Echo) => Some(self.start_echo()),
            Some(FirstBytes::Frames) => {
                self.sniffing = false;
                None
            }
            None => {
                self.text_since = self.text_since.or(Some(now));
                None
            }
        }
    }

    /// Gives up telling a few text bytes apart: they are the echo dialect
    /// (the seed's echo client may send fewer than four). Returns them.
    pub(super) fn start_echo(&mut self) -> Vec<u8> {
        Event::new(Kind::Echo).info(format_args!(
            "raw text instead of a frame: the seed's echo dialect"
        ));
        self.sniffing = false;
        self.text_since = None;
        std::mem::take(&mut self.incoming).received().to_vec()
    }

    /// Whether a few text bytes wait to be told apart.
    pub(super) fn has_text(&self) -> bool {
        self.text_since.is_some()
    }

    /// Whether part of a header came.
    pub(super) fn is_empty(&self) -> bool {
        self.incoming.is_empty()
    }

    /// When to give up waiting: the header's `deadline`, or `sniff` after
    /// text bytes came, whichever is sooner.
    pub(super) fn wake_at(&self, sniff: Duration, deadline: Instant) -> Instant {
        match self.text_since {
            Some(at) => (at + sniff).min(deadline),
            None => deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame;

    /// Feeds `bytes` in pieces of at most `piece`, as `conn::pull` does, and
    /// returns what the intake came to and the bytes it left unread.
    fn feed(intake: &mut Intake, mut bytes: &[u8], piece: usize) -> (Option<Wanted>, usize) {
        let now = Instant::now();
        loop {
            let want = match intake.wanted() {
                Wanted::Bytes(n) if !bytes.is_empty() => n,
                other => return (Some(other), bytes.len()),
            };
            let n = want.min(piece).min(bytes.len());
            if let Some(first) = intake.received_bytes(&bytes[..n], now) {
                assert!(!first.is_empty(), "echo text comes with its first bytes");
                return (None, bytes.len() - n);
            }
            bytes = &bytes[n..];
        }
    }

    fn header(wanted: Option<Wanted>) -> Vec<u8> {
        match wanted {
            Some(Wanted::Header(Ok(header))) => header,
            other => panic!("no whole header: {other:?}"),
        }
    }

    #[test]
    fn a_header_fed_byte_by_byte_or_whole_stops_at_its_end() {
        let first = frame::encode_json(&serde_json::json!({"action": "ls"})).expect("a frame");
        let second = frame::encode_json(&serde_json::json!({"action": "pwd"})).expect("a frame");
        let both = [first.clone(), second].concat();
        for piece in [1, 3, both.len()] {
            for sniffing in [false, true] {
                let mut intake = Intake::new(Incoming::default(), sniffing);
                let (wanted, unread) = feed(&mut intake, &both, piece);
                assert_eq!(header(wanted), first[frame::LEN_PREFIX..]);
                assert_eq!(
                    unread,
                    both.len() - first.len(),
                    "the next request stays unread"
                );
            }
        }
    }

    #[test]
    fn text_after_a_plaintext_login_is_the_echo_dialect() {
        for piece in [1, 4, 64] {
            let mut intake = Intake::new(Incoming::default(), true);
            let (wanted, unread) = feed(&mut intake, b"hello, echo\n", piece);
            assert!(wanted.is_none(), "told apart as echo text");
            assert_eq!(
                unread,
                12 - echo::SNIFF_LEN,
                "the rest is echoed as it comes"
            );
        }
        let mut intake = Intake::new(Incoming::default(), false);
        let (wanted, _) = feed(&mut intake, b"hello, echo\n", 1);
        assert!(
            matches!(wanted, Some(Wanted::Header(Err(_)))),
            "over TLS text is a bad frame"
        );
    }

    #[test]
    fn a_few_text_bytes_wake_the_poller_early() {
        let mut intake = Intake::new(Incoming::default(), true);
        let now = Instant::now();
        assert!(intake.received_bytes(b"hi", now).is_none());
        assert!(intake.has_text());
        let (sniff, deadline) = (Duration::from_millis(200), now + Duration::from_secs(60));
        assert_eq!(intake.wake_at(sniff, deadline), now + sniff);
        assert_eq!(intake.start_echo(), b"hi");
        assert_eq!(intake.wake_at(sniff, deadline), deadline);
    }

    #[test]
    fn a_length_past_the_header_limit_is_refused_before_its_bytes() {
        let mut intake = Intake::new(Incoming::default(), false);
        let (wanted, unread) = feed(&mut intake, &u32::MAX.to_le_bytes(), 1);
        assert!(matches!(wanted, Some(Wanted::Header(Err(_)))));
        assert_eq!(unread, 0);
    }
}
