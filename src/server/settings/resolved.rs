//! The server's settings checked and completed: the command line over the
//! config file, defaults for what neither says, and the server
//! [`Config`] built from them. The binary only parses flags; everything a
//! setting means is decided here, once, whichever source it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::hooks;
use crate::config::units::Size;
use crate::error::{Error, Result};
use crate::logging::{LogFormat, Verbosity};
use crate::net::tls::ServerIdentity;
use crate::server::accounts::AccountBook;
use crate::server::context::Context;
use crate::server::descriptors::FdBudget;
use crate::server::hooks::{Hook, HookSet};
use crate::server::live::Live;
use crate::server::metrics::Metrics;
use crate::server::quota::default_max_files;
use crate::server::settings::flags::{Listen, ServerFlags};
use crate::server::timings::Timings;
use crate::server::uploads::UploadLocks;
use crate::server::{fit_to_fd_limit, Config};
use crate::storage::{Modes, Store};

/// Connections served at once unless `max-connections` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The default `reply-timeout` in idle timeouts: room for a listing of
/// tens of megabytes over a slow link, while a peer that reads nothing
/// holds its worker thread for minutes, not for ever.
const REPLY_TIMEOUTS_PER_IDLE: u64 = 5;

/// Every server setting, with its value in force.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// Where to listen.
    pub(crate) listen: SocketAddr,
    /// A folder, or `s3://BUCKET[/PREFIX]`.
    pub(crate) root: String,
    /// The shared secret's file, if one is named.
    pub(crate) secret_file: Option<PathBuf>,
    /// The users file, if there is one.
    pub(crate) users: Option<PathBuf>,
    /// Most connections at once, before the open-file limit is applied;
    /// `None` for the default, which is fitted to that limit quietly.
    pub(crate) max_connections: Option<usize>,
    /// Worker threads.
    pub(crate) workers: usize,
    /// Most connections per address.
    pub(crate) max_per_address: usize,
    /// Most logins under way per address.
    pub(crate) max_logins_per_address: usize,
    /// Failed logins per address and minute.
    pub(crate) max_failed_logins: u32,
    /// TLS handshakes per address and second.
    pub(crate) max_handshakes_per_second: u32,
    /// Seconds a peer may stay silent.
    pub(crate) idle_timeout: u64,
    /// Seconds a peer may take to read one reply.
    pub(crate) reply_timeout: u64,
    /// Least upload rate in bytes per second; 0 for none.
    pub(crate) min_rate: u64,
    /// Seconds the upload rate is averaged over.
    pub(crate) min_rate_window: u64,
    /// Seconds running commands get at shutdown.
    pub(crate) shutdown_grace: u64,
    /// Seconds a login may take.
    pub(crate) login_timeout: u64,
    /// Largest file accepted, if limited.
    pub(crate) max_file_size: Option<u64>,
    /// Refuse uploads over an existing name.
    pub(crate) no_overwrite: bool,
    /// Uploaded files readable by every local user.
    pub(crate) shared_files: bool,
    /// fsync before answering ok.
    pub(crate) durable: bool,
    /// Hours a partial upload may stay untouched.
    pub(crate) partial_ttl: u64,
    /// How much is logged.
    pub(crate) verbosity: Verbosity,
    /// How log lines are written.
    pub(crate) log_format: LogFormat,
    /// Only TLS logins.
    pub(crate) require_tls: bool,
    /// Clients that do not log in may upload.
    pub(crate) anonymous: bool,
    /// Bytes the anonymous uploads may use.
    pub(crate) anonymous_quota: u64,
    /// Entries the anonymous uploads may leave.
    pub(crate) anonymous_max_files: u64,
    /// Memory for object-store uploads.
    pub(crate) upload_memory: u64,
    /// The TLS identity's folder, if named.
    pub(crate) tls_dir: Option<PathBuf>,
    /// Where metrics are served, if anywhere.
    pub(crate) metrics: Option<SocketAddr>,
    /// The hook of each event.
    pub(crate) hooks: HookSet,
    /// Seconds one run of a hook may take.
    pub(crate) hook_timeout: u64,
    /// Events that may wait for their hook.
    pub(crate) hook_queue: usize,
}

impl Settings {
    /// The settings from the command line `cli` over the config file at
    /// `file`, if any. `-v` or `-q` on the command line replaces both of
    /// the file's `verbose` and `quiet`, since they are one setting.
    ///
    /// Fails when the file cannot be read or parsed, or the settings
    /// contradict each other.
    pub(crate) fn gather(cli: ServerFlags, file: Option<&Path>) -> Result<Settings> {
        let mut under = match file {
            Some(path) => ServerFlags::load(path)?,
            None => ServerFlags::default(),
        };
        if cli.verbose.is_some() || cli.quiet.is_some() {
            (under.verbose, under.quiet) = (None, None);
        }
        Settings::from_flags(cli.overlay(under))
    }

