//! How one request ended, and what the log says of it: one `command`
//! event per request, whose `path` is the file's path from the home (as
//! the hooks' events name it), so that one select finds every line about
//! one file. A refusal's reply is written here too, with the outcome that
//! notes it.

use std::fmt::Display;
use std::io::Write;
use std::time::Duration;

use crate::error::Result;
use crate::logging::{Event, Kind};
use crate::server::commands::staged::PendingPut;
use crate::server::reply::Body;
use crate::wire::frame;
use crate::wire::message::{ErrorCode, ErrorReply, Reply, Request};
use crate::wire::names::escape;

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next command.
    Continue,
    /// Close the connection.
    Close,
}

/// The result of one command, for the log line, and the rest of its
/// reply when that is long.
pub(crate) struct Outcome {
    pub(crate) flow: Flow,
    ok: bool,
    /// A refusal that is an ordinary answer, not a failure: the stored
    /// file a client asks about before it sends is not there yet.
    nothing: bool,
    what: String,
    bytes: u64,
    /// The error code the client got, when refused.
    code: Option<ErrorCode>,
    /// Whether a transfer went on from an offset.
    resumed: Option<bool>,
    /// The file's BLAKE3 in hex, when the server knows it.
    digest: Option<String>,
    /// The rest of a long reply, sent as the peer reads.
    pub(crate) body: Option<Box<dyn Body>>,
    /// A put staged for its group's commit.
    pub(crate) commit: Option<PendingPut>,
}

impl Outcome {
    pub(crate) fn ok(what: impl Into<String>, bytes: u64) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            ok: true,
            nothing: false,
            what: format!("ok {}", what.into()),
            bytes,
            code: None,
            resumed: None,
            digest: None,
            body: None,
            commit: None,
        }
    }
    /// Whether the transfer went on from an offset, and the file's digest.
    pub(crate) fn transfer(mut self, resumed: bool, digest: Option<blake3::Hash>) -> Outcome {
        self.resumed = Some(resumed);
        self.digest = digest.map(|h| h.to_hex().to_string());
        self
    }
    /// The put's reply waits for its group's commit.
    pub(crate) fn with_commit(mut self, pending: PendingPut) -> Outcome {
        self.commit = Some(pending);
        self
    }

    /// The reply goes on with `body`.
    pub(crate) fn with_body(mut self, body: Box<dyn Body>) -> Outcome {
        self.body = Some(body);
        self
    }
    pub(crate) fn refused(e: &ErrorReply) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            ok: false,
            nothing: false,
            what: format!("error {}: {}", e.code.as_str(), e.message),
            bytes: 0,
            code: Some(e.code.clone()),
            resumed: None,
            digest: None,
            body: None,
            commit: None,
        }
    }
    /// A refusal that answers "there is none": logged as `none`, not as
    /// an error.
    pub(crate) fn nothing(mut self, what: impl Display) -> Outcome {
        self.nothing = true;
        self.what = format!("none: {what}");
        self
    }
    /// `ok`, `none` for an ordinary "there is none", or `error` when
    /// refused.
    pub(crate) fn result(&self) -> &'static str {
        match (self.ok, self.nothing) {
            (true, _) => "ok",
            (false, true) => "none",
            (false, false) => "error",
        }
    }
    pub(crate) fn closing(mut self) -> Outcome {
        self.flow = Flow::Close;
        self
    }

    /// The command's log event: its fields, and the sentence the text
    /// format shows. `took` is none for a put answered at its group's
    /// commit, whose request was logged (staged) already.
    pub(crate) fn log(&self, said: &Said, took: Option<Duration>) {
        let mut event = said
            .event()
            .result(self.result())
            .code(self.code.as_ref().map(ErrorCode::as_str))
            .bytes(self.bytes)
            .resumed(self.resumed)
            .digest(self.digest.as_deref());
        let (cmd, shown) = (said.cmd, &said.shown);
        let (what, bytes) = (&self.what, self.bytes);
        match took {
            Some(took) => {
                event = event.took(took);
                let ms = took.as_millis();
                event.info(format_args!("{cmd}{shown} {what} ({bytes} bytes, {ms} ms)"));
            }
            None if self.ok => event.info(format_args!("{cmd}{shown} committed: {what}")),
            None => event.info(format_args!("{cmd}{shown} not committed: {what}")),
        }
    }
}

/// What the log says of one request: its command, the words the text
/// format shows after it, and its `path` field.
pub(crate) struct Said {
    cmd: &'static str,
    shown: String,
    path: String,
}

impl Said {
    /// A request that did not parse.
    pub(crate) fn unparsed() -> Said {
        Said {
            cmd: "?",
            shown: String::new(),
            path: String::new(),
        }
    }

    /// `r`, whose names `from_home` turns into paths from the home.
    pub(crate) fn of(r: &Request, from_home: impl Fn(&str) -> String) -> Said {
        let (subject, target) = match r {
            Request::Put(p) => (p.filename.clone(), Some(&p.filename)),
            Request::Get(g) => (g.filename.clone(), Some(&g.filename)),
            Request::Sig { filename } => (filename.clone(), Some(filename)),
            Request::Ls(ls) => (ls.path.clone().unwrap_or_default(), ls.path.as_ref()),
            Request::Mkdir { path, .. } | Request::Cd { path } => (path.clone(), Some(path)),
            Request::Rm { filename, .. } => (filename.clone(), Some(filename)),
            Request::Mv { from, to } => (format!("{from} -> {to}"), Some(from)),
            Request::Echo { .. } | Request::Prove { .. } | Request::Quota {} | Request::Pwd {} => {
                (String::new(), None)
            }
        };
        Said {
            cmd: r.cmd(),
            shown: Said::shown(&subject),
            path: target.map(|t| from_home(t)).unwrap_or_default(),
        }
    }

    /// A put answered at its group's commit: `name` as the client gave
    /// it, `path` from the home.
    pub(crate) fn committed_put(name: &str, path: &str) -> Said {
        Said {
            cmd: "put",
            shown: Said::shown(name),
            path: path.to_string(),
        }
    }

    /// The command's name, for the metrics.
    pub(crate) fn cmd(&self) -> &'static str {
        self.cmd
    }

    /// The request ended without its reply: the connection broke.
    pub(crate) fn aborted(&self, took: Duration, e: &dyn Display) {
        let (cmd, shown, ms) = (self.cmd, &self.shown, took.as_millis());
        self.event()
            .result("aborted")
            .took(took)
            .info(format_args!("{cmd}{shown} aborted after {ms} ms: {e}"));
    }

    fn shown(subject: &str) -> String {
        match subject.is_empty() {
            true => String::new(),
            false => format!(" {}", escape(subject)),
        }
    }

    fn event(&self) -> Event<'_> {
        Event::new(Kind::Command).cmd(self.cmd).path(&self.path)
    }
}

/// Sends an error reply to a command and notes the refusal for the log.
pub(crate) fn refuse<S: Write>(s: &mut S, reply: ErrorReply) -> Result<Outcome> {
    send_error(s, reply.clone())?;
    Ok(Outcome::refused(&reply))
}

/// Sends an error reply.
pub(crate) fn send_error<S: Write>(s: &mut S, reply: ErrorReply) -> Result<()> {
    Ok(frame::write_json(s, &Reply::<()>::Error(reply))?)
}
