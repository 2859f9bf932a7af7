//! Where per-user files live, following the XDG base directories: the
//! secret and pins under the config folder, history under the state folder.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of our folder inside the XDG base folders.
const APP: &str = "ftp";

fn base(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(fallback)),
    }
}

/// `$XDG_CONFIG_HOME/ftp`, or `$HOME/.config/ftp`.
///
/// Fails when neither variable is set.
pub(crate) fn config_dir() -> Result<PathBuf> {
    base("XDG_CONFIG_HOME", ".config")
        .map(|b| b.join(APP))
        .ok_or_else(|| Error::Secret("HOME is not set, so there is no config folder".into()))
}

/// `$XDG_STATE_HOME/ftp`, or `$HOME/.local/state/ftp`: for the prompt's
/// history, which is neither configuration nor a secret.
pub(crate) fn state_dir() -> Option<PathBuf> {
    base("XDG_STATE_HOME", ".local/state").map(|b| b.join(APP))
}

/// Creates `dir` and its missing parents, readable by its owner only
/// (0700): it holds secrets, pins or history.
///
/// Fails when a folder cannot be created.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
