//! Where the shared secret comes from: `--secret-file`, the `FTP_SECRET`
//! environment variable, or a per-user default file. Never from argv.

use std::fmt;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::config::{paths, strength};
use crate::error::{Error, Result};
use crate::logging::{Event, Kind};

/// The environment variable that holds the secret.
pub(crate) const SECRET_ENV: &str = "FTP_SECRET";

/// The block size of MD5, which HMAC-MD5 pads or hashes its key to.
const HMAC_MD5_BLOCK: usize = 64;

/// A shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw secret bytes; fails if they are empty.
    pub fn new(bytes: Vec<u8>) -> Result<Secret> {
        if bytes.is_empty() {
            return Err(Error::Secret("the secret is empty".into()));
        }
        Ok(Secret(bytes))
    }

    /// The secret's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key HMAC-MD5 really uses: the secret zero-padded to the 64-byte
    /// block, or its MD5 padded when it is longer than a block. Two
    /// secrets with the same effective key answer every challenge alike
    /// (`k` and `k\0`, or a long key and its MD5), so the login could not
    /// tell their owners apart.
    pub(crate) fn hmac_md5_key(&self) -> [u8; HMAC_MD5_BLOCK] {
        let mut key = [0u8; HMAC_MD5_BLOCK];
        if self.0.len() > HMAC_MD5_BLOCK {
            key[..16].copy_from_slice(&Md5::digest(&self.0));
        } else {
            key[..self.0.len()].copy_from_slice(&self.0);
        }
        key
    }

    /// Whether the secret is a random key rather than a password: 128
    /// bits or more by zxcvbn's estimate (see [`strength`]), which the
    /// 64 hex digits the server generates are. A proof made with anything
    /// else could be guessed offline by whoever receives it, so the client
    /// sends it to an unpinned server only after asking.
    pub(crate) fn looks_random(&self) -> bool {
        strength::is_random_key(&self.0)
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Where a secret was found, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// From `--secret-file`.
    File(PathBuf),
    /// From the environment variable.
    Env,
    /// From the default file, which was just created.
    Created(PathBuf),
    /// From the default file, which already existed.
    Default(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "secret from {}", p.display()),
            SecretSource::Env => write!(f, "secret from ${SECRET_ENV}"),
            SecretSource::Created(p) => write!(
                f,
                "created a new random secret in {} (mode 0600); clients on this machine read it \
                 from there, other machines need a copy of it",
                p.display()
            ),
            SecretSource::Default(p) => write!(f, "secret from {}", p.display()),
        }
    }
}

/// The default secret file: `$XDG_CONFIG_HOME/ftp/secret`, or
/// `$HOME/.config/ftp/secret`. Fails when neither variable is set.
pub(crate) fn default_secret_path() -> Result<PathBuf> {
    let dir = paths::config_dir().map_err(|_| {
        Error::Secret(format!(
            "no secret: set {SECRET_ENV} or pass --secret-file (HOME is not set, so there is no \
             default secret file)"
        ))
    })?;
    Ok(dir.join("secret"))
}

/// Reads a secret file. The bytes are taken literally, except that one
/// trailing newline (`\n` or `\r\n`) is dropped, as editors and `echo` add it.
/// A file other users can read is logged as a warning naming the `chmod`
/// to run: every secret file goes through here (`--secret-file`, the
/// default file, a users file's `secret_file`), so none is missed.
///
/// Fails when the file cannot be read or is empty.
pub(crate) fn read_secret_file(path: &Path) -> Result<Secret> {
    if let Some(warning) = exposure_warning(path) {
        Event::new(Kind::Warning).warn(format_args!("{warning}"));
    }
    let mut bytes = fs::read(path).map_err(|e| {
        Error::Secret(format!(
            "cannot read the secret file {}: {}",
            path.display(),
            crate::error::reason(&e)
        ))
    })?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Secret::new(bytes)
        .map_err(|_| Error::Secret(format!("the secret file {} is empty", path.display())))
}

fn from_env() -> Result<Option<Secret>> {
    use std::os::unix::ffi::OsStringExt;
    match std::env::var_os(SECRET_ENV) {
        Some(v) => Secret::new(v.into_vec())
            .map(Some)
            .map_err(|_| Error::Secret(format!("{SECRET_ENV} is set but empty"))),
        None => Ok(None),
    }
}

/// A warning when a file holding secrets can be read by other users, as
/// ssh gives for private keys; `None` when it is private or cannot be
/// checked.
pub(crate) fn exposure_warning(path: &Path) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} holds secrets but other users can read it (mode {mode:o}); run: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

/// The server's secret: `--secret-file`, else `FTP_SECRET`, else the default
/// file, which is created with a random secret if it does not exist.
///
/// Fails when a named file cannot be read, or the default one can be
/// neither read nor created.
pub(crate) fn server_secret(secret_file: Option<&Path>) -> Result<(Secret, SecretSource)> {
    if let Some(path) = secret_file {
        return Ok((
            read_secret_file(path)?,
            SecretSource::File(path.to_path_buf()),
        ));
    }
    if let Some(secret) = from_env()? {
        return Ok((secret, SecretSource::Env));
    }
    let path = default_secret_path()?;
    match create_secret_file(&path) {
        Ok(secret) => Ok((secret, SecretSource::Created(path))),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            Ok((read_secret_file(&path)?, SecretSource::Default(path)))
        }
        Err(e) => Err(Error::Secret(format!(
            "cannot create the secret file {}: {e}; set {SECRET_ENV} or pass --secret-file",
            path.display()
        ))),
    }
}