    /// Completes `flags` with the defaults, and checks them together.
    ///
    /// Fails when both `users` and `secret-file` are set, or both
    /// `verbose` and `quiet`.
    pub(crate) fn from_flags(f: ServerFlags) -> Result<Settings> {
        if f.users.is_some() && f.secret_file.is_some() {
            return Err(Error::Usage(
                "both users and secret-file are set (on the command line or in the config \
                 file); keep one: users names each account's secret"
                    .into(),
            ));
        }
        let verbosity = verbosity(&f)?;
        let hooks = hooks::hook_set(&f)?;
        let idle_timeout = f.idle_timeout.unwrap_or(60).max(1);
        let anonymous_quota = size_or(f.anonymous_quota, 1 << 30);
        Ok(Settings {
            listen: f
                .listen
                .map_or(SocketAddr::from(([127, 0, 0, 1], 8080)), |l| l.0),
            root: f.root.unwrap_or_else(|| "file_upload".into()),
            secret_file: f.secret_file,
            users: f.users,
            max_connections: f.max_connections.map(|n| n.max(1)),
            workers: f.workers.unwrap_or(64).max(1),
            max_per_address: f.max_per_address.unwrap_or(1_000).max(1),
            max_logins_per_address: f.max_logins_per_address.unwrap_or(16).max(1),
            max_failed_logins: f.max_failed_logins.unwrap_or(30).max(1),
            max_handshakes_per_second: f
                .max_handshakes_per_second
                .unwrap_or(crate::server::hosts::HANDSHAKES_PER_SECOND)
                .max(1),
            idle_timeout,
            reply_timeout: f
                .reply_timeout
                .unwrap_or(idle_timeout.saturating_mul(REPLY_TIMEOUTS_PER_IDLE))
                .max(1),
            min_rate: size_or(f.min_rate, 1024),
            min_rate_window: f.min_rate_window.unwrap_or(60).max(1),
            shutdown_grace: f.shutdown_grace.unwrap_or(30),
            login_timeout: f.login_timeout.unwrap_or(10).clamp(1, idle_timeout),
            max_file_size: f.max_file_size.map(|s| s.0),
            no_overwrite: f.no_overwrite.unwrap_or(false),
            shared_files: f.shared_files.unwrap_or(false),
            durable: f.durable.unwrap_or(false),
            partial_ttl: f.partial_ttl.unwrap_or(168),
            verbosity,
            log_format: f.log_format.unwrap_or_default(),
            require_tls: f.require_tls.unwrap_or(false),
            anonymous: f.anonymous.unwrap_or(false),
            anonymous_quota,
            anonymous_max_files: f
                .anonymous_max_files
                .unwrap_or(default_max_files(anonymous_quota)),
            upload_memory: size_or(f.upload_memory, 1 << 30),
            tls_dir: f.tls_dir,
            metrics: f.metrics,
            hooks,
            hook_timeout: f.hook_timeout.unwrap_or(30).max(1),
            hook_queue: f.hook_queue.unwrap_or(1_000).max(1),
        })
    }

    /// The settings as flags, every one that has a value written, so that
    /// [`Settings::from_flags`] gives these settings back.
    pub(crate) fn to_flags(&self) -> ServerFlags {
        ServerFlags {
            listen: Some(Listen(self.listen)),
            root: Some(self.root.clone()),
            secret_file: self.secret_file.clone(),
            users: self.users.clone(),
            max_connections: self.max_connections,
            workers: Some(self.workers),
            max_per_address: Some(self.max_per_address),
            max_logins_per_address: Some(self.max_logins_per_address),
            max_failed_logins: Some(self.max_failed_logins),
            max_handshakes_per_second: Some(self.max_handshakes_per_second),
            idle_timeout: Some(self.idle_timeout),
            reply_timeout: Some(self.reply_timeout),
            min_rate: Some(Size(self.min_rate)),
            min_rate_window: Some(self.min_rate_window),
            shutdown_grace: Some(self.shutdown_grace),
            login_timeout: Some(self.login_timeout),
            max_file_size: self.max_file_size.map(Size),
            no_overwrite: Some(self.no_overwrite),
            shared_files: Some(self.shared_files),
            durable: Some(self.durable),
            partial_ttl: Some(self.partial_ttl),
            verbose: Some(self.verbosity == Verbosity::Verbose),
            quiet: Some(self.verbosity == Verbosity::Quiet),
            log_format: Some(self.log_format),
            require_tls: Some(self.require_tls),
            anonymous: Some(self.anonymous),
            anonymous_quota: Some(Size(self.anonymous_quota)),
            anonymous_max_files: Some(self.anonymous_max_files),
            upload_memory: Some(Size(self.upload_memory)),
            tls_dir: self.tls_dir.clone(),
            metrics: self.metrics,
            on_upload: self.hooks.on_upload.as_ref().map(Hook::to_string),
            on_download: self.hooks.on_download.as_ref().map(Hook::to_string),
            on_delete: self.hooks.on_delete.as_ref().map(Hook::to_string),
            on_upload_check: self.hooks.on_upload_check.as_ref().map(Hook::to_string),
            hook_timeout: Some(self.hook_timeout),
            hook_queue: Some(self.hook_queue),
        }
    }

