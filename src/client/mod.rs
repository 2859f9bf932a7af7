//! The client side of the protocol: connect, log in, check that the server
//! knows the secret too, and run commands.
//!
//! [`connect`] opens a connection and finds out what the server speaks;
//! [`transfer`] moves files; [`shell`] and [`command`] are what a person
//! at a terminal uses.

pub mod batch;
mod beneath;
mod checks;
pub(crate) mod command;
mod complete;
pub mod connect;
pub(crate) mod delta;
mod delta_get;
mod files;
pub(crate) mod filter;
mod listing;
mod lost;
pub(crate) mod options;
pub(crate) mod overwrite;
mod partial;
mod pipeline;
mod progress;
mod prompt;
mod report;
#[cfg(test)]
mod scripted;
pub(crate) mod shell;
mod stream;
pub(crate) mod sync;
pub(crate) mod transfer;
pub(crate) mod tree;
pub mod trust;
mod typeahead;

pub use crate::client::options::{ClientOptions, MIN_RATE, REPLY_TIMEOUT, STALL_TIMEOUT};

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::connect::{open, read_reply, Dialect};
use crate::client::listing::read_pages;
use crate::client::lost::{connection_lost, from_folder};
use crate::client::stream::ClientStream;
use crate::client::trust::TlsClient;
use crate::config::address::ServerAddress;
use crate::error::{Error, Result};
use crate::wire::frame;
use crate::wire::message::{Echoed, Folder, Listing, LsRequest, Moved, Removed, Request, Usage};

pub(crate) use crate::client::partial::local_upload_name;
pub use crate::client::report::{GetReport, NoProgress, Progress, PutReport};
pub(crate) use crate::client::transfer::SMALL_FILE;
pub(crate) use crate::client::typeahead::with_echo;

/// Most bytes a command may have sent for its failure to be taken for
/// the server's idle close: a request, not a file's body.
const IDLE_CLOSE_SENT: u64 = 64 * 1024;

/// A logged-in connection to a server.
pub struct Client {
    addr: SocketAddr,
    pub(crate) options: ClientOptions,
    pub(crate) stream: ClientStream,
    pub(crate) dialect: Dialect,
    tls: TlsClient,
    notice: Option<String>,
    /// Set when a failure left the stream out of step; the next command
    /// reconnects.
    broken: bool,
    /// The server folder this client is in, as the last `cd` reply showed
    /// it (`/` at first): where a new connection goes before anything else.
    folder: String,
    /// Why the folder could not be entered again after a reconnect; until
    /// a `cd` succeeds, commands that touch files are refused.
    lost: Option<Error>,
}

impl Client {
    /// Connects to `server` (`HOST`, `HOST:PORT`, `[IPv6]:PORT`, as
    /// `ServerAddress::parse` reads it; the port defaults to 8080), logs
    /// in and, unless the options say otherwise, has the server prove that
    /// it knows the secret.
    ///
    /// Fails when the address is malformed or does not resolve, the
    /// connection is refused or times out, the server rejects the secret
    /// ([`Error::AuthFailed`]), or it cannot prove itself
    /// ([`Error::ServerNotProven`]).
    pub fn connect(server: &str, options: ClientOptions) -> Result<Client> {
        let server = ServerAddress::parse(server).map_err(Error::Usage)?;
        let addr = server.resolve()?;
        // Pins are kept under one spelling, whichever way it was written.
        let tls = TlsClient::new(&server.to_string(), &options.trust)?;
        let opened = open(addr, &options, &tls, false)?;
        Ok(Client {
            addr,
            options,
            stream: opened.stream,
            dialect: opened.dialect,
            tls,
            notice: opened.notice,
            broken: false,
            folder: "/".into(),
            lost: None,
        })
    }

