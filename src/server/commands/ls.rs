//! `ls`: a folder's listing, sent in pages as the store reads it, so that
//! the memory a reply holds is one page whatever the folder holds, and a
//! peer that does not read it is dropped at the reply's deadline.

use std::io::Write;

use super::store_refusal;
use crate::error::{Error, Result};
use crate::io::deadline::ReplyWriter;
use crate::net::Transport;
use crate::server::session::{refuse, Outcome, Session};
use crate::storage::Entries;
use crate::wire::listing::{PageBuilder, PageEnd, PAGE_BUDGET, SINGLE_BUDGET};

/// What one listing sent, for the log.
#[derive(Default)]
struct Sent {
    entries: u64,
    frames: u64,
    bytes: u64,
}

impl Session<'_> {
    /// Lists the current folder: in pages when the client asked for them,
    /// else in one frame that stops at [`SINGLE_BUDGET`] and says it was
    /// truncated, which is all a client that predates pages can read.
    ///
    /// Fails when the connection breaks or the reply's deadline passes;
    /// the stream is then out of step and the connection closes.
    pub(crate) fn ls<S: Transport>(&self, pages: bool, stream: &mut S) -> Result<Outcome> {
        let entries = match self.ctx.store.list(self.place()) {
            Ok(entries) => entries,
            Err(e) => return refuse(stream, store_refusal(e, "")),
        };
        let mut out = ReplyWriter::new(stream, self.ctx.reply_timeout);
        let budget = if pages { PAGE_BUDGET } else { SINGLE_BUDGET };
        let mut sent = Sent::default();
        match send_pages(entries, budget, pages, &mut out, &mut sent)? {
            Ok(()) => Ok(Outcome::ok(
                format!("{} entries in {} frames", sent.entries, sent.frames),
                sent.bytes,
            )),
            // The pages already sent stand; the error frame ends them.
            Err(e) => refuse(&mut out, store_refusal(e, "")),
        }
    }
}

/// Sends `entries` in pages of `budget` bytes; without `pages`, only the
/// first page, marked truncated if the folder held more. Returns the
/// store's error, when reading the folder failed part way, for the caller
/// to send as the last frame.
///
/// Fails when the writer does.
fn send_pages(
    entries: Entries,
    budget: usize,
    pages: bool,
    out: &mut impl Write,
    sent: &mut Sent,
) -> Result<std::result::Result<(), crate::storage::StoreError>> {
    let mut page = PageBuilder::new(budget);
    let mut end = PageEnd::Last;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return Ok(Err(e)),
        };
        let Err(entry) = page.push(entry) else {
            continue;
        };
        if !pages {
            end = PageEnd::Truncated;
            break;
        }
        send(out, &mut page, PageEnd::More, sent)?;
        // An empty page takes any entry.
        let _ = page.push(entry);
    }
    send(out, &mut page, end, sent)?;
    Ok(Ok(()))
}

/// Sends the page as one frame and empties it.
fn send(out: &mut impl Write, page: &mut PageBuilder, end: PageEnd, sent: &mut Sent) -> Result<()> {
    sent.entries += page.len() as u64;
    let frame = page.finish(end)?;
    out.write_all(&frame)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("sending the listing", e))?;
    sent.frames += 1;
    sent.bytes += frame.len() as u64;
    Ok(())
}
