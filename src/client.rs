//! The client side of the protocol: connect, log in, check that the server
//! knows the secret too, and run commands.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::auth::{client_handshake, new_nonce, verify_server_proof};
use crate::error::{Error, Result};
use crate::frame::{self, MAX_REPLY_LEN};
use crate::names::{escape, validate_name};
use crate::protocol::{
    from_hex, to_hex, Digest, DigestAlgorithm, Echoed, Folder, GetReady, GetRequest, Listing,
    Proof, PutDone, PutReady, PutRequest, Removed, Reply, Request, Usage,
};
use crate::secret::Secret;
use crate::transfer::{hash_prefix, relay, PumpError};

/// Files up to this size are sent in one round trip, without asking the
/// server for a resume offset first.
pub const SMALL_FILE: u64 = 64 * 1024;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The shared secret.
    pub secret: Secret,
    /// Refuse to transfer files unless the server proves it knows the secret.
    pub require_proof: bool,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Longest wait for any single read or write.
    pub io_timeout: Duration,
}

impl ClientOptions {
    /// Options with the defaults: proof required, 10 s to connect, 120 s per
    /// read or write.
    pub fn new(secret: Secret) -> ClientOptions {
        ClientOptions {
            secret,
            require_proof: true,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(120),
        }
    }
}

/// Told how a transfer advances, to draw a progress bar.
pub trait Progress {
    /// A transfer of `total` bytes starts; `offset` of them were moved by an
    /// earlier attempt and will not be sent again.
    fn start(&mut self, _name: &str, _total: u64, _offset: u64) {}
    /// `n` more bytes moved.
    fn advance(&mut self, _n: u64) {}
    /// The transfer ended, well or not.
    fn finish(&mut self) {}
}

/// Progress that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    /// The server's reply.
    pub done: PutDone,
    /// Where the upload resumed; 0 when sent from the start.
    pub resumed_from: u64,
    /// Whether the partial data on the server was found bad and the file
    /// was sent again from the start.
    pub restarted: bool,
    /// Whether the server confirmed the upload. A server that speaks only
    /// the original protocol never does.
    pub confirmed: bool,
    /// Time on the wire.
    pub elapsed: Duration,
}

/// What a get did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetReport {
    /// Where the file was written.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes received in this run.
    pub received: u64,
    /// Where the download resumed; 0 when fetched from the start.
    pub resumed_from: u64,
    /// Whether local partial data was found bad and the file was fetched
    /// again.
    pub restarted: bool,
    /// Time on the wire.
    pub elapsed: Duration,
}

/// A logged-in connection to a server.
pub struct Client {
    addr: SocketAddr,
    options: ClientOptions,
    stream: TcpStream,
    dialect: Dialect,
    /// Set when a failure left the stream out of step; the next command
    /// reconnects.
    broken: bool,
}

