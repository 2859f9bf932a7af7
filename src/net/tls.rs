//! TLS 1.3 for the encrypted dialect: the server's self-signed identity,
//! the client's pinned-certificate check, and the streams both use.
//!
//! There are no certificate authorities here. A server has one self-signed
//! certificate that it creates on first start; a client trusts exactly the
//! certificate whose SHA-256 fingerprint it pinned, or on first contact any
//! one (trust on first use), which it then pins. The handshake signature
//! is always verified, so presenting a pinned certificate without its key
//! fails.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
    StreamOwned,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::wire::binding::{Tag, BINDING_LEN, EXPORTER_LABEL};

/// The file a server locks while it creates its identity, beside it.
pub(crate) const LOCK_FILE: &str = "server-identity.lock";

/// The name the client asks for. Certificates are pinned, not checked
/// against host names, so every server answers to this one.
pub(crate) const SERVER_NAME: &str = "ftp-server";

/// File names of the server's identity, in its folder.
pub(crate) const KEY_FILE: &str = "server-key.pem";
/// The certificate, which clients on the same machine pin.
pub const CERT_FILE: &str = "server-cert.pem";

/// The cryptography both sides use: *ring*, TLS 1.3 only.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of a certificate's DER bytes. Shown as `SHA256:` and
/// unpadded base64, the way ssh shows host keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `cert`.
    pub fn of(cert: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert).into())
    }

    /// Reads `SHA256:base64` as printed by [`fmt::Display`].
    ///
    /// Fails with a message that shows the expected form.
    pub fn parse(text: &str) -> std::result::Result<Fingerprint, String> {
        let bad =
            || format!("invalid fingerprint {text:?}: expected SHA256: and 43 base64 characters");
        let b64 = text.trim().strip_prefix("SHA256:").ok_or_else(bad)?;
        let bytes = STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|_| bad())?;
        bytes.try_into().map(Fingerprint).map_err(|_| bad())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The server's certificate and key, ready to accept connections.
#[derive(Clone)]
pub struct ServerIdentity {
    /// The TLS configuration: this identity, TLS 1.3 only.
    pub config: Arc<ServerConfig>,
    /// What clients pin.
    pub fingerprint: Fingerprint,
    /// Where the certificate is.
    pub(crate) cert_path: PathBuf,
    /// Whether it was just created.
    pub(crate) created: bool,
    /// When one of the two files was missing, the other one, moved aside
    /// (to `*.old`) so that both could be made anew.
    pub(crate) set_aside: Option<PathBuf>,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerIdentity({})", self.fingerprint)
    }
}

impl ServerIdentity {
    /// Loads the identity from `dir`, creating a self-signed one (key mode
    /// 0600) on first start. When only one of the key and the certificate
    /// is there, it is moved aside to `NAME.old` and both are made anew:
    /// one is no use without the other.
    ///
    /// Fails when the files cannot be read, written or parsed.
    pub fn load_or_create(dir: &Path) -> Result<ServerIdentity> {
        let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
        // Two servers sharing this folder may start at the same moment:
        // whoever holds the lock checks and creates, and the other then
        // finds both files and reads them. An identity that is complete
        // needs no lock, so a read-only folder still serves.
        let _lock = match key_path.exists() && cert_path.exists() {
            true => None,
            false => Some(lock_folder(dir)?),
        };
        let lone = match (key_path.exists(), cert_path.exists()) {
            (true, true) | (false, false) => None,
            (true, false) => Some(&key_path),
            (false, true) => Some(&cert_path),
        };
        let set_aside = lone.map(|path| set_aside(path)).transpose()?;
        let created = !key_path.exists();
        if created {
            create_identity(dir, &key_path, &cert_path)?;
        }
        let read = |path: &Path| {
            fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
        };
        let cert: CertificateDer = pem_item(&read(&cert_path)?, &cert_path, "CERTIFICATE")?;
        let key: PrivateKeyDer = pem_item(&read(&key_path)?, &key_path, "PRIVATE KEY")?;
        let fingerprint = Fingerprint::of(&cert);
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
            .map_err(|e| Error::Secret(format!("the TLS identity in {}: {e}", dir.display())))?;
        Ok(ServerIdentity {
            config: Arc::new(config),
            fingerprint,
            cert_path,
            created,
            set_aside,
        })
    }
}

/// Holds an exclusive lock on `dir`'s [`LOCK_FILE`] until dropped,
/// waiting for a server that holds it to finish.
fn lock_folder(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let fail = |e: io::Error| Error::io(format!("locking {}", path.display()), e);
    // Readable by the server's user alone: it holds the private key.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| fail(e.into()))?;
    Ok(file)
}

