//! `get`: one plain file the way it always went, or anything more (a
//! folder, wildcards, several names) planned from the server's listing and
//! fetched as one pipelined batch, every folder below the target reached
//! without following a link.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::client::batch::{BatchOptions, Download, Failure, Step};
use crate::client::beneath::{make_below, make_parent_below};
use crate::client::command::Transfer;
use crate::client::files::keep_folder_times;
use crate::client::progress::progress_for;
use crate::client::sync::make_local_folder;
use crate::client::tree::{clean_relative, has_wildcard, join, local_path, RemoteEntry};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::message::EntryKind;
use crate::wire::names::escape;
use crate::wire::reply::ErrorCode;

use crate::client::filter::Filter;
use crate::client::sync::Compare;

use super::filtered::prune_remote;
use super::rerun::{already_here, compare, fetched_already};
use super::shown::Ending;
use super::{print_get, run_batch, summarize, wrote, ShellOptions};

/// `get`: one plain file the way it always went; anything more (several
/// files, wildcards, folders) as one pipelined batch.
pub(super) fn get(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    if !t.force {
        return get_as_asked(client, t, options, out, err);
    }
    // -f: this command replaces without asking; the next one asks again.
    let policy = std::mem::take(&mut client.options.overwrite);
    let got = get_as_asked(client, t, options, out, err);
    client.options.overwrite = policy;
    got
}

