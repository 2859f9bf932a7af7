//! What one request of a logged-in connection does: parse its header, run
//! the command it names, write its reply (or leave a long body, or a put
//! staged for its group, to whoever drives the connection), and log it.
//! The connection's loop is `server::serving`; tests drive the same loop
//! over byte buffers (`server::harness`). The commands themselves are in
//! [`crate::server::commands`].

use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::logging::{Event, Kind};
use crate::net::Transport;
use crate::server::accounts::Account;
use crate::server::commands::refusals::store_refusal;
use crate::server::commands::staged::{flush_failed, Answer, InGroup, PendingPut};
use crate::server::context::Context;
use crate::server::descriptors::FdLease;
use crate::server::outcome::{refuse, send_error, Flow, Outcome, Said};
use crate::server::reply::Body;
use crate::wire::frame;
use crate::wire::message::{parse_request, ErrorCode, ErrorReply, Reply, Request, RequestError};
use crate::wire::names::escape;

/// What handling one request leaves to do: whether the connection goes
/// on, and the body of its reply, which whoever drives the connection
/// sends as the peer reads.
pub(crate) struct Handled {
    pub(crate) flow: Flow,
    pub(crate) body: Option<Box<dyn Body>>,
    /// A put staged for its group's commit, whose reply comes then.
    pub(crate) commit: Option<PendingPut>,
}

impl Handled {
    /// A reply that is whole already.
    pub(crate) fn done(flow: Flow) -> Handled {
        Handled {
            flow,
            body: None,
            commit: None,
        }
    }
}

/// One logged-in user's connection.
pub(crate) struct Session<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) account: &'a Account,
    /// The home's path from the store's root.
    pub(crate) home: Vec<String>,
    pub(crate) cwd: Vec<String>,
    /// An anonymous client: it may only upload, and never replace a file.
    pub(crate) anonymous: bool,
    /// Files and folders the home may hold, partial uploads included.
    pub(crate) max_files: Option<u64>,
    /// The client's address, for the hooks' events.
    pub(crate) peer: Option<IpAddr>,
}

impl<'a> Session<'a> {
    /// A session for `account`, starting in its home folder.
    pub(crate) fn new(ctx: &'a Context, account: &'a Account) -> Session<'a> {
        Session {
            ctx,
            account,
            home: account.home(),
            cwd: Vec::new(),
            anonymous: false,
            max_files: account.max_files,
            peer: None,
        }
    }

    /// A session for a client that did not log in: `put` only, into the
    /// anonymous account's home, never replacing a file, within the
    /// server's `--anonymous-max-files`.
    pub(crate) fn anonymous(ctx: &'a Context, account: &'a Account) -> Session<'a> {
        Session {
            anonymous: true,
            max_files: Some(ctx.live.get().anonymous_max_files),
            ..Session::new(ctx, account)
        }
    }

    /// What a session does once, before its first command: make sure the
    /// home folder is there. Returns `Close` when it cannot be.
    ///
    /// Fails only when the error reply cannot be sent.
    pub(crate) fn start<S: Transport>(&mut self, stream: &mut S) -> Result<Flow> {
        if let Err(e) = self.ctx.store.open_home(&self.home) {
            send_error(stream, store_refusal(e, ""))?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    /// Takes `n` of the descriptors replies may hold, for this account.
    ///
    /// Fails with a `busy` reply when its share, or the server's pool, is
    /// held.
    pub(crate) fn lease_fds(&self, n: usize) -> Result<FdLease, ErrorReply> {
        let account = match self.anonymous {
            true => "\0anonymous".to_string(),
            false => self.home.join("/"),
        };
        self.ctx
            .fds
            .take(&account, n)
            .map_err(|e| ErrorReply::new(ErrorCode::Busy, e.to_string()))
    }

    /// The folder the session is in, to carry to the next command.
    pub(crate) fn into_cwd(self) -> Vec<String> {
        self.cwd
    }

    /// Continues in `cwd` (from [`Session::into_cwd`]).
    pub(crate) fn in_folder(mut self, cwd: Vec<String>) -> Session<'a> {
        self.cwd = cwd;
        self
    }

    /// The session of a client at `peer`.
    pub(crate) fn with_peer(mut self, peer: IpAddr) -> Session<'a> {
        self.peer = Some(peer);
        self
    }

    /// Answers a frame whose length was unacceptable. The stream cannot be
    /// resynchronised after that, so the connection closes.
    pub(crate) fn refuse_frame<S: Transport>(&mut self, e: &Error, stream: &mut S) -> Result<Flow> {
        let reply = ErrorReply::new(ErrorCode::BadRequest, e.to_string());
        let outcome = Outcome::refused(&reply).closing();
        self.log_command(&Said::unparsed(), Instant::now(), &outcome);
        send_error(stream, reply)?;
        Ok(Flow::Close)
    }

    /// Parses one header, runs it and logs it.
    pub(crate) fn handle<S: Transport>(
        &mut self,
        header: &[u8],
        stream: &mut S,
    ) -> Result<Handled> {
        let started = Instant::now();
        self.log_header(header);
        let request = match parse_request(header) {
            Ok(r) => r,
            Err(e) => return self.refuse_request(&e, started, stream).map(Handled::done),
        };
        let said = Said::of(&request, |name| self.home_path(name));
        let cmd = said.cmd();
        let outcome = self.run(request, stream);
        let metrics = &self.ctx.metrics;
        if matches!(cmd, "put" | "get") {
            metrics
                .transfer_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        let mut outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                metrics.command(cmd, "aborted");
                if cmd == "put" {
                    metrics.uploads_failed.inc();
                }
                said.aborted(started.elapsed(), &e);
                return Err(e);
            }
        };
        self.log_command(&said, started, &outcome);
        Ok(Handled {
            flow: outcome.flow,
            body: outcome.body.take(),
            commit: outcome.commit.take(),
        })
    }

    fn log_header(&self, header: &[u8]) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let shown = String::from_utf8_lossy(&header[..header.len().min(200)]);
            Event::new(Kind::Debug).debug(format_args!(
                "header of {} bytes: {}",
                header.len(),
                escape(&shown)
            ));
        }
    }

    /// Answers a header that is not a request. An unknown command leaves
    /// the stream in step; anything else that is malformed closes it.
    fn refuse_request<S: Transport>(
        &mut self,
        e: &RequestError,
        started: Instant,
        stream: &mut S,
    ) -> Result<Flow> {
        let (code, flow) = match e {
            RequestError::UnknownCommand(_) => (ErrorCode::UnknownCommand, Flow::Continue),
            RequestError::Malformed(_) => (ErrorCode::BadRequest, Flow::Close),
        };
        let reply = ErrorReply::new(code, e.to_string());
        let mut outcome = Outcome::refused(&reply);
        outcome.flow = flow;
        self.log_command(&Said::unparsed(), started, &outcome);
        send_error(stream, reply)?;
        Ok(flow)
    }

    fn log_command(&self, said: &Said, started: Instant, o: &Outcome) {
        self.ctx.metrics.command(said.cmd(), o.result());
        o.log(said, Some(started.elapsed()));
    }

    /// Runs one request: the one place that maps commands to handlers.
    fn run<S: Transport>(&mut self, request: Request, s: &mut S) -> Result<Outcome> {
        if self.anonymous && !matches!(request, Request::Put(_)) {
            let reply = ErrorReply::new(
                ErrorCode::Forbidden,
                "clients that do not log in may only upload (put)",
            );
            return refuse(s, reply);
        }
        if self.account.limits.read_only && request.writes() {
            let why = "this account is read-only: it may list and download, not change files";
            return refuse(s, ErrorReply::new(ErrorCode::Forbidden, why));
        }
        match request {
            Request::Put(put) => self.put(put, s),
            Request::Get(get) => self.get(get, s),
            Request::Sig { filename } => self.sig(filename, s),
            Request::Ls(ls) => self.ls(&ls, s),
            Request::Echo { text } => {
                let n = text.len() as u64;
                respond(s, Ok(self.echo(&text)), |_| format!("{n} chars"))
            }
            Request::Prove { nonce } => respond(s, self.prove(&nonce), |_| "proof sent".into()),
            Request::Quota {} => respond(s, self.usage(), |u| match u.quota {
                Some(q) => format!("used {} of {q}", u.used),
                None => format!("used {} (no quota)", u.used),
            }),
            Request::Pwd {} => respond(s, Ok(self.pwd()), |f| f.path.clone()),
            Request::Cd { path } => respond(s, self.cd(&path), |f| f.path.clone()),
            Request::Mkdir { path, parents } => {
                respond(s, self.mkdir(&path, parents), |f| f.path.clone())
            }
            Request::Rm {
                filename: f,
                recursive: r,
            } => respond(s, self.rm(&f, r), |r| format!("{} entries", r.entries)),
            Request::Mv { from, to } => respond(s, self.mv(&from, &to), |m| m.to.clone()),
        }
    }
}

