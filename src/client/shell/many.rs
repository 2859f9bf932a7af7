//! Commands on many files: put and rm of files, wildcards and
//! folders, each run as one pipelined batch.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::client::batch::{BatchOptions, Failure, Step, Upload};
use crate::client::command::Transfer;
use crate::client::progress::progress_for;
use crate::client::tree::{expand_local, join, walk_local};
use crate::client::{local_upload_name, Client};
use crate::error::{Error, Result};
use crate::wire::names::escape;

use crate::client::filter::{Filter, Filters};

use super::filtered::prune_local;
use super::rerun::{compare, skip_uploaded};
use super::shown::Ending;
use super::target::Target;
use super::{print_put, run_batch, summarize, wrote, ShellOptions};

/// `put`: one plain file the way it always went (a line with what the
/// server said); anything more as one pipelined batch.
pub(super) fn put(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let Planned {
        mut steps,
        skipped,
        mut unreadable,
        roots,
    } = plan_uploads(client, t, options, err)?;
    if steps.is_empty() && unreadable.len() == 1 {
        if let Some((path, error)) = unreadable.pop() {
            return Err(put_failed(&path, error));
        }
    }
    for (path, error) in &unreadable {
        let _ = writeln!(
            err,
            "error: put {}: {error}",
            escape(&path.display().to_string())
        );
    }
    if let [Step::Upload(one)] = steps.as_slice() {
        if !t.recursive && !t.preserve && unreadable.is_empty() && t.remote.is_none() {
            let mut bar = progress_for(options.quiet);
            let report = client
                .put(&one.local, bar.as_mut())
                .map_err(|e| put_failed(&one.local, e))?;
            return wrote(print_put(out, &report));
        }
    }
    let up_to_date = match t.recursive && !t.force_all {
        true => skip_uploaded(client, &mut steps, &roots, compare(t.checksum))?,
        false => 0,
    };
    let lines = t.verbose || !t.recursive;
    let batch = BatchOptions {
        preserve_mode: t.preserve,
        ask_before_replacing: false,
    };
    let mut report = run_batch(client, steps, batch, options, lines, out, err);
    report
        .failures
        .extend(unreadable.into_iter().map(|(path, error)| Failure {
            verb: "put",
            subject: path.display().to_string(),
            error,
        }));
    let end = Ending::of("put", t, skipped, up_to_date);
    summarize(&end, report, options, out, err)
}

/// What `put` will do, and what it cannot.
struct Planned {
    steps: Vec<Step>,
    /// Entries left out (links, special files), each noted already.
    skipped: usize,
    /// Sources that cannot be sent, and why.
    unreadable: Vec<(PathBuf, Error)>,
    /// The server folders that folders are sent to, to see what they hold.
    roots: Vec<String>,
}

/// Turns `put`'s sources (wildcards expanded) into steps: files as they
/// are, folders with `-r` as everything below them.
fn plan_uploads(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<Planned> {
    let mut plan = Planned {
        steps: Vec::new(),
        skipped: 0,
        unreadable: Vec::new(),
        roots: Vec::new(),
    };
    let target = Target::of(client, t.remote.as_deref());
    if let Target::Into(folder) = &target {
        plan.steps.push(Step::MakeFolder(folder.clone()));
    }
    for source in &t.sources {
        let paths = match expand_local(source) {
            Ok(paths) => paths,
            Err(error) => {
                plan.unreadable.push((source.into(), error));
                continue;
            }
        };
        if let (Target::As(remote), [_, _, ..]) = (&target, paths.as_slice()) {
            return Err(Error::Usage(format!(
                "put: {} names {} files, which go into a folder: end {} with / to name one",
                escape(source),
                paths.len(),
                escape(remote)
            )));
        }
        for path in paths {
            plan_source(path, t, &target, &mut plan, options, err)?;
        }
    }
    Ok(plan)
}

/// Plans one source of `put`: a file, or with `-r` a folder.
fn plan_source(
    path: PathBuf,
    t: &Transfer,
    target: &Target,
    plan: &mut Planned,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<()> {
    // A link named here is followed, as scp and cp do; links met
    // inside a folder are not.
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) => {
            let error = Error::cannot_read(path.display(), e);
            plan.unreadable.push((path, error));
            return Ok(());
        }
    };
    if meta.is_dir() && t.recursive {
        let root = plan_folder_upload(&path, target, &t.filters, &mut plan.steps, options, err)?;
        plan.skipped += root.skipped;
        plan.roots.push(root.name);
    } else if meta.is_dir() {
        let why = "a folder; put -r sends a folder with all it holds";
        plan.unreadable.push((path, Error::Usage(why.into())));
    } else if !meta.is_file() {
        let why = "not a regular file or folder";
        plan.unreadable.push((path, Error::Usage(why.into())));
    } else {
        match local_upload_name(&path) {
            Ok(base) => plan.steps.push(Step::Upload(Upload {
                local: path,
                remote: target.name(base),
                size: meta.len(),
            })),
            Err(error) => plan.unreadable.push((path, error)),
        }
    }
    Ok(())
}