fn get_as_asked(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<()> {
    // LOCAL ending with / is a folder, made when missing (as put's REMOTE/).
    if let Some(folder) = t.local.as_deref().filter(|l| l.ends_with('/')) {
        make_local_folder(Path::new(folder))?;
    }
    let single = matches!(t.sources.as_slice(), [one] if !has_wildcard(one));
    if single && !t.recursive && !t.preserve {
        return get_one(client, t, options, out);
    }
    let mut found = Vec::new();
    for source in &t.sources {
        found.extend(client.expand_remote(source)?);
    }
    let several = found.len() > 1 || t.recursive;
    let into = match &t.local {
        Some(local) => PathBuf::from(local),
        None => PathBuf::from("."),
    };
    // Several things, or a folder, go into LOCAL, which must be a folder;
    // one folder into a LOCAL that does not exist becomes LOCAL (as cp -r).
    let own_name = into.is_dir() || t.local.is_none();
    if several && !own_name && found.len() > 1 {
        return Err(Error::Usage(format!(
            "{} is not a folder; several files go into a folder",
            into.display()
        )));
    }
    let (steps, fetched) = plan_downloads(client, t, found, &into, own_name)?;
    let lines = t.verbose || !t.recursive;
    let batch = BatchOptions {
        preserve_mode: t.preserve,
        ask_before_replacing: true,
    };
    let mut report = run_batch(client, steps, batch, options, lines, out, err);
    for failure in &fetched.refused {
        let shown = escape(&failure.subject);
        let _ = writeln!(err, "error: get {shown}: {}", failure.error);
    }
    report.failures.extend(fetched.refused);
    keep_folder_times(&fetched.folder_times);
    let end = Ending::of("get", t, 0, fetched.up_to_date);
    summarize(&end, report, options, out, err)
}

/// The downloads of what `get` found: each into `into`, under its own
/// name when `own_name`; folders with all they hold.
fn plan_downloads(
    client: &mut Client,
    t: &Transfer,
    found: Vec<(String, EntryKind)>,
    into: &Path,
    own_name: bool,
) -> Result<(Vec<Step>, Fetched)> {
    let mut steps = Vec::new();
    let rerun = (!t.force_all).then(|| compare(t.checksum));
    let filter = Filter::new(&t.filters, None)?;
    let mut all = Fetched::default();
    for (path, kind) in found {
        let base = path.rsplit('/').next().unwrap_or(&path).to_string();
        let base = clean_relative(&base).map_err(|_| {
            Error::Usage(format!("cannot name a local file after {}", escape(&path)))
        })?;
        let target = match own_name {
            true => into.join(&base),
            false => into.to_path_buf(),
        };
        match kind == EntryKind::Dir || t.recursive {
            true => {
                let folder = (path, kind, target);
                let how = (t.recursive, rerun, &filter);
                let refused = &mut all.refused;
                let fetched = plan_folder_download(client, folder, how, &mut steps, refused)?;
                all.up_to_date += fetched.up_to_date;
                all.folder_times.extend(fetched.folder_times);
            }
            false => steps.push(Step::Download(Download {
                remote: path,
                local: target,
                size: 0,
            })),
        }
    }
    Ok((steps, all))
}

/// `get NAME [LOCAL]` of one plain file, the way it always went, unless
/// the local file is the server's already.
fn get_one(
    client: &mut Client,
    t: &Transfer,
    options: ShellOptions,
    out: &mut impl Write,
) -> Result<()> {
    let name = &t.sources[0];
    let local = t.local.as_deref().map(Path::new);
    let same = (!t.force_all).then(|| fetched_already(client, name, local));
    if let Some(Some(here)) = same {
        let here = escape(&here.display().to_string());
        return wrote(writeln!(
            out,
            "{here} is already the server's {} (same size and BLAKE3); nothing was fetched",
            escape(name)
        ));
    }
    let mut bar = progress_for(options.quiet);
    let report = client
        .get(name, local, bar.as_mut())
        .map_err(|e| folder_hint(e, name))?;
    wrote(print_get(out, name, &report))
}

/// The server's "not a regular file" for `get NAME` of a folder, with
/// what to type instead.
fn folder_hint(e: Error, name: &str) -> Error {
    match e {
        Error::Remote {
            code: ErrorCode::NotFound,
            ref message,
        } if message.ends_with("is not a regular file") => Error::Usage(format!(
            "{} is not a regular file; if it is a folder, get -r fetches it with all it holds",
            escape(name)
        )),
        other => other,
    }
}

/// Plans the download of the server folder `path` into `target`: its
/// folders made here now, its files as steps. A file named with `-r` is
/// one download. With `rerun`, a file that is here already, the same, is
/// left out.
fn plan_folder_download(
    client: &mut Client,
    (path, kind, target): (String, EntryKind, PathBuf),
    (recursive, rerun, filter): (bool, Option<Compare>, &Filter),
    steps: &mut Vec<Step>,
    refused: &mut Vec<Failure>,
) -> Result<Fetched> {
    let digests = rerun == Some(Compare::Checksum);
    let mut entries = match client.list_tree(&path, digests) {
        Ok(entries) => entries,
        Err(Error::Remote { code, .. })
            if code == ErrorCode::BadName
                || code == ErrorCode::NotFound && kind == EntryKind::File =>
        {
            steps.push(Step::Download(Download {
                remote: path,
                local: target,
                size: 0,
            }));
            return Ok(Fetched::default());
        }
        Err(e) => return Err(e),
    };
    if !recursive {
        return Err(Error::Usage(format!(
            "{} is a folder; get -r fetches a folder with all it holds",
            escape(&path)
        )));
    }
    prune_remote(&mut entries, filter);
    make_local_folder(&target)?;
    Ok(plan_entries(
        entries,
        (&path, &target),
        rerun,
        steps,
        refused,
    ))
}

/// The steps for a folder's listed entries: the folders below `target`
/// made (one handle at a time, never through a link), the files that
/// differ (with `rerun`) fetched into them; what would pass through a
/// link is refused.
fn plan_entries(
    entries: Vec<RemoteEntry>,
    (path, target): (&str, &Path),
    rerun: Option<Compare>,
    steps: &mut Vec<Step>,
    refused: &mut Vec<Failure>,
) -> Fetched {
    let mut fetched = Fetched::default();
    // Below the target, every folder is reached without following a
    // link: a listing cannot lead a download through one kept there.
    for e in entries {
        let local = local_path(target, &e.relative);
        let made = match e.kind {
            EntryKind::Dir => make_below(target, &e.relative).map(drop),
            EntryKind::File => make_parent_below(target, &e.relative),
        };
        if let Err(why) = made {
            refused.push(Failure {
                verb: "get",
                error: why.error(&local),
                subject: local.display().to_string(),
            });
            continue;
        }
        match e.kind {
            EntryKind::Dir => fetched.folder_times.push((local, e.mtime)),
            EntryKind::File if rerun.is_some_and(|how| already_here(&local, &e, how)) => {
                fetched.up_to_date += 1
            }
            EntryKind::File => steps.push(Step::Download(Download {
                remote: join(path, &e.relative),
                local,
                size: e.size,
            })),
        }
    }
    fetched
}
/// What planning a folder's download found besides its steps.
#[derive(Default)]
struct Fetched {
    /// Files here already, the same.
    up_to_date: u64,
    /// Folders below it, with the server's times, to set once filled.
    folder_times: Vec<(PathBuf, u64)>,
    /// What was refused below the target (a name through a local link).
    refused: Vec<Failure>,
}
