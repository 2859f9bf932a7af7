//! What both programs print about themselves instead of running: shell
//! completions and a man page, generated from their clap definitions.

use std::io::Write;
use std::str::FromStr;

use clap_complete::Shell;

use crate::error::{Error, Result};

/// Writes the completion script for `shell` (bash, zsh, fish, elvish or
/// powershell) for the program `cmd` describes.
///
/// Fails for an unknown shell or when `out` cannot be written.
pub fn completions(mut cmd: clap::Command, shell: &str, out: &mut impl Write) -> Result<()> {
    let shell = Shell::from_str(shell).map_err(|_| {
        Error::Usage(format!(
            "unknown shell {shell:?}: use bash, zsh, fish, elvish or powershell"
        ))
    })?;
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// Writes the man page (roff) for the program `cmd` describes.
///
/// Fails when `out` cannot be written.
pub fn man_page(cmd: clap::Command, out: &mut impl Write) -> Result<()> {
    clap_mangen::Man::new(cmd)
        .render(out)
        .map_err(|e| Error::io("writing the man page", e))
}

/// `cmd` with one subcommand per word of a command language, described by
/// the line of `help` that names it (`  put FILE...   upload files`), so
/// that shell completion offers the words where a command goes. Only for
/// the completion script: the program itself parses the words.
pub fn with_command_words(
    mut cmd: clap::Command,
    help: &str,
    words: &[&'static str],
) -> clap::Command {
    // The language's own `help` stands in for clap's.
    cmd = cmd.disable_help_subcommand(true);
    for word in words {
        let mut sub = clap::Command::new(*word);
        if let Some(about) = described(help, word) {
            sub = sub.about(about.to_string());
        }
        cmd = cmd.subcommand(sub);
    }
    cmd
}

/// What the help line of `word` says about it: the text after the gap of
/// two or more spaces that follows the command's usage.
fn described<'h>(help: &'h str, word: &str) -> Option<&'h str> {
    help.lines().find_map(|line| {
        let (usage, about) = line.trim_start().split_once("  ")?;
        let names = usage.split([' ', ',']).take_while(|w| !w.starts_with('['));
        names
            .filter(|w| !w.is_empty())
            .any(|w| w == word)
            .then(|| about.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> clap::Command {
        clap::Command::new("demo").arg(clap::Arg::new("server").long("server"))
    }

    #[test]
    fn bash_completion_names_the_flags() {
        let mut out = Vec::new();
        completions(program(), "bash", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("--server") && text.contains("_demo"),
            "{text}"
        );
        let err = completions(program(), "tcsh", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("unknown shell \"tcsh\""));
    }

    #[test]
    fn command_words_become_completions_with_their_help() {
        let help = "commands:\n  put FILE...    upload files\n  quit, exit     leave\n";
        let cmd = with_command_words(program(), help, &["put", "exit", "ls", "help"]);
        let about = |name: &str| {
            let sub = cmd.find_subcommand(name).unwrap();
            sub.get_about().map(|a| a.to_string())
        };
        assert_eq!(about("put").as_deref(), Some("upload files"));
        assert_eq!(about("exit").as_deref(), Some("leave"));
        assert_eq!(about("ls"), None);
        let mut out = Vec::new();
        completions(cmd, "bash", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("put") && text.contains("exit"), "{text}");
    }

    #[test]
    fn man_page_is_roff() {
        let mut out = Vec::new();
        man_page(program(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH demo"),
            "{text}"
        );
    }
}
