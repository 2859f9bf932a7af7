//! Lines typed at the terminal while a command runs, kept as a shell
//! keeps them: not echoed into the progress bar, and run, in order, once
//! the command is done; a line not yet ended is left in the editor for
//! the user to finish.
//!
//! While a command runs the terminal stays in its line mode with echo
//! off, so the kernel holds what is typed. Afterwards it is read here,
//! without waiting, before the line editor takes the terminal (the editor
//! reads its input in large gulps and drops what follows the line it
//! returns, which is how typed-ahead lines used to be lost).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};

/// The terminal on stdin, as it was before a command began.
pub(crate) struct Held {
    saved: Termios,
}

/// Turns echo off on the terminal on stdin until [`Held::release`];
/// `None` when stdin is not a terminal.
pub(crate) fn hold() -> Option<Held> {
    let stdin = io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &quiet).ok()?;
    Some(Held { saved })
}

impl Held {
    /// Takes what was typed meanwhile, without waiting, and gives the
    /// terminal back as it was.
    pub(crate) fn release(self) -> Typed {
        let stdin = io::stdin();
        let mut now = self.saved.clone();
        // Unended input too, at once: no line mode, no wait.
        now.local_modes
            .remove(LocalModes::ECHO | LocalModes::ICANON);
        now.special_codes[SpecialCodeIndex::VMIN] = 0;
        now.special_codes[SpecialCodeIndex::VTIME] = 0;
        let mut bytes = Vec::new();
        if termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &now).is_ok() {
            let mut buf = [0u8; 4096];
            while bytes.len() < MAX_TYPED {
                match rustix::io::read(stdin.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => bytes.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
        }
        let _ = termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &self.saved);
        Typed::from_bytes(&bytes)
    }
}

/// Runs `f` with the terminal's echo on: a question asked during a
/// command (overwrite this file?) shows its answer as it is typed.
pub(crate) fn with_echo<T>(f: impl FnOnce() -> T) -> T {
    let stdin = io::stdin();
    let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
        return f();
    };
    let mut echoing = saved.clone();
    echoing.local_modes.insert(LocalModes::ECHO);
    let _ = termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &echoing);
    let answer = f();
    let _ = termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &saved);
    answer
}

/// Most typed-ahead bytes kept: far more than a person types during a
/// command, and a bound on what a paste can queue.
const MAX_TYPED: usize = 64 * 1024;

/// Where the splitter is in what a key sent.
#[derive(Clone, Copy)]
enum Key {
    Plain,
    /// After ESC.
    Escape,
    /// Inside `ESC [ ...` or `ESC O ...`, until its final byte.
    Sequence,
}

/// What was typed during a command.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Typed {
    /// Whole lines, in the order typed.
    pub(crate) lines: VecDeque<String>,
    /// The start of a line not yet ended.
    pub(crate) partial: String,
}

impl Typed {
    /// Splits raw terminal input into lines; a backspace takes back the
    /// character before it, as the terminal's line mode would have, and
    /// keys that send escape sequences (arrows) are dropped.
    fn from_bytes(bytes: &[u8]) -> Typed {
        let text = String::from_utf8_lossy(bytes);
        let mut typed = Typed::default();
        let mut line = String::new();
        let mut state = Key::Plain;
        let mut after_cr = false;
        for c in text.chars() {
            state = match (state, c) {
                (Key::Plain, '\u{1b}') => Key::Escape,
                (Key::Escape, '[' | 'O') => Key::Sequence,
                (Key::Escape, _) => Key::Plain,
                (Key::Sequence, '@'..='~') => Key::Plain,
                (Key::Sequence, _) => Key::Sequence,
                (Key::Plain, '\n') if after_cr => Key::Plain,
                (Key::Plain, '\r' | '\n') => {
                    typed.lines.push_back(std::mem::take(&mut line));
                    Key::Plain
                }
                (Key::Plain, '\u{7f}' | '\u{8}') => {
                    line.pop();
                    Key::Plain
                }
                (Key::Plain, c) => {
                    if !c.is_control() {
                        line.push(c);
                    }
                    Key::Plain
                }
            };
            after_cr = c == '\r';
        }
        typed.partial = line;
        typed
    }

    /// Adds what was typed during a later command.
    pub(crate) fn append(&mut self, more: Typed) {
        let mut more = more;
        if let Some(first) = more.lines.pop_front() {
            let first = std::mem::take(&mut self.partial) + &first;
            self.lines.push_back(first);
            self.lines.extend(more.lines);
        }
        self.partial.push_str(&more.partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_bytes_become_lines_and_a_rest() {
        let typed = Typed::from_bytes(b"pwd\nls -x\x7fR\r\necho hi");
        assert_eq!(typed.lines, ["pwd", "ls -R"]);
        assert_eq!(typed.partial, "echo hi");
        let mut so_far = Typed::from_bytes(b"put a\nge");
        so_far.append(Typed::from_bytes(b"t b\nquo"));
        assert_eq!(so_far.lines, ["put a", "get b"]);
        assert_eq!(so_far.partial, "quo");
    }

    #[test]
    fn controls_are_not_kept() {
        let typed = Typed::from_bytes(b"l\x1b[As\x1bOD\x07\n");
        assert_eq!(typed.lines, ["ls"]);
    }
}
