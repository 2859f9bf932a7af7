//! Which server certificate a client trusts: a fingerprint given on the
//! command line, a pin in `known_servers`, the certificate of a server on
//! this machine, or, on first contact, the one presented (trust on first
//! use, as ssh's `accept-new`).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::paths;
use crate::config::pins::{KnownPin, KnownServers};
use crate::config::secret::Secret;
use crate::error::{Error, Result};
use crate::net::tls::{self, fingerprint_of_file, Fingerprint, Pin, PinVerifier};

/// Asked, on first contact, whether to send a guessable proof to a server
/// whose certificate nobody vouches for: `(server, fingerprint) -> yes?`.
pub(crate) type Confirm = Arc<dyn Fn(&str, Fingerprint) -> bool + Send + Sync>;

/// Where a client looks for pins.
#[derive(Clone, Default)]
pub struct Trust {
    /// A fingerprint the user gave (`--fingerprint`): the only one accepted.
    pub(crate) fingerprint: Option<Fingerprint>,
    /// The pins file, read and appended to.
    pub(crate) known: Option<KnownServers>,
    /// A server certificate on this machine, trusted without asking.
    pub(crate) local_cert: Option<PathBuf>,
    /// Asks the user on first contact when the secret could be guessed.
    pub(crate) confirm: Option<Confirm>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("fingerprint", &self.fingerprint)
            .field("known", &self.known)
            .field("local_cert", &self.local_cert)
            .field("confirm", &self.confirm.is_some())
            .finish()
    }
}

impl Trust {
    /// The per-user files: `known_servers` and the certificate of a server
    /// run by the same user, both in the config folder.
    pub fn from_config_dir() -> Trust {
        let dir = paths::config_dir().ok();
        Trust {
            known: dir
                .as_ref()
                .map(|d| KnownServers::at(d.join("known_servers"))),
            local_cert: dir.map(|d| d.join(tls::CERT_FILE)),
            ..Trust::default()
        }
    }
}

/// Why a certificate is trusted, decided once for a client's server.
#[derive(Debug, Clone)]
enum Source {
    /// `--fingerprint`, with the pin `known_servers` holds for the server
    /// if any. Unless that pin is the same, the fingerprint is written
    /// there once the server has proved itself: a first pin, or a new one
    /// for a certificate that was replaced and checked out of band.
    Flag(Fingerprint, Option<KnownPin>),
    Known(KnownPin, PathBuf),
    FirstUse {
        local: Option<Fingerprint>,
    },
}

/// The TLS side of one client: its configuration (reused, so reconnects
/// resume the TLS session) and the pin it holds to.
pub(crate) struct TlsClient {
    pub(crate) config: Arc<rustls::ClientConfig>,
    verifier: Arc<PinVerifier>,
    source: Source,
    server: String,
    /// Set once the pin has been written, so that reconnects do not
    /// write it again.
    pinned: AtomicBool,
}

/// What the first contact with a server decided.
pub(crate) enum Contact {
    /// The certificate was pinned or local: nothing to do.
    Known,
    /// A certificate nobody vouched for; pin it once the server proved
    /// itself.
    New(Fingerprint),
}

impl TlsClient {
    /// Looks up the pin for `server` (`HOST:PORT` as the user wrote it).
    ///
    /// Fails when `known_servers` cannot be read.
    pub(crate) fn new(server: &str, trust: &Trust) -> Result<TlsClient> {
        let known = match &trust.known {
            Some(k) => k.lookup(server)?.map(|pin| (pin, k.path().to_path_buf())),
            None => None,
        };
        let source = match (trust.fingerprint, known) {
            (Some(fp), known) => Source::Flag(fp, known.map(|(pin, _)| pin)),
            (None, Some((pin, path))) => Source::Known(pin, path),
            (None, None) => Source::FirstUse {
                local: trust.local_cert.as_deref().and_then(fingerprint_of_file),
            },
        };
        let pin = match &source {
            Source::Flag(fp, _) => Pin::Exact(*fp),
            Source::Known(pin, _) => Pin::Exact(pin.fingerprint),
            Source::FirstUse { .. } => Pin::FirstUse,
        };
        let verifier = Arc::new(PinVerifier::new(pin));
        Ok(TlsClient {
            config: tls::client_config(verifier.clone())?,
            verifier,
            source,
            server: server.to_string(),
            pinned: AtomicBool::new(false),
        })
    }

