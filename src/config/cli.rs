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
pub(crate) fn completions(mut cmd: clap::Command, shell: &str, out: &mut impl Write) -> Result<()> {
    let shell = Shell::from_str(shell).map_err(|_| {
        Error::Usage(format!(
            "unknown shell {shell:?}: use bash, zsh, fish, elvish or powershell"
        ))
    })?;
    let name = cmd.get_name().to_string();
    // Made whole first: the generator panics when its output is closed.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)
        .map_err(|e| Error::io(crate::error::WRITING_OUTPUT, e))
}

/// A man page section beyond those clap writes: a title (`FILES`), an
/// opening paragraph, and entries, each a term and what it means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ManSection {
    /// The heading, in capitals.
    pub(crate) title: String,
    /// The paragraph before the entries; may be empty.
    pub(crate) text: String,
    /// `(term, meaning)`, each shown as a tagged paragraph.
    pub(crate) entries: Vec<(String, String)>,
}

impl ManSection {
    /// A section from borrowed parts.
    pub(crate) fn new(title: &str, text: &str, entries: &[(&str, &str)]) -> ManSection {
        ManSection {
            title: title.to_string(),
            text: text.to_string(),
            entries: entries
                .iter()
                .map(|(t, m)| (t.to_string(), m.to_string()))
                .collect(),
        }
    }

    /// The COMMANDS section read from a command language's `help`: its
    /// first line opens it, each line indented by two spaces starts an
    /// entry (usage, a gap of two or more spaces, what it does), deeper
    /// lines go on with the entry before, and the lines after the entries
    /// close it.
    pub(crate) fn commands(help: &str) -> ManSection {
        let mut lines = help.lines();
        let mut section = ManSection {
            title: "COMMANDS".into(),
            text: lines.next().unwrap_or_default().to_string(),
            entries: Vec::new(),
        };
        let mut closing = Vec::new();
        for line in lines {
            let depth = line.len() - line.trim_start().len();
            let text = line.trim();
            match (depth, section.entries.last_mut()) {
                (2, _) => {
                    let (usage, about) = text.split_once("  ").unwrap_or((text, ""));
                    section
                        .entries
                        .push((usage.to_string(), about.trim().to_string()));
                }
                (3.., Some((_, about))) => {
                    if !about.is_empty() {
                        about.push(' ');
                    }
                    about.push_str(text);
                }
                _ => closing.push(text),
            }
        }
        if !closing.is_empty() {
            section.entries.push((String::new(), closing.join(" ")));
        }
        section
    }
}

/// Writes the man page (roff) for the program `cmd` describes: NAME,
/// SYNOPSIS, DESCRIPTION and OPTIONS from clap, then `sections`, then
/// VERSION. The NAME line is `cmd`'s `about`, so keep that to one line.
///
/// Fails when `out` cannot be written.
pub(crate) fn man_page(
    cmd: clap::Command,
    sections: &[ManSection],
    out: &mut impl Write,
) -> Result<()> {
    use clap_mangen::roff::{bold, roman, Roff};
    let subcommands = cmd.get_subcommands().any(|c| !c.is_hide_set());
    let version = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd);
    let mut roff = Roff::new();
    for section in sections {
        roff.control("SH", [section.title.as_str()]);
        if !section.text.is_empty() {
            roff.text([roman(section.text.as_str())]);
        }
        for (term, meaning) in &section.entries {
            match term.is_empty() {
                true => roff.control("PP", []),
                false => roff.control("TP", []).text([bold(term.as_str())]),
            };
            roff.text([roman(meaning.as_str())]);
        }
    }
    let mut page = Vec::new();
    let buf: &mut dyn Write = &mut page;
    man.render_title(buf)
        .and_then(|()| man.render_name_section(buf))
        .and_then(|()| man.render_synopsis_section(buf))
        .and_then(|()| man.render_description_section(buf))
        .and_then(|()| man.render_options_section(buf))
        .and_then(|()| match subcommands {
            true => man.render_subcommands_section(buf),
            false => Ok(()),
        })
        .and_then(|()| roff.to_writer(buf))
        .and_then(|()| match version {
            true => man.render_version_section(buf),
            false => Ok(()),
        })
        .and_then(|()| out.write_all(&once_preamble(&String::from_utf8_lossy(&page))))
        .map_err(|e| Error::io(crate::error::WRITING_OUTPUT, e))
}

/// `page` with the two-line preamble roff puts before each part it
/// renders kept only the first time.
fn once_preamble(page: &str) -> Vec<u8> {
    let mut seen = false;
    let mut kept = String::with_capacity(page.len());
    let mut lines = page.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with(".ie \\n(.g .ds Aq")
            && lines.peek().is_some_and(|l| l.starts_with(".el .ds Aq"))
        {
            let next = lines.next().unwrap_or_default();
            if !seen {
                kept.push_str(line);
                kept.push('\n');
                kept.push_str(next);
                kept.push('\n');
            }
            seen = true;
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept.into_bytes()
}

/// `cmd` with one subcommand per word of a command language, described by
/// the line of `help` that names it (`  put FILE...   upload files`), so
/// that shell completion offers the words where a command goes. Only for
/// the completion script: the program itself parses the words.
pub(crate) fn with_command_words(
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
    fn man_page_is_roff_with_the_sections_given() {
        let mut out = Vec::new();
        let files = ManSection::new("FILES", "", &[("~/.demo", "its settings")]);
        man_page(program().about("does demos"), &[files], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(".TH demo"), "{text}");
        assert!(text.contains(".SH NAME\ndemo \\- does demos\n"), "{text}");
        assert!(
            text.contains(".SH FILES\n.TP\n\\fB~/.demo\\fR\nits settings\n"),
            "{text}"
        );
        assert!(text.find(".SH OPTIONS") < text.find(".SH FILES"), "{text}");
    }

    #[test]
    fn the_commands_section_is_read_from_the_help() {
        let help = "commands:\n  put FILE...   upload files;\n                resumes\n  sync SRC DST\n                bring DST up to date\n  quit, exit    leave\nnames go in quotes\n";
        let section = ManSection::commands(help);
        assert_eq!(section.text, "commands:");
        let entries: Vec<(&str, &str)> = section
            .entries
            .iter()
            .map(|(t, m)| (t.as_str(), m.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                ("put FILE...", "upload files; resumes"),
                ("sync SRC DST", "bring DST up to date"),
                ("quit, exit", "leave"),
                ("", "names go in quotes"),
            ]
        );
    }
}
