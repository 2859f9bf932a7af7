//! Listings in pages: how a folder of any size becomes frames of a bounded
//! size, and how a client takes them back. No I/O: the encoder fills byte
//! buffers and the decoder takes them, so that the server's memory for a
//! reply is one page, whatever the folder holds.
//!
//! A page is an ordinary `ls` reply, `{"status":"ok","files":[...]}`, with
//! `"more":true` when another page follows. The exact contract, and what an
//! older client sees, is in `docs/PROTOCOL.md`.

use std::io::{self, Write};

use serde::Serialize;

use crate::wire::error::{Result, WireError};
use crate::wire::frame::LEN_PREFIX;
use crate::wire::reply::{parse_reply, Entry, Listing, Reply};

/// The JSON bytes a page holds before the server closes it and starts the
/// next: small against memory, large against the cost of a frame.
pub const PAGE_BUDGET: usize = 64 * 1024;

/// The JSON bytes of the one frame a client that does not ask for pages
/// gets; the rest of the folder is left out and the reply says
/// `"truncated":true`.
pub const SINGLE_BUDGET: usize = 1024 * 1024;

/// The largest listing frame a client accepts: twice the largest a server
/// sends, which is [`SINGLE_BUDGET`] plus one entry of the longest name
/// escaped at its worst (about 6 KiB).
pub const MAX_PAGE_LEN: usize = 2 * SINGLE_BUDGET;

/// How a page ends the listing, or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnd {
    /// Another page follows.
    More,
    /// The last page: the folder held nothing else.
    Last,
    /// The only page, and the folder held more than it carries.
    Truncated,
}

/// Gathers entries into one page whose JSON stays within a byte budget.
#[derive(Debug)]
pub struct PageBuilder {
    budget: usize,
    entries: Vec<Entry>,
    /// JSON bytes of the entries so far, with the commas between them.
    len: usize,
}

impl PageBuilder {
    /// An empty page that closes at `budget` bytes of entries.
    pub fn new(budget: usize) -> PageBuilder {
        PageBuilder {
            budget,
            entries: Vec::new(),
            len: 0,
        }
    }

    /// Adds `entry` if the page has room for it, else gives it back. An
    /// empty page takes any entry, so that every page holds at least one.
    ///
    /// # Errors
    ///
    /// Gives `entry` back when the page is full.
    pub fn push(&mut self, entry: Entry) -> std::result::Result<(), Entry> {
        let len = json_len(&entry) + usize::from(!self.entries.is_empty());
        if !self.entries.is_empty() && self.len + len > self.budget {
            return Err(entry);
        }
        self.len += len;
        self.entries.push(entry);
        Ok(())
    }

    /// How many entries the page holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the page holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encodes the page as one frame, its entries sorted by name, and
    /// empties the builder for the next page.
    ///
    /// Fails only if the frame would not fit the 32-bit length, which a
    /// budget far below it rules out.
    pub fn finish(&mut self, end: PageEnd) -> Result<Vec<u8>> {
        let mut files = std::mem::take(&mut self.entries);
        self.len = 0;
        // Sorting a page is cheap; a whole folder cannot be sorted in
        // bounded memory, so order holds within a page only.
        files.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let page = Listing {
            files,
            truncated: end == PageEnd::Truncated,
            more: end == PageEnd::More,
        };
        encode_in_place(&Reply::Ok(page))
    }
}

