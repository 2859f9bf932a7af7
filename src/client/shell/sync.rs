//! `sync SRC DST`: list both sides, plan, and run the plan as a batch.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::client::batch::{BatchOptions, BatchReport, Failure, Step};
use crate::client::command::SyncOptions;
use crate::client::files::keep_folder_times;
use crate::client::filter::Filter;
use crate::client::sync::{plan_fetch, plan_send, prepare_fetch, remove_local, Compare, SyncPlan};
use crate::client::tree::{join, local_path, walk_local, LocalTree, RemoteEntry};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::message::EntryKind;
use crate::wire::names::escape;
use crate::wire::reply::ErrorCode;

use super::filtered::{prune_local, prune_remote, spare_local, spare_remote};
use super::shown::{files, Ending};
use super::{note_skipped, rate, run_batch, summarize, wrote, ShellOptions};

/// `sync SRC DST`.
pub(super) fn sync(
    client: &mut Client,
    how: &SyncOptions,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let Planned {
        mut plan,
        there,
        folder_times,
    } = plan_sync(client, how, options, err)?;
    if how.itemize {
        itemize(&plan, &there, out)?;
    }
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
    let steps = std::mem::take(&mut plan.steps);
    let mut report = run_batch(client, steps, batch, options, how.verbose, out, err);
    keep_folder_times(&folder_times);
    let clashes = std::mem::take(&mut plan.clashes);
    report_left_out(refused, clashes, &mut report, err);
    if !options.quiet {
        wrote(writeln!(out, "{}", summary_line(how, &plan, &report)))?;
    }
    let end = Ending {
        verb: "sync",
        again: how.line(),
        skipped: 0,
        up_to_date: plan.unchanged,
        verbose: how.verbose,
        failed_list: None,
    };
    summarize(&end, report, options, out, err)
}

/// Reports, and counts as failed, what the plan left out below the
/// target (a name through a local link), and each local folder kept
/// where the server has a file.
fn report_left_out(
    refused: Vec<(PathBuf, Error)>,
    clashes: Vec<PathBuf>,
    report: &mut BatchReport,
    err: &mut impl Write,
) {
    let clashed = clashes.into_iter().map(|folder| {
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
}

/// `sync photos to :photos: 2 files sent, 1.20 MiB sent in 0.41 s, ...`:
/// the direction, files and bytes moved, time, rate, and the rest.
fn summary_line(how: &SyncOptions, plan: &SyncPlan, report: &BatchReport) -> String {
    let (verb, moved) = match how.target.starts_with(':') {
        true => ("sent", "sent"),
        false => ("fetched", "received"),
    };
    format!(
        "sync {} to {}: {} {verb}, {}; {} up to date; {} removed",
        escape(&how.source),
        escape(&how.target),
        files(report.files),
        rate(moved, report.bytes, report.elapsed),
        plan.unchanged,
        plan.local_removals.len() as u64 + report.removed
    )
}

/// A sync's plan, and what it found on the way.
struct Planned {
    plan: SyncPlan,
    /// The paths on the side brought up to date, as the plan names them.
    there: HashSet<String>,
    /// Fetching: the local folders with the server's times, to set once
    /// they are filled.
    folder_times: Vec<(PathBuf, u64)>,
}

/// Lists both sides and plans what differs.
fn plan_sync(
    client: &mut Client,
    how: &SyncOptions,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<Planned> {
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
    let filter = Filter::new(&how.filters, Some(local))?;
    let mut theirs = match client.list_tree(remote, how.checksum) {
        Ok(entries) => Some(entries),
        // Sending into a folder that is not there yet.
        Err(Error::Remote {
            code: ErrorCode::NotFound,
            ..
        }) if sending => None,
        Err(e) => return Err(e),
    };
    let excluded_there = theirs
        .as_mut()
        .map(|t| prune_remote(t, &filter))
        .unwrap_or_default();
    if sending {
        let mut ours = walk_local(local)?;
        for (skipped, why) in &ours.skipped {
            note_skipped(err, options, skipped, why);
        }
        prune_local(&mut ours, &filter);
        let mut plan = plan_send(&ours, remote, theirs.as_deref(), compare, how.delete);
        let theirs = theirs.unwrap_or_default();
        spare_remote(&mut plan.steps, remote, &excluded_there, &theirs);
        let there = theirs.iter().map(|e| join(remote, &e.relative)).collect();
        let folder_times = Vec::new();
        return Ok(Planned {
            plan,
            there,
            folder_times,
        });
    }
    let theirs = theirs.unwrap_or_default();
    plan_fetching(&theirs, remote, local, &filter, (compare, how.delete))
}

/// Plans fetching the server folder `remote`, which holds `theirs`
/// (filtered already), into `local`.
fn plan_fetching(
    theirs: &[RemoteEntry],
    remote: &str,
    local: &Path,
    filter: &Filter,
    (compare, delete): (Compare, bool),
) -> Result<Planned> {
    let mut ours = match local.exists() {
        true => walk_local(local)?,
        false => LocalTree::default(),
    };
    let excluded_here = prune_local(&mut ours, filter);
    let mut plan = plan_fetch(theirs, remote, local, &ours, compare, delete);
    spare_local(&mut plan.local_removals, local, &excluded_here, &ours);
    let files = ours.files.iter().map(|f| &f.relative);
    let here = files.chain(&ours.folders);
    let there = here.map(|r| local_path(local, r).display().to_string());
    let folders = theirs.iter().filter(|e| e.kind == EntryKind::Dir);
    let folder_times = folders
        .map(|e| (local_path(local, &e.relative), e.mtime))
        .collect();
    Ok(Planned {
        plan,
        there: there.collect(),
        folder_times,
    })
}

/// `sync -i`: one line per change, as rsync's `--itemize-changes` writes
/// it: `>f+` a file sent that is new there, `>f~` one sent over a
/// different one, `<f+` and `<f~` the same fetched, `cd+` a folder made,
/// `*deleting` a removal.
fn itemize(plan: &SyncPlan, there: &HashSet<String>, out: &mut impl Write) -> Result<()> {
    let mark = |path: &str| if there.contains(path) { '~' } else { '+' };
    for gone in &plan.local_removals {
        let shown = gone.display().to_string();
        wrote(writeln!(out, "*deleting {}", escape(&shown)))?;
    }
    for folder in &plan.local_folders {
        let shown = folder.display().to_string();
        if !there.contains(&shown) && !folder.is_dir() {
            wrote(writeln!(out, "cd+ {}", escape(&shown)))?;
        }
    }
    for step in &plan.steps {
        let line = match step {
            Step::MakeFolder(p) if there.contains(p) => continue,
            Step::MakeFolder(p) => format!("cd+ :{}", escape(p)),
            Step::Upload(u) => format!(">f{} :{}", mark(&u.remote), escape(&u.remote)),
            Step::Download(d) => {
                let shown = d.local.display().to_string();
                format!("<f{} {}", mark(&shown), escape(&shown))
            }
            Step::Remove { path, .. } => format!("*deleting :{}", escape(path)),
        };
        wrote(writeln!(out, "{line}"))?;
    }
    Ok(())
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