    /// The settings as a config file: every key with its value, and the
    /// keys that have none (a TOML file cannot say "unset") as comments.
    ///
    /// Fails only if a value cannot be written as TOML (a path that is
    /// not UTF-8).
    pub(crate) fn to_toml(&self) -> Result<String> {
        let mut flags = self.to_flags();
        // The file's relative paths start at its own folder, not where the
        // server was started: written out whole, they mean the same there.
        let whole = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                *path = std::path::absolute(&*path).unwrap_or_else(|_| path.clone());
            }
        };
        whole(&mut flags.secret_file);
        whole(&mut flags.users);
        whole(&mut flags.tls_dir);
        if let Some(root) = flags.root.as_mut().filter(|r| !r.starts_with("s3://")) {
            let mut path = Some(PathBuf::from(root.as_str()));
            whole(&mut path);
            *root = path.unwrap_or_default().to_string_lossy().into_owned();
        }
        let body = toml::to_string(&flags)
            .map_err(|e| Error::Usage(format!("cannot write the settings as TOML: {e}")))?;
        let value = toml::Value::try_from(&flags)
            .map_err(|e| Error::Usage(format!("cannot write the settings as TOML: {e}")))?;
        let mut text = String::from(
            "# ftp-server settings; load with: ftp-server --config FILE\n\
             # Flags given on the command line win over these.\n",
        );
        text.push_str(&body);
        for key in ServerFlags::keys() {
            if value.get(&key).is_none() {
                text.push_str(&format!("# {key} is not set\n"));
            }
        }
        Ok(text)
    }

    /// What differs from `other`, one `key: old -> new` per setting, in
    /// the config file's words.
    pub(crate) fn changes(&self, other: &Settings) -> Vec<String> {
        let table = |s: &Settings| toml::Value::try_from(s.to_flags()).ok();
        let (Some(was), Some(now)) = (table(self), table(other)) else {
            return Vec::new();
        };
        let show = |v: Option<&toml::Value>| v.map_or("unset".to_string(), |v| v.to_string());
        ServerFlags::keys()
            .filter(|k| was.get(k) != now.get(k))
            .map(|k| format!("{k}: {} -> {}", show(was.get(&k)), show(now.get(&k))))
            .collect()
    }

    /// Opens the store at `root` as these settings say.
    ///
    /// Fails when the folder cannot be made or the object store is not
    /// configured.
    pub(crate) fn open_store(&self) -> Result<Arc<dyn Store>> {
        let modes = match self.shared_files {
            true => Modes::SHARED,
            false => Modes::PRIVATE,
        };
        crate::storage::open(&self.root, self.durable, modes, self.upload_memory)
    }

    /// The server's timings from these settings.
    pub(crate) fn timings(&self) -> Timings {
        Timings::from_flags(self.idle_timeout, self.reply_timeout, self.login_timeout)
    }

    /// The server's configuration, with its store, accounts and identity.
    /// The connection limit is fitted to the open-file limit here, and
    /// the hooks' threads are started.
    ///
    /// Fails when a hook thread cannot be started.
    pub(crate) fn server_config(
        &self,
        store: Arc<dyn Store>,
        accounts: Arc<AccountBook>,
        tls: ServerIdentity,
    ) -> Result<Config> {
        let secs = Duration::from_secs;
        let metrics = Arc::new(Metrics::new());
        let hooks = hooks::start(&self.hooks, self.hook_timeout, self.hook_queue, &metrics)?;
        Ok(Config {
            context: Context {
                store,
                overwrite: !self.no_overwrite,
                locks: UploadLocks::default(),
                metrics,
                hooks: Arc::new(hooks),
                live: Arc::new(Live::new(self.limits())),
                name_order: Default::default(),
                fds: Arc::new(FdBudget::for_this_process()),
                timings: self.timings(),
            },
            accounts,
            // The default is lowered quietly; a number the operator wrote,
            // with a warning.
            max_connections: fit_to_fd_limit(
                self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
                self.max_connections.is_some(),
            ),
            workers: self.workers,
            max_logins_per_address: self.max_logins_per_address,
            max_failed_logins: self.max_failed_logins,
            max_handshakes_per_second: self.max_handshakes_per_second,
            partial_ttl: secs(self.partial_ttl.saturating_mul(3600)),
            tls,
            require_tls: self.require_tls,
            anonymous: self.anonymous,
        })
    }
}

