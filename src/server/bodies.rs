//! The bodies of long replies: a download's file and its digest, a
//! listing's pages. Each makes its next chunk when the reply's outbox has
//! sent the last one ([`super::reply`]), and holds the descriptors it
//! keeps open against its account's budget.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::io::throttle::SharedRate;
use crate::server::commands::refusals::store_refusal;
use crate::server::descriptors::FdLease;
use crate::server::metrics::Metrics;
use crate::server::reply::{Body, BODY_CHUNK};
use crate::storage::{Entries, StoreError};
use crate::wire::frame;
use crate::wire::listing::{PageBuilder, PageEnd};
use crate::wire::message::{Digest, Reply};

/// A download's body: the file's bytes from the asked offset, then the
/// frame with the digest of the whole file.
pub(crate) struct FileBody {
    reader: Box<dyn Read + Send>,
    left: u64,
    /// Hashing what is sent, when the store kept no digest; it has seen
    /// the bytes before the offset already.
    hasher: Option<blake3::Hasher>,
    known: Option<blake3::Hash>,
    trailer_sent: bool,
    metrics: Arc<Metrics>,
    /// The account's download rate, and when the next chunk is due by it.
    rate: Option<Arc<SharedRate>>,
    due_at: Option<Instant>,
    /// The file's descriptor, counted against its account.
    _lease: FdLease,
}

impl FileBody {
    /// `len` bytes of `reader`, then the digest: the one `known`, or what
    /// the hasher makes of them.
    pub(crate) fn new(
        reader: Box<dyn Read + Send>,
        len: u64,
        (known, hasher): (Option<blake3::Hash>, Option<blake3::Hasher>),
        (metrics, rate): (Arc<Metrics>, Option<Arc<SharedRate>>),
        lease: FdLease,
    ) -> FileBody {
        FileBody {
            reader,
            left: len,
            hasher: if known.is_some() { None } else { hasher },
            known,
            trailer_sent: false,
            metrics,
            rate,
            due_at: None,
            _lease: lease,
        }
    }
}

/// Appends to `out` up to one chunk of the `left` bytes `reader` still
/// owes, and returns how many came. `what` names the source for an error,
/// as read from and as data. Fails when the source ends early: the length
/// promised to the peer cannot be kept.
fn read_chunk(
    reader: &mut impl Read,
    left: u64,
    out: &mut Vec<u8>,
    (source, what): (&str, &'static str),
) -> Result<usize> {
    let start = out.len();
    let want = left.min(BODY_CHUNK as u64) as usize;
    out.resize(start + want, 0);
    let n = loop {
        match reader.read(&mut out[start..]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other.map_err(|e| Error::io(format!("reading {source}"), e))?,
        }
    };
    out.truncate(start + n);
    match n {
        0 => Err(Error::Truncated {
            what,
            expected: left,
            got: 0,
        }),
        n => Ok(n),
    }
}

impl Body for FileBody {
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if self.left > 0 {
            let start = out.len();
            // A file that shrank under us cannot keep the promised length.
            let n = read_chunk(&mut self.reader, self.left, out, ("the file", "file data"))?;
            if let Some(h) = self.hasher.as_mut() {
                h.update(&out[start..]);
            }
            self.left -= n as u64;
            self.metrics.bytes_out.inc_by(n as u64);
            if let Some(rate) = &self.rate {
                self.due_at = Some(Instant::now() + rate.book(n));
            }
            return Ok(true);
        }
        if self.trailer_sent {
            return Ok(false);
        }
        let digest = match (self.known, self.hasher.take()) {
            (Some(known), _) => known,
            (None, Some(h)) => h.finalize(),
            (None, None) => blake3::Hasher::new().finalize(),
        };
        let blake3 = digest.to_hex().to_string();
        out.extend_from_slice(&frame::encode_json(&Digest { blake3 })?);
        self.trailer_sent = true;
        Ok(true)
    }

    fn len_hint(&self) -> u64 {
        self.left
    }

    fn due_at(&self) -> Option<Instant> {
        self.due_at
    }
}

/// A listing's body: its entries in pages of a bounded size, each a frame,
/// read from the store a page at a time.
pub(crate) struct ListingBody {
    entries: Entries,
    page: PageBuilder,
    /// Whether the client reads pages; if not, one frame that says it was
    /// truncated.
    pages: bool,
    done: bool,
    /// The folders' descriptors, counted against the account.
    _lease: FdLease,
}

impl ListingBody {
    /// `entries` in pages of `budget` bytes.
    pub(crate) fn new(entries: Entries, budget: usize, pages: bool, lease: FdLease) -> Self {
        ListingBody {
            entries,
            page: PageBuilder::new(budget),
            pages,
            done: false,
            _lease: lease,
        }
    }

    /// The page so far as the last frame, marked `end`.
    fn last(&mut self, out: &mut Vec<u8>, end: PageEnd) -> Result<bool> {
        self.done = true;
        out.extend_from_slice(&self.page.finish(end)?);
        Ok(true)
    }

    /// The store failed part way: the pages sent stand, and an error frame
    /// ends them.
    fn failed(&mut self, out: &mut Vec<u8>, e: StoreError) -> Result<bool> {
        self.done = true;
        let reply = Reply::<()>::Error(store_refusal(e, ""));
        out.extend_from_slice(&frame::encode_json(&reply)?);
        Ok(true)
    }
}

impl Body for ListingBody {
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        loop {
            let entry = match self.entries.next() {
                None => return self.last(out, PageEnd::Last),
                Some(Err(e)) => return self.failed(out, e),
                Some(Ok(entry)) => entry,
            };
            let Err(entry) = self.page.push(entry) else {
                continue;
            };
            if !self.pages {
                return self.last(out, PageEnd::Truncated);
            }
            out.extend_from_slice(&self.page.finish(PageEnd::More)?);
            // An empty page takes any entry.
            let _ = self.page.push(entry);
            return Ok(true);
        }
    }
}

/// A signature's body: its entries, read from where the store keeps them
/// as the client takes them, so that a big file's signature is never
/// held whole.
pub(crate) struct SignatureBody {
    entries: Box<dyn Read + Send>,
    left: u64,
    metrics: Arc<Metrics>,
    _lease: FdLease,
}

impl SignatureBody {
    /// `len` bytes of `entries`.
    pub(crate) fn new(
        entries: Box<dyn Read + Send>,
        len: u64,
        metrics: Arc<Metrics>,
        lease: FdLease,
    ) -> SignatureBody {
        SignatureBody {
            entries,
            left: len,
            metrics,
            _lease: lease,
        }
    }
}

impl Body for SignatureBody {
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        let n = read_chunk(
            &mut self.entries,
            self.left,
            out,
            ("a signature", "signature"),
        )?;
        self.left -= n as u64;
        self.metrics.bytes_out.inc_by(n as u64);
        Ok(true)
    }

    fn len_hint(&self) -> u64 {
        self.left
    }
}
