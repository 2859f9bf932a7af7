//! The client's command language: one line typed at the prompt, or the
//! words given on the command line, parsed into a typed [`Command`].

use std::fmt;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Upload local files.
    Put(Vec<String>),
    /// Upload local folders with everything in them (`put -r`).
    PutTree(Vec<String>),
    /// Download a file, optionally to a local path.
    Get {
        /// Remote name.
        name: String,
        /// Local path or folder.
        local: Option<String>,
    },
    /// List the server's current folder.
    Ls(ListOptions),
    /// Upper-case text on the server.
    Echo(String),
    /// Show used and free space.
    Quota,
    /// Create a folder on the server.
    Mkdir(String),
    /// Change folder on the server.
    Cd(String),
    /// Show the server's current folder.
    Pwd,
    /// Remove a file or empty folder on the server.
    Rm(String),
    /// Show the commands.
    Help,
    /// End the session.
    Quit,
}

/// The help text, one command a line.
pub const HELP: &str = "\
commands:
  put FILE...          upload files (an interrupted upload resumes)
  put -r FOLDER...     upload folders with everything in them
  get NAME [LOCAL]     download a file (an interrupted download resumes)
  ls [-a] [-h]         list files (-a: dot-files too, -h: human sizes)
  echo TEXT            the server answers TEXT in upper case
  quota                show used and available space
  mkdir PATH           create a folder on the server
  cd PATH              change folder on the server (/ is your home)
  pwd                  show the folder on the server
  rm NAME              remove a file or an empty folder on the server
  help                 this text
  quit, exit           leave (so does end of input)
names with spaces go in quotes: put \"my file.txt\"";

/// Every command word, for completion.
pub const WORDS: &[&str] = &[
    "put", "get", "ls", "echo", "quota", "mkdir", "cd", "pwd", "rm", "help", "quit", "exit",
];

/// How `ls` shows a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Show names that start with a dot (`-a`).
    pub all: bool,
    /// Sizes in KiB, MiB... instead of bytes (`-h`).
    pub human: bool,
}

impl ListOptions {
    /// Reads `-a`, `-h` and their combinations such as `-ah`.
    ///
    /// Fails on any other word.
    fn parse(args: &[String]) -> Result<ListOptions, ParseError> {
        let mut options = ListOptions::default();
        for arg in args {
            let flags = arg.strip_prefix('-').filter(|f| !f.is_empty());
            for flag in flags.map(str::chars).into_iter().flatten() {
                match flag {
                    'a' => options.all = true,
                    'h' => options.human = true,
                    _ => return Err(ParseError("usage: ls [-a] [-h]".into())),
                }
            }
            if flags.is_none() {
                return Err(ParseError("usage: ls [-a] [-h]".into()));
            }
        }
        Ok(options)
    }
}

