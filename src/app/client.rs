//! `ftp-client`: upload, download and list files on an ftp-server.

use std::io::IsTerminal;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::client::command::{Command, HELP, WORDS};
use crate::client::overwrite::Overwrite;
use crate::client::shell::{output_closed, run_command, run_session, ShellOptions};
use crate::client::trust::Trust;
use crate::client::{with_echo, Client, ClientOptions, REPLY_TIMEOUT, STALL_TIMEOUT};
use crate::config::address::ServerAddress;
use crate::config::cli;
use crate::config::secret::{client_secret, client_secret_file, exposure_warning};
use crate::config::units::parse_size;
use crate::net::tls::Fingerprint;
use crate::wire::names::escape;
use crate::Result;

/// upload, download and list files on an ftp-server
///
/// With a COMMAND it runs that one command and exits; without, it reads
/// commands at a `>>: ` prompt (or line by line from a pipe).
/// `ftp-client completions SHELL` and `ftp-client man` print a completion
/// script and the man page.
///
/// The secret comes from --secret-file, else $FTP_SECRET, else the file a
/// server on this machine created.
#[derive(Parser, Debug)]
#[command(name = "ftp-client", version, after_help = HELP)]
struct Args {
    /// The server: HOST, HOST:PORT, [IPv6]:PORT or an IPv6 address; the
    /// port defaults to 8080. [default: $FTP_SERVER, else 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
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
    /// Give up on a command when no byte has moved, either way, for this
    /// many seconds (a lost link); the same command then resumes.
    #[arg(long, value_name = "SECS", default_value_t = STALL_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    stall_timeout: u64,
    /// Give up on a command that has waited on the server this many
    /// seconds in all, however it trickles its bytes; each KiB moved earns
    /// a second more, so only a transfer slower than 1 KiB/s ends. Also
    /// bounds each part of the login (10 s, or this if shorter).
    #[arg(long, value_name = "SECS", default_value_t = REPLY_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    reply_timeout: u64,
    /// Let get replace a different local file without asking or telling.
    #[arg(short, long)]
    force: bool,
    /// Always send (or fetch) the whole file, never only a changed file's
    /// changes.
    #[arg(long)]
    whole_file: bool,
    /// One command to run, e.g. `put a.txt` or `get a.txt`.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The variable that names the server when --server is not given.
const SERVER_ENV: &str = "FTP_SERVER";

/// The server when neither --server nor $FTP_SERVER names one.
const DEFAULT_SERVER: &str = "127.0.0.1:8080";

fn rate(s: &str) -> std::result::Result<u64, String> {
    parse_size(s)
}

/// Runs the program with the process's arguments; what it returns is the
/// exit status.
pub fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) if output_closed(&e) => ExitCode::SUCCESS,
        // Stopped by Ctrl-C: said what stopped, and exits as the shell's
        // own interrupted commands do.
        Err(e) if e.is_interruption() => {
            eprintln!("error: {e}");
            ExitCode::from(INTERRUPTED)
        }
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
        false => Some(Command::parse_words(&args.command).map_err(|e| crate::Error::Usage(e.0))?),
    };
    // Neither needs a server, nor a secret.
    match one_shot {
        Some(Command::Help) => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{HELP}")
                .map_err(|e| crate::Error::io(crate::error::WRITING_OUTPUT, e))?;
            return Ok(0);
        }
        Some(Command::Quit) => return Ok(0),
        _ => {}
    }
    let server = server(args.server.as_deref())?;
    let options = client_options(&args)?;
    let shell = ShellOptions { quiet: args.quiet };
    let mut client = Client::connect(&server, options).map_err(|e| name_the_secret(e, &args))?;
    if let Some(notice) = client.take_notice() {
        if !args.quiet {
            eprintln!("note: {notice}");
        }
    }
    match one_shot {
        Some(command) => {
            stop_on_ctrl_c(&mut client);
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

/// A refused secret, said with where it came from: the file the user
/// copied, most often, is the one to check.
fn name_the_secret(e: crate::Error, args: &Args) -> crate::Error {
    if !matches!(e, crate::Error::AuthFailed) {
        return e;
    }
    let from = match client_secret_file(args.secret_file.as_deref()) {
        Some(file) => format!("the secret file {}", shown(&file)),
        None => "FTP_SECRET".to_string(),
    };
    crate::Error::Secret(format!(
        "authentication failed: the server rejected the secret from {from}; it must be a copy \
         of the server's secret file (its log names it), or, on a server with a users file, \
         the secret `ftp-server user add` printed for your account"
    ))
}

/// The exit status of a command stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// The first Ctrl-C stops the command where it stands, so that it can say
/// what landed and how to finish; a second one ends the program at once
/// (a question waiting for its answer, say).
fn stop_on_ctrl_c(client: &mut Client) {
    use signal_hook::consts::SIGINT;
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ =
        signal_hook::flag::register_conditional_shutdown(SIGINT, INTERRUPTED.into(), flag.clone());
    let _ = signal_hook::flag::register(SIGINT, flag.clone());
    client.set_interrupt(flag);
}

/// `completions SHELL` and `man` print something about the program
/// without connecting; `None` for every other command.
fn about(words: &[String]) -> Option<Result<()>> {
    let mut out = std::io::stdout();
    match words {
        [first, shell] if first == "completions" => {
            let mut words = WORDS.to_vec();
            words.extend(["completions", "man"]);
            let cmd = cli::with_command_words(Args::command(), HELP, &words);
            Some(cli::completions(cmd, shell, &mut out))
        }
        [first, ..] if first == "completions" => Some(Err(crate::Error::Usage(
            "usage: ftp-client completions SHELL (bash, zsh, fish, elvish, powershell)".into(),
        ))),
        [first] if first == "man" => {
            Some(cli::man_page(Args::command(), &man_sections(), &mut out))
        }
        _ => None,
    }
}

/// What the man page says beyond the flags: the commands, the files and
/// the environment.
fn man_sections() -> Vec<cli::ManSection> {
    let files = [
        (
            "~/.config/ftp/secret",
            "the shared secret, unless --secret-file or FTP_SECRET gives one: \
          the file a server on this machine creates, or a copy of the server's (mode 0600)",
        ),
        (
            "~/.config/ftp/known_servers",
            "pinned server certificates, one HOST:PORT SHA256:... \
          line per server; a matching --fingerprint replaces a server's line",
        ),
        (
            "~/.config/ftp/server-cert.pem",
            "the certificate of a server run by the same user on \
          this machine, trusted without asking",
        ),
        ("~/.local/state/ftp/history", "the prompt's history"),
    ];
    let environment = [
        (
            "FTP_SERVER",
            "the server when --server is not given (default 127.0.0.1:8080)",
        ),
        (
            "FTP_SECRET",
            "the shared secret, when --secret-file is not given",
        ),
        ("XDG_CONFIG_HOME", "replaces ~/.config in the paths above"),
        (
            "XDG_STATE_HOME",
            "replaces ~/.local/state in the paths above",
        ),
    ];
    vec![
        cli::ManSection::commands(HELP),
        cli::ManSection::new("FILES", "", &files),
        cli::ManSection::new("ENVIRONMENT", "", &environment),
    ]
}

/// The client's settings from its flags, with the secret.
fn client_options(args: &Args) -> Result<ClientOptions> {
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
    options.stall_timeout = Duration::from_secs(args.stall_timeout);
    options.reply_timeout = Duration::from_secs(args.reply_timeout);
    options.overwrite = overwrite_policy(args.force, args.quiet);
    options.whole_file = args.whole_file;
    options.trust = Trust {
        fingerprint: args.fingerprint,
        confirm: Some(Arc::new(confirm_at_terminal)),
        ..Trust::from_config_dir()
    };
    Ok(options)
}

/// The server to use: --server, else $FTP_SERVER, else this machine;
/// checked here so that a bad one is refused before anything else.
fn server(flag: Option<&str>) -> Result<String> {
    let from_env = std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let (text, from) = match (flag, from_env) {
        (Some(flag), _) => (flag.to_string(), "--server"),
        (None, Some(env)) => (env, SERVER_ENV),
        (None, None) => return Ok(DEFAULT_SERVER.to_string()),
    };
    ServerAddress::parse(&text)
        .map(|a| a.to_string())
        .map_err(|e| crate::Error::Usage(format!("{from}: {e}")))
}

/// What get does to a different local file: replace it quietly with
/// --force; ask at a terminal; in a script, replace it and say so (as sftp
/// replaces it, silently).
fn overwrite_policy(force: bool, quiet: bool) -> Overwrite {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    match (force, terminal, quiet) {
        (true, _, _) => Overwrite::Replace,
        (false, true, _) => Overwrite::Ask(Arc::new(confirm_overwrite)),
        (false, false, true) => Overwrite::Replace,
        (false, false, false) => Overwrite::ReplaceAndTell(Arc::new(|path: &Path| {
            eprintln!("note: replaced the existing local file {}", shown(path));
        })),
    }
}

/// Asks `overwrite LOCAL? [y/N]`; anything but yes keeps the file.
fn confirm_overwrite(path: &Path) -> bool {
    eprint!("overwrite {}? [y/N] ", shown(path));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    // Asked while a command runs, when typing is not echoed otherwise.
    let read = with_echo(|| std::io::stdin().lock().read_line(&mut answer));
    read.is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

fn shown(path: &Path) -> String {
    escape(&path.display().to_string())
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
