//! `known_servers`: the certificate fingerprints a client has pinned, one
//! `HOST:PORT SHA256:...` line per server, as ssh's `known_hosts`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::paths;
use crate::error::{Error, Result};
use crate::net::tls::Fingerprint;

/// A pin found in the file, with the line it is on (1-based), so that an
/// error can say which line to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownPin {
    /// The pinned fingerprint.
    pub(crate) fingerprint: Fingerprint,
    /// Its line.
    pub(crate) line: usize,
}

/// The `known_servers` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at `path`, which need not exist yet.
    pub(crate) fn at(path: impl Into<PathBuf>) -> KnownServers {
        KnownServers { path: path.into() }
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The pin for `server` (as the user wrote it, `HOST:PORT`).
    ///
    /// Fails when the file exists but cannot be read, or when the line
    /// for `server` holds no valid fingerprint.
    pub(crate) fn lookup(&self, server: &str) -> Result<Option<KnownPin>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
        };
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            if words.next() != Some(server) {
                continue;
            }
            let fingerprint = words
                .next()
                .map(Fingerprint::parse)
                .unwrap_or_else(|| Err("no fingerprint".into()))
                .map_err(|reason| Error::Config {
                    path: self.path.clone(),
                    line: Some(i + 1),
                    reason,
                })?;
            return Ok(Some(KnownPin {
                fingerprint,
                line: i + 1,
            }));
        }
        Ok(None)
    }

    /// Pins `fingerprint` for `server`, in place of any line it had,
    /// creating the file (mode 0600) and its folder (0700) if needed. The
    /// file is rewritten whole and renamed into place, so a crash leaves
    /// the old one.
    ///
    /// Fails when the file cannot be read or written.
    pub(crate) fn remember(&self, server: &str, fingerprint: Fingerprint) -> Result<()> {
        let fail = |e| Error::io(format!("writing {}", self.path.display()), e);
        let mut text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
        };
        text = text
            .lines()
            .filter(|line| line.split_whitespace().next() != Some(server))
            .map(|line| format!("{line}\n"))
            .collect();
        text.push_str(&format!("{server} {fingerprint}\n"));
        if let Some(dir) = self.path.parent() {
            paths::create_private_dir(dir).map_err(fail)?;
        }
        let mut fresh = self.path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)
            .map_err(fail)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&fresh, &self.path))
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_finds_pins_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("sub/known_servers"));
        assert_eq!(known.lookup("a:1").unwrap(), None);
        let (fa, fb) = (Fingerprint::of(b"a"), Fingerprint::of(b"b"));
        known.remember("a:1", fa).unwrap();
        known.remember("b:2", fb).unwrap();
        let pin = known.lookup("b:2").unwrap().unwrap();
        assert_eq!((pin.fingerprint, pin.line), (fb, 2));
        assert_eq!(known.lookup("a:1").unwrap().unwrap().fingerprint, fa);
        assert_eq!(known.lookup("a:2").unwrap(), None);
        // A new pin replaces the old line; the others stay.
        known.remember("a:1", fb).unwrap();
        let text = fs::read_to_string(known.path()).unwrap();
        assert_eq!(text, format!("b:2 {fb}\na:1 {fb}\n"));
    }

    #[test]
    fn a_broken_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        fs::write(&path, "x:1 SHA256:nonsense\n").unwrap();
        let err = KnownServers::at(&path).lookup("x:1").unwrap_err();
        assert!(
            err.to_string()
                .contains("known_servers:1: invalid fingerprint"),
            "{err}"
        );
    }
}
