//! `ftp-server`: serves uploads and downloads to clients that know the secret.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

use clap::{CommandFactory, Parser, Subcommand};

use ftp::config::address::parse_listen;
use ftp::config::cli;
use ftp::config::logging::{self, LogFormat, Verbosity};
use ftp::config::paths;
use ftp::config::secret::{exposure_warning, server_secret, SecretSource, SECRET_ENV};
use ftp::config::units::parse_size;
use ftp::net::tls::{self, ServerIdentity};
use ftp::server::accounts::Accounts;
use ftp::server::context::Context;
use ftp::server::quota::default_max_files;
use ftp::server::recount;
use ftp::server::uploads::UploadLocks;
use ftp::server::{fit_to_fd_limit, Config, Server};
use ftp::storage::Modes;
use ftp::storage::{self, Store};
use ftp::Result;

/// Connections served at once unless --max-connections says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The default --reply-timeout in idle timeouts: room for a listing of
/// tens of megabytes over a slow link, while a peer that reads nothing
/// holds its worker thread for minutes, not for ever.
const REPLY_TIMEOUTS_PER_IDLE: u64 = 5;

/// authenticated, encrypted file transfer server
///
/// Wire-compatible with the classic Python socketserver FTP exercise.
///
/// The secret comes from --secret-file, else $FTP_SECRET, else a per-user
/// file that is created with a random secret on first start.
#[derive(Parser, Debug)]
#[command(name = "ftp-server", version, args_override_self = true)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, or PORT and :PORT for
    /// every interface (0.0.0.0); an IP alone takes port 8080. Port 0
    /// picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Where uploads land: a folder (created if missing), or
    /// s3://BUCKET[/PREFIX] for an S3-compatible object store, configured
    /// by AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY.
    #[arg(
        long,
        default_value = "file_upload",
        value_name = "FOLDER|s3://BUCKET[/PREFIX]"
    )]
    root: String,
    /// Read the shared secret from this file (taken literally, one trailing
    /// newline dropped).
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Accounts file (TOML): one secret, home folder, quota and max_files
    /// per user.
    #[arg(long, value_name = "FILE", conflicts_with = "secret_file")]
    users: Option<PathBuf>,
    /// Most connections served at once; more are told the server is busy.
    /// Lowered to what the open-file limit allows, with a log line.
    /// [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Threads for connections that are doing something (a login, a
    /// command, a transfer); more such connections wait their turn. Idle
    /// connections hold none. More are added only while all of these are
    /// stuck on slow peers.
    #[arg(long, default_value_t = 64, value_name = "N")]
    workers: usize,
    /// Most connections one address may hold (an IPv6 /64 counts as one).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    max_per_address: usize,
    /// Most logins one address may have under way at once (an IPv6 /64
    /// counts as one); its further connections wait for their turn. An
    /// anonymous client's turn lasts until its first request is in.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_logins_per_address: usize,
    /// Failed logins one address may make in a minute; after that it is
    /// refused until the minute is over.
    #[arg(long, default_value_t = 30, value_name = "N")]
    max_failed_logins: u32,
    /// TLS handshakes one address may start in a second, after a burst of
    /// as many (each costs the server a key exchange and a signature,
    /// whoever sends it); more wait their turn.
    #[arg(long, default_value_t = ftp::server::hosts::HANDSHAKES_PER_SECOND, value_name = "N")]
    max_handshakes_per_second: u32,
    /// Drop a peer that sends nothing for this long, or takes this long for
    /// the login or one header.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    idle_timeout: u64,
    /// Close a connection whose peer has not read the whole of one reply
    /// (a long listing, say) this long after it began.
    /// [default: five times --idle-timeout]
    #[arg(long, value_name = "SECS")]
    reply_timeout: Option<u64>,
    /// Drop an upload whose body comes slower than this (bytes per second,
    /// e.g. 1KiB; 0 for no floor), averaged over --min-rate-window. Its
    /// partial file stays for a resume.
    #[arg(long, default_value = "1KiB", value_name = "RATE", value_parser = size)]
    min_rate: u64,
    /// The window --min-rate is averaged over.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    min_rate_window: u64,
    /// On SIGTERM or SIGINT, how long running commands may take to finish
    /// before the server exits anyway (their partial uploads stay).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    shutdown_grace: u64,
    /// Drop a peer that has not logged in this long after connecting.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    login_timeout: u64,
    /// Largest file accepted, e.g. 10GiB.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    max_file_size: Option<u64>,
    /// Refuse uploads whose name exists instead of replacing the file.
    #[arg(long)]
    no_overwrite: bool,
    /// Make uploaded files (0644) and folders (0755) readable by every user
    /// on this machine. Without it only the server's user can read them
    /// (0600 and 0700).
    #[arg(long)]
    shared_files: bool,
    /// Answer ok only after the file and its folder entry are on disk (fsync).
    #[arg(long)]
    durable: bool,
    /// Delete partial uploads untouched for this many hours.
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    partial_ttl: u64,
    /// Log more (each frame).
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,
    /// Log nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// How log lines are written: text, or json (one object per line).
    /// RUST_LOG, when set, picks what is logged.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
    /// Refuse the original protocol's plaintext login; serve only clients
    /// that use TLS (ftp-client does by default).
    #[arg(long)]
    require_tls: bool,
    /// Let clients that skip the login (the original FtpClient) upload into
    /// ROOT/anonymous: put only, never replacing a file. Off by default.
    #[arg(long)]
    anonymous: bool,
    /// Space the anonymous uploads may use together.
    #[arg(long, default_value = "1GiB", value_name = "SIZE", value_parser = size)]
    anonymous_quota: u64,
    /// Files the anonymous uploads may leave together, partial uploads
    /// included. [default: one per 4 KiB of --anonymous-quota, at least
    /// 1000]
    #[arg(long, value_name = "N")]
    anonymous_max_files: Option<u64>,
    /// With an object store (--root s3://...): memory all uploads may hold
    /// for their parts and small files together. One upload may hold a
    /// quarter of it, one account's uploads (or all anonymous ones) half;
    /// a file whose parts would not fit in a quarter is refused.
    #[arg(long, default_value = "1GiB", value_name = "SIZE", value_parser = size)]
    upload_memory: u64,
    /// Folder of the TLS certificate and key (created on first start).
    /// Default: the per-user config folder, where local clients find it.
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address (port 0 picks a
    /// free one; the log says which).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
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
    /// Measure each home below --root (or USER's) with the server's own
    /// walk, print what it holds, and fail if one is over its quota or
    /// max_files.
    CheckUsage {
        /// Only this user's home.
        user: Option<String>,
    },
}