fn respond<S: Write, T: Serialize>(
    s: &mut S,
    reply: Result<T, ErrorReply>,
    summary: impl FnOnce(&T) -> String,
) -> Result<Outcome> {
    match reply {
        Ok(value) => {
            let what = summary(&value);
            frame::write_json(s, &Reply::Ok(value))?;
            Ok(Outcome::ok(what, 0))
        }
        Err(e) => refuse(s, e),
    }
}

/// Commits a group of staged puts in the one order that keeps `ok`
/// meaning durable: their data flushed at once, each name taken, the
/// names flushed at once, and only then the replies, in the order the
/// requests came (written to `s`), those of requests refused meanwhile in
/// their turn.
///
/// Fails when a reply cannot be written.
pub(crate) fn commit_group(ctx: &Context, group: Vec<InGroup>, s: &mut impl Write) -> Result<()> {
    let data = ctx.store.flush();
    let mut answers = Vec::with_capacity(group.len());
    for item in group {
        answers.push(match (item, &data) {
            (InGroup::Put(pending), Ok(())) => Answered::Put((*pending).commit(ctx)),
            // Nothing of the group is confirmed: their partials stay for a
            // resume.
            (InGroup::Put(pending), Err(e)) => Answered::Put((*pending).abandon(flush_failed(e))),
            (InGroup::Reply(bytes), _) => Answered::Reply(bytes),
        });
    }
    let names = data.and_then(|()| ctx.store.flush());
    for answered in answers {
        match answered {
            Answered::Put((answer, committed)) => {
                let committed = match &names {
                    Ok(()) => committed,
                    Err(e) => committed.and(Err(flush_failed(e))),
                };
                answer.send(ctx, committed, s)?;
            }
            Answered::Reply(bytes) => s
                .write_all(&bytes)
                .map_err(|e| Error::io("sending a reply", e))?,
        }
    }
    Ok(())
}

/// A group's member once its name is taken: a put to answer, or a reply
/// written already.
enum Answered {
    Put((Answer, crate::storage::StoreResult<Option<blake3::Hash>>)),
    Reply(Vec<u8>),
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
