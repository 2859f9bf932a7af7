//! Progress bars on stderr, shown only to a person at a terminal.

use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{NoProgress, Progress};
use crate::config::units::human;
use crate::wire::names::escape;

/// A progress bar on stderr when it is a terminal and not `quiet`.
pub(crate) fn progress_for(quiet: bool) -> Box<dyn Progress> {
    if quiet || !io::stderr().is_terminal() {
        Box::new(NoProgress)
    } else {
        Box::new(Bar(None))
    }
}

struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, name: &str, total: u64, offset: u64) {
        // The bar covers only this run's bytes, so rate and ETA are true.
        let bar = byte_bar(total - offset);
        let mut msg = escape(name);
        if offset > 0 {
            msg.push_str(&format!(" (resuming at {})", human(offset)));
        }
        bar.set_message(msg);
        self.0 = Some(bar);
    }
    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

/// One bar for a whole batch: files done of all, bytes, rate and time
/// left; `None` when nothing is to be drawn (quiet, or not a terminal).
pub(crate) fn batch_bar(quiet: bool, files: u64, bytes: u64) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = byte_bar(bytes);
    bar.set_message(format!("0/{files} files"));
    Some(bar)
}

/// A bar on stderr for `total` bytes: message, bar, bytes, rate, ETA.
fn byte_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}