/// A folder `put -r` sends: its name on the server, and how many entries
/// were left out (links, special files, unusable names).
struct Root {
    name: String,
    skipped: usize,
}

/// Plans a folder's upload: the folder of the same name in the target
/// server folder, everything below it made and sent.
fn plan_folder_upload(
    path: &Path,
    target: &Target,
    filters: &Filters,
    steps: &mut Vec<Step>,
    options: ShellOptions,
    err: &mut impl Write,
) -> Result<Root> {
    let absolute = fs::canonicalize(path).map_err(|e| Error::cannot_read(path.display(), e))?;
    // Named as given (a link keeps its own name); `.` and `..` by what
    // they are.
    let name = local_upload_name(path).or_else(|_| local_upload_name(&absolute))?;
    let name = target.name(name);
    let mut tree = walk_local(&absolute)?;
    for (skipped, why) in &tree.skipped {
        note_skipped(err, options, skipped, why);
    }
    prune_local(&mut tree, &Filter::new(filters, Some(&absolute))?);
    steps.push(Step::MakeFolder(name.clone()));
    steps.extend(
        tree.folders
            .iter()
            .map(|f| Step::MakeFolder(join(&name, f))),
    );
    steps.extend(tree.files.into_iter().map(|f| {
        Step::Upload(Upload {
            remote: join(&name, &f.relative),
            // Named from what the user typed, in messages too.
            local: path.join(&f.relative),
            size: f.size,
        })
    }));
    Ok(Root {
        name,
        skipped: tree.skipped.len(),
    })
}

pub(super) fn note_skipped(err: &mut impl Write, options: ShellOptions, path: &Path, why: &str) {
    if !options.quiet {
        let shown = escape(&path.display().to_string());
        let _ = writeln!(err, "note: skipped {shown}: {why}");
    }
}

/// `rm [-r] PATH...`: every path (wildcards expanded) in one batch.
pub(super) fn remove(
    client: &mut Client,
    paths: &[String],
    recursive: bool,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    let mut steps = Vec::new();
    for pattern in paths {
        for (path, _) in client.expand_remote(pattern)? {
            steps.push(Step::Remove { path, recursive });
        }
    }
    let report = run_batch(
        client,
        steps,
        BatchOptions::default(),
        options,
        true,
        out,
        err,
    );
    match report.failures.len() {
        0 => Ok(()),
        1 if report.removed == 0 => {
            let f = &report.failures[0];
            Err(Error::Usage(format!(
                "rm {}: {}",
                escape(&f.subject),
                f.error
            )))
        }
        n => Err(Error::Usage(format!(
            "{n} of {} removals failed",
            n as u64 + report.removed
        ))),
    }
}

/// A put of one file that failed, said with the file's name; the cause
/// keeps its kind (Ctrl-C still ends the program as interrupted).
fn put_failed(path: &Path, cause: Error) -> Error {
    Error::Command {
        what: format!("put {}", path.display()),
        cause: Box::new(cause),
    }
}
