//! One authenticated connection on the server: read a header, run the
//! command, send the reply, until the client hangs up.
//!
//! Generic over the stream, so tests drive it with byte buffers.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::accounts::Account;
use crate::auth::{server_proof, NONCE_LEN};
use crate::error::{Error, Result};
use crate::frame::{self, MAX_HEADER_LEN};
use crate::log::Logger;
use crate::names::{display_folder, escape, resolve_folder, validate_name};
use crate::protocol::{
    from_hex, parse_request, to_hex, Digest, Echoed, ErrorCode, ErrorReply, Folder, GetReady,
    GetRequest, Proof, PutDone, PutReady, PutRequest, Removed, Reply, Request, RequestError, Usage,
};
use crate::store::{self, UploadLocks};
use crate::transfer::{buffer_for, hash_prefix, pump, relay, PumpError};

/// A refused upload from a client that does not wait for `ready` still
/// sends its body; up to this many bytes are read and dropped so that the
/// connection stays usable. Larger bodies close the connection instead.
pub const MAX_DRAIN: u64 = 64 * 1024 * 1024;

/// What every connection of one server shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// The upload root.
    pub root: PathBuf,
    /// Largest file accepted.
    pub max_file_size: u64,
    /// Whether a put may replace an existing file.
    pub overwrite: bool,
    /// Whether `ok` waits for the data and the folder entry to reach the disk.
    pub durable: bool,
    /// How long a peer may stay silent, and how long one header may take.
    pub idle_timeout: Duration,
    /// Where events go.
    pub log: Logger,
    /// Names being uploaded right now.
    pub locks: UploadLocks,
}

/// A stream that can be told to give up reading at a point in time.
pub trait Transport: Read + Write {
    /// Makes reads fail with `TimedOut` after `deadline`; `None` restores the
    /// idle timeout for each read.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}
}

/// Whether the connection goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// The result of one command, for the log line.
struct Outcome {
    flow: Flow,
    what: String,
    bytes: u64,
}

impl Outcome {
    fn ok(what: impl Into<String>, bytes: u64) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            what: format!("ok {}", what.into()),
            bytes,
        }
    }
    fn refused(e: &ErrorReply) -> Outcome {
        Outcome {
            flow: Flow::Continue,
            what: format!("error {}: {}", e.code.as_str(), e.message),
            bytes: 0,
        }
    }
    fn closing(mut self) -> Outcome {
        self.flow = Flow::Close;
        self
    }
}

/// One logged-in user's connection.
pub struct Session<'a> {
    ctx: &'a Context,
    account: &'a Account,
    home: PathBuf,
    cwd: Vec<String>,
    peer: String,
}