/// Serializes `value` straight after a length prefix that is filled in
/// afterwards, so that a page is never copied from a body into a frame.
fn encode_in_place<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut frame = vec![0u8; LEN_PREFIX];
    serde_json::to_writer(&mut frame, value).map_err(|e| WireError::Malformed(e.to_string()))?;
    let body = frame.len() - LEN_PREFIX;
    let len = i32::try_from(body).map_err(|_| WireError::FrameTooLarge {
        len: body as u64,
        max: i32::MAX as u64,
    })?;
    frame[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// The length of `value` as JSON, counted without building it.
fn json_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and an entry always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What [`decode_page`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The frame is not complete: at least this many more bytes are
    /// needed, and no more than that belong to it.
    Need(usize),
    /// A whole page, taken off the front of the buffer.
    Page(Listing),
}

/// Takes one listing frame off the front of `buf`, or says how many more
/// bytes it needs. A frame longer than `max` is refused as soon as its
/// length is known, before its body arrives.
///
/// Fails with [`WireError::NegativeLength`] or [`WireError::FrameTooLarge`] for a
/// bad length, [`WireError::Malformed`] for a body that is not a listing, and
/// [`WireError::Remote`] when the frame is an error reply, which ends the
/// listing.
pub fn decode_page(buf: &mut Vec<u8>, max: usize) -> Result<Step> {
    if buf.len() < LEN_PREFIX {
        return Ok(Step::Need(LEN_PREFIX - buf.len()));
    }
    let len = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = usize::try_from(len).map_err(|_| WireError::NegativeLength(len))?;
    if len > max {
        return Err(WireError::FrameTooLarge {
            len: len as u64,
            max: max as u64,
        });
    }
    let end = LEN_PREFIX + len;
    if buf.len() < end {
        return Ok(Step::Need(end - buf.len()));
    }
    let parsed = parse_reply::<Listing>(&buf[LEN_PREFIX..end]);
    buf.drain(..end);
    parsed
        .map_err(|e| match e {
            WireError::Malformed(why) => WireError::Malformed(format!("listing page: {why}")),
            other => other,
        })
        .map(Step::Page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::reply::{EntryKind, ErrorCode, ErrorReply};

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            size: 7,
            mtime: 1_764_072_000,
            blake3: None,
        }
    }

    /// Names of 250 bytes that are mostly `"`, which JSON doubles.
    fn quoted(i: usize) -> Entry {
        entry(&format!("{i:06}{}", "\"".repeat(244)))
    }

    /// Cuts `entries` into frames the way the server does.
    fn pages(entries: impl IntoIterator<Item = Entry>, budget: usize) -> Vec<Vec<u8>> {
        let mut page = PageBuilder::new(budget);
        let mut frames = Vec::new();
        for e in entries {
            if let Err(e) = page.push(e) {
                frames.push(page.finish(PageEnd::More).unwrap());
                page.push(e).unwrap();
            }
        }
        frames.push(page.finish(PageEnd::Last).unwrap());
        frames
    }

    /// Decodes every page of `bytes`, fed `chunk` bytes at a time, and
    /// checks that the decoder never asks for more than the frame holds.
    fn decode_fed(bytes: &[u8], chunk: usize) -> Vec<Listing> {
        let (mut buf, mut at, mut out) = (Vec::new(), 0, Vec::new());
        loop {
            match decode_page(&mut buf, MAX_PAGE_LEN).unwrap() {
                Step::Page(p) => out.push(p),
                Step::Need(n) if at == bytes.len() => panic!("{n} bytes short at the end"),
                Step::Need(n) => {
                    let take = n.min(chunk).min(bytes.len() - at);
                    buf.extend_from_slice(&bytes[at..at + take]);
                    at += take;
                    continue;
                }
            }
            if at == bytes.len() && buf.is_empty() {
                return out;
            }
        }
    }

    #[test]
    fn a_big_folder_becomes_bounded_pages_that_read_back_whole() {
        let frames = pages((0..2_000).map(quoted), PAGE_BUDGET);
        assert!(frames.len() > 10, "{} pages", frames.len());
        for f in &frames {
            // The budget, the envelope and at most one entry past it.
            assert!(f.len() <= PAGE_BUDGET + 1024, "a page of {} bytes", f.len());
        }
        let bytes = frames.concat();
        let read = decode_fed(&bytes, usize::MAX);
        assert_eq!(read.len(), frames.len());
        assert!(read[..read.len() - 1].iter().all(|p| p.more));
        assert!(!read.last().unwrap().more);
        let names: Vec<_> = read
            .iter()
            .flat_map(|p| &p.files)
            .map(|e| &e.name)
            .collect();
        assert_eq!(names.len(), 2_000);
        assert_eq!(*names[1234], quoted(1234).name);
        assert!(read.iter().all(|p| !p.truncated));
    }

    #[test]
    fn bytes_fed_one_at_a_time_give_the_same_pages() {
        let frames = pages((0..300).map(quoted), 8 * 1024);
        let bytes = frames.concat();
        assert_eq!(decode_fed(&bytes, 1), decode_fed(&bytes, usize::MAX));
        assert_eq!(decode_fed(&bytes, 1).len(), frames.len());
    }

    #[test]
    fn a_page_is_sorted_and_says_how_it_ends() {
        let mut page = PageBuilder::new(PAGE_BUDGET);
        for n in ["b", "c", "a"] {
            page.push(entry(n)).unwrap();
        }
        let mut frame = page.finish(PageEnd::Truncated).unwrap();
        assert!(page.is_empty());
        let Step::Page(p) = decode_page(&mut frame, MAX_PAGE_LEN).unwrap() else {
            panic!("no page");
        };
        let names: Vec<_> = p.files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(p.truncated && !p.more);
        assert!(frame.is_empty());
    }

    #[test]
    fn the_last_page_of_an_empty_folder_is_the_reply_older_clients_know() {
        let frame = PageBuilder::new(PAGE_BUDGET).finish(PageEnd::Last).unwrap();
        assert_eq!(
            &frame[LEN_PREFIX..],
            br#"{"status":"ok","files":[],"truncated":false}"#
        );
        let more = PageBuilder::new(PAGE_BUDGET).finish(PageEnd::More).unwrap();
        assert!(more.ends_with(br#","more":true}"#));
    }

    #[test]
    fn one_entry_always_fits_an_empty_page() {
        let mut page = PageBuilder::new(10);
        page.push(quoted(1)).unwrap();
        assert!(page.push(quoted(2)).is_err());
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn an_oversized_page_is_refused_before_its_body() {
        let mut buf = ((MAX_PAGE_LEN + 1) as i32).to_le_bytes().to_vec();
        let err = decode_page(&mut buf, MAX_PAGE_LEN).unwrap_err();
        assert_eq!(err.to_string(), "frame too large: 2097153 > 2097152 bytes");
        let mut buf = (-5i32).to_le_bytes().to_vec();
        assert!(matches!(
            decode_page(&mut buf, MAX_PAGE_LEN),
            Err(WireError::NegativeLength(-5))
        ));
    }

    #[test]
    fn an_error_frame_ends_the_listing_with_its_code() {
        let reply = Reply::<()>::Error(ErrorReply::new(ErrorCode::NotFound, "no such folder: /x"));
        let mut buf = encode_in_place(&reply).unwrap();
        match decode_page(&mut buf, MAX_PAGE_LEN) {
            Err(WireError::Remote { code, message }) => {
                assert_eq!(code, ErrorCode::NotFound);
                assert_eq!(message, "no such folder: /x");
            }
            other => panic!("{other:?}"),
        }
        let mut junk = crate::wire::frame::encode(b"{\"status\":\"ok\"}").unwrap();
        assert!(matches!(
            decode_page(&mut junk, MAX_PAGE_LEN),
            Err(WireError::Malformed(_))
        ));
    }
}
