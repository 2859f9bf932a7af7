//! What a transfer does to local files besides moving their bytes: the
//! times (and modes) a download keeps, a file's time as a put sends it,
//! and the pace and interrupt a transfer's sink is held to. Both the
//! single transfers and the batch use them.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::client::options::ClientOptions;
use crate::io::interrupt::Interruptible;
use crate::io::throttle::Throttle;

/// Gives downloaded folders the server's modification times, once what
/// goes into them is there (every file written into a folder changes its
/// time).
pub(crate) fn keep_folder_times(folders: &[(PathBuf, u64)]) {
    for (path, mtime) in folders {
        if let Ok(folder) = File::open(path) {
            let _ = folder.set_modified(UNIX_EPOCH + Duration::from_secs(*mtime));
        }
    }
}

/// Gives a downloaded file the server's modification time, and its
/// permission bits when asked.
pub(crate) fn keep_times(path: &Path, mtime: u64, mode: Option<u32>) {
    if let Ok(file) = File::options().write(true).open(path) {
        let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
    }
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777));
    }
}

/// A local file's modification time, whole seconds since the epoch.
pub(crate) fn unix_mtime(meta: &fs::Metadata) -> Option<u64> {
    let t = meta.modified().ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// A file's modification time in whole seconds, which a put sends so that
/// the server keeps it.
pub(crate) fn file_mtime(file: &File) -> Option<u64> {
    file.metadata().ok().as_ref().and_then(unix_mtime)
}

/// The sink a transfer writes to, held to the rate limit and stopped by
/// the interrupt flag when the options ask for them.
pub(crate) fn paced<'a>(sink: &'a mut dyn Write, options: &ClientOptions) -> Box<dyn Write + 'a> {
    let sink: Box<dyn Write + 'a> = match &options.interrupt {
        Some(flag) => Box::new(Interruptible::new(sink, flag.clone())),
        None => Box::new(sink),
    };
    match options.limit_rate {
        Some(rate) => Box::new(Throttle::new(sink, rate)),
        None => sink,
    }
}
