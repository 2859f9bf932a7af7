//! Downloads of a batch (`get -r`, `sync` to this side) that may come as
//! deltas: a file the batch would replace, whose local copy is big enough,
//! is fetched as `get` over an old copy fetches it (the server's signature,
//! then ranged gets of the chunks missing here), before the pipelined
//! pass. A file that cannot come so (no signature, nothing in common, a
//! partial download to resume) is left to the pass, whole.

use std::fs;

use super::{fail, BatchOptions, BatchProgress, BatchReport, Download, Finished, Step};
use crate::client::delta::DELTA_FROM;
use crate::client::overwrite::Overwrite;
use crate::client::partial::partial_download_path;
use crate::client::{Client, Progress};
use crate::error::Error;

/// A batch's progress, advanced by one transfer.
struct Share<'a>(&'a mut dyn BatchProgress);

impl Progress for Share<'_> {
    fn advance(&mut self, n: u64) {
        self.0.advance(n);
    }
}

/// Whether `d` may come as a delta: its local copy is a regular file (not
/// a link) big enough to share chunks with.
fn worth_a_delta(d: &Download) -> bool {
    fs::symlink_metadata(&d.local).is_ok_and(|m| m.is_file() && m.len() >= DELTA_FROM)
}

impl Client {
    /// Fetches the downloads among `steps` that can come as deltas, and
    /// returns the steps left for the pipelined pass.
    pub(super) fn fetch_deltas(
        &mut self,
        steps: Vec<Step>,
        options: BatchOptions,
        report: &mut BatchReport,
        progress: &mut dyn BatchProgress,
    ) -> Vec<Step> {
        if self.options.whole_file {
            return steps;
        }
        let (mut left, mut tried) = (Vec::with_capacity(steps.len()), false);
        for step in steps {
            match step {
                Step::Download(d) if worth_a_delta(&d) => {
                    tried = true;
                    if !self.fetch_delta(&d, options, report, progress) {
                        left.push(Step::Download(d));
                    }
                }
                other => left.push(other),
            }
        }
        // A delta that broke its connection leaves it for the pass to
        // reopen.
        if tried {
            let _ = self.ensure_connected();
        }
        left
    }

    /// Fetches `d` as a delta. True when it is done with (saved, or failed
    /// and reported); false to leave it to the pipelined pass.
    fn fetch_delta(
        &mut self,
        d: &Download,
        options: BatchOptions,
        report: &mut BatchReport,
        progress: &mut dyn BatchProgress,
    ) -> bool {
        let Ok(partial) = partial_download_path(&d.local) else {
            return false;
        };
        // A partial download is resumed by the pass.
        if fs::symlink_metadata(&partial).is_ok() || self.ensure_connected().is_err() {
            return false;
        }
        // A sync replaces what it fetches; a get asks as the client does.
        let policy = match options.ask_before_replacing {
            true => self.options.overwrite.clone(),
            false => Overwrite::Replace,
        };
        let files = (d.local.as_path(), partial.as_path());
        let got = self.get_delta(&d.remote, files, &policy, &mut Share(progress));
        match got {
            Ok(Some(r)) => {
                progress.finished(&Finished::Saved {
                    local: &d.local,
                    size: r.size,
                    resumed_from: 0,
                });
                report.files += 1;
                report.bytes += r.received;
                true
            }
            Ok(None) => false,
            // A built file that is not the server's was thrown away: the
            // whole file comes in the pass.
            Err(Error::DigestMismatch { .. }) => {
                let _ = fs::remove_file(&partial);
                false
            }
            Err(e @ (Error::Remote { .. } | Error::Usage(_) | Error::LocalFile { .. })) => {
                fail(report, progress, &Step::Download(d.clone()), e);
                true
            }
            // The connection broke: the pass reopens it and fetches whole.
            Err(_) => false,
        }
    }
}
