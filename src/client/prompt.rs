//! The session a person or a script drives: the `>>: ` prompt with line
//! editing, history and completion on a terminal, plain lines otherwise.

use std::cell::RefCell;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context as LineContext, Editor, Helper};

use crate::client::command::{split_words, Command, WORDS};
use crate::client::shell::{output_closed, run_command, Next, ShellOptions};
use crate::client::typeahead::{self, Typed};
use crate::client::Client;
use crate::config::paths;
use crate::wire::names::{escape, validate_name};

/// Reads commands until `quit` or end of input and runs them. With a
/// terminal on stdin it shows the `>>: ` prompt with line editing, history
/// and completion; otherwise it reads plain lines without a prompt.
///
/// Returns the number of commands that failed.
pub fn run_session(client: &mut Client, options: ShellOptions) -> usize {
    if io::stdin().is_terminal() {
        interactive(client, options)
    } else {
        let stdin = io::stdin();
        let lines = stdin.lock().lines().map_while(|l| l.ok());
        scripted(client, options, lines)
    }
}

fn scripted(
    client: &mut Client,
    options: ShellOptions,
    lines: impl Iterator<Item = String>,
) -> usize {
    let mut failures = 0;
    for line in lines {
        match step(client, options, &line) {
            (Next::Quit, f) => return failures + f,
            (Next::Continue, f) => failures += f,
        }
    }
    failures
}

/// Runs one line; returns what comes next and whether it failed.
fn step(client: &mut Client, options: ShellOptions, line: &str) -> (Next, usize) {
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    let command = match Command::parse_line(line) {
        Ok(Some(c)) => c,
        Ok(None) => return (Next::Continue, 0),
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return (Next::Continue, 1);
        }
    };
    match run_command(client, &command, options, &mut out, &mut err) {
        Ok(next) => (next, 0),
        // Whoever read the output has gone (`| head`): stop, quietly.
        Err(e) if output_closed(&e) => (Next::Quit, 0),
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            (Next::Continue, 1)
        }
    }
}

