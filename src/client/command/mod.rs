//! The client's command language: one line typed at the prompt, or the
//! words given on the command line, parsed into a typed [`Command`].

use std::fmt;

use crate::client::filter::Filters;
use crate::wire::names::escape;

mod again;
mod transfer;
mod words;

use transfer::{filters, parse_transfer, FILTERS};
use words::Words;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Upload local files (wildcards allowed) or, with `-r`, folders.
    Put(Transfer),
    /// Download files or, with `-r`, folders (server wildcards allowed).
    Get(Transfer),
    /// List a folder on the server.
    Ls {
        /// The folder; the current one when absent.
        path: Option<String>,
        /// How to show it.
        how: ListOptions,
    },
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
    /// Remove files, empty folders, or with `-r` folders and all they hold.
    Rm {
        /// Paths on the server (wildcards allowed).
        paths: Vec<String>,
        /// Folders with everything in them.
        recursive: bool,
    },
    /// Rename or move a file or folder on the server.
    Mv {
        /// What to move.
        from: String,
        /// Where to; into it when it is a folder.
        to: String,
    },
    /// Bring a folder up to date from another, in either direction.
    Sync(SyncOptions),
    /// Show the commands.
    Help,
    /// End the session.
    Quit,
}

/// `put` and `get`: what to move and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Transfer {
    /// What to send or fetch: local paths for `put`, server paths for
    /// `get`, each maybe a wildcard pattern.
    pub(crate) sources: Vec<String>,
    /// `get` only: the local file or folder to write to.
    pub(crate) local: Option<String>,
    /// `put` only, with two names: the name on the server (a folder to
    /// go into when it ends with `/` or is one there).
    pub(crate) remote: Option<String>,
    /// Folders with everything in them (`-r`).
    pub(crate) recursive: bool,
    /// Keep permission bits (`-p`); modification times are always kept.
    pub(crate) preserve: bool,
    /// Name every file as it is moved (`-v`).
    pub(crate) verbose: bool,
    /// `get` only: replace different local files without asking (`-f`).
    pub(crate) force: bool,
    /// With `-r`: a file the other side has is the same when its BLAKE3 is
    /// (`-c`), not its size and modification time.
    pub(crate) checksum: bool,
    /// With `-r`: send every file again, even one the other side has
    /// (`--force-all`).
    pub(crate) force_all: bool,
    /// Where to write the names of the files that failed or were not
    /// moved (`--failed-list FILE`).
    pub(crate) failed_list: Option<String>,
    /// With `-r`: what to leave out (`--exclude`, `--include`,
    /// `--exclude-from`).
    pub(crate) filters: Filters,
}

/// `sync SRC DST`: one of the two is on the server, written with a leading `:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SyncOptions {
    /// Where the files come from.
    pub(crate) source: String,
    /// What is brought up to date.
    pub(crate) target: String,
    /// Remove what the source does not have (`--delete`).
    pub(crate) delete: bool,
    /// Print what would be done, and do nothing (`-n`, `--dry-run`).
    pub(crate) dry_run: bool,
    /// Compare by BLAKE3 instead of size and modification time (`-c`, `--checksum`).
    pub(crate) checksum: bool,
    /// Keep permission bits (`-p`).
    pub(crate) preserve: bool,
    /// Name every file as it is moved (`-v`).
    pub(crate) verbose: bool,
    /// One line per change, as rsync's `-i` (`-i`, `--itemize`).
    pub(crate) itemize: bool,
    /// What to leave out (`--exclude`, `--include`, `--exclude-from`).
    pub(crate) filters: Filters,
}