/// The client's secret: `--secret-file`, else `FTP_SECRET`, else the
/// default file that a server on this machine created.
///
/// Fails with a message saying how to provide one when none is found.
pub(crate) fn client_secret(secret_file: Option<&Path>) -> Result<Secret> {
    if let Some(path) = secret_file {
        return read_secret_file(path);
    }
    if let Some(secret) = from_env()? {
        return Ok(secret);
    }
    let path = default_secret_path()?;
    if !path.exists() {
        return Err(Error::Secret(format!(
            "no secret: {path} does not exist. For a server on another machine, copy the secret \
             file its log names (by default ~/.config/ftp/secret there) to {path} here, with \
             mode 0600 (`mkdir -p {dir}` first), or pass --secret-file PATH, or set \
             {SECRET_ENV}. For a server on this machine run as you, start ftp-server once: it \
             creates {path}",
            path = path.display(),
            dir = path.parent().unwrap_or(&path).display(),
        )));
    }
    read_secret_file(&path)
}

/// The file [`client_secret`] reads the secret from, if it reads one:
/// `--secret-file`, else, without `FTP_SECRET`, the default file. For the
/// warning a client gives when others can read it.
pub(crate) fn client_secret_file(secret_file: Option<&Path>) -> Option<PathBuf> {
    match secret_file {
        Some(path) => Some(path.to_path_buf()),
        None if std::env::var_os(SECRET_ENV).is_some() => None,
        None => default_secret_path().ok(),
    }
}

/// Creates `path` with a new random secret (64 hex characters), readable
/// only by its owner. Fails with `AlreadyExists` if it is there already.
///
/// The secret is written to a file of its own first and then linked to
/// `path`, which fails if `path` exists: a second server starting at the
/// same moment reads the first one's whole secret, never an empty file.
fn create_secret_file(path: &Path) -> std::io::Result<Secret> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        paths::create_private_dir(dir)?;
    }
    let text = random_secret_text();
    let staged = dir
        .unwrap_or(Path::new("."))
        .join(format!(".secret-{}.new", &text[..16]));
    let written = write_private(&staged, text.as_bytes());
    let linked = written.and_then(|()| fs::hard_link(&staged, path));
    let _ = fs::remove_file(&staged);
    linked.map(|()| Secret(text.into_bytes()))
}

/// A new random secret: 32 bytes from the operating system, as 64 hex
/// characters, so it can be pasted and typed.
pub(crate) fn random_secret_text() -> String {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Writes `bytes` to a new file at `path`, mode exactly 0600, on disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The mode above is filtered by the umask; make sure it is exactly 0600.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_are_told_from_passwords() {
        let key = |s: &str| Secret::new(s.as_bytes().to_vec()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let generated = create_secret_file(&dir.path().join("secret")).unwrap();
        assert!(generated.looks_random());
        assert!(!key("Summer2024Summer2024Summer2024Summer2024Summer").looks_random());
        assert!(!key("linhaifeng bang bang bang").looks_random());
        assert!(!key(&"a".repeat(64)).looks_random());
    }

    #[test]
    fn secrets_with_the_same_hmac_key_are_told_apart_only_by_bytes() {
        let key = |s: &[u8]| Secret::new(s.to_vec()).unwrap();
        let challenge = [7u8; 32];
        let same = |a: &Secret, b: &Secret| {
            let (pa, pb) = (
                crate::wire::auth::respond(a.as_bytes(), &challenge),
                crate::wire::auth::respond(b.as_bytes(), &challenge),
            );
            (a.hmac_md5_key() == b.hmac_md5_key(), pa == pb)
        };
        assert_eq!(same(&key(b"k"), &key(b"k\0")), (true, true));
        assert_eq!(same(&key(b"k"), &key(b"k\0\0\0")), (true, true));
        assert_eq!(same(&key(b"k"), &key(b"j")), (false, false));
        let long = vec![b'x'; 65];
        let its_md5 = Md5::digest(&long).to_vec();
        assert_eq!(same(&key(&long), &key(&its_md5)), (true, true));
        // Exactly one block is used as it is, not hashed.
        let block = vec![b'x'; 64];
        assert_eq!(same(&key(&block), &key(&long)), (false, false));
    }

    #[test]
    fn debug_hides_the_bytes() {
        let s = Secret::new(b"hunter2".to_vec()).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<7 bytes>)");
    }

    #[test]
    fn file_bytes_are_literal_but_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, b"linhaifeng bang bang bang\n").unwrap();
        assert_eq!(
            read_secret_file(&p).unwrap().as_bytes(),
            b"linhaifeng bang bang bang"
        );
        fs::write(&p, b" spaced \n\n").unwrap();
        assert_eq!(read_secret_file(&p).unwrap().as_bytes(), b" spaced \n");
        fs::write(&p, b"").unwrap();
        assert!(read_secret_file(&p).is_err());
    }

    #[test]
    fn readable_secret_files_are_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        fs::write(&p, b"k").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(exposure_warning(&p).unwrap().contains("mode 644"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(exposure_warning(&p).is_none());
    }

    #[test]
    fn created_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("secret");
        let s = create_secret_file(&p).unwrap();
        assert_eq!(s.as_bytes().len(), 64);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            create_secret_file(&p).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(read_secret_file(&p).unwrap(), s);
    }
}