impl<'a> Session<'a> {
    /// A session for `account`, starting in its home folder.
    pub fn new(ctx: &'a Context, account: &'a Account, peer: impl Into<String>) -> Session<'a> {
        Session {
            ctx,
            account,
            home: account.home(&ctx.root),
            cwd: Vec::new(),
            peer: peer.into(),
        }
    }

    /// Serves commands until the client hangs up.
    ///
    /// Returns `Ok` when the client closes between commands or after a
    /// malformed header was answered; fails when the connection breaks.
    pub fn serve<S: Transport>(&mut self, stream: &mut S) -> Result<()> {
        if let Err(e) = ensure_home(&self.home) {
            let reply = store::internal("creating the home folder", &e);
            send_error(stream, reply)?;
            return Ok(());
        }
        loop {
            // The whole header must arrive within the idle timeout.
            stream.set_deadline(Some(Instant::now() + self.ctx.idle_timeout));
            let header = frame::read(stream, MAX_HEADER_LEN);
            stream.set_deadline(None);
            let flow = match header {
                Ok(Some(h)) => self.handle(&h, stream)?,
                Ok(None) => return Ok(()),
                Err(e) if e.is_disconnect() => return Err(e),
                Err(e) => self.refuse_frame(&e, stream)?,
            };
            if flow == Flow::Close {
                return Ok(());
            }
        }
    }

    /// Answers a frame whose length was unacceptable. The stream cannot be
    /// resynchronised after that, so the connection closes.
    #[inline(never)]
    fn refuse_frame<S: Transport>(&mut self, e: &Error, stream: &mut S) -> Result<Flow> {
        self.log_command("?", "", Instant::now(), &bad_request(&e.to_string()));
        send_error(
            stream,
            ErrorReply::new(ErrorCode::BadRequest, e.to_string()),
        )?;
        Ok(Flow::Close)
    }

    /// Parses one header, runs it and logs it.
    #[inline(never)]
    fn handle<S: Transport>(&mut self, header: &[u8], stream: &mut S) -> Result<Flow> {
        let started = Instant::now();
        if self.ctx.log.enabled(crate::log::Level::Debug) {
            let shown = String::from_utf8_lossy(&header[..header.len().min(200)]);
            self.ctx.log.debug(format_args!(
                "{} header of {} bytes: {}",
                self.peer,
                header.len(),
                escape(&shown)
            ));
        }
        let request = match parse_request(header) {
            Ok(r) => r,
            Err(e) => {
                let (code, flow) = match e {
                    RequestError::UnknownCommand(_) => (ErrorCode::UnknownCommand, Flow::Continue),
                    RequestError::Malformed(_) => (ErrorCode::BadRequest, Flow::Close),
                };
                let reply = ErrorReply::new(code, e.to_string());
                let mut outcome = Outcome::refused(&reply);
                outcome.flow = flow;
                self.log_command("?", "", started, &outcome);
                send_error(stream, reply)?;
                return Ok(flow);
            }
        };
        let (cmd, subject) = describe(&request);
        let outcome = match self.run(request, stream) {
            Ok(o) => o,
            Err(e) => {
                self.ctx.log.info(format_args!(
                    "{} {} {cmd} {} aborted after {} ms: {e}",
                    self.peer,
                    self.account.label(),
                    escape(&subject),
                    started.elapsed().as_millis()
                ));
                return Err(e);
            }
        };
        self.log_command(cmd, &subject, started, &outcome);
        Ok(outcome.flow)
    }

    #[inline(never)]
    fn log_command(&self, cmd: &str, subject: &str, started: Instant, o: &Outcome) {
        let subject = if subject.is_empty() {
            String::new()
        } else {
            format!(" {}", escape(subject))
        };
        self.ctx.log.info(format_args!(
            "{} {} {cmd}{subject} {} ({} bytes, {} ms)",
            self.peer,
            self.account.label(),
            o.what,
            o.bytes,
            started.elapsed().as_millis()
        ));
    }

    // Kept out of line, like the handlers below it: an idle connection
    // waits in `serve`, and that frame should stay small so that thousands
    // of waiting threads hold little stack.
    #[inline(never)]
    fn run<S: Transport>(&mut self, request: Request, s: &mut S) -> Result<Outcome> {
        match request {
            Request::Put(put) => self.put(put, s),
            Request::Get(get) => self.get(get, s),
            Request::Ls {} => {
                let listing = self.folder().and_then(|dir| list_folder(&dir));
                respond(s, listing, |l| format!("{} entries", l.files.len()))
            }
            Request::Echo { text } => {
                let n = text.len() as u64;
                respond(
                    s,
                    Ok(Echoed {
                        text: text.to_uppercase(),
                    }),
                    |_| format!("{n} chars"),
                )
            }
            Request::Prove { nonce } => {
                let reply = match from_hex(&nonce) {
                    Some(n) if n.len() == NONCE_LEN => Ok(Proof {
                        proof: to_hex(&server_proof(self.account.secret.as_bytes(), &n)),
                    }),
                    _ => Err(ErrorReply::new(
                        ErrorCode::BadRequest,
                        format!("nonce must be {NONCE_LEN} bytes in hex"),
                    )),
                };
                respond(s, reply, |_| "proof sent".to_string())
            }
            Request::Quota {} => {
                let usage = self.usage();
                respond(s, usage, |u| format!("used {} of {:?}", u.used, u.quota))
            }
            Request::Pwd {} => {
                let path = display_folder(&self.cwd);
                respond(s, Ok(Folder { path }), |f| f.path.clone())
            }
            Request::Cd { path } => {
                let reply = self.cd(&path);
                respond(s, reply, |f| f.path.clone())
            }
            Request::Mkdir { path } => {
                let reply = self.mkdir(&path);
                respond(s, reply, |f| f.path.clone())
            }
            Request::Rm { filename } => {
                let reply = self.rm(&filename);
                respond(s, reply, |r| r.filename.clone())
            }
        }
    }

    /// The current folder on disk, checked again on every use.
    fn folder(&self) -> Result<PathBuf, ErrorReply> {
        store::folder(&self.home, &self.cwd)
    }

    fn usage(&self) -> Result<Usage, ErrorReply> {
        let used = store::usage(&self.home).map_err(|e| store::internal("measuring usage", &e))?;
        let free = store::disk_free(&self.home).map_err(|e| store::internal("statvfs", &e))?;
        let available = match self.account.quota {
            Some(q) => q.saturating_sub(used).min(free),
            None => free,
        };
        Ok(Usage {
            used,
            quota: self.account.quota,
            available,
        })
    }

    fn cd(&mut self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        store::folder(&self.home, &target)?;
        self.cwd = target;
        Ok(Folder {
            path: display_folder(&self.cwd),
        })
    }

    fn mkdir(&self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        let Some((last, parents)) = target.split_last() else {
            return Err(ErrorReply::new(ErrorCode::Exists, "the home folder exists"));
        };
        let mut dir = self.home.clone();
        for (i, part) in parents.iter().enumerate() {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Must be a real folder, not a file or a link.
                    store::folder(&self.home, &parents[..=i])?;
                }
                Err(e) => return Err(store::internal("creating a folder", &e)),
            }
        }
        match fs::create_dir(dir.join(last)) {
            Ok(()) => Ok(Folder {
                path: display_folder(&target),
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ErrorReply::new(
                ErrorCode::Exists,
                format!("{} already exists", display_folder(&target)),
            )),
            Err(e) => Err(store::internal("creating a folder", &e)),
        }
    }

    fn rm(&self, filename: &str) -> Result<Removed, ErrorReply> {
        let name = validate_name(filename).map_err(bad_name)?;
        let path = self.folder()?.join(name);
        let meta = fs::symlink_metadata(&path).map_err(|e| not_found(name, &e))?;
        let result = if meta.is_dir() {
            // An empty partial-upload folder does not count as content.
            let _ = fs::remove_dir(path.join(crate::names::PARTIAL_DIR));
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => Ok(Removed {
                filename: name.to_string(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Err(ErrorReply::new(
                ErrorCode::NotEmpty,
                format!("folder {} is not empty", escape(name)),
            )),
            Err(e) => Err(store::internal("removing", &e)),
        }
    }

    /// Checks everything about an upload that can be checked before its
    /// body: name, size, overwrite policy, concurrent uploads, disk space
    /// and quota. Returns where it goes and the offset to resume from.
    fn prepare_put(&self, req: &PutRequest) -> Result<PreparedPut, ErrorReply> {
        let name = validate_name(&req.filename).map_err(bad_name)?;
        if req.filesize > self.ctx.max_file_size {
            return Err(ErrorReply::new(
                ErrorCode::TooLarge,
                format!(
                    "file too large: {} > {} bytes (the server's --max-file-size)",
                    req.filesize, self.ctx.max_file_size
                ),
            ));
        }
        let dir = self.folder()?;
        let target = dir.join(name);
        let existing = match fs::symlink_metadata(&target) {
            Ok(m) if m.is_file() => Some(m.len()),
            Ok(_) => {
                return Err(ErrorReply::new(
                    ErrorCode::Exists,
                    format!("{} exists and is not a regular file", escape(name)),
                ))
            }
            Err(_) => None,
        };
        if existing.is_some() && !self.ctx.overwrite {
            return Err(ErrorReply::new(
                ErrorCode::Exists,
                format!(
                    "{} already exists and this server does not overwrite files",
                    escape(name)
                ),
            ));
        }
        let partial = store::partial_path(&dir, name);
        let lock = self
            .ctx
            .locks
            .try_lock(&partial, req.filesize)
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorCode::Busy,
                    format!("{} is being uploaded by another connection", escape(name)),
                )
            })?;
        let offset = if req.resume {
            store::partial_len(&partial, req.filesize).unwrap_or(0)
        } else {
            0
        };
        let needed = req.filesize - offset;
        let free = store::disk_free(&dir).map_err(|e| store::internal("statvfs", &e))?;
        if needed > free {
            return Err(ErrorReply::new(
                ErrorCode::NoSpace,
                format!("not enough disk space: {needed} bytes needed, {free} free"),
            ));
        }
        if let Some(quota) = self.account.quota {
            let used =
                store::usage(&self.home).map_err(|e| store::internal("measuring usage", &e))?;
            let kept = store::regular_len(&partial).unwrap_or(0);
            // Uploads still running count with their whole declared size,
            // not just the part they have written.
            let (written, declared) = self
                .ctx
                .locks
                .others_below(&self.home, &partial)
                .iter()
                .fold((0u64, 0u64), |(w, d), (path, size)| {
                    let len = store::regular_len(path).unwrap_or(0);
                    (w.saturating_add(len), d.saturating_add(*size))
                });
            // What the home will hold once every running upload is done and
            // this file has replaced the old one.
            let projected = used
                .saturating_sub(written)
                .saturating_add(declared)
                .saturating_sub(existing.unwrap_or(0))
                .saturating_sub(kept)
                .saturating_add(req.filesize);
            if projected > quota {
                return Err(ErrorReply::new(
                    ErrorCode::QuotaExceeded,
                    format!(
                        "quota exceeded: storing {} bytes would use {projected} of {quota} bytes",
                        req.filesize
                    ),
                ));
            }
        }
        Ok(PreparedPut {
            name: name.to_string(),
            target,
            partial,
            offset,
            replaces: existing.is_some(),
            _lock: lock,
        })
    }

    #[inline(never)]
    fn put<S: Transport>(&mut self, req: PutRequest, s: &mut S) -> Result<Outcome> {
        let prepared = match self.prepare_put(&req) {
            Ok(p) => p,
            Err(reply) => return refuse_put(&req, reply, s),
        };
        let offset = prepared.offset;
        let mut file = match store::open_partial(&prepared.partial, offset) {
            Ok(f) => f,
            Err(e) => return refuse_put(&req, store::internal("creating the upload file", &e), s),
        };
        if req.wants_ready() {
            frame::write_json(s, &Reply::Ok(PutReady { offset }))?;
        }
        let mut hasher = req.digest.map(|_| blake3::Hasher::new());
        let mut write_error: Option<io::Error> = None;
        if let Some(h) = hasher.as_mut() {
            if offset > 0 {
                if let Err(e) = fs::File::open(&prepared.partial)
                    .map_err(|e| Error::io("reading partial data", e))
                    .and_then(|mut f| hash_prefix(&mut f, offset, h))
                {
                    write_error = Some(e.into());
                }
            }
        }
        let body = req.filesize - offset;
        let mut buf = buffer_for(body);
        let (mut written, mut flushed) = (offset, offset);
        let durable = self.ctx.durable;
        let pumped = pump(s, body, &mut buf, |chunk| {
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            if write_error.is_none() {
                match file.write_all(chunk) {
                    Ok(()) => written += chunk.len() as u64,
                    Err(e) => write_error = Some(e),
                }
                if durable && written - flushed >= store::WRITEBACK_STEP {
                    store::start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
            }
            Ok(())
        });
        match pumped {
            Ok(_) => {}
            Err(PumpError::Source(e)) => {
                // The partial data stays for a resume; the lock is released.
                return Err(e);
            }
            Err(PumpError::Sink(e)) => return Err(Error::io("storing", e)),
        }
        let expected = match req.digest {
            Some(_) => {
                s.set_deadline(Some(Instant::now() + self.ctx.idle_timeout));
                let d = frame::read_json::<_, Digest>(s, MAX_HEADER_LEN);
                s.set_deadline(None);
                Some(d?)
            }
            None => None,
        };
        if let Some(e) = write_error {
            let reply = store::internal("writing the file", &e);
            return discard_upload(&prepared.partial, reply, s);
        }
        let actual = hasher.map(|h| h.finalize().to_hex().to_string());
        if let (Some(actual), Some(expected)) = (&actual, &expected) {
            if !actual.eq_ignore_ascii_case(&expected.blake3) {
                let reply = ErrorReply::new(
                    ErrorCode::DigestMismatch,
                    format!(
                        "digest mismatch for {}: the data does not match (resumed at {offset}); \
                         the partial data was discarded, send the file again",
                        escape(&prepared.name)
                    ),
                );
                return discard_upload(&prepared.partial, reply, s);
            }
        }
        let committed = (if durable { file.sync_all() } else { Ok(()) }).and_then(|()| {
            drop(file);
            store::commit(
                &prepared.partial,
                &prepared.target,
                self.ctx.overwrite,
                durable,
            )
        });
        if let Err(e) = committed {
            let reply = if e.kind() == io::ErrorKind::AlreadyExists {
                ErrorReply::new(
                    ErrorCode::Exists,
                    format!(
                        "{} was created meanwhile; not overwritten",
                        escape(&prepared.name)
                    ),
                )
            } else {
                store::internal("committing the file", &e)
            };
            return discard_upload(&prepared.partial, reply, s);
        }
        frame::write_json(
            s,
            &Reply::Ok(PutDone {
                filename: prepared.name.clone(),
                size: req.filesize,
                received: body,
                replaced: prepared.replaces,
                blake3: actual,
            }),
        )?;
        let resumed = if offset > 0 {
            format!(", resumed at {offset}")
        } else {
            String::new()
        };
        Ok(Outcome::ok(
            format!("stored {} bytes{resumed}", req.filesize),
            body,
        ))
    }

    #[inline(never)]
    fn get<S: Transport>(&mut self, req: GetRequest, s: &mut S) -> Result<Outcome> {
        let opened = validate_name(&req.filename)
            .map_err(bad_name)
            .and_then(|name| {
                let path = self.folder()?.join(name);
                let file = store::open_regular(&path).map_err(|e| not_found(name, &e))?;
                let meta = file.metadata().map_err(|e| store::internal("stat", &e))?;
                if req.offset > meta.len() {
                    return Err(ErrorReply::new(
                        ErrorCode::InvalidOffset,
                        format!(
                            "offset {} is beyond the end of the file ({} bytes)",
                            req.offset,
                            meta.len()
                        ),
                    ));
                }
                Ok((name.to_string(), file, meta))
            });
        let (name, mut file, meta) = match opened {
            Ok(v) => v,
            Err(reply) => return refuse(s, reply),
        };
        let filesize = meta.len();
        frame::write_json(
            s,
            &Reply::Ok(GetReady {
                filename: name,
                filesize,
                offset: req.offset,
                mtime: store::unix_secs(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
            }),
        )?;
        let mut hasher = blake3::Hasher::new();
        hash_prefix(&mut file, req.offset, &mut hasher)?;
        let body = filesize - req.offset;
        relay(&mut file, s, body, Some(&mut hasher), |_| {}).map_err(|e| match e {
            // The file shrank under us: the promised length cannot be kept.
            PumpError::Source(e) => e,
            PumpError::Sink(e) => Error::io("sending file data", e),
        })?;
        frame::write_json(
            s,
            &Digest {
                blake3: hasher.finalize().to_hex().to_string(),
            },
        )?;
        let from = if req.offset > 0 {
            format!(" from {}", req.offset)
        } else {
            String::new()
        };
        Ok(Outcome::ok(format!("sent {filesize} bytes{from}"), body))
    }
}

struct PreparedPut {
    name: String,
    target: PathBuf,
    partial: PathBuf,
    offset: u64,
    /// Whether a file of that name existed when the upload started.
    replaces: bool,
    _lock: store::UploadLock,
}

/// Answers a refused upload. A client that waits for `ready` sends no body;
/// one that does not (the seed's) is sending it now, so it is read and
/// dropped, up to [`MAX_DRAIN`] bytes, to keep the stream in step.
fn refuse_put<S: Transport>(req: &PutRequest, reply: ErrorReply, s: &mut S) -> Result<Outcome> {
    if req.wants_ready() {
        return refuse(s, reply);
    }
    if req.filesize > MAX_DRAIN {
        return refuse(s, reply).map(Outcome::closing);
    }
    let mut buf = buffer_for(req.filesize);
    pump(s, req.filesize, &mut buf, |_| Ok(())).map_err(|e| match e {
        PumpError::Source(e) => e,
        PumpError::Sink(e) => Error::io("draining", e),
    })?;
    if req.digest.is_some() {
        frame::read(s, MAX_HEADER_LEN)?;
    }
    refuse(s, reply)
}

/// Deletes an upload that must not be committed and answers `reply`.
fn discard_upload<S: Transport>(partial: &Path, reply: ErrorReply, s: &mut S) -> Result<Outcome> {
    let _ = fs::remove_file(partial);
    refuse(s, reply)
}

/// Sends an error reply to a command and notes the refusal for the log.
fn refuse<S: Write>(s: &mut S, reply: ErrorReply) -> Result<Outcome> {
    send_error(s, reply.clone())?;
    Ok(Outcome::refused(&reply))
}

fn ensure_home(home: &Path) -> io::Result<()> {
    match fs::create_dir(home) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(home)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the home folder is not a folder (or is a symbolic link)",
                ))
            }
        }
        Err(e) => Err(e),
    }
}