/// A line that is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl Command {
    /// Whether the command can change the names in the server's current
    /// folder, which completion then fetches again.
    pub fn changes_names(&self) -> bool {
        matches!(
            self,
            Command::Put(_)
                | Command::PutTree(_)
                | Command::Rm(_)
                | Command::Mkdir(_)
                | Command::Cd(_)
        )
    }

    /// Parses a prompt line. Returns `Ok(None)` for a blank line.
    ///
    /// Fails for an unknown command, missing or extra arguments, or an
    /// unclosed quote, with a one-line hint.
    pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
        let words = split_words(line)?;
        if words.is_empty() {
            return Ok(None);
        }
        // echo keeps the rest of the line as typed, spaces included.
        if words[0] == "echo" {
            let rest = line.trim_start()["echo".len()..].trim();
            return Command::parse_words(&["echo".to_string(), rest.to_string()]).map(Some);
        }
        Command::parse_words(&words).map(Some)
    }

    /// Parses words already split, as from the command line.
    ///
    /// Fails like [`Command::parse_line`].
    pub fn parse_words(words: &[String]) -> Result<Command, ParseError> {
        let Some((first, args)) = words.split_first() else {
            return Err(ParseError("no command given; try 'help'".into()));
        };
        let one = |what: &str| -> Result<String, ParseError> {
            match args {
                [a] => Ok(a.clone()),
                [] => Err(ParseError(format!("usage: {first} {what}"))),
                _ => Err(ParseError(format!(
                    "{first} takes one {what}; put names with spaces in quotes"
                ))),
            }
        };
        let none = |cmd: Command| -> Result<Command, ParseError> {
            if args.is_empty() {
                Ok(cmd)
            } else {
                Err(ParseError(format!("{first} takes no arguments")))
            }
        };
        match first.as_str() {
            "put" if args.is_empty() => Err(ParseError("usage: put FILE...".into())),
            "put" if args[0] == "-r" && args.len() == 1 => {
                Err(ParseError("usage: put -r FOLDER...".into()))
            }
            "put" if args[0] == "-r" => Ok(Command::PutTree(args[1..].to_vec())),
            "put" => Ok(Command::Put(args.to_vec())),
            "get" => match args {
                [name] => Ok(Command::Get {
                    name: name.clone(),
                    local: None,
                }),
                [name, local] => Ok(Command::Get {
                    name: name.clone(),
                    local: Some(local.clone()),
                }),
                _ => Err(ParseError("usage: get NAME [LOCAL]".into())),
            },
            "echo" if args.is_empty() => Err(ParseError("usage: echo TEXT".into())),
            "echo" => Ok(Command::Echo(args.join(" "))),
            "ls" => ListOptions::parse(args).map(Command::Ls),
            "quota" | "df" => none(Command::Quota),
            "pwd" => none(Command::Pwd),
            "help" | "?" => none(Command::Help),
            "quit" | "exit" => none(Command::Quit),
            "mkdir" => one("PATH").map(Command::Mkdir),
            "cd" => one("PATH").map(Command::Cd),
            "rm" => one("NAME").map(Command::Rm),
            other => Err(ParseError(format!(
                "unknown command {:?}; type 'help' for the list",
                crate::wire::names::escape(other)
            ))),
        }
    }
}

/// Splits a line into words, honouring single and double quotes and
/// backslash escapes outside single quotes.
///
/// Fails on an unclosed quote.
pub fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(ParseError("unclosed ' quote".into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(ParseError("unclosed \" quote".into())),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(ParseError("unclosed \" quote".into())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Option<Command>, ParseError> {
        Command::parse_line(line)
    }

    #[test]
    fn commands_parse() {
        assert_eq!(p("   ").unwrap(), None);
        assert_eq!(
            p("put a b").unwrap(),
            Some(Command::Put(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            p("put \"my file.txt\" 'x y'").unwrap(),
            Some(Command::Put(vec!["my file.txt".into(), "x y".into()]))
        );
        assert_eq!(
            p("get a.txt /tmp/b").unwrap(),
            Some(Command::Get {
                name: "a.txt".into(),
                local: Some("/tmp/b".into())
            })
        );
        assert_eq!(
            p("echo  hello   world ").unwrap(),
            Some(Command::Echo("hello   world".into()))
        );
        assert_eq!(p("ls").unwrap(), Some(Command::Ls(ListOptions::default())));
        let both = ListOptions {
            all: true,
            human: true,
        };
        assert_eq!(p("ls -ah").unwrap(), Some(Command::Ls(both)));
        assert_eq!(p("ls -h -a").unwrap(), Some(Command::Ls(both)));
        assert!(p("ls -l").unwrap_err().0.contains("usage: ls [-a] [-h]"));
        assert!(p("ls docs").is_err());
        assert_eq!(p("exit").unwrap(), Some(Command::Quit));
        assert_eq!(
            p("put -r docs").unwrap(),
            Some(Command::PutTree(vec!["docs".into()]))
        );
        assert_eq!(p("put -r").unwrap_err().0, "usage: put -r FOLDER...");
        assert_eq!(p("cd a\\ b").unwrap(), Some(Command::Cd("a b".into())));
    }

    #[test]
    fn mistakes_get_hints() {
        assert!(p("frobnicate x")
            .unwrap_err()
            .0
            .contains("unknown command \"frobnicate\""));
        assert_eq!(p("put").unwrap_err().0, "usage: put FILE...");
        assert_eq!(p("get").unwrap_err().0, "usage: get NAME [LOCAL]");
        assert!(p("ls -l").unwrap_err().0.contains("usage: ls"));
        assert!(p("put \"open").unwrap_err().0.contains("unclosed"));
        assert!(p("cd a b").unwrap_err().0.contains("quotes"));
    }
}
