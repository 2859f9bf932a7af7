//! Tab completion at the prompt: command words; server paths at any depth
//! after `get`, `ls`, `cd`, `rm`, `mv` and on `sync`'s `:` side, folders
//! with a trailing `/`; local paths after `put`, on `sync`'s other side
//! and for `get`'s LOCAL.
//!
//! A folder's names are asked of the server on the first Tab that needs
//! them and kept for [`NAMES_TTL`], so typing costs no round trip.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context as LineContext, Helper};

use crate::client::command::{split_words, WORDS};
use crate::client::Client;
use crate::wire::message::{EntryKind, LsRequest};
use crate::wire::names::{escape, validate_name};

/// Longest a Tab waits on the server (for each step of a reconnect, and
/// for the listing); it then completes nothing.
const COMPLETION_LIMIT: Duration = Duration::from_secs(2);

/// How long completion trusts the names it fetched.
const NAMES_TTL: Duration = Duration::from_secs(30);

/// Most remote names kept for one folder: a huge folder is still listed
/// to its end, but completes from its first names only.
const MAX_COMPLETIONS: usize = 10_000;

/// Most folders whose names are kept at once.
const MAX_FOLDERS: usize = 64;

/// A folder's names: each with whether it is a folder itself.
type Names = Vec<(String, bool)>;

/// Names in server folders, for completion, by the folder's path as typed
/// (`""` for the current folder); forgotten after a command that changes
/// names.
#[derive(Debug, Default)]
struct RemoteNames {
    folders: HashMap<String, (Names, Instant)>,
}

impl RemoteNames {
    /// The names in `folder`, listing it again if they are stale. A failed
    /// listing completes nothing rather than showing an error mid-line.
    fn get(&mut self, client: &mut Client, folder: &str) -> &[(String, bool)] {
        let fresh = self
            .folders
            .get(folder)
            .is_some_and(|(_, at)| at.elapsed() < NAMES_TTL);
        if !fresh {
            if self.folders.len() >= MAX_FOLDERS {
                self.folders.clear();
            }
            let names = list(client, folder).unwrap_or_default();
            self.folders
                .insert(folder.to_string(), (names, Instant::now()));
        }
        self.folders.get(folder).map_or(&[], |(names, _)| names)
    }
}

/// One folder's completable names.
fn list(client: &mut Client, folder: &str) -> crate::error::Result<Names> {
    let mut names = Vec::new();
    let request = LsRequest {
        pages: true,
        path: (!folder.is_empty()).then(|| folder.to_string()),
        ..LsRequest::default()
    };
    // The terminal is in raw mode meanwhile, where Ctrl-C is only a key:
    // a server that trickles its listing must not hold it.
    client.within(COMPLETION_LIMIT, |client| {
        client.ensure_connected()?;
        client.ls_with(request, |page| {
            let room = MAX_COMPLETIONS.saturating_sub(names.len());
            let fit = page.files.into_iter().filter(|e| completable(&e.name));
            names.extend(fit.take(room).map(|e| (e.name, e.kind == EntryKind::Dir)));
            Ok(())
        })
    })?;
    Ok(names)
}

/// Completes what the prompt's line needs, from the client's server and
/// the local disk.
pub(crate) struct LineHelper<'b, 'a> {
    files: FilenameCompleter,
    remote: RefCell<RemoteNames>,
    client: &'b RefCell<&'a mut Client>,
}

impl<'b, 'a> LineHelper<'b, 'a> {
    pub(crate) fn new(client: &'b RefCell<&'a mut Client>) -> LineHelper<'b, 'a> {
        LineHelper {
            files: FilenameCompleter::new(),
            remote: RefCell::new(RemoteNames::default()),
            client,
        }
    }

    /// Forgets the server's names, after a command that may change them.
    pub(crate) fn forget_remote(&self) {
        self.remote.borrow_mut().folders.clear();
    }

    /// Server paths that start with `word` (`tree/su` → `tree/sub/`),
    /// each written with `lead` before it (`:` on sync's server side).
    fn remote_paths(&self, word: &str, lead: &str) -> Vec<Pair> {
        let (folder, prefix) = match word.rfind('/') {
            Some(at) => (&word[..at + 1], &word[at + 1..]),
            None => ("", word),
        };
        // `a/b/` lists `a/b`; `/` stays the home folder.
        let listed = match folder.trim_end_matches('/') {
            "" if folder.starts_with('/') => "/",
            trimmed => trimmed,
        };
        let mut remote = self.remote.borrow_mut();
        let Ok(mut client) = self.client.try_borrow_mut() else {
            return Vec::new();
        };
        let names = remote.get(&mut client, listed);
        names
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(name, dir)| {
                let slash = if *dir { "/" } else { "" };
                let path = format!("{folder}{name}{slash}");
                Pair {
                    display: format!("{}{slash}", escape(name)),
                    replacement: format!("{lead}{}", quote_if_needed(&path)),
                }
            })
            .collect()
    }
}