/// How much is logged: `quiet` and `verbose` are one setting.
fn verbosity(f: &ServerFlags) -> Result<Verbosity> {
    match (f.quiet == Some(true), f.verbose == Some(true)) {
        (true, true) => Err(Error::Usage(
            "both verbose and quiet are set; keep one".into(),
        )),
        (true, false) => Ok(Verbosity::Quiet),
        (false, true) => Ok(Verbosity::Verbose),
        (false, false) => Ok(Verbosity::Normal),
    }
}

fn size_or(size: Option<Size>, default: u64) -> u64 {
    size.map_or(default, |s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(text: &str) -> Result<Settings> {
        Settings::from_flags(ServerFlags::parse(text, Path::new("server.toml"))?)
    }

    #[test]
    fn printed_settings_load_back_to_the_same_settings() {
        for text in [
            "root = \"/srv/ftp\"\n",
            "workers = 3\nmax-file-size = \"10MiB\"\nmetrics = \"127.0.0.1:0\"\nquiet = true\n\
             root = \"s3://bucket/prefix\"\n",
            "users = \"/etc/ftp/users.toml\"\nanonymous = true\nanonymous-quota = 1000\n\
             root = \"/srv/ftp\"\n",
            "on-upload = \"scan --quick '/srv/a b'\"\non-delete = \"https://hooks.example/d\"\n\
             hook-timeout = 5\nhook-queue = 10\nroot = \"/srv/ftp\"\n",
        ] {
            let settings = from_text(text).unwrap();
            let printed = settings.to_toml().unwrap();
            assert_eq!(from_text(&printed).unwrap(), settings, "{printed}");
        }
    }

    #[test]
    fn relative_paths_are_printed_whole() {
        let printed = from_text("root = \"files\"\ntls-dir = \"tls\"\n")
            .unwrap()
            .to_toml()
            .unwrap();
        let here = std::env::current_dir().unwrap();
        let root = format!("root = \"{}\"", here.join("files").display());
        let tls = format!("tls-dir = \"{}\"", here.join("tls").display());
        assert!(printed.lines().any(|l| l == root), "{printed}");
        assert!(printed.lines().any(|l| l == tls), "{printed}");
    }

    #[test]
    fn defaults_are_filled_and_unset_keys_are_named_in_comments() {
        let printed = from_text("").unwrap().to_toml().unwrap();
        for line in [
            "listen = \"127.0.0.1:8080\"",
            "workers = 64",
            "reply-timeout = 300",
            "min-rate = \"1KiB\"",
            "anonymous-max-files = 262144",
            "# metrics is not set",
            "# max-file-size is not set",
            "# max-connections is not set",
        ] {
            assert!(
                printed.lines().any(|l| l == line),
                "no {line:?} in\n{printed}"
            );
        }
    }

    #[test]
    fn changes_name_each_key_with_its_old_and_new_value() {
        let before = from_text("workers = 3\nmax-file-size = \"1MiB\"\n").unwrap();
        let after = from_text("workers = 3\ndurable = true\n").unwrap();
        assert_eq!(
            before.changes(&after),
            ["max-file-size: \"1MiB\" -> unset", "durable: false -> true"]
        );
        assert!(before.changes(&before).is_empty());
    }

    #[test]
    fn contradictions_are_refused() {
        for (text, want) in [
            (
                "users = \"u\"\nsecret-file = \"s\"\n",
                "both users and secret-file",
            ),
            ("verbose = true\nquiet = true\n", "both verbose and quiet"),
        ] {
            let got = from_text(text).unwrap_err().to_string();
            assert!(got.contains(want), "{got}");
        }
    }

    #[test]
    fn a_quiet_command_line_replaces_a_verbose_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "verbose = true\nworkers = 5\n").unwrap();
        let cli = ServerFlags {
            quiet: Some(true),
            ..ServerFlags::default()
        };
        let settings = Settings::gather(cli, Some(&file)).unwrap();
        assert_eq!(
            (settings.verbosity, settings.workers),
            (Verbosity::Quiet, 5)
        );
    }
}
