//! The session a person or a script drives: the `>>: ` prompt with line
//! editing, history and completion on a terminal, plain lines otherwise.

use std::cell::RefCell;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;

use crate::client::command::Command;
use crate::client::complete::LineHelper;
use crate::client::shell::{output_closed, run_command, Next, ShellOptions};
use crate::client::typeahead::{self, Typed};
use crate::client::Client;
use crate::config::paths;

/// Reads commands until `quit` or end of input and runs them. With a
/// terminal on stdin it shows the `>>: ` prompt with line editing, history
/// and completion; otherwise it reads plain lines without a prompt.
///
/// Returns the number of commands that failed.
pub(crate) fn run_session(client: &mut Client, options: ShellOptions) -> usize {
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
    editor.set_helper(Some(LineHelper::new(&client)));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let mut failures = 0;
    // Lines typed while a command ran, run next as a shell runs them.
    let mut typed = Typed::default();
    loop {
        let line = match next_line(&mut editor, &mut typed) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
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
            helper.forget_remote();
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    failures
}

/// The next line to run: one typed while the last command ran, shown
/// after the prompt as if typed now, else one read at the prompt, with a
/// line begun meanwhile already in the editor.
fn next_line(
    editor: &mut Editor<LineHelper, DefaultHistory>,
    typed: &mut Typed,
) -> rustyline::Result<String> {
    if let Some(line) = typed.lines.pop_front() {
        println!("{PROMPT}{line}");
        return Ok(line);
    }
    let partial = std::mem::take(&mut typed.partial);
    editor.readline_with_initial(PROMPT, (&partial, ""))
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