fn interactive(client: &mut Client, options: ShellOptions) -> usize {
    let mut editor: Editor<LineHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(_) => {
            let lines = io::stdin().lock().lines().map_while(|l| l.ok());
            return scripted(client, options, lines);
        }
    };
    // Ctrl-C while a command runs stops its transfer (the prompt's own
    // Ctrl-C, in raw mode, only clears the line).
    let interrupt = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupt.clone());
    client.set_interrupt(interrupt.clone());
    let client = RefCell::new(client);
    editor.set_helper(Some(LineHelper {
        files: FilenameCompleter::new(),
        remote: RefCell::new(RemoteNames::default()),
        client: &client,
    }));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut failures = 0;
    // Lines typed while a command ran, run next as a shell runs them.
    let mut typed = Typed::default();
    loop {
        let line = match typed.lines.pop_front() {
            Some(line) => {
                println!("{PROMPT}{line}");
                line
            }
            None => {
                let partial = std::mem::take(&mut typed.partial);
                match editor.readline_with_initial(PROMPT, (&partial, "")) {
                    Ok(line) => line,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => break,
                }
            }
        };
        if !line.trim().is_empty() {
            let _ = editor.add_history_entry(line.as_str());
        }
        interrupt.store(false, Ordering::SeqCst);
        let held = typeahead::hold();
        let (next, f) = step(&mut client.borrow_mut(), options, &line);
        if let Some(held) = held {
            typed.append(held.release());
        }
        failures += f;
        if next == Next::Quit {
            break;
        }
        let changed =
            Command::parse_line(&line).is_ok_and(|c| c.is_some_and(|c| c.changes_names()));
        if let (true, Some(helper)) = (changed, editor.helper()) {
            helper.remote.borrow_mut().forget();
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    failures
}

/// What the prompt shows.
const PROMPT: &str = ">>: ";

/// The prompt's history: `$XDG_STATE_HOME/ftp/history`, beside neither
/// the secret nor the configuration.
fn history_file() -> Option<PathBuf> {
    let dir = paths::state_dir()?;
    paths::create_private_dir(&dir).ok()?;
    Some(dir.join("history"))
}

/// Longest a Tab waits on the server (for each step of a reconnect, and
/// for the listing); it then completes nothing.
const COMPLETION_LIMIT: Duration = Duration::from_secs(2);

/// How long completion trusts the names it fetched.
const NAMES_TTL: Duration = Duration::from_secs(30);

/// Most remote names kept for completion: a huge folder is still listed to
/// its end, but completes from its first names only.
const MAX_COMPLETIONS: usize = 10_000;

/// Names in the server's current folder, for completion: fetched on the
/// first Tab that needs them, kept for [`NAMES_TTL`], and forgotten after a
/// command that changes them. Typing costs no round trip.
#[derive(Debug, Default)]
struct RemoteNames {
    names: Vec<String>,
    fetched: Option<Instant>,
}

impl RemoteNames {
    fn is_fresh(&self) -> bool {
        self.fetched.is_some_and(|t| t.elapsed() < NAMES_TTL)
    }

    fn forget(&mut self) {
        self.fetched = None;
    }

    /// The names, listing the folder again if they are stale. A failed
    /// listing completes nothing rather than showing an error mid-line.
    fn get(&mut self, client: &mut Client) -> &[String] {
        if !self.is_fresh() {
            let mut names = Vec::new();
            // The terminal is in raw mode meanwhile, where Ctrl-C is only a
            // key: a server that trickles its listing must not hold it.
            let listing = client.within(COMPLETION_LIMIT, |client| {
                client.ensure_connected()?;
                client.ls(|page| {
                    let room = MAX_COMPLETIONS.saturating_sub(names.len());
                    let fit = page.files.into_iter().filter(|e| completable(&e.name));
                    names.extend(fit.take(room).map(|e| e.name));
                    Ok(())
                })
            });
            self.names = listing.map_or_else(|_| Vec::new(), |_| names);
            self.fetched = Some(Instant::now());
        }
        &self.names
    }
}

/// Completes command words, local paths after `put`, and remote names
/// after `get`, `rm` and `cd`.
struct LineHelper<'b, 'a> {
    files: FilenameCompleter,
    remote: RefCell<RemoteNames>,
    client: &'b RefCell<&'a mut Client>,
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
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let pair = |s: &str| Pair {
            display: escape(s),
            replacement: quote_if_needed(s),
        };
        if start == 0 {
            let words = WORDS
                .iter()
                .filter(|w| w.starts_with(word))
                .map(|w| pair(w));
            return Ok((0, words.collect()));
        }
        let words = split_words(before).unwrap_or_default();
        // Operands typed before the word under the cursor, flags aside.
        let typed = words.len().saturating_sub(match start == pos {
            true => 0,
            false => 1,
        });
        let operands = words
            .iter()
            .take(typed)
            .skip(1)
            .filter(|w| !w.starts_with('-'))
            .count();
        match (words.first().map(String::as_str), operands) {
            (Some("put"), _) => self.files.complete(line, pos, ctx),
            // get's LOCAL is a path here: a server's name is never offered
            // for where a download goes.
            (Some("get"), 1..) => self.files.complete(line, pos, ctx),
            (Some("get" | "rm" | "cd"), _) => {
                let mut remote = self.remote.borrow_mut();
                let Ok(mut client) = self.client.try_borrow_mut() else {
                    return Ok((pos, Vec::new()));
                };
                let hits = remote
                    .get(&mut client)
                    .iter()
                    .filter(|n| n.starts_with(word))
                    .map(|n| pair(n));
                Ok((start, hits.collect()))
            }
            _ => Ok((pos, Vec::new())),
        }
    }
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
}
