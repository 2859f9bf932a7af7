//! `ftp-server`: serves uploads and downloads to clients that know the secret.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::cli;
use crate::config::paths;
use crate::config::secret::{exposure_warning, server_secret, SecretSource, SECRET_ENV};
use crate::config::units::Size;
use crate::logging::{self, Event, Kind};
use crate::net::tls::{self, ServerIdentity};
use crate::server::accounts::edit::{self, NewUser};
use crate::server::accounts::AccountBook;
use crate::server::accounts::Accounts;
use crate::server::recount;
use crate::server::settings::flags::ServerFlags;
use crate::server::settings::Settings;
use crate::server::{Bind, Server};
use crate::service::reload::{ConfigFile, Reloads};
use crate::service::systemd;
use crate::Result;

/// authenticated, encrypted file transfer server
///
/// Wire-compatible with the classic Python socketserver FTP exercise.
///
/// The secret comes from --secret-file, else $FTP_SECRET, else a per-user
/// file that is created with a random secret on first start.
///
/// Every flag can also be set in a config file (--config FILE, TOML) under
/// a key of the same name (`max-file-size = "10GiB"`); a flag given on the
/// command line wins. `ftp-server config` prints the settings in force.
#[derive(Parser, Debug)]
#[command(name = "ftp-server", version, args_override_self = true)]
struct Args {
    /// Read settings from this TOML file, one key per flag; flags given
    /// here win over it.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: ServerFlags,
    #[command(subcommand)]
    about: Option<About>,
}

/// Instead of serving, print something about the program.
#[derive(Subcommand, Debug)]
enum About {
    /// Print the completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell).
    Completions {
        /// The shell.
        shell: String,
    },
    /// Print the man page (roff).
    Man,
    /// Add, remove or list the accounts of the users file (--users, or
    /// `users` in the config file). A running server picks the change up.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print the settings in force (the config file and the flags over the
    /// defaults) as a config file, and exit.
    Config,
    /// Measure each home below the root (or USER's) with the server's own
    /// walk, print what it holds, and fail if one is over its quota or
    /// max_files.
    CheckUsage {
        /// Only this user's home.
        user: Option<String>,
    },
}

/// Runs the program with the process's arguments; what it returns is the
/// exit status.
pub fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::error::output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `ftp-server user` does.
#[derive(Subcommand, Debug)]
enum UserAction {
    /// Add NAME with a new random secret, and print the line that user
    /// runs to connect.
    Add {
        /// The user's name, also their home folder below the root.
        name: String,
        /// Bytes the user may store, e.g. 10GiB.
        #[arg(long, value_name = "SIZE")]
        quota: Option<Size>,
        /// Files and folders the user may hold. [default: one per 4 KiB
        /// of --quota, at least 1000]
        #[arg(long, value_name = "N")]
        max_files: Option<u64>,
    },
    /// Remove NAME; their files stay.
    Remove {
        /// The user's name.
        name: String,
    },
    /// List the users with their quota, and the space and files their
    /// homes hold now.
    List,
}

fn run(args: Args) -> Result<()> {
    match &args.about {
        Some(About::Completions { shell }) => {
            return cli::completions(Args::command(), shell, &mut std::io::stdout())
        }
        Some(About::Man) => {
            return cli::man_page(Args::command(), &man_sections(), &mut std::io::stdout())
        }
        _ => {}
    }
    let cli = args.flags.clone();
    let settings = Settings::gather(args.flags, args.config.as_deref())?;
    match args.about {
        Some(About::Config) => return print(&settings.to_toml()?),
        Some(About::User { action }) => return user(&settings, action),
        Some(About::CheckUsage { user }) => return check_usage(&settings, user.as_deref()),
        _ => {}
    }
    logging::init(settings.verbosity, settings.log_format)?;
    let (accounts, secret_place) = load_accounts(&settings)?;
    let tls = identity(&settings)?;
    let store = settings.open_store()?;
    Event::new(Kind::Start).info(format_args!("files are kept in {}", store.describe()));
    let book = Arc::new(AccountBook::new(accounts));
    let config = settings.server_config(store, book.clone(), tls.clone())?;
    let metrics = config.context.metrics.clone();
    let live = config.context.live.clone();
    let at = match systemd::passed_listener()? {
        Some(listener) => Bind::Passed(listener),
        None => Bind::Addr(settings.listen),
    };
    let server = Server::bind(at, config)?;
    if let Some(at) = settings.metrics {
        let bound = server.serve_metrics(at)?;
        Event::new(Kind::Start).info(format_args!("metrics on {bound}"));
    }
    Reloads {
        book,
        users: settings.users.clone(),
        anonymous: settings.anonymous,
        config: args.config.map(|path| ConfigFile {
            path,
            cli,
            in_force: settings.clone(),
            live: live.clone(),
        }),
    }
    .start(systemd::reload_phase)?;
    let addr = server.local_addr()?;
    announce(&tls, addr, &secret_place);
    let stop = systemd::stop_on_signals()?;
    // Scripts and tests read the real port from this first line.
    print(&format!("listening on {addr}\n"))?;
    systemd::ready(&metrics);
    systemd::start_heartbeat(metrics)?;
    server.run(&stop, Duration::from_secs(settings.shutdown_grace))
}

