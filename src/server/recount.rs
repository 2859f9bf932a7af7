//! Homes measured again with the store's own walk: the hourly check that
//! keeps the quota book in step with the disk (run with the sweep of
//! stale partial uploads), and `ftp-server check-usage`, which measures
//! homes for an administrator.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::logging::{Event, Kind};
use crate::server::accounts::{Account, Accounts};
use crate::server::commands::refusals::store_refusal;
use crate::server::context::Context;
use crate::storage::disk::usage::measure;
use crate::wire::names::display_folder;

/// The sweeper's hour: partial uploads untouched for `ttl` that no
/// connection runs are removed, then the quota books are checked (see
/// [`check_books`]).
pub(crate) fn hourly(ctx: &Context, ttl: Duration) {
    let claim = |key: &str| {
        let held = ctx.locks.try_lock(key)?;
        Some(Box::new(held) as Box<dyn Send>)
    };
    let removed = ctx.store.sweep(ttl, &claim);
    if removed > 0 {
        Event::new(Kind::Recount).info(format_args!(
            "removed {removed} partial uploads untouched for {} s",
            ttl.as_secs()
        ));
    }
    check_books(ctx);
}

/// The periodic check of the quota book: every home the store counts is
/// measured again with the store's own walk, and its count set to what
/// was measured, each in its home's turn (see [`crate::server::order`])
/// and only while no upload runs in it, whose writes are counted outside
/// the turn: nothing can change the home between the measure and the
/// correction. A home with an upload running waits for the next check.
/// Each drift is logged. Returns how many homes had drifted.
pub(crate) fn check_books(ctx: &Context) -> usize {
    let mut drifted = 0;
    for home in ctx.store.counted_homes() {
        let key = home.join("/");
        let _turn = ctx.name_order.enter(&key);
        if ctx.locks.runs_in(&key) {
            continue;
        }
        match ctx.store.recount(&home) {
            Ok(Some((Some(kept), measured))) if kept != measured => {
                drifted += 1;
                let folder = display_folder(&home);
                // The home is named in the sentence: `path` is a path inside
                // one.
                Event::new(Kind::Recount)
                    .result("corrected")
                    .warn(format_args!(
                        "the quota book of {folder} had drifted from the disk (it said {} bytes \
                     in {} entries, the disk holds {} in {}); corrected",
                        kept.bytes, kept.entries, measured.bytes, measured.entries
                    ));
            }
            Ok(_) => {}
            Err(e) => {
                let why = store_refusal(e, "").message;
                let folder = display_folder(&home);
                Event::new(Kind::Recount)
                    .result("failed")
                    .warn(format_args!("checking the quota book of {folder}: {why}"));
            }
        }
    }
    drifted
}

/// What `check-usage` found in one home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HomeUsage {
    /// The account's name, as the log shows it.
    pub(crate) label: String,
    /// Bytes of its files, partial uploads included.
    pub(crate) bytes: u64,
    /// Its files and folders, partial uploads included.
    pub(crate) entries: u64,
    /// What it is over: its quota, its `max_files`, both or neither.
    pub(crate) over: Vec<String>,
}

/// Measures the home of each of `accounts` below the folder `root` with
/// the walk the server uses, and writes one line per home to `out`, with
/// the limits it is over. Returns what was found.
///
/// Fails when a home cannot be measured, or `out` cannot be written.
pub(crate) fn check_usage<'a>(
    root: &Path,
    accounts: impl IntoIterator<Item = &'a Account>,
    out: &mut impl Write,
) -> Result<Vec<HomeUsage>> {
    let mut found = Vec::new();
    for account in accounts {
        let home = account.home();
        let mut path = root.to_path_buf();
        path.extend(&home);
        let used =
            measure(&path).map_err(|e| Error::io(format!("measuring {}", path.display()), e))?;
        let mut over = Vec::new();
        if let Some(quota) = account.quota.filter(|&q| used.bytes > q) {
            over.push(format!("over its quota of {quota} bytes"));
        }
        if let Some(max) = account.max_files.filter(|&m| used.entries > m) {
            over.push(format!("over its max_files of {max}"));
        }
        let limits = match over.is_empty() {
            true => String::new(),
            false => format!(" ({})", over.join(", ")),
        };
        let line = format!(
            "{} {}: {} bytes, {} files and folders{limits}",
            account.label(),
            display_folder(&home),
            used.bytes,
            used.entries
        );
        writeln!(out, "{line}").map_err(|e| Error::io("writing the report", e))?;
        found.push(HomeUsage {
            label: account.label().to_string(),
            bytes: used.bytes,
            entries: used.entries,
            over,
        });
    }
    Ok(found)
}

/// `ftp-server check-usage [USER]`: the homes of the users file `users`
/// (or the root itself, with one shared secret), and the anonymous drop
/// box when `anonymous` gives its quota and `max_files`, below the folder
/// `root`, each measured and reported to `out` (see [`check_usage`]).
///
/// Fails when `root` is an object store, `user` names nobody, a home
/// cannot be measured, or a home is over one of its limits.
pub(crate) fn check_usage_command(
    root: &str,
    users: Option<&Path>,
    anonymous: Option<(u64, u64)>,
    user: Option<&str>,
    out: &mut impl Write,
) -> Result<()> {
    if root.starts_with("s3://") {
        return Err(Error::Usage(
            "check-usage measures a folder on this machine; with an object store, \
             `ftp-client quota` shows what an account uses"
                .into(),
        ));
    }
    let mut accounts: Vec<Account> = match users {
        Some(path) => Accounts::load(path, anonymous.is_some())?
            .iter()
            .cloned()
            .collect(),
        None => vec![Account {
            name: None,
            quota: None,
            ..Account::anonymous(0)
        }],
    };
    if let Some((quota, max_files)) = anonymous {
        let mut drop_box = Account::anonymous(quota);
        drop_box.max_files = Some(max_files);
        accounts.push(drop_box);
    }
    if let Some(user) = user {
        accounts.retain(|a| a.name.as_deref() == Some(user));
        if accounts.is_empty() {
            return Err(Error::Usage(format!("no user {user:?} in the users file")));
        }
    }
    let found = check_usage(Path::new(root), &accounts, out)?;
    match found.iter().filter(|h| !h.over.is_empty()).count() {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} homes are over a limit",
            found.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drifted_book_is_measured_again_and_corrected_unless_an_upload_runs() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::testing::context(dir.path());
        let home = vec!["alice".to_string()];
        ctx.store.open_home(&home).unwrap();
        assert_eq!(ctx.store.usage(&home).unwrap().bytes, 0, "counted from now");
        std::fs::write(dir.path().join("alice/behind"), b"12345").unwrap();
        let running = ctx.locks.try_lock("alice/f");
        // The server's brief hold could be in any home: not checked now.
        assert_eq!(check_books(&ctx), 0);
        assert_eq!(ctx.store.usage(&home).unwrap().bytes, 0);
        drop(running);
        assert_eq!(check_books(&ctx), 1);
        let used = ctx.store.usage(&home).unwrap();
        assert_eq!((used.bytes, used.entries), (5, 1));
        assert_eq!(check_books(&ctx), 0, "in step now");
    }
}
