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