/// `ftp-server user ...`.
fn user(settings: &Settings, action: UserAction) -> Result<()> {
    let path = settings.users.as_deref().ok_or_else(|| {
        crate::Error::Usage(
            "no users file: pass --users FILE, or set users in the --config file".into(),
        )
    })?;
    match action {
        UserAction::Add {
            name,
            quota,
            max_files,
        } => {
            let new = NewUser {
                name,
                quota: quota.map(|q| q.0),
                max_files,
            };
            let secret = edit::add(path, &new, settings.anonymous)?;
            let cert = identity_dir(settings)?.join(tls::CERT_FILE);
            let line = edit::client_line(&secret, settings.listen, tls::fingerprint_of_file(&cert));
            print(&format!("{line}\n"))
        }
        UserAction::Remove { name } => edit::remove(path, &name, settings.anonymous),
        UserAction::List => {
            let accounts = Accounts::load(path, settings.anonymous)?;
            let store = settings.open_store()?;
            let mut out = Vec::new();
            edit::list(&accounts, &*store, &mut out)?;
            print(&String::from_utf8_lossy(&out))
        }
    }
}

/// `ftp-server check-usage [USER]`.
fn check_usage(settings: &Settings, user: Option<&str>) -> Result<()> {
    let anonymous = settings
        .anonymous
        .then_some((settings.anonymous_quota, settings.anonymous_max_files));
    let users = settings.users.as_deref();
    let out = &mut std::io::stdout();
    recount::check_usage_command(&settings.root, users, anonymous, user, out)
}

/// Writes `text` to stdout at once.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| crate::Error::io(crate::error::WRITING_OUTPUT, e))
}

/// What the man page says beyond the flags: the files and the environment.
fn man_sections() -> Vec<cli::ManSection> {
    let files = [
        (
            "~/.config/ftp/secret",
            "the shared secret, unless --secret-file, FTP_SECRET or \
          --users gives one; created with a random secret (mode 0600) on first start",
        ),
        (
            "~/.config/ftp/server-cert.pem, ~/.config/ftp/server-key.pem",
            "the TLS certificate \
          and key (or in --tls-dir), created on first start; when only one is there it is moved \
          to NAME.old and both are made anew",
        ),
        (
            "file_upload",
            "where uploads land, unless --root says otherwise",
        ),
        (
            "--users FILE",
            "the accounts; read again when it changes and on SIGHUP, and \
          refused whole (the accounts in force stay) when it does not load",
        ),
        (
            "--config FILE",
            "the settings, one key per flag; checked again on SIGHUP, applied at restart",
        ),
    ];
    let environment = [
        (
            "FTP_SECRET",
            "the shared secret, when --secret-file is not given",
        ),
        ("XDG_CONFIG_HOME", "replaces ~/.config in the paths above"),
        ("RUST_LOG", "what is logged, overriding -v and -q"),
        (
            "AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
            "the object store, with --root s3://BUCKET",
        ),
        (
            "NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS, LISTEN_PID",
            "set by systemd: readiness and watchdog pings (Type=notify), and the listening \
          socket of a .socket unit, taken in place of --listen",
        ),
    ];
    let signals = [
        ("SIGHUP", "reload the users file; check the config file"),
        (
            "SIGTERM, SIGINT",
            "stop accepting, and give running commands --shutdown-grace to finish",
        ),
    ];
    vec![
        cli::ManSection::new("FILES", "", &files),
        cli::ManSection::new("ENVIRONMENT", "", &environment),
        cli::ManSection::new("SIGNALS", "", &signals),
    ]
}

