//! One authenticated connection on the server: read a header, run the
//! command it names, send the reply, until the client hangs up.
//!
//! Generic over the stream, so tests drive it with byte buffers. The
//! commands themselves are in [`crate::server::commands`].

use std::io::Write;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::net::Transport;
use crate::server::accounts::Account;
use crate::server::commands::store_refusal;
use crate::server::context::Context;
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{parse_request, ErrorCode, ErrorReply, Reply, Request, RequestError};
use crate::wire::names::escape;

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Close the connection.
    Close,
}

/// The result of one command, for the log line.
pub(crate) struct Outcome {
    pub(crate) flow: Flow,
    ok: bool,
    what: String,
    bytes: u64,
}

impl Outcome {
    pub(crate) fn ok(what: impl Into<String>, bytes: u64) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            ok: true,
            what: format!("ok {}", what.into()),
            bytes,
        }
    }
    pub(crate) fn refused(e: &ErrorReply) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            ok: false,
            what: format!("error {}: {}", e.code.as_str(), e.message),
            bytes: 0,
        }
    }
    pub(crate) fn closing(mut self) -> Outcome {
        self.flow = Flow::Close;
        self
    }
}

/// One logged-in user's connection.
pub struct Session<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) account: &'a Account,
    /// The home's path from the store's root.
    pub(crate) home: Vec<String>,
    pub(crate) cwd: Vec<String>,
    /// An anonymous client: it may only upload, and never replace a file.
    pub(crate) anonymous: bool,
    /// Files and folders the home may hold, partial uploads included.
    pub(crate) max_files: Option<u64>,
}

