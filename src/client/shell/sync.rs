//! `sync SRC DST`: list both sides, plan, and run the plan as a batch.

use std::io::Write;
use std::path::Path;

use crate::client::batch::{BatchOptions, Failure, Step};
use crate::client::command::SyncOptions;
use crate::client::sync::{plan_fetch, plan_send, prepare_fetch, remove_local, Compare, SyncPlan};
use crate::client::tree::{walk_local, LocalTree};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::names::escape;
use crate::wire::reply::ErrorCode;

use super::shown::files;
use super::{note_skipped, run_batch, summarize, wrote, ShellOptions};

/// `sync SRC DST`.
pub(super) fn sync(
    client: &mut Client,
    how: &SyncOptions,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut plan = plan_sync(client, how, options, err)?;
    if how.dry_run {
        return print_plan(&plan, out);
    }
    let refused = prepare_fetch(&mut plan, |gone| {
        remove_local(gone).map_err(|e| Error::io(format!("removing {}", gone.display()), e))?;
        match how.verbose {
            true => wrote(writeln!(
                out,
                "removed {}",
                escape(&gone.display().to_string())
            )),
            false => Ok(()),
        }
    })?;
    let batch = BatchOptions {
        preserve_mode: how.preserve,
        ask_before_replacing: false,
    };
    let mut report = run_batch(client, plan.steps, batch, options, how.verbose, out, err);
    let clashed = plan.clashes.into_iter().map(|folder| {
        let why = "a folder here and a file on the server: kept (sync --delete replaces it)";
        (folder, Error::Usage(why.into()))
    });
    for (path, error) in refused.into_iter().chain(clashed) {
        let shown = escape(&path.display().to_string());
        let _ = writeln!(err, "error: sync {shown}: {error}");
        report.failures.push(Failure {
            verb: "sync",
            subject: path.display().to_string(),
            error,
        });
    }
    let removed = plan.local_removals.len() as u64;
    if !options.quiet {
        wrote(writeln!(
            out,
            "sync: {} sent or fetched, {} up to date, {} removed",
            files(report.files),
            plan.unchanged,
            removed + report.removed
        ))?;
    }
    summarize("sync", &report, 0, options, out)
}

/// Lists both sides and plans what differs.
fn plan_sync(
    client: &mut Client,
    how: &SyncOptions,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<SyncPlan> {
    let compare = match how.checksum {
        true => Compare::Checksum,
        false => Compare::SizeAndTime,
    };
    let sending = how.target.starts_with(':');
    let (remote, local) = match sending {
        true => (&how.target[1..], Path::new(&how.source)),
        false => (&how.source[1..], Path::new(&how.target)),
    };
    let remote = remote.trim_end_matches('/');
    let theirs = match client.list_tree(remote, how.checksum) {
        Ok(entries) => Some(entries),
        // Sending into a folder that is not there yet.
        Err(Error::Remote {
            code: ErrorCode::NotFound,
            ..
        }) if sending => None,
        Err(e) => return Err(e),
    };
    if sending {
        let ours = walk_local(local)?;
        for (skipped, why) in &ours.skipped {
            note_skipped(err, options, skipped, why);
        }
        let theirs = theirs.as_deref();
        return Ok(plan_send(&ours, remote, theirs, compare, how.delete));
    }
    let ours = match local.exists() {
        true => walk_local(local)?,
        false => LocalTree::default(),
    };
    let theirs = theirs.unwrap_or_default();
    Ok(plan_fetch(
        &theirs, remote, local, &ours, compare, how.delete,
    ))
}

/// `sync -n`: what would be done.
fn print_plan(plan: &SyncPlan, out: &mut impl Write) -> Result<()> {
    for gone in &plan.local_removals {
        wrote(writeln!(
            out,
            "would remove {}",
            escape(&gone.display().to_string())
        ))?;
    }
    for step in &plan.steps {
        let line = match step {
            Step::MakeFolder(p) => format!("would make folder :{}", escape(p)),
            Step::Upload(u) => format!(
                "would send {} to :{}",
                escape(&u.local.display().to_string()),
                escape(&u.remote)
            ),
            Step::Download(d) => format!(
                "would fetch :{} to {}",
                escape(&d.remote),
                escape(&d.local.display().to_string())
            ),
            Step::Remove { path, .. } => format!("would remove :{}", escape(path)),
        };
        wrote(writeln!(out, "{line}"))?;
    }
    wrote(writeln!(
        out,
        "{} up to date; nothing was changed (dry run)",
        files(plan.unchanged)
    ))
}
