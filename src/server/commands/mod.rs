//! The commands a logged-in client can run, one module per kind, each an
//! `impl Session` block, and what they share: names resolved against the
//! current folder, hook events, the home's turn. Replies that refuse a
//! command are built from what storage reports in [`refusals`].

use crate::server::hooks::{home_path, Event, EventKind};
use crate::server::order::Turn;
use crate::server::session::Session;
use crate::wire::message::ErrorReply;
use crate::wire::names::resolve_file;

use refusals::bad_name;

mod answer;
mod body;
mod delta;
mod folders;
mod get;
mod ls;
mod misc;
mod put;
pub(crate) mod refusals;
mod sig;
pub(crate) mod staged;

impl Session<'_> {
    /// The folder (from the home) and the name of the file a command's
    /// path names, resolved against the current folder as `cd` resolves
    /// a folder: `a/b/c.txt`, or `/a/b/c.txt` from the home. Whether the
    /// folder exists (and holds no link on the way) is the store's to
    /// check when the command reaches it.
    pub(crate) fn resolve_file(&self, path: &str) -> Result<(Vec<String>, String), ErrorReply> {
        resolve_file(&self.cwd, path).map_err(bad_name)
    }

    /// `path` (as the client named it) from the home, as the hooks' events
    /// and the log's `path` field write it: `/docs/a.txt`. A name that
    /// does not resolve is kept as the client sent it.
    pub(crate) fn home_path(&self, path: &str) -> String {
        match self.resolve_file(path) {
            Ok((folder, name)) => home_path(&folder, &name),
            Err(_) => path.to_string(),
        }
    }

    /// An event of `kind` for `path` (as the client named it), by this
    /// session's account and peer, for the hooks.
    pub(crate) fn event(&self, kind: EventKind, path: &str) -> Event {
        let (folder, name) = self
            .resolve_file(path)
            .unwrap_or_else(|_| (self.cwd.clone(), path.to_string()));
        let mut event = Event::now(kind, &folder, &name);
        event.user = self.account.name.clone();
        event.peer = self.peer;
        event
    }

    /// Waits for this home's turn to change its names (see
    /// [`crate::server::order`]).
    pub(crate) fn turn(&self) -> Turn<'_> {
        self.ctx.name_order.enter(&self.home.join("/"))
    }
}

#[cfg(test)]
mod tests;