fn list_folder(dir: &Path) -> Result<crate::protocol::Listing, ErrorReply> {
    store::list(dir).map_err(|e| store::internal("listing", &e))
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

fn bad_request(message: &str) -> Outcome {
    Outcome::refused(&ErrorReply::new(ErrorCode::BadRequest, message)).closing()
}

fn bad_name(e: crate::names::NameError) -> ErrorReply {
    ErrorReply::new(ErrorCode::BadName, format!("invalid name: {e}"))
}

fn not_found(name: &str, e: &io::Error) -> ErrorReply {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no such file: {}", escape(name)),
        ),
        _ if e.raw_os_error() == Some(libc::ELOOP) => ErrorReply::new(
            ErrorCode::BadName,
            format!("{} is a symbolic link, which is not followed", escape(name)),
        ),
        io::ErrorKind::InvalidInput => ErrorReply::new(
            ErrorCode::NotFound,
            format!("{} is not a regular file", escape(name)),
        ),
        _ => store::internal(&format!("opening {}", escape(name)), e),
    }
}

fn describe(r: &Request) -> (&'static str, String) {
    match r {
        Request::Put(p) => ("put", p.filename.clone()),
        Request::Get(g) => ("get", g.filename.clone()),
        Request::Ls {} => ("ls", String::new()),
        Request::Echo { .. } => ("echo", String::new()),
        Request::Prove { .. } => ("prove", String::new()),
        Request::Quota {} => ("quota", String::new()),
        Request::Mkdir { path } => ("mkdir", path.clone()),
        Request::Cd { path } => ("cd", path.clone()),
        Request::Pwd {} => ("pwd", String::new()),
        Request::Rm { filename } => ("rm", filename.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_json;
    use crate::protocol::Listing;
    use crate::testing::{context, serve_bytes};
    use serde_json::{json, Value};

    fn frames(values: &[Value]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| encode_json(v).unwrap())
            .collect()
    }

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
        input.extend(frames(&[
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
        input.extend(frames(&[
            json!({"blake3": blake3::hash(b"abd").to_hex().to_string()}),
        ]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "digest_mismatch");
        assert!(!dir.path().join("d").exists());
        assert!(!store::partial_path(dir.path(), "d").exists());
    }

    #[test]
    fn refused_seed_put_is_drained_and_the_session_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let mut input = with_body(json!({"cmd":"put","filename":"../x","filesize":4}), b"evil");
        input.extend(frames(&[json!({"cmd":"echo","text":"next"})]));
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "bad_name");
        assert_eq!(out[1]["text"], "NEXT");
    }

    #[test]
    fn too_large_is_refused_before_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path());
        ctx.max_file_size = 10;
        let input = frames(&[json!({"cmd":"put","filename":"big","filesize":11,"ack":true})]);
        let out = replies(&serve_bytes(&ctx, &input));
        assert_eq!(out[0]["code"], "too_large");
        assert!(out[0]["message"].as_str().unwrap().contains("11 > 10"));
        // A huge unannounced body is not drained: reply, then close.
        let input = frames(&[
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
        let partial = store::partial_path(dir.path(), "r");
        assert_eq!(fs::read(&partial).unwrap(), b"12345");
        // Resume: the server offers offset 5, takes the rest, checks the
        // digest of the whole file.
        let mut input = with_body(
            json!({"cmd":"put","filename":"r","filesize":10,"resume":true,"digest":"blake3"}),
            b"67890",
        );
        input.extend(frames(&[
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
        let input = frames(&[json!({"cmd":"get","filename":"g","offset":4})]);
        let out = serve_bytes(&ctx, &input);
        let mut cur = out.as_slice();
        let ready: Value = frame::read_json(&mut cur, 1 << 20).unwrap();
        assert_eq!(ready["filesize"], 10);
        assert_eq!(&cur[..6], b"456789");
        cur = &cur[6..];
        let digest: Digest = frame::read_json(&mut cur, 1 << 20).unwrap();
        assert_eq!(digest.blake3, blake3::hash(b"0123456789").to_hex().as_str());
        let input = frames(&[json!({"cmd":"get","filename":"g","offset":11})]);
        assert_eq!(
            replies(&serve_bytes(&ctx, &input))[0]["code"],
            "invalid_offset"
        );
    }

    #[test]
    fn folders_stay_inside_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path());
        let input = frames(&[
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