    /// Explains a handshake that failed because the certificate is not the
    /// pinned one; `None` when that was not the reason.
    pub(crate) fn refusal(&self) -> Option<Error> {
        let seen = self.verifier.seen()?;
        let server = &self.server;
        let why = match (&self.source, self.verifier.pin()) {
            (_, Pin::Exact(pinned)) if pinned == seen => return None,
            (_, Pin::FirstUse) => return None,
            (Source::Flag(pinned, _), _) => format!(
                "the server at {server} presented certificate {seen}, not {pinned} as given \
                 with --fingerprint; nothing was sent"
            ),
            (Source::Known(pin, path), _) => format!(
                "the server at {server} presented certificate {seen}, but {} line {} pins {}. \
                 If its key was replaced on purpose, check the new fingerprint with the \
                 server's operator and run again with --fingerprint {seen}, which replaces the \
                 pin (or delete line {} of {}); otherwise someone may be impersonating it. \
                 Nothing was sent",
                path.display(),
                pin.line,
                pin.fingerprint,
                pin.line,
                path.display()
            ),
            (Source::FirstUse { .. }, Pin::Exact(pinned)) => format!(
                "the server at {server} presented certificate {seen}, not {pinned} it presented \
                 earlier in this session; nothing was sent"
            ),
        };
        Some(Error::UntrustedServer(why))
    }

    /// Whether a pin vouches for this server: `--fingerprint`, a line in
    /// `known_servers`, or a certificate pinned earlier in this session.
    /// Such a server has spoken TLS, so a failed handshake is a relay
    /// blocking it, never a reason to fall back to plaintext.
    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned_by().is_some()
    }

    fn pinned_by(&self) -> Option<String> {
        match &self.source {
            Source::Flag(fp, _) => Some(format!("--fingerprint {fp}")),
            Source::Known(pin, path) => Some(format!("{} line {}", path.display(), pin.line)),
            Source::FirstUse { .. } if self.pinned.load(Ordering::SeqCst) => {
                Some("its certificate, pinned earlier in this session".into())
            }
            Source::FirstUse { .. } => None,
        }
    }

    /// The error for a pinned server that did not get as far as TLS
    /// (`why`); `None` when the server is not pinned. It does not suggest
    /// `--allow-unproven-server`, which would not help and should not.
    pub(crate) fn pinned_refusal(&self, why: &str) -> Option<Error> {
        let pin = self.pinned_by()?;
        Some(Error::UntrustedServer(format!(
            "the server at {} is pinned ({pin}), but {why}. A pinned server is only spoken to \
             over TLS, so someone on the path may be blocking it; nothing was sent",
            self.server
        )))
    }

    /// After the handshake: whether the certificate is vouched for, and if
    /// not, whether the proof may be sent to it. With a secret that could be
    /// guessed from the proof (not a random key), an unknown server needs
    /// the user's yes.
    ///
    /// Fails when the user (or the lack of a terminal) says no.
    pub(crate) fn check_contact(&self, trust: &Trust, secret: &Secret) -> Result<Contact> {
        let Some(seen) = self.verifier.seen() else {
            // No certificate was checked at all (a resumed session whose
            // first handshake belonged to another client): nothing to pin.
            return Ok(Contact::Known);
        };
        let local = match (&self.source, self.verifier.pin()) {
            (Source::FirstUse { local }, Pin::FirstUse) => *local,
            // Vouched for by the user: worth remembering, once.
            (Source::Flag(fp, known), _)
                if known.is_none_or(|k| k.fingerprint != *fp)
                    && !self.pinned.load(Ordering::SeqCst) =>
            {
                return Ok(Contact::New(*fp))
            }
            _ => return Ok(Contact::Known),
        };
        if local == Some(seen) {
            return Ok(Contact::Known);
        }
        // Rated only here, on first contact: the estimate takes a while.
        let accepted = secret.looks_random()
            || trust
                .confirm
                .as_ref()
                .is_some_and(|ask| ask(&self.server, seen));
        if accepted {
            return Ok(Contact::New(seen));
        }
        Err(Error::UntrustedServer(format!(
            "{} is a server this machine has not seen (certificate {seen}), and the secret is \
             not a long random key, so an impostor could guess it from the login. Check the \
             fingerprint with the server's operator (the server logs it at start), then pass \
             --fingerprint {seen}",
            self.server
        )))
    }

    /// Pins `seen` for the rest of this client's life, and in
    /// `known_servers` when there is one. Returns the note to show.
    pub(crate) fn pin(&self, trust: &Trust, seen: Fingerprint) -> Result<String> {
        self.verifier.set_pin(Pin::Exact(seen));
        self.pinned.store(true, Ordering::SeqCst);
        let replaced = match &self.source {
            Source::Flag(_, Some(old)) => Some(old.fingerprint),
            _ => None,
        };
        match (&trust.known, replaced) {
            (Some(known), Some(old)) => {
                known.remember(&self.server, seen)?;
                Ok(format!(
                    "{}: replaced its pinned certificate {old} with {seen}, as given with \
                     --fingerprint, in {}",
                    self.server,
                    known.path().display()
                ))
            }
            (Some(known), None) => {
                known.remember(&self.server, seen)?;
                Ok(format!(
                    "first contact with {}: remembered its certificate {seen} in {}",
                    self.server,
                    known.path().display()
                ))
            }
            (None, _) => Ok(format!(
                "first contact with {}: its certificate is {seen}",
                self.server
            )),
        }
    }
}
