//! The session a person or a script drives: the `>>: ` prompt with line
//! editing, history and completion on a terminal, plain lines otherwise.

use std::cell::RefCell;
use std::io::{self, BufRead, IsTerminal, Write};
use std::rc::Rc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context as LineContext, Editor, Helper};

use crate::client::command::{split_words, Command, WORDS};
use crate::client::shell::{run_command, Next, ShellOptions};
use crate::client::Client;
use crate::wire::names::escape;

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
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            (Next::Continue, 1)
        }
    }
}

fn interactive(client: &mut Client, options: ShellOptions) -> usize {
    let remote = Rc::new(RefCell::new(Vec::new()));
    let mut editor: Editor<LineHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(_) => {
            return scripted(
                client,
                options,
                io::stdin().lock().lines().map_while(|l| l.ok()),
            )
        }
    };
    editor.set_helper(Some(LineHelper {
        files: FilenameCompleter::new(),
        remote: remote.clone(),
    }));
    let history = crate::config::secret::default_secret_path()
        .ok()
        .map(|p| p.with_file_name("history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut failures = 0;
    refresh_remote_names(client, &remote);
    loop {
        match editor.readline(">>: ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let (next, f) = step(client, options, &line);
                failures += f;
                if next == Next::Quit {
                    break;
                }
                refresh_remote_names(client, &remote);
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    failures
}

fn refresh_remote_names(client: &mut Client, names: &Rc<RefCell<Vec<String>>>) {
    if let Ok(listing) = client.ls() {
        *names.borrow_mut() = listing.files.into_iter().map(|e| e.name).collect();
    }
}

/// Completes command words, local paths after `put`, and remote names
/// after `get`, `rm` and `cd`.
struct LineHelper {
    files: FilenameCompleter,
    remote: Rc<RefCell<Vec<String>>>,
}

impl Completer for LineHelper {
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
        let first = split_words(before).ok().and_then(|w| w.into_iter().next());
        match first.as_deref() {
            Some("put") => self.files.complete(line, pos, ctx),
            Some("get") | Some("rm") | Some("cd") => {
                let names = self.remote.borrow();
                let hits = names
                    .iter()
                    .filter(|n| n.starts_with(word))
                    .map(|n| pair(n));
                Ok((start, hits.collect()))
            }
            _ => Ok((pos, Vec::new())),
        }
    }
}

fn quote_if_needed(s: &str) -> String {
    if s.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

impl Hinter for LineHelper {
    type Hint = String;
}
impl Highlighter for LineHelper {}
impl Validator for LineHelper {}
impl Helper for LineHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_quotes_spaces() {
        assert_eq!(quote_if_needed("a b"), "\"a b\"");
        assert_eq!(quote_if_needed("ab"), "ab");
    }
}