fn size(s: &str) -> std::result::Result<u64, String> {
    parse_size(s)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    match &args.about {
        Some(About::Completions { shell }) => {
            return cli::completions(Args::command(), shell, &mut std::io::stdout())
        }
        Some(About::Man) => {
            return cli::man_page(Args::command(), &man_sections(), &mut std::io::stdout())
        }
        Some(About::CheckUsage { user }) => {
            let anonymous = args.anonymous.then(|| {
                let quota = args.anonymous_quota;
                (
                    quota,
                    args.anonymous_max_files.unwrap_or(default_max_files(quota)),
                )
            });
            let users = args.users.as_deref();
            let out = &mut std::io::stdout();
            return recount::check_usage_command(
                &args.root,
                users,
                anonymous,
                user.as_deref(),
                out,
            );
        }
        None => {}
    }
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    logging::init(verbosity, args.log_format)?;
    let (accounts, secret_place) = load_accounts(&args)?;
    let tls = identity(&args)?;
    let modes = match args.shared_files {
        true => Modes::SHARED,
        false => Modes::PRIVATE,
    };
    let store = storage::open(&args.root, args.durable, modes, args.upload_memory)?;
    tracing::info!("files are kept in {}", store.describe());
    let config = config(&args, store, accounts, tls.clone());
    let server = Server::bind(args.listen, config)?;
    if let Some(at) = args.metrics {
        let bound = server.serve_metrics(at)?;
        tracing::info!("metrics on {bound}");
    }
    let addr = server.local_addr()?;
    announce(&tls, addr, &secret_place);
    let mut stdout = std::io::stdout().lock();
    // Scripts and tests read the real port from this first line.
    writeln!(stdout, "listening on {addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| ftp::Error::io("writing to stdout", e))?;
    drop(stdout);
    let stop = stop_on_signals()?;
    server.run(&stop, Duration::from_secs(args.shutdown_grace))
}

/// The server's settings from its flags.
fn config(args: &Args, store: Arc<dyn Store>, accounts: Accounts, tls: ServerIdentity) -> Config {
    Config {
        context: Context {
            store,
            max_file_size: args.max_file_size.unwrap_or(u64::MAX),
            overwrite: !args.no_overwrite,
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            reply_timeout: Duration::from_secs(
                args.reply_timeout
                    .unwrap_or(args.idle_timeout.saturating_mul(REPLY_TIMEOUTS_PER_IDLE))
                    .max(1),
            ),
            locks: UploadLocks::default(),
            metrics: Default::default(),
            anonymous_max_files: args
                .anonymous_max_files
                .unwrap_or(default_max_files(args.anonymous_quota)),
            name_order: Default::default(),
            min_rate: (args.min_rate > 0).then(|| {
                (
                    args.min_rate,
                    Duration::from_secs(args.min_rate_window.max(1)),
                )
            }),
        },
        accounts,
        max_connections: fit_to_fd_limit(
            args.max_connections
                .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                .max(1),
            args.max_connections.is_some(),
        ),
        workers: args.workers.max(1),
        max_per_address: args.max_per_address.max(1),
        max_logins_per_address: args.max_logins_per_address.max(1),
        max_failed_logins: args.max_failed_logins.max(1),
        max_handshakes_per_second: args.max_handshakes_per_second.max(1),
        partial_ttl: Duration::from_secs(args.partial_ttl.saturating_mul(3600)),
        tls,
        require_tls: args.require_tls,
        login_timeout: Duration::from_secs(args.login_timeout.clamp(1, args.idle_timeout.max(1))),
        anonymous_quota: args.anonymous.then_some(args.anonymous_quota),
    }
}

/// SIGTERM or SIGINT raise the flag: stop accepting, let running
/// commands finish.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| ftp::Error::io("installing the signal handler", e))?;
    }
    Ok(stop)
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
    ];
    vec![
        cli::ManSection::new("FILES", "", &files),
        cli::ManSection::new("ENVIRONMENT", "", &environment),
    ]
}