/// What the word under the cursor is.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Command,
    Local,
    Remote,
    /// A path on sync's server side: after its `:`.
    SyncRemote,
    Nothing,
}

/// What completes the word at `start` of the line `before` the cursor.
fn wanted(before: &str, start: usize, pos: usize) -> Wanted {
    if start == 0 {
        return Wanted::Command;
    }
    let words = split_words(before).unwrap_or_default();
    // Operands typed before the word under the cursor, flags aside.
    let typed = words.len().saturating_sub(usize::from(start != pos));
    let operands = words
        .iter()
        .take(typed)
        .skip(1)
        .filter(|w| !w.starts_with('-'))
        .count();
    match (words.first().map(String::as_str), operands) {
        (Some("put"), _) => Wanted::Local,
        // get's LOCAL is a path here: a server's name is never offered
        // for where a download goes.
        (Some("get"), 1..) => Wanted::Local,
        (Some("get" | "ls" | "cd" | "rm" | "mv"), _) => Wanted::Remote,
        (Some("sync"), _) if before[start..].starts_with(':') => Wanted::SyncRemote,
        (Some("sync"), _) => Wanted::Local,
        _ => Wanted::Nothing,
    }
}

impl Completer for LineHelper<'_, '_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &LineContext<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = word_start(before);
        let word = &before[start..];
        match wanted(before, start, pos) {
            Wanted::Command => {
                let words = WORDS.iter().filter(|w| w.starts_with(word));
                let pair = |w: &&str| Pair {
                    display: w.to_string(),
                    replacement: w.to_string(),
                };
                Ok((0, words.map(pair).collect()))
            }
            Wanted::Local => self.files.complete(line, pos, ctx),
            Wanted::Remote => Ok((start, self.remote_paths(word, ""))),
            Wanted::SyncRemote => Ok((start, self.remote_paths(&word[1..], ":"))),
            Wanted::Nothing => Ok((pos, Vec::new())),
        }
    }
}

/// Where the word before the cursor starts: after the last whitespace,
/// which may be wider than a byte (an ideographic space).
fn word_start(before: &str) -> usize {
    let last = before.char_indices().rev().find(|(_, c)| c.is_whitespace());
    last.map_or(0, |(at, c)| at + c.len_utf8())
}

/// Whether a server's name may be put into the line being edited: one the
/// naming rules allow (no `/`, no `..`) and that shows as it is, without a
/// control, invisible or reordering character that would act on the
/// terminal or pass for another name. Others are not offered at all.
fn completable(name: &str) -> bool {
    validate_name(name).is_ok() && escape(name) == name
}

fn quote_if_needed(s: &str) -> String {
    if s.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

impl Hinter for LineHelper<'_, '_> {
    type Hint = String;
}

impl Highlighter for LineHelper<'_, '_> {}
impl Validator for LineHelper<'_, '_> {}
impl Helper for LineHelper<'_, '_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_act_on_the_terminal_or_leave_the_folder_are_not_offered() {
        for bad in [
            "a\x1b]52;c;cm0gLXJmIH4=\x07",
            "/etc/cron.d/x",
            "../../x",
            "..",
            "a\u{202e}txt.exe",
            "zero\u{200b}width",
        ] {
            assert!(!completable(bad), "{bad:?}");
        }
        assert!(completable("report 2026.txt") && completable("Übung.pdf"));
    }

    #[test]
    fn completion_quotes_spaces() {
        assert_eq!(quote_if_needed("a b"), "\"a b\"");
        assert_eq!(quote_if_needed("ab"), "ab");
    }

    #[test]
    fn a_wide_space_before_the_cursor_is_a_word_break_not_a_panic() {
        assert_eq!(word_start("get\u{3000}tr"), "get\u{3000}".len());
        assert_eq!(word_start("get a b"), 6);
        assert_eq!(word_start("ls"), 0);
    }

    #[test]
    fn each_word_completes_from_the_right_side() {
        let at = |line: &str| wanted(line, word_start(line), line.len());
        assert_eq!(at("ge"), Wanted::Command);
        assert_eq!(at("get tree/su"), Wanted::Remote);
        assert_eq!(at("get tree/a.txt lo"), Wanted::Local);
        assert_eq!(at("ls -R tr"), Wanted::Remote);
        assert_eq!(at("mv a b"), Wanted::Remote);
        assert_eq!(at("put re"), Wanted::Local);
        assert_eq!(at("sync -n :pho"), Wanted::SyncRemote);
        assert_eq!(at("sync photos :ph"), Wanted::SyncRemote);
        assert_eq!(at("sync pho"), Wanted::Local);
        assert_eq!(at("pwd x"), Wanted::Nothing);
    }
}