impl<'a> Session<'a> {
    /// A session for `account`, starting in its home folder.
    pub fn new(ctx: &'a Context, account: &'a Account) -> Session<'a> {
        Session {
            ctx,
            account,
            home: account.home(),
            cwd: Vec::new(),
            anonymous: false,
            max_files: account.max_files,
        }
    }

    /// A session for a client that did not log in: `put` only, into the
    /// anonymous account's home, never replacing a file, within the
    /// server's `--anonymous-max-files`.
    pub fn anonymous(ctx: &'a Context, account: &'a Account) -> Session<'a> {
        Session {
            anonymous: true,
            max_files: Some(ctx.anonymous_max_files),
            ..Session::new(ctx, account)
        }
    }

    /// Serves commands until the client hangs up.
    ///
    /// Returns `Ok` when the client closes between commands or after a
    /// malformed header was answered; fails when the connection breaks.
    pub fn serve<S: Transport>(&mut self, stream: &mut S) -> Result<()> {
        if self.start(stream)? == Flow::Close {
            return Ok(());
        }
        while self.serve_one(stream)? == Flow::Continue {}
        Ok(())
    }

    /// What a session does once, before its first command: make sure the
    /// home folder is there. Returns `Close` when it cannot be.
    ///
    /// Fails only when the error reply cannot be sent.
    pub fn start<S: Transport>(&mut self, stream: &mut S) -> Result<Flow> {
        if let Err(e) = self.ctx.store.open_home(&self.home) {
            send_error(stream, store_refusal(e, ""))?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    /// Reads one header and runs its command. Returns `Close` when the
    /// client hung up between commands or the stream cannot go on.
    ///
    /// Fails when the connection breaks.
    pub fn serve_one<S: Transport>(&mut self, stream: &mut S) -> Result<Flow> {
        // The whole header must arrive within the idle timeout.
        stream.set_deadline(Some(Instant::now() + self.ctx.idle_timeout));
        let header = frame::read(stream, MAX_HEADER_LEN);
        stream.set_deadline(None);
        match header {
            Ok(Some(h)) => self.handle(&h, stream),
            Ok(None) => Ok(Flow::Close),
            Err(e) if e.is_disconnect() => Err(e),
            Err(e) => self.refuse_frame(&e, stream),
        }
    }

    /// The folder the session is in, to carry to the next command.
    pub fn into_cwd(self) -> Vec<String> {
        self.cwd
    }

    /// Continues in `cwd` (from [`Session::into_cwd`]).
    pub fn in_folder(mut self, cwd: Vec<String>) -> Session<'a> {
        self.cwd = cwd;
        self
    }

    /// Answers a frame whose length was unacceptable. The stream cannot be
    /// resynchronised after that, so the connection closes.
    pub(crate) fn refuse_frame<S: Transport>(&mut self, e: &Error, stream: &mut S) -> Result<Flow> {
        let reply = ErrorReply::new(ErrorCode::BadRequest, e.to_string());
        self.log_command("?", "", Instant::now(), &Outcome::refused(&reply).closing());
        send_error(stream, reply)?;
        Ok(Flow::Close)
    }

    /// Parses one header, runs it and logs it.
    pub(crate) fn handle<S: Transport>(&mut self, header: &[u8], stream: &mut S) -> Result<Flow> {
        let started = Instant::now();
        self.log_header(header);
        let request = match parse_request(header) {
            Ok(r) => r,
            Err(e) => return self.refuse_request(&e, started, stream),
        };
        let (cmd, subject) = describe(&request);
        let outcome = self.run(request, stream);
        let metrics = &self.ctx.metrics;
        if matches!(cmd, "put" | "get") {
            metrics
                .transfer_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                metrics.command(cmd, "aborted");
                if cmd == "put" {
                    metrics.uploads_failed.inc();
                }
                tracing::info!(
                    "{cmd} {} aborted after {} ms: {e}",
                    escape(&subject),
                    started.elapsed().as_millis()
                );
                return Err(e);
            }
        };
        self.log_command(cmd, &subject, started, &outcome);
        Ok(outcome.flow)
    }

    fn log_header(&self, header: &[u8]) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let shown = String::from_utf8_lossy(&header[..header.len().min(200)]);
            tracing::debug!("header of {} bytes: {}", header.len(), escape(&shown));
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
        self.log_command("?", "", started, &outcome);
        send_error(stream, reply)?;
        Ok(flow)
    }

    fn log_command(&self, cmd: &'static str, subject: &str, started: Instant, o: &Outcome) {
        let result = if o.ok { "ok" } else { "error" };
        self.ctx.metrics.command(cmd, result);
        let subject = if subject.is_empty() {
            String::new()
        } else {
            format!(" {}", escape(subject))
        };
        tracing::info!(
            "{cmd}{subject} {} ({} bytes, {} ms)",
            o.what,
            o.bytes,
            started.elapsed().as_millis()
        );
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

/// Sends an error reply to a command and notes the refusal for the log.
pub(crate) fn refuse<S: Write>(s: &mut S, reply: ErrorReply) -> Result<Outcome> {
    send_error(s, reply.clone())?;
    Ok(Outcome::refused(&reply))
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

/// Sends an error reply.
pub fn send_error<S: Write>(s: &mut S, reply: ErrorReply) -> Result<()> {
    frame::write_json(s, &Reply::<()>::Error(reply))
}

/// The command's name and what it is about, for the log.
fn describe(r: &Request) -> (&'static str, String) {
    let subject = match r {
        Request::Put(p) => p.filename.clone(),
        Request::Get(g) => g.filename.clone(),
        Request::Ls(ls) => ls.path.clone().unwrap_or_default(),
        Request::Mkdir { path, .. } | Request::Cd { path } => path.clone(),
        Request::Rm { filename, .. } => filename.clone(),
        Request::Mv { from, to } => format!("{from} -> {to}"),
        Request::Echo { .. } | Request::Prove { .. } | Request::Quota {} | Request::Pwd {} => {
            String::new()
        }
    };
    (r.cmd(), subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{context, request_frames, serve_bytes};
    use crate::wire::frame::encode_json;
    use crate::wire::message::Listing;
    use serde_json::{json, Value};
    use std::fs;

    fn replies(mut bytes: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(body)) = frame::read(&mut bytes, frame::MAX_REPLY_LEN) {
            out.push(serde_json::from_slice(&body).unwrap());
        }
        out
    }

    fn with_body(header: Value, body: &[u8]) -> Vec<u8> {
        let mut v = encode_json(&header).unwrap();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn seed_style_put_lands_and_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let input = with_body(
            json!({"cmd":"put","filename":"a.txt","filesize":5}),
            b"hello",
        );
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["status"], "ok");
        assert_eq!(out[0]["size"], 5);
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"hello");
    }

    #[test]
    fn put_with_ack_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let body = b"some bytes";
        let mut input = with_body(
            json!({"cmd":"put","filename":"d","filesize":body.len(),"ack":true,"digest":"blake3"}),
            body,
        );
        input.extend(request_frames(&[
            json!({"blake3": blake3::hash(body).to_hex().to_string()}),
        ]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0], json!({"status":"ok","offset":0}));
        assert_eq!(out[1]["status"], "ok", "{}", out[1]);
        assert_eq!(fs::read(dir.path().join("d")).unwrap(), body);
    }

    #[test]
    fn wrong_digest_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let mut input = with_body(
            json!({"cmd":"put","filename":"d","filesize":3,"digest":"blake3"}),
            b"abc",
        );
        input.extend(request_frames(&[
            json!({"blake3": blake3::hash(b"abd").to_hex().to_string()}),
        ]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "digest_mismatch");
        assert!(!dir.path().join("d").exists());
        assert!(!crate::storage::disk::files::partial_path(dir.path(), "d").exists());
    }

    #[test]
    fn refused_seed_put_is_drained_and_the_session_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let mut input = with_body(
            json!({"cmd":"put","filename":"..\\x","filesize":4}),
            b"evil",
        );
        input.extend(request_frames(&[json!({"cmd":"echo","text":"next"})]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "bad_name");
        assert_eq!(out[1]["text"], "NEXT");
    }

    #[test]
    fn too_large_is_refused_before_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path());
        ctx.max_file_size = 10;
        let input =
            request_frames(&[json!({"cmd":"put","filename":"big","filesize":11,"ack":true})]);
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "too_large");
        assert!(out[0]["message"].as_str().unwrap().contains("11 > 10"));
        // A huge unannounced body is not drained: reply, then close.
        let input = request_frames(&[
            json!({"cmd":"put","filename":"big","filesize":1u64 << 40}),
            json!({"cmd":"echo","text":"never"}),
        ]);
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["code"], "too_large");
    }

    #[test]
    fn truncated_body_keeps_partial_for_resume() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let input = with_body(json!({"cmd":"put","filename":"r","filesize":10}), b"12345");
        assert!(replies(&serve_bytes(&ctx, &input)).is_empty());
        assert!(!dir.path().join("r").exists());
        let partial = crate::storage::disk::files::partial_path(dir.path(), "r");
        assert_eq!(fs::read(&partial).unwrap(), b"12345");
        // Resume: the server offers offset 5, takes the rest, checks the
        // digest of the whole file.
        let mut input = with_body(
            json!({"cmd":"put","filename":"r","filesize":10,"resume":true,"digest":"blake3"}),
            b"67890",
        );
        input.extend(request_frames(&[
            json!({"blake3": blake3::hash(b"1234567890").to_hex().to_string()}),
        ]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0], json!({"status":"ok","offset":5}));
        assert_eq!(out[1]["received"], 5);
        assert_eq!(fs::read(dir.path().join("r")).unwrap(), b"1234567890");
    }

    #[test]
    fn get_sends_ready_bytes_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("g"), b"0123456789").unwrap();
        let ctx = context(dir.path());
        let input = request_frames(&[json!({"cmd":"get","filename":"g","offset":4})]);
        let out = serve_bytes(&ctx, &input);
        let mut cur = out.as_slice();
        let ready: Value = frame::read_json(&mut cur, 1 << 20).unwrap();
        assert_eq!(ready["filesize"], 10);
        assert_eq!(&cur[..6], b"456789");
        cur = &cur[6..];
        let digest: crate::wire::message::Digest = frame::read_json(&mut cur, 1 << 20).unwrap();
        assert_eq!(digest.blake3, blake3::hash(b"0123456789").to_hex().as_str());
        let input = request_frames(&[json!({"cmd":"get","filename":"g","offset":11})]);
        assert_eq!(
            replies(&serve_bytes(&ctx, &input))[0]["code"],
            "invalid_offset"
        );
    }

    #[test]
    fn folders_stay_inside_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let input = request_frames(&[
            json!({"cmd":"mkdir","path":"a/b"}),
            json!({"cmd":"cd","path":"a/b"}),
            json!({"cmd":"cd","path":"../../../.."}),
            json!({"cmd":"pwd"}),
            json!({"cmd":"cd","path":"/a"}),
            json!({"cmd":"ls"}),
            json!({"cmd":"rm","filename":"b"}),
            json!({"cmd":"cd","path":"nowhere"}),
        ]);
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["path"], "/a/b");
        assert_eq!(out[1]["path"], "/a/b");
        assert_eq!(out[2]["path"], "/");
        assert_eq!(out[3]["path"], "/");
        let listing: Listing = serde_json::from_value(out[5].clone()).unwrap();
        assert_eq!(listing.files[0].name, "b");
        assert_eq!(out[6]["filename"], "b");
        assert_eq!(out[7]["code"], "not_found");
    }
}