    /// Stops the running command whenever `flag` is raised: a transfer
    /// between two chunks, and any wait on the server within a fraction
    /// of a second.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.stream.set_interrupt(Some(flag.clone()));
        self.options.interrupt = Some(flag);
    }

    /// Starts the budget of a command: [`ClientOptions::reply_timeout`]
    /// of waiting on the server, and a second more per KiB moved.
    fn restart_budget(&mut self) {
        let grace = self.options.reply_timeout;
        self.stream.restart(grace, Some(MIN_RATE));
    }

    /// Runs `f` with the reply timeout and the connect timeout cut to
    /// `limit`: for work the user cannot stop, such as the listing a Tab
    /// completion asks for while the terminal is in raw mode.
    pub(crate) fn within<T>(&mut self, limit: Duration, f: impl FnOnce(&mut Client) -> T) -> T {
        let saved = (self.options.reply_timeout, self.options.connect_timeout);
        self.options.reply_timeout = saved.0.min(limit);
        self.options.connect_timeout = saved.1.min(limit);
        let done = f(self);
        (self.options.reply_timeout, self.options.connect_timeout) = saved;
        done
    }

    /// Where the connection stands before a command, to tell afterwards
    /// whether it met the server's idle close (see [`Client::met_idle_close`]).
    pub(crate) fn mark(&mut self) -> [u64; 2] {
        self.stream.totals()
    }

    /// Whether the command begun at `mark` failed because the server had
    /// just closed the idle connection: the connection broke before a byte
    /// of an answer came and after no more than a request went out, and
    /// not by a stall or Ctrl-C. The server never read that request, so
    /// running the command again on a new connection is safe.
    pub(crate) fn met_idle_close(&mut self, mark: [u64; 2]) -> bool {
        let [received, sent] = self.stream.totals();
        let flag = self.options.interrupt.as_ref();
        let interrupted = flag.is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst));
        self.broken
            && received == mark[0]
            && sent - mark[1] <= IDLE_CLOSE_SENT
            && !self.stream.has_stalled()
            && !interrupted
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a new connection if the current one is broken or the server
    /// has closed it (for example after its idle timeout), and goes back to
    /// the server folder the client was in. Returns whether it reconnected.
    ///
    /// Fails like [`Client::connect`], and with [`Error::FolderLost`] when
    /// the folder cannot be entered again (it was removed, say); commands
    /// that touch files are then refused until a `cd` succeeds, so that
    /// none runs in the wrong folder.
    pub fn ensure_connected(&mut self) -> Result<bool> {
        if !self.broken && !self.stream.peer_closed() {
            self.restart_budget();
            return Ok(false);
        }
        let opened = open(self.addr, &self.options, &self.tls, true)?;
        (self.stream, self.dialect) = (opened.stream, opened.dialect);
        self.broken = false;
        self.restart_budget();
        self.return_to_folder()?;
        Ok(true)
    }

    /// On a new connection, which starts at `/`: `cd` to where the old one
    /// was.
    fn return_to_folder(&mut self) -> Result<()> {
        if self.folder == "/" || self.dialect != Dialect::Replies {
            self.lost = None;
            return Ok(());
        }
        let folder = self.folder.clone();
        match self.exchange::<Folder>(&Request::Cd {
            path: folder.clone(),
        }) {
            Ok(f) => {
                self.folder = f.path;
                self.lost = None;
                Ok(())
            }
            // The connection broke again: the next command retries.
            Err(e) if e.is_disconnect() => Err(e),
            Err(cause) => {
                self.lost = Some(cause);
                self.require_folder()
            }
        }
    }

    /// Fails with [`Error::FolderLost`] while the folder is lost.
    fn require_folder(&self) -> Result<()> {
        let Some(cause) = &self.lost else {
            return Ok(());
        };
        let cause = match cause {
            Error::Remote { code, message } => Error::Remote {
                code: code.clone(),
                message: message.clone(),
            },
            other => Error::Usage(other.to_string()),
        };
        Err(Error::FolderLost {
            folder: self.folder.clone(),
            cause: Box::new(cause),
        })
    }

    /// The server folder this client is in, as the server last showed it
    /// (`/` is the home folder); a new connection goes back to it.
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// Closes this connection and opens a new one. Over TLS the new one
    /// resumes the TLS session, so it costs less than the first.
    ///
    /// Fails like [`Client::connect`].
    pub fn reconnect(&mut self) -> Result<()> {
        self.stream.shutdown();
        self.broken = true;
        self.ensure_connected().map(|_| ())
    }

    /// Something the login has to tell the user once, such as the pin
    /// taken at a first contact; `None` afterwards.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    /// Whether the connection is encrypted (TLS) rather than the seed's
    /// plaintext dialect.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.stream, ClientStream::Tls(_))
    }

    /// Sends `text`; returns it upper-cased by the server. To the seed's
    /// echo server the text goes raw, and one answer of up to 1 KiB is read,
    /// as the seed's client does.
    pub fn echo(&mut self, text: &str) -> Result<String> {
        if self.dialect == Dialect::Echo {
            return self.guard(|c| raw_echo(&mut c.stream, text));
        }
        let r: Echoed = self.exchange(&Request::Echo { text: text.into() })?;
        Ok(r.text)
    }

    /// Lists the current folder on the server, handing each page to `each`
    /// as it arrives, so that a folder of any size costs one page of
    /// memory; a page comes sorted by name, the pages in the store's order.
    /// Returns whether the server left names out (an older server that
    /// sends one frame does, past 50,000 names).
    ///
    /// Fails when the server refuses, a page is larger than
    /// [`crate::wire::listing::MAX_PAGE_LEN`], or `each` fails; pages
    /// handed over before stand.
    pub fn ls(&mut self, each: impl FnMut(Listing) -> Result<()>) -> Result<bool> {
        let request = LsRequest {
            pages: true,
            ..LsRequest::default()
        };
        self.ls_with(request, each)
    }

    /// Lists as `request` asks (a folder given by path, everything below
    /// it), page by page, like [`Client::ls`].
    ///
    /// Fails like [`Client::ls`].
    pub fn ls_with(
        &mut self,
        request: LsRequest,
        each: impl FnMut(Listing) -> Result<()>,
    ) -> Result<bool> {
        self.require_replies()?;
        self.guard(|c| {
            frame::write_json(&mut c.stream, &Request::Ls(request))?;
            read_pages(&mut c.stream, each)
        })
    }

    /// Renames or moves a file or folder on the server; returns the old
    /// and new paths from the home folder.
    pub fn mv(&mut self, from: &str, to: &str) -> Result<Moved> {
        self.call(&Request::Mv {
            from: from.into(),
            to: to.into(),
        })
    }

    /// Shows used and available space.
    pub fn quota(&mut self) -> Result<Usage> {
        self.exchange(&Request::Quota {})
    }

    /// Creates a folder on the server.
    pub fn mkdir(&mut self, path: &str) -> Result<String> {
        let f: Folder = self.call(&Request::Mkdir {
            path: path.into(),
            parents: false,
        })?;
        Ok(f.path)
    }

    /// Changes the current folder on the server, and remembers it for
    /// reconnects. While the folder is lost (see
    /// [`Client::ensure_connected`]), a relative `path` is taken from the
    /// lost folder, as the user thinks of it.
    pub fn cd(&mut self, path: &str) -> Result<String> {
        let path = match &self.lost {
            Some(_) if !path.starts_with('/') => from_folder(&self.folder, path),
            _ => path.to_string(),
        };
        let f: Folder = self.exchange(&Request::Cd { path })?;
        self.folder = f.path.clone();
        self.lost = None;
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
            recursive: false,
        })?;
        Ok(r.filename)
    }

    /// Fails unless the server answers requests and the client is in the
    /// folder it means to be in: the check before any command that touches
    /// files.
    pub(crate) fn require_replies(&self) -> Result<()> {
        self.require_dialect()?;
        self.require_folder()
    }

    fn require_dialect(&self) -> Result<()> {
        match self.dialect {
            Dialect::Replies => Ok(()),
            Dialect::Original => Err(Error::Usage(
                "this server speaks only the original protocol, which has put and nothing else"
                    .into(),
            )),
            Dialect::Echo => Err(Error::Usage(
                "this server only echoes text (the original echo server); try echo TEXT".into(),
            )),
        }
    }

    /// Sends one request about files and reads its reply.
    pub(crate) fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        self.require_replies()?;
        self.exchange(request)
    }

    /// Sends one request and reads its reply, in whatever folder.
    fn exchange<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T> {
        self.require_dialect()?;
        self.guard(|c| {
            frame::write_json(&mut c.stream, request)?;
            read_reply(&mut c.stream)
        })
    }

    /// Runs `f`, marking the connection broken if `f` leaves it out of
    /// step. A connection that broke or stalled becomes
    /// [`Error::ConnectionLost`], which says that the same command resumes.
    ///
    /// Each run starts the command's budget (see
    /// [`ClientOptions::reply_timeout`]); one stopped by Ctrl-C becomes
    /// [`Error::Interrupted`].
    pub(crate) fn guard<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.restart_budget();
        match f(self) {
            Ok(v) => Ok(v),
            // A refusal came whole, and a local problem touched no byte
            // of the connection: either way it is still in step. An upload
            // that stopped mid-body marked the connection broken itself.
            Err(e @ (Error::Remote { .. } | Error::NotStored { .. })) => Err(e),
            Err(e) if e.is_local() => Err(e),
            Err(e @ Error::Interrupted { .. }) => {
                self.broken = true;
                Err(e)
            }
            Err(e) if e.is_interruption() => {
                self.broken = true;
                Err(Error::Interrupted { what: "command" })
            }
            Err(e) => {
                self.broken = true;
                Err(connection_lost(e))
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.broken {
            self.stream.close();
        }
    }
}

/// One exchange with the seed's echo server.
fn raw_echo(stream: &mut ClientStream, text: &str) -> Result<String> {
    use std::io::{Read, Write};
    stream
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("sending text", e))?;
    let mut buf = [0u8; 1024];
    let n = stream
        .read(&mut buf)
        .map_err(|e| Error::io("reading the echo", e))?;
    if n == 0 {
        return Err(Error::Closed);
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[cfg(test)]
mod tests;