/// The users file, or one account holding the secret, with warnings for
/// files others can read; and where a client's secret comes from, in
/// words, for the line that tells how to connect.
fn load_accounts(args: &Settings) -> Result<(Accounts, String)> {
    if let Some(path) = &args.users {
        let accounts = Accounts::load(path, args.anonymous)?;
        if let Some(warning) = exposure_warning(path) {
            Event::new(Kind::Warning).warn(format_args!("{warning}"));
        }
        let count = accounts.iter().count();
        Event::new(Kind::Start).info(format_args!("{count} accounts from {}", path.display()));
        let place = format!("give each user their secret from {}", path.display());
        return Ok((accounts, place));
    }
    let (secret, source) = server_secret(args.secret_file.as_deref())?;
    Event::new(Kind::Start).info(format_args!("{source}"));
    let place = match source {
        SecretSource::Env => format!("set {SECRET_ENV} there to the same secret"),
        SecretSource::File(p) => format!(
            "copy {} there (it holds the secret; keep it mode 0600) and pass it with \
             --secret-file",
            p.display()
        ),
        SecretSource::Created(p) | SecretSource::Default(p) => format!(
            "copy {} to ~/.config/ftp/secret there (it holds the secret; mkdir -p ~/.config/ftp \
             first, keep it mode 0600)",
            p.display()
        ),
    };
    Ok((Accounts::single(secret), place))
}

/// The TLS identity, created on first start in a folder only the server's
/// user can read; a key file others can read is logged as a warning.
fn identity(args: &Settings) -> Result<ServerIdentity> {
    let dir = identity_dir(args)?;
    paths::create_private_dir(&dir)
        .map_err(|e| crate::Error::io(format!("creating {}", dir.display()), e))?;
    let tls = ServerIdentity::load_or_create(&dir)?;
    if let Some(warning) = exposure_warning(&dir.join(tls::KEY_FILE)) {
        Event::new(Kind::Warning).warn(format_args!("{warning}"));
    }
    Ok(tls)
}

/// Where the TLS identity lives: --tls-dir, else the per-user config
/// folder (beside the default secret), where clients run by the same user
/// find the certificate and trust it without asking. Without a HOME, the
/// folder of --secret-file.
fn identity_dir(args: &Settings) -> Result<PathBuf> {
    if let Some(dir) = &args.tls_dir {
        return Ok(dir.clone());
    }
    paths::config_dir().or_else(
        |e| match args.secret_file.as_deref().and_then(|p| p.parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => Ok(dir.to_path_buf()),
            Some(_) => Ok(PathBuf::from(".")),
            None => Err(e),
        },
    )
}

/// Logs the certificate's fingerprint and one line on how to connect from
/// another machine. The secret itself is never printed.
fn announce(tls: &ServerIdentity, addr: SocketAddr, secret_place: &str) {
    let fp = tls.fingerprint;
    let verb = if tls.created { "created" } else { "using" };
    Event::new(Kind::Start).info(format_args!(
        "{verb} TLS certificate {} ({fp})",
        tls.cert_path.display()
    ));
    if let Some(old) = &tls.set_aside {
        Event::new(Kind::Warning).warn(format_args!(
            "only one of {} and {} was there, so both were made anew and the lone one was \
             moved to {}; clients that pinned the old certificate will refuse this one \
             until they are given the new fingerprint with --fingerprint {fp}",
            tls::KEY_FILE,
            tls::CERT_FILE,
            old.display()
        ));
    }
    let port = addr.port();
    // A loopback or wildcard address is not what another machine dials.
    let (reach, server) = match addr.ip() {
        ip if ip.is_loopback() => (
            format!("restart with --listen 0.0.0.0:{port} (this one listens on {ip} only), "),
            format!("THIS-HOST:{port}"),
        ),
        ip if ip.is_unspecified() => (String::new(), format!("THIS-HOST:{port}")),
        _ => (String::new(), addr.to_string()),
    };
    Event::new(Kind::Start).info(format_args!(
        "from another machine: {reach}{secret_place}, then run: \
         ftp-client --server {server} --fingerprint {fp}"
    ));
}