impl ServerIdentity {
    /// A self-signed identity held only in memory: for a server
    /// configuration whose logins a test never runs.
    ///
    /// Fails when the certificate cannot be made.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn ephemeral() -> Result<ServerIdentity> {
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .map_err(|e| Error::Secret(format!("creating a TLS certificate: {e}")))?;
        let cert = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
            .map_err(|e| Error::Secret(format!("the TLS key: {e}")))?;
        let fingerprint = Fingerprint::of(&cert);
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
            .map_err(|e| Error::Secret(format!("the TLS identity: {e}")))?;
        Ok(ServerIdentity {
            config: Arc::new(config),
            fingerprint,
            cert_path: PathBuf::new(),
            created: true,
            set_aside: None,
        })
    }
}

/// Renames `path` to `path.old` (replacing an older one), returning the
/// new name.
fn set_aside(path: &Path) -> Result<PathBuf> {
    let mut old = path.as_os_str().to_owned();
    old.push(".old");
    let old = PathBuf::from(old);
    fs::rename(path, &old).map_err(|e| Error::io(format!("moving {} aside", path.display()), e))?;
    Ok(old)
}

/// Makes a self-signed certificate and writes it and its key.
fn create_identity(dir: &Path, key_path: &Path, cert_path: &Path) -> Result<()> {
    let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
        .map_err(|e| Error::Secret(format!("creating a TLS certificate: {e}")))?;
    // Each file is written aside and renamed into place: a server that
    // starts meanwhile and finds both names reads them without the lock,
    // so neither may ever be seen half written.
    let write = |path: &Path, text: String, mode: u32| {
        let aside = path.with_extension("new");
        fs::create_dir_all(dir)
            .and_then(|()| {
                // One left by a start that died is ours to replace: we hold
                // the lock.
                let _ = fs::remove_file(&aside);
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&aside)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                fs::rename(&aside, path)
            })
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    write(key_path, made.signing_key.serialize_pem(), 0o600)?;
    write(cert_path, made.cert.pem(), 0o644)
}

/// The first PEM block of the kind `T` in `text`, the contents of `path`;
/// `what` names the kind for the error.
fn pem_item<T: PemObject>(text: &[u8], path: &Path, what: &str) -> Result<T> {
    T::from_pem_slice(text).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            Error::Secret(format!("{} holds no {what} block", path.display()))
        }
        e => Error::Secret(format!("{}: bad PEM: {e}", path.display())),
    })
}

/// The fingerprint of the certificate in a PEM file, if it can be read:
/// how a client on the server's machine pins it without being told.
pub fn fingerprint_of_file(path: &Path) -> Option<Fingerprint> {
    let cert = CertificateDer::from_pem_file(path).ok()?;
    Some(Fingerprint::of(&cert))
}

/// Which server certificate a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Only this one.
    Exact(Fingerprint),
    /// Any, the first time (the caller pins it once the server has proved
    /// it holds the secret).
    FirstUse,
}

/// Checks the server's certificate against a pin, and remembers what it
/// saw so that a refusal can say which certificate was presented.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Mutex<Pin>,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// A verifier holding to `pin`.
    pub fn new(pin: Pin) -> PinVerifier {
        PinVerifier {
            pin: Mutex::new(pin),
            seen: Mutex::new(None),
            provider: provider(),
        }
    }

    /// Holds to `pin` from now on.
    pub(crate) fn set_pin(&self, pin: Pin) {
        *self.pin.lock() = pin;
    }

    /// The pin in force.
    pub(crate) fn pin(&self) -> Pin {
        *self.pin.lock()
    }

    /// The fingerprint of the last certificate presented.
    pub(crate) fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock()
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        *self.seen.lock() = Some(seen);
        match self.pin() {
            Pin::Exact(pinned) if pinned != seen => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered, so this is never reached.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that trusts what `verifier` accepts, TLS 1.3
/// only. Reusing it across connections resumes TLS sessions.
///
/// Fails only if the provider cannot do TLS 1.3.
pub fn client_config(verifier: Arc<PinVerifier>) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The RFC 9266 channel-binding value of an established connection.
///
/// Fails when the handshake is not complete.
pub(crate) fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> io::Result<Tag> {
    conn.export_keying_material([0u8; BINDING_LEN], EXPORTER_LABEL, None)
        .map_err(io::Error::other)
}

/// Runs a handshake to its end over a blocking socket.
pub(crate) fn handshake<D, S: Read + Write>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut S,
) -> io::Result<()>
where
    D: rustls::SideData,
{
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    Ok(())
}

/// The client end: TLS over a blocking socket (plain TCP, or the client's
/// [`crate::net::stall::StallGuard`]).
pub(crate) type ClientTls<S = TcpStream> = StreamOwned<ClientConnection, S>;

/// Opens TLS on `sock` and finishes the handshake.
///
/// Fails when the handshake fails, the certificate among other reasons.
pub fn connect<S: Read + Write>(config: Arc<ClientConfig>, sock: S) -> io::Result<ClientTls<S>> {
    let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    handshake(&mut *stream.conn, &mut stream.sock)?;
    Ok(stream)
}

pub use crate::net::tls_server::ServerHandshake;
#[cfg(any(test, feature = "testing"))]
pub use crate::net::tls_server::TlsTransport;

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