/// The users file, or one account holding the secret, with warnings for
/// files others can read; and where a client's secret comes from, in
/// words, for the line that tells how to connect.
fn load_accounts(args: &Args) -> Result<(Accounts, String)> {
    if let Some(path) = &args.users {
        let accounts = Accounts::load(path, args.anonymous)?;
        if let Some(warning) = exposure_warning(path) {
            tracing::warn!("{warning}");
        }
        let count = accounts.iter().count();
        tracing::info!("{count} accounts from {}", path.display());
        let place = format!("give each user their secret from {}", path.display());
        return Ok((accounts, place));
    }
    let (secret, source) = server_secret(args.secret_file.as_deref())?;
    tracing::info!("{source}");
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
fn identity(args: &Args) -> Result<ServerIdentity> {
    let dir = identity_dir(args)?;
    paths::create_private_dir(&dir)
        .map_err(|e| ftp::Error::io(format!("creating {}", dir.display()), e))?;
    let tls = ServerIdentity::load_or_create(&dir)?;
    if let Some(warning) = exposure_warning(&dir.join(tls::KEY_FILE)) {
        tracing::warn!("{warning}");
    }
    Ok(tls)
}

/// Where the TLS identity lives: --tls-dir, else the per-user config
/// folder (beside the default secret), where clients run by the same user
/// find the certificate and trust it without asking. Without a HOME, the
/// folder of --secret-file.
fn identity_dir(args: &Args) -> Result<PathBuf> {
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
    tracing::info!("{verb} TLS certificate {} ({fp})", tls.cert_path.display());
    if let Some(old) = &tls.set_aside {
        tracing::warn!(
            "only one of {} and {} was there, so both were made anew and the lone one was \
             moved to {}; clients that pinned the old certificate will refuse this one \
             until they are given the new fingerprint with --fingerprint {fp}",
            tls::KEY_FILE,
            tls::CERT_FILE,
            old.display()
        );
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
    tracing::info!(
        "from another machine: {reach}{secret_place}, then run: \
         ftp-client --server {server} --fingerprint {fp}"
    );
}
