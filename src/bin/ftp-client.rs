//! `ftp-client`: upload, download and list files on an ftp-server.

use std::io::IsTerminal;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};

use ftp::client::command::Command;
use ftp::client::shell::{run_command, run_session, ShellOptions};
use ftp::client::trust::Trust;
use ftp::client::{Client, ClientOptions};
use ftp::config::cli;
use ftp::config::secret::{client_secret, client_secret_file, exposure_warning};
use ftp::config::units::parse_size;
use ftp::net::tls::Fingerprint;
use ftp::Result;

/// Client for ftp-server. With a COMMAND it runs that one command and exits;
/// without, it reads commands at a `>>: ` prompt (or line by line from a
/// pipe). Type `help` for the commands. `ftp-client completions SHELL` and
/// `ftp-client man` print a completion script and the man page.
///
/// The secret comes from --secret-file, else $FTP_SECRET, else the file a
/// server on this machine created.
#[derive(Parser, Debug)]
#[command(name = "ftp-client", version)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    server: String,
    /// Read the shared secret from this file.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// No progress bars or notes.
    #[arg(short, long)]
    quiet: bool,
    /// Talk to a server that cannot prove it knows the secret (such as the
    /// original Python server), in its unencrypted protocol, if it cannot
    /// do TLS. Anyone could be impersonating it.
    #[arg(long)]
    allow_unproven_server: bool,
    /// Trust only the server certificate with this fingerprint, as the
    /// server logs it: SHA256:... (otherwise: known_servers, a server on
    /// this machine, or trust on first use).
    #[arg(long, value_name = "SHA256:...", value_parser = Fingerprint::parse)]
    fingerprint: Option<Fingerprint>,
    /// Most bytes per second a transfer may move, e.g. 500KiB or 10MiB.
    #[arg(long, value_name = "RATE", value_parser = rate)]
    limit_rate: Option<u64>,
    /// One command to run, e.g. `put a.txt` or `get a.txt`.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn rate(s: &str) -> std::result::Result<u64, String> {
    parse_size(s)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns how many commands failed.
fn run(args: Args) -> Result<usize> {
    if let Some(done) = about(&args.command) {
        return done.map(|()| 0);
    }
    let one_shot = match args.command.is_empty() {
        true => None,
        false => Some(Command::parse_words(&args.command).map_err(|e| ftp::Error::Usage(e.0))?),
    };
    let mut options = ClientOptions::new(client_secret(args.secret_file.as_deref())?);
    let secret_file = client_secret_file(args.secret_file.as_deref());
    if let Some(warning) = secret_file.as_deref().and_then(exposure_warning) {
        eprintln!("warning: {warning}");
    }
    if args.allow_unproven_server {
        options.require_proof = false;
        eprintln!(
            "warning: not checking that the server knows the secret if it cannot do TLS; such a \
             server is spoken to unencrypted, and an impostor could receive your files"
        );
    }
    options.limit_rate = args.limit_rate;
    options.trust = Trust {
        fingerprint: args.fingerprint,
        confirm: Some(Arc::new(confirm_at_terminal)),
        ..Trust::from_config_dir()
    };
    let shell = ShellOptions { quiet: args.quiet };
    let mut client = Client::connect(&args.server, options)?;
    if let Some(notice) = client.take_notice() {
        if !args.quiet {
            eprintln!("note: {notice}");
        }
    }
    match one_shot {
        Some(command) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            run_command(&mut client, &command, shell, &mut out, &mut err)?;
            Ok(0)
        }
        None => {
            if std::io::stdin().is_terminal() && !args.quiet {
                let how = match client.is_encrypted() {
                    true => "encrypted",
                    false => "NOT encrypted: the original protocol",
                };
                eprintln!(
                    "connected to {} ({how}); type 'help' for commands",
                    client.addr()
                );
            }
            Ok(run_session(&mut client, shell))
        }
    }
}

/// `completions SHELL` and `man` print something about the program
/// without connecting; `None` for every other command.
fn about(words: &[String]) -> Option<Result<()>> {
    let mut out = std::io::stdout();
    match words {
        [first, shell] if first == "completions" => {
            Some(cli::completions(Args::command(), shell, &mut out))
        }
        [first, ..] if first == "completions" => Some(Err(ftp::Error::Usage(
            "usage: ftp-client completions SHELL (bash, zsh, fish, elvish, powershell)".into(),
        ))),
        [first] if first == "man" => Some(cli::man_page(Args::command(), &mut out)),
        _ => None,
    }
}

/// Asks at the terminal whether to trust a server seen for the first time;
/// without a terminal the answer is no.
fn confirm_at_terminal(server: &str, fingerprint: Fingerprint) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!(
        "The server at {server} is new to this machine. Its certificate is\n  {fingerprint}\n\
         Compare it with the one its operator sees in the server's log. Trust it? [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    read.is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}
