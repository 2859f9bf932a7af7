//! `ls`: a folder's listing, sent in pages as the store reads it, so that
//! the memory a reply holds is one page whatever the folder holds, and a
//! peer that does not read it holds no thread and is dropped at the
//! reply's deadline.

use super::refusals::{bad_name, store_refusal};
use crate::error::Result;
use crate::net::Transport;
use crate::server::bodies::ListingBody;
use crate::server::outcome::{refuse, Outcome};
use crate::server::session::Session;
use crate::storage::{ListHow, Place};
use crate::wire::listing::{PAGE_BUDGET, SINGLE_BUDGET};
use crate::wire::message::LsRequest;
use crate::wire::names::{resolve_folder, MAX_PATH_DEPTH};

/// Descriptors a listing holds for each level of folders it is in: the
/// folder's handle, a second for reading it, and the reader's own.
const FDS_PER_LEVEL: usize = 3;

impl Session<'_> {
    /// Lists a folder (the current one unless the request names another),
    /// and with `recursive` all below it: in pages when the client asked
    /// for them, else in one frame that stops at [`SINGLE_BUDGET`] and says
    /// it was truncated, which is all a client that predates pages can
    /// read. The pages go out as the peer reads them (a [`ListingBody`]).
    ///
    /// Fails when the refusal cannot be sent.
    pub(crate) fn ls<S: Transport>(&self, req: &LsRequest, stream: &mut S) -> Result<Outcome> {
        let folder = match &req.path {
            Some(path) => match resolve_folder(&self.cwd, path) {
                Ok(folder) => folder,
                Err(e) => return refuse(stream, bad_name(e)),
            },
            None => self.cwd.clone(),
        };
        let how = ListHow {
            recursive: req.recursive,
            digests: req.digests,
        };
        // Taken before the store opens anything.
        let levels = if req.recursive { MAX_PATH_DEPTH } else { 1 };
        let lease = match self.lease_fds(levels * FDS_PER_LEVEL) {
            Ok(lease) => lease,
            Err(reply) => return refuse(stream, reply),
        };
        let entries = match self.ctx.store.list(Place::new(&self.home, &folder), how) {
            Ok(entries) => entries,
            Err(e) => return refuse(stream, store_refusal(e, "")),
        };
        let budget = if req.pages {
            PAGE_BUDGET
        } else {
            SINGLE_BUDGET
        };
        let body = ListingBody::new(entries, budget, req.pages, lease);
        Ok(Outcome::ok("listing", 0).with_body(Box::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{context, request_frames, serve_bytes};
    use crate::wire::frame;
    use crate::wire::listing::{PAGE_BUDGET, SINGLE_BUDGET};
    use serde_json::{json, Value};
    use std::fs;

    /// Every reply frame `bytes` holds, with its length.
    fn frames(mut bytes: &[u8]) -> Vec<(usize, Value)> {
        let mut out = Vec::new();
        while let Ok(Some(body)) = frame::read(&mut bytes, usize::MAX) {
            out.push((body.len(), serde_json::from_slice(&body).unwrap()));
        }
        out
    }

    /// A home of `n` files with 250-byte names of quotes, which JSON
    /// doubles.
    fn quoted_home(n: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            let name = format!("{i:06}{}", "\"".repeat(244));
            fs::write(dir.path().join(name), b"").unwrap();
        }
        dir
    }

    #[test]
    fn a_paged_listing_comes_in_bounded_pages_then_the_next_reply() {
        let dir = quoted_home(1_000);
        let ctx = context(dir.path());
        let input = request_frames(&[
            json!({"cmd":"ls","pages":true}),
            json!({"cmd":"echo","text":"after"}),
        ]);
        let out = frames(&serve_bytes(&ctx, &input));
        let (echo, pages) = out.split_last().unwrap();
        assert_eq!(echo.1["text"], "AFTER");
        assert!(pages.len() >= 8, "{} pages", pages.len());
        let mut names = std::collections::HashSet::new();
        for (i, (len, page)) in pages.iter().enumerate() {
            assert!(*len <= PAGE_BUDGET + 1024, "page {i}: {len} bytes");
            assert_eq!(page["status"], "ok");
            assert_eq!(page["more"] == json!(true), i + 1 < pages.len(), "{i}");
            for e in page["files"].as_array().unwrap() {
                names.insert(e["name"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(names.len(), 1_000);
    }

    #[test]
    fn a_client_that_asks_for_no_pages_gets_one_truncated_frame() {
        let dir = quoted_home(3_000);
        let ctx = context(dir.path());
        let input = request_frames(&[json!({"cmd":"ls"}), json!({"cmd":"pwd"})]);
        let out = frames(&serve_bytes(&ctx, &input));
        assert_eq!(out.len(), 2);
        let (len, listing) = &out[0];
        assert!(*len <= SINGLE_BUDGET + 1024, "{len} bytes");
        assert_eq!(listing["truncated"], true);
        assert!(listing.get("more").is_none());
        let shown = listing["files"].as_array().unwrap().len();
        assert!((1_000..3_000).contains(&shown), "{shown} entries");
        assert_eq!(out[1].1["path"], "/");
    }

    #[test]
    fn a_small_folder_is_one_sorted_frame_either_way() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "c", "a"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let ctx = context(dir.path());
        for request in [json!({"cmd":"ls"}), json!({"cmd":"ls","pages":true})] {
            let out = frames(&serve_bytes(&ctx, &request_frames(&[request])));
            assert_eq!(out.len(), 1);
            let names: Vec<_> = out[0].1["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, ["a", "b", "c"]);
            assert_eq!(out[0].1["truncated"], false);
        }
    }
}
