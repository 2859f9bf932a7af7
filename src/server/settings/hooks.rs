//! The hook settings: the hooks the flags name, checked, and the queue
//! that runs them, started.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::server::hooks::{Attempts, Hook, HookSet, Hooks};
use crate::server::metrics::Metrics;
use crate::server::settings::flags::ServerFlags;

/// Runs of a failed hook after the first: a receiver restarting or a
/// moment's load is over by then; one that is down stays counted.
const HOOK_RETRIES: u32 = 3;

/// The pause before a hook's first retry; it doubles each time (0.25 s,
/// 0.5 s, 1 s), so a failing hook holds its thread for under 2 s more
/// than its runs.
const HOOK_BACKOFF: Duration = Duration::from_millis(250);

/// The hooks `f` names.
///
/// Fails when one cannot be split into words, or an upload check is set
/// with an object store as the root.
pub(super) fn hook_set(f: &ServerFlags) -> Result<HookSet> {
    Ok(HookSet {
        on_upload: hook(f.on_upload.as_deref(), "on-upload")?,
        on_download: hook(f.on_download.as_deref(), "on-download")?,
        on_delete: hook(f.on_delete.as_deref(), "on-delete")?,
        on_upload_check: upload_check(f)?,
    })
}

/// The hooks of `set`, each run given `timeout` seconds, their events
/// queued up to `queue` deep and counted in `metrics`.
///
/// Fails when a hook thread cannot be started.
pub(super) fn start(
    set: &HookSet,
    timeout: u64,
    queue: usize,
    metrics: &Arc<Metrics>,
) -> Result<Hooks> {
    let attempts = Attempts {
        timeout: Duration::from_secs(timeout),
        retries: HOOK_RETRIES,
        backoff: HOOK_BACKOFF,
    };
    Hooks::start(set.clone(), attempts, queue, metrics.clone())
        .map_err(|e| Error::io("starting the hook threads", e))
}

/// The hook a setting `key` names, if set.
fn hook(text: Option<&str>, key: &str) -> Result<Option<Hook>> {
    text.map(|t| Hook::parse(t).map_err(|reason| Error::Usage(format!("{key}: {reason}"))))
        .transpose()
}

/// The upload check, which reads the upload's local file: an object
/// store keeps none.
fn upload_check(f: &ServerFlags) -> Result<Option<Hook>> {
    let check = hook(f.on_upload_check.as_deref(), "on-upload-check")?;
    if check.is_some() && f.root.as_deref().is_some_and(|r| r.starts_with("s3://")) {
        return Err(Error::Usage(
            "on-upload-check needs a folder root: an s3:// root keeps no local copy of an \
             upload to check"
                .into(),
        ));
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn hooks_that_cannot_run_are_refused_with_their_key() {
        for (text, want) in [
            ("on-upload = \"scan 'x\"\n", "on-upload: cannot split"),
            ("on-delete = \" \"\n", "on-delete: empty; give a command"),
            (
                "on-upload-check = \"scan\"\nroot = \"s3://b\"\n",
                "on-upload-check needs a folder root",
            ),
        ] {
            let flags = ServerFlags::parse(text, Path::new("server.toml")).unwrap();
            let got = hook_set(&flags).unwrap_err().to_string();
            assert!(got.contains(want), "{got}");
        }
    }
}