impl Client {
    /// Connects to `server` (`host:port`), logs in and, unless the options
    /// say otherwise, has the server prove that it knows the secret.
    ///
    /// Fails when the address does not resolve, the connection is refused
    /// or times out, the server rejects the secret ([`Error::AuthFailed`]),
    /// or it cannot prove itself ([`Error::ServerNotProven`]).
    pub fn connect(server: &str, options: ClientOptions) -> Result<Client> {
        let addr = server
            .to_socket_addrs()
            .map_err(|e| Error::Usage(format!("cannot resolve {server}: {e}")))?
            .next()
            .ok_or_else(|| Error::Usage(format!("{server} has no address")))?;
        let (stream, dialect) = open(addr, &options)?;
        Ok(Client {
            addr,
            options,
            stream,
            dialect,
            broken: false,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a new connection if the current one is broken or the server
    /// has closed it (for example after its idle timeout). Returns whether
    /// it reconnected.
    ///
    /// Fails like [`Client::connect`].
    pub fn ensure_connected(&mut self) -> Result<bool> {
        if !self.broken && !peer_closed(&self.stream) {
            return Ok(false);
        }
        (self.stream, self.dialect) = open(self.addr, &self.options)?;
        self.broken = false;
        Ok(true)
    }

    /// Sends `text`; returns it upper-cased by the server.
    pub fn echo(&mut self, text: &str) -> Result<String> {
        let r: Echoed = self.call(&Request::Echo { text: text.into() })?;
        Ok(r.text)
    }

    /// Lists the current folder on the server.
    pub fn ls(&mut self) -> Result<Listing> {
        self.call(&Request::Ls {})
    }

    /// Shows used and available space.
    pub fn quota(&mut self) -> Result<Usage> {
        self.call(&Request::Quota {})
    }

    /// Creates a folder on the server.
    pub fn mkdir(&mut self, path: &str) -> Result<String> {
        let f: Folder = self.call(&Request::Mkdir { path: path.into() })?;
        Ok(f.path)
    }

    /// Changes the current folder on the server.
    pub fn cd(&mut self, path: &str) -> Result<String> {
        let f: Folder = self.call(&Request::Cd { path: path.into() })?;
        Ok(f.path)
    }

    /// The current folder on the server.
    pub fn pwd(&mut self) -> Result<String> {
        let f: Folder = self.call(&Request::Pwd {})?;
        Ok(f.path)
    }

    /// Removes a file or an empty folder on the server.
    pub fn rm(&mut self, name: &str) -> Result<String> {
        let r: Removed = self.call(&Request::Rm {
            filename: name.into(),
        })?;
        Ok(r.filename)
    }

    fn require_replies(&self) -> Result<()> {
        match self.dialect {
            Dialect::Replies => Ok(()),
            Dialect::Original => Err(Error::Usage(
                "this server speaks only the original protocol, which has put and nothing else"
                    .into(),
            )),
        }
    }

    /// Sends one request and reads its reply.
    fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        self.require_replies()?;
        self.guard(|c| {
            frame::write_json(&mut c.stream, request)?;
            read_reply(&mut c.stream)
        })
    }

    /// Runs `f`, marking the connection broken if `f` leaves it out of step.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let result = f(self);
        if let Err(e) = &result {
            if !matches!(e, Error::Remote { .. } | Error::Usage(_)) {
                self.broken = true;
            }
        }
        result
    }

    /// Uploads the local file at `path` under its base name, resuming
    /// partial data the server kept from an earlier attempt, and checking
    /// the whole file's digest before the server commits it.
    ///
    /// Fails with [`Error::Usage`] when the local file cannot be read or has
    /// no usable name, with [`Error::Remote`] when the server refuses, and
    /// with an I/O error when the connection breaks (run it again to
    /// resume).
    pub fn put(&mut self, path: &Path, progress: &mut dyn Progress) -> Result<PutReport> {
        let name = local_upload_name(path)?;
        let mut file = File::open(path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let started = Instant::now();
        if self.dialect == Dialect::Original {
            return self.put_original(&name, &mut file, meta.len(), progress);
        }
        if meta.len() <= SMALL_FILE {
            return self.put_small(&name, &mut file, progress);
        }
        match self.put_once(&name, &mut file, meta.len(), true, progress) {
            Err(Error::Remote { code, .. }) if code == "digest_mismatch" => {
                // The server's partial data did not belong to this file; it
                // has discarded it. Send everything once more.
                let mut report = self.put_once(&name, &mut file, meta.len(), false, progress)?;
                report.restarted = true;
                report.elapsed = started.elapsed();
                Ok(report)
            }
            other => other,
        }
    }

    /// A small file in one round trip: header, bytes and digest in a single
    /// write, then the reply. Nothing to resume at this size, so no `ready`
    /// is waited for; a refused upload's few bytes are drained by the server.
    fn put_small(
        &mut self,
        name: &str,
        file: &mut File,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        let mut body = Vec::new();
        file.take(SMALL_FILE + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::Usage(format!("cannot read {name}: {e}")))?;
        if body.len() as u64 > SMALL_FILE {
            return Err(Error::Usage(format!(
                "{name} grew while it was being read; try again"
            )));
        }
        let size = body.len() as u64;
        let mut message = frame::encode_json(&Request::Put(PutRequest {
            digest: Some(DigestAlgorithm::Blake3),
            ..PutRequest::plain(name, size)
        }))?;
        message.extend_from_slice(&body);
        message.extend(frame::encode_json(&Digest {
            blake3: blake3::hash(&body).to_hex().to_string(),
        })?);
        progress.start(name, size, 0);
        self.guard(|c| {
            c.stream
                .write_all(&message)
                .map_err(|e| Error::io("sending the file", e))?;
            progress.advance(size);
            progress.finish();
            let done: PutDone = read_reply(&mut c.stream)?;
            Ok(PutReport {
                done,
                resumed_from: 0,
                restarted: false,
                confirmed: true,
                elapsed: started.elapsed(),
            })
        })
    }

    /// A put the way the original client made it: header and bytes, no
    /// reply. The server cannot confirm it.
    fn put_original(
        &mut self,
        name: &str,
        file: &mut File,
        size: u64,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        self.guard(|c| {
            let request = Request::Put(PutRequest::plain(name, size));
            frame::write_json(&mut c.stream, &request)?;
            progress.start(name, size, 0);
            c.send_body(name, file, size, None, progress)?;
            Ok(PutReport {
                done: PutDone {
                    filename: name.to_string(),
                    size,
                    received: size,
                    replaced: false,
                    blake3: None,
                },
                resumed_from: 0,
                restarted: false,
                confirmed: false,
                elapsed: started.elapsed(),
            })
        })
    }

    /// Streams `len` bytes of `file` from where it stands, hashing them
    /// into `hasher` when there is one.
    fn send_body(
        &mut self,
        name: &str,
        file: &mut File,
        len: u64,
        hasher: Option<&mut blake3::Hasher>,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let sent = relay(file, &mut self.stream, len, hasher, |n| progress.advance(n));
        progress.finish();
        match sent {
            Ok(_) => Ok(()),
            Err(PumpError::Source(e)) => {
                // The header promised bytes that will not come: out of step.
                self.broken = true;
                Err(Error::Usage(format!(
                    "{name} changed size while it was being sent ({e}); nothing was stored"
                )))
            }
            Err(PumpError::Sink(e)) => Err(Error::io("sending file data", e)),
        }
    }

    fn put_once(
        &mut self,
        name: &str,
        file: &mut File,
        size: u64,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        self.guard(|c| {
            let request = Request::Put(PutRequest {
                ack: true,
                resume,
                digest: Some(DigestAlgorithm::Blake3),
                ..PutRequest::plain(name, size)
            });
            frame::write_json(&mut c.stream, &request)?;
            let ready: PutReady = read_reply(&mut c.stream)?;
            let offset = ready.offset;
            if offset > size {
                return Err(Error::Malformed(format!(
                    "server asked to resume at {offset}, beyond the file's {size} bytes"
                )));
            }
            let mut hasher = blake3::Hasher::new();
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("reading the local file", e))?;
            hash_prefix(file, offset, &mut hasher)?;
            progress.start(name, size, offset);
            c.send_body(name, file, size - offset, Some(&mut hasher), progress)?;
            frame::write_json(
                &mut c.stream,
                &Digest {
                    blake3: hasher.finalize().to_hex().to_string(),
                },
            )?;
            let done: PutDone = read_reply(&mut c.stream)?;
            Ok(PutReport {
                done,
                resumed_from: offset,
                restarted: false,
                confirmed: true,
                elapsed: started.elapsed(),
            })
        })
    }

    /// Downloads `name` from the current folder to `local` (default: the
    /// same name in the working folder). Data goes to a hidden partial file
    /// next to it, which a later get resumes; the file appears under its
    /// name only once its digest matched.
    ///
    /// Fails with [`Error::Remote`] when the server refuses (no local file
    /// is created), [`Error::DigestMismatch`] when the data is corrupt, and
    /// an I/O error when the connection breaks (run it again to resume).
    pub fn get(
        &mut self,
        name: &str,
        local: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<GetReport> {
        self.require_replies()?;
        let name = validate_name(name)
            .map_err(|e| Error::Usage(format!("invalid remote name {:?}: {e}", escape(name))))?;
        let target = match local {
            Some(p) if p.is_dir() => p.join(name),
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(name),
        };
        let partial = partial_download_path(&target)?;
        let started = Instant::now();
        let resuming = fs::symlink_metadata(&partial).is_ok();
        let first = self.get_once(name, &target, &partial, progress);
        let stale_partial = match &first {
            Err(Error::DigestMismatch { .. }) => true,
            Err(Error::Remote { code, .. }) => code == "invalid_offset",
            _ => false,
        };
        if !(resuming && stale_partial) {
            return first;
        }
        // The local partial data did not belong to this file: start over once.
        let _ = fs::remove_file(&partial);
        let mut report = self.get_once(name, &target, &partial, progress)?;
        report.restarted = true;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn get_once(
        &mut self,
        name: &str,
        target: &Path,
        partial: &Path,
        progress: &mut dyn Progress,
    ) -> Result<GetReport> {
        let started = Instant::now();
        let offset = fs::symlink_metadata(partial)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .unwrap_or(0);
        self.guard(|c| {
            frame::write_json(
                &mut c.stream,
                &Request::Get(GetRequest {
                    filename: name.to_string(),
                    offset,
                }),
            )?;
            let ready: GetReady = read_reply(&mut c.stream)?;
            if ready.offset != offset || ready.filesize < offset {
                return Err(Error::Malformed("server sent a different offset".into()));
            }
            let mut opts = OpenOptions::new();
            opts.read(true).write(true).create(true);
            let mut file = opts
                .open(partial)
                .map_err(|e| Error::Usage(format!("cannot write {}: {e}", partial.display())))?;
            let mut hasher = blake3::Hasher::new();
            hash_prefix(&mut file, offset, &mut hasher)?;
            file.set_len(offset)
                .map_err(|e| Error::io(format!("truncating {}", partial.display()), e))?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(format!("seeking {}", partial.display()), e))?;
            progress.start(name, ready.filesize, offset);
            let body = ready.filesize - offset;
            let got = relay(&mut c.stream, &mut file, body, Some(&mut hasher), |n| {
                progress.advance(n)
            });
            progress.finish();
            match got {
                Ok(_) => {}
                Err(PumpError::Source(e)) => return Err(e),
                Err(PumpError::Sink(e)) => {
                    let _ = fs::remove_file(partial);
                    return Err(Error::io(format!("writing {}", partial.display()), e));
                }
            }
            let digest: Digest = frame::read_json(&mut c.stream, MAX_REPLY_LEN)?;
            if digest.blake3 != hasher.finalize().to_hex().as_str() {
                let _ = fs::remove_file(partial);
                return Err(Error::DigestMismatch { name: escape(name) });
            }
            file.sync_all()
                .and_then(|()| fs::rename(partial, target))
                .map_err(|e| Error::io(format!("saving {}", target.display()), e))?;
            Ok(GetReport {
                path: target.to_path_buf(),
                size: ready.filesize,
                received: body,
                resumed_from: offset,
                restarted: false,
                elapsed: started.elapsed(),
            })
        })
    }
}

/// How long a server may take to answer the proof request. The original
/// Python server never answers it (it ignores unknown commands).
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server turned out to speak at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Replies to every request, and proved it holds the secret (or was
    /// allowed not to).
    Replies,
    /// The original protocol: takes seed-style puts and never answers.
    /// Only reached with `require_proof` off.
    Original,
}

/// Connects, logs in and checks the server's proof.
fn open(addr: SocketAddr, options: &ClientOptions) -> Result<(TcpStream, Dialect)> {
    let mut stream = TcpStream::connect_timeout(&addr, options.connect_timeout).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::ConnectionRefused => " (is ftp-server running there?)",
            _ => "",
        };
        Error::io(format!("cannot connect to {addr}{hint}"), e)
    })?;
    let _ = stream.set_nodelay(true);
    let set_timeouts = |s: &TcpStream, read: Duration| {
        s.set_read_timeout(Some(read))
            .and_then(|()| s.set_write_timeout(Some(options.io_timeout)))
            .map_err(|e| Error::io("setting timeouts", e))
    };
    set_timeouts(&stream, options.io_timeout)?;
    client_handshake(&mut stream, options.secret.as_bytes())?;
    let nonce = new_nonce();
    frame::write_json(
        &mut stream,
        &Request::Prove {
            nonce: to_hex(&nonce),
        },
    )?;
    set_timeouts(&stream, PROOF_TIMEOUT.min(options.io_timeout))?;
    let answer = read_reply::<_, Proof>(&mut stream);
    set_timeouts(&stream, options.io_timeout)?;
    let unproven = |why: String| {
        if options.require_proof {
            Err(Error::ServerNotProven(why))
        } else {
            Ok(())
        }
    };
    let dialect = match answer {
        Ok(proof) => {
            let valid = from_hex(&proof.proof)
                .map(|p| verify_server_proof(options.secret.as_bytes(), &nonce, &p))
                .unwrap_or(false);
            if !valid {
                // A wrong proof is an impostor, whatever the options say.
                return Err(Error::ServerNotProven(
                    "its proof is wrong: it does not hold our secret".into(),
                ));
            }
            Dialect::Replies
        }
        Err(e) if is_timeout(&e) => {
            unproven(format!(
                "it did not answer the proof request within {} s",
                PROOF_TIMEOUT.as_secs()
            ))?;
            Dialect::Original
        }
        Err(e) if e.is_disconnect() => return Err(Error::AuthFailed),
        Err(e @ Error::Remote { .. }) => {
            unproven(e.to_string())?;
            Dialect::Replies
        }
        Err(e) => return Err(e),
    };
    Ok((stream, dialect))
}

fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Reads a reply frame and turns an error reply into [`Error::Remote`].
fn read_reply<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T> {
    let reply: Reply<T> = frame::read_json(r, MAX_REPLY_LEN)?;
    reply.into_result()
}

/// Whether the server has closed an idle connection (a zero-length peek
/// that does not block).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut probe = [0u8; 1];
    let closed = match stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false, // unexpected data; the next read will tell
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}

/// The name a local file or folder is uploaded under: its base name, which
/// must follow the server's naming rules.
///
/// Fails when the path has no base name, it is not UTF-8, or the server
/// would refuse it.
pub fn local_upload_name(path: &Path) -> Result<String> {
    let base = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::Usage(format!(
            "{} has no name that can be uploaded (it must be valid UTF-8)",
            path.display()
        ))
    })?;
    validate_name(base)
        .map(str::to_string)
        .map_err(|e| Error::Usage(format!("cannot upload {}: {e}", path.display())))
}

/// The hidden file a download is written to before it is complete:
/// `.NAME.ftp-part` next to the target.
pub fn partial_download_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a file path", target.display())))?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".ftp-part");
    Ok(target.with_file_name(hidden))
}