/// The help text, one command a line.
pub(crate) const HELP: &str = "\
commands (paths on the server are relative to its current folder):
  put [-rpvc] FILE...       upload files or, with -r, folders (wildcards work:
                            put *.log); an interrupted upload resumes;
                            put LOCAL REMOTE (two names) stores LOCAL as
                            REMOTE, or in it when REMOTE ends with / or is
                            a folder there
  get [-rpvfc] PATH... [LOCAL]  download files or, with -r, folders, into the
                            working folder or LOCAL (wildcards work on the
                            server's names: get 'logs/*.gz'); -f replaces a
                            different local file without asking
  put -r and get -r skip files the other side has with the same size and
  time (-c: the same BLAKE3), so the same command finishes a stopped one;
  --force-all sends everything; --failed-list FILE writes the names of the
  files not moved; --exclude PATTERN, --include PATTERN, --exclude-from FILE
  (also for sync) leave files out with .gitignore rules, as does a
  .ftpignore file at the top of the local folder (put -r, sync)
  ls [-ahR] [PATH]          list a folder (-a: dot-files too, -h: human sizes,
                            -R: everything below it)
  rm [-r] PATH...           remove files or empty folders (-r: folders and
                            all they hold)
  mv FROM TO                rename or move a file or folder on the server
                            (into TO when TO is a folder)
  sync [-ncpvi] [--delete] SRC DST
                            bring DST up to date with SRC, sending only what
                            differs; the server's side starts with ':'
                            (sync photos :photos sends, sync :photos photos
                            fetches); -n: only show what it would do,
                            -c: compare by BLAKE3, not size and time,
                            -i: one line per change, --delete: remove what
                            SRC does not have (never what is excluded)
  mkdir PATH                create a folder (and its parents) on the server
  cd PATH                   change folder on the server (/ is your home)
  pwd                       show the folder on the server
  echo TEXT                 the server answers TEXT in upper case
  quota                     show used and available space
  help                      this text
  quit, exit                leave (so does end of input)
-p keeps permission bits; modification times are always kept.
names with spaces go in quotes: put \"my file.txt\"; a name that starts
with '-' goes after --: rm -- -old.txt";

/// Every command word, for completion.
pub(crate) const WORDS: &[&str] = &[
    "put", "get", "ls", "rm", "mv", "sync", "mkdir", "cd", "pwd", "echo", "quota", "help", "quit",
    "exit",
];

/// How `ls` shows a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListOptions {
    /// Show names that start with a dot (`-a`).
    pub(crate) all: bool,
    /// Sizes in KiB, MiB... instead of bytes (`-h`).
    pub(crate) human: bool,
    /// Everything below the folder (`-R`).
    pub(crate) recursive: bool,
}

/// A line that is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl Command {
    /// Whether the command can change the names in the server's current
    /// folder, which completion then fetches again.
    pub(crate) fn changes_names(&self) -> bool {
        matches!(
            self,
            Command::Put(_)
                | Command::Rm { .. }
                | Command::Mv { .. }
                | Command::Mkdir(_)
                | Command::Cd(_)
                | Command::Sync(_)
        )
    }

    /// Parses a prompt line. Returns `Ok(None)` for a blank line.
    ///
    /// Fails for an unknown command, missing or extra arguments, or an
    /// unclosed quote, with a one-line hint.
    pub(crate) fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
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
    pub(crate) fn parse_words(words: &[String]) -> Result<Command, ParseError> {
        let Some((first, args)) = words.split_first() else {
            return Err(ParseError("no command given; try 'help'".into()));
        };
        let cmd = first.as_str();
        let usage_error = |usage: &str| ParseError(format!("usage: {usage}"));
        let one = |what: &str| -> Result<String, ParseError> {
            let usage = format!("{cmd} {what}");
            let w = Words::split(cmd, args, "", &[], &usage)?;
            match w.operands.as_slice() {
                [a] => Ok(a.clone()),
                [] => Err(usage_error(&usage)),
                _ => Err(ParseError(format!(
                    "{cmd} takes one {what}; put names with spaces in quotes"
                ))),
            }
        };
        let none = |command: Command| -> Result<Command, ParseError> {
            match args.is_empty() {
                true => Ok(command),
                false => Err(ParseError(format!("{cmd} takes no arguments"))),
            }
        };
        match cmd {
            "put" | "get" => parse_transfer(cmd, args),
            "ls" => parse_ls(args),
            "rm" => {
                let usage = "rm [-r] PATH...";
                let w = Words::split(cmd, args, "r", &[], usage)?;
                if w.operands.is_empty() {
                    return Err(usage_error(usage));
                }
                Ok(Command::Rm {
                    recursive: w.has('r'),
                    paths: w.operands,
                })
            }
            "mv" | "rename" => {
                let usage = "mv FROM TO";
                let w = Words::split(cmd, args, "", &[], usage)?;
                match <[String; 2]>::try_from(w.operands) {
                    Ok([from, to]) => Ok(Command::Mv { from, to }),
                    Err(_) => Err(usage_error(usage)),
                }
            }
            "sync" => parse_sync(args),
            "echo" if args.is_empty() => Err(ParseError("usage: echo TEXT".into())),
            "echo" => Ok(Command::Echo(args.join(" "))),
            "quota" | "df" => none(Command::Quota),
            "pwd" => none(Command::Pwd),
            "help" | "?" => none(Command::Help),
            "quit" | "exit" => none(Command::Quit),
            "mkdir" => one("PATH").map(Command::Mkdir),
            "cd" => one("PATH").map(Command::Cd),
            other => Err(ParseError(format!(
                "unknown command {:?}; type 'help' for the list",
                escape(other)
            ))),
        }
    }
}

/// `ls [-ahR] [PATH]`.
fn parse_ls(args: &[String]) -> Result<Command, ParseError> {
    let usage = "ls [-ahR] [PATH]";
    let w = Words::split("ls", args, "ahR", &[], usage)?;
    if w.operands.len() > 1 {
        return Err(ParseError(format!("usage: {usage}")));
    }
    let how = ListOptions {
        all: w.has('a'),
        human: w.has('h'),
        recursive: w.has('R'),
    };
    let path = w.operands.into_iter().next();
    Ok(Command::Ls { path, how })
}

fn parse_sync(args: &[String]) -> Result<Command, ParseError> {
    let usage = "sync [-ncpvi] [--delete] [--dry-run] [--checksum] [--itemize] \
                 [--exclude PATTERN] [--include PATTERN] [--exclude-from FILE] SRC DST";
    let long = ["delete", "dry-run", "checksum", "itemize"];
    let w = Words::split_valued("sync", args, "ncpvi", &long, &FILTERS, usage)?;
    let Ok([source, target]) = <[String; 2]>::try_from(w.operands.clone()) else {
        return Err(ParseError(format!("usage: {usage}")));
    };
    if source.starts_with(':') == target.starts_with(':') {
        return Err(ParseError(
            "sync: exactly one side is on the server, written with a leading ':' \
             (sync photos :photos sends, sync :photos photos fetches)"
                .into(),
        ));
    }
    Ok(Command::Sync(SyncOptions {
        source,
        target,
        delete: w.has_long("delete"),
        dry_run: w.has('n') || w.has_long("dry-run"),
        checksum: w.has('c') || w.has_long("checksum"),
        preserve: w.has('p'),
        verbose: w.has('v'),
        itemize: w.has('i') || w.has_long("itemize"),
        filters: filters(&w),
    }))
}

/// Splits a line into words the way a POSIX shell does: single and double
/// quotes, and backslash escapes outside single quotes (`shlex`, rather
/// than a hand-written splitter).
///
/// Fails on an unclosed quote or a trailing backslash.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    shlex::split(line)
        .ok_or_else(|| ParseError("unclosed quote (or a backslash at the end of the line)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Option<Command>, ParseError> {
        Command::parse_line(line)
    }

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(p("   ").unwrap(), None);
        assert_eq!(
            p("put a b c").unwrap(),
            Some(Command::Put(Transfer {
                sources: files(&["a", "b", "c"]),
                ..Transfer::default()
            }))
        );
        assert_eq!(
            p("put \"my file.txt\" 'x y' z").unwrap(),
            Some(Command::Put(Transfer {
                sources: files(&["my file.txt", "x y", "z"]),
                ..Transfer::default()
            }))
        );
        assert_eq!(
            p("get a.txt /tmp/b").unwrap(),
            Some(Command::Get(Transfer {
                sources: files(&["a.txt"]),
                local: Some("/tmp/b".into()),
                ..Transfer::default()
            }))
        );
        assert_eq!(
            p("get -rp tree").unwrap(),
            Some(Command::Get(Transfer {
                sources: files(&["tree"]),
                recursive: true,
                preserve: true,
                ..Transfer::default()
            }))
        );
    }

    #[test]
    fn listing_and_folder_commands_parse() {
        assert_eq!(
            p("echo  hello   world ").unwrap(),
            Some(Command::Echo("hello   world".into()))
        );
        let ls = |path: Option<&str>, all, human, recursive| Command::Ls {
            path: path.map(str::to_string),
            how: ListOptions {
                all,
                human,
                recursive,
            },
        };
        assert_eq!(p("ls").unwrap(), Some(ls(None, false, false, false)));
        assert_eq!(p("ls -ah").unwrap(), Some(ls(None, true, true, false)));
        assert_eq!(p("ls -h -a").unwrap(), Some(ls(None, true, true, false)));
        assert_eq!(
            p("ls -R docs").unwrap(),
            Some(ls(Some("docs"), false, false, true))
        );
        assert!(p("ls -l")
            .unwrap_err()
            .0
            .contains("usage: ls [-ahR] [PATH]"));
        assert_eq!(p("exit").unwrap(), Some(Command::Quit));
        assert_eq!(
            p("put -r docs").unwrap(),
            Some(Command::Put(Transfer {
                sources: files(&["docs"]),
                recursive: true,
                ..Transfer::default()
            }))
        );
        assert!(p("put -r").unwrap_err().0.starts_with("usage: put [-rpvc]"));
        assert_eq!(p("cd a\\ b").unwrap(), Some(Command::Cd("a b".into())));
    }

    #[test]
    fn rm_mv_and_sync_parse() {
        assert_eq!(
            p("rm -r old 'x y'").unwrap(),
            Some(Command::Rm {
                paths: files(&["old", "x y"]),
                recursive: true
            })
        );
        assert_eq!(
            p("rm -- -old").unwrap(),
            Some(Command::Rm {
                paths: files(&["-old"]),
                recursive: false
            })
        );
        assert_eq!(
            p("mv a b/c").unwrap(),
            Some(Command::Mv {
                from: "a".into(),
                to: "b/c".into()
            })
        );
        assert_eq!(
            p("sync -n --delete photos :photos").unwrap(),
            Some(Command::Sync(SyncOptions {
                source: "photos".into(),
                target: ":photos".into(),
                delete: true,
                dry_run: true,
                ..SyncOptions::default()
            }))
        );
    }

    #[test]
    fn mistakes_get_hints() {
        assert!(p("frobnicate x")
            .unwrap_err()
            .0
            .contains("unknown command \"frobnicate\""));
        assert!(p("put").unwrap_err().0.starts_with("usage: put [-rpvc]"));
        assert!(p("get").unwrap_err().0.starts_with("usage: get [-rpvfc]"));
        assert!(p("put \"open").unwrap_err().0.contains("unclosed"));
        assert!(p("cd a b").unwrap_err().0.contains("quotes"));
        assert!(p("mv a").unwrap_err().0.contains("usage: mv FROM TO"));
        assert!(p("sync a b").unwrap_err().0.contains("leading ':'"));
        assert!(p("sync :a :b").unwrap_err().0.contains("leading ':'"));
        assert!(p("sync --frob a :b")
            .unwrap_err()
            .0
            .contains("unknown option --frob"));
    }

    #[test]
    fn flags_after_the_names_are_refused_not_taken_for_names() {
        let e = p("put m300.bin --limit-rate 20MiB").unwrap_err().0;
        assert!(e.contains("option --limit-rate after a name"), "{e}");
        assert!(e.contains("before the command"), "{e}");
        let e = p("put -x a").unwrap_err().0;
        assert!(e.contains("unknown option -x"), "{e}");
        let e = p("get a -r").unwrap_err().0;
        assert!(e.contains("option -r after a name"), "{e}");
    }
}
