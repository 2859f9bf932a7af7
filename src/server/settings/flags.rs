//! The server's settings as written: on its command line and in its
//! config file (`--config FILE`, TOML), with one key per flag of the same
//! name. Nothing here is defaulted or checked against other settings:
//! [`super::Settings`] does that, once, for both sources.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::address::parse_listen;
use crate::config::units::Size;
use crate::error::{Error, Result};
use crate::logging::LogFormat;

/// Declares [`ServerFlags`]: each field is a flag (clap) and a key of the
/// config file (serde), and `overlay` lets the command line win field by
/// field. One list, so a flag cannot lack its key.
macro_rules! server_flags {
    ($($(#[$meta:meta])* $name:ident: $ty:ty,)*) => {
        /// Every server setting, each `None` unless written.
        #[derive(clap::Args, Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub(crate) struct ServerFlags {
            $($(#[$meta])* #[serde(default, skip_serializing_if = "Option::is_none")]
            pub $name: Option<$ty>,)*
        }

        impl ServerFlags {
            /// These settings, each one not written here taken from `under`.
            pub(crate) fn overlay(self, under: ServerFlags) -> ServerFlags {
                ServerFlags { $($name: self.$name.or(under.$name),)* }
            }

            /// The config file's keys, in the order `config` prints them.
            pub(crate) fn keys() -> impl Iterator<Item = String> {
                [$(stringify!($name),)*].into_iter().map(|k| k.replace('_', "-"))
            }
        }
    };
}

server_flags! {
    /// Address to listen on: IP:PORT, [IPv6]:PORT, or PORT and :PORT for
    /// every interface (0.0.0.0); an IP alone takes port 8080. Port 0
    /// picks a free port. [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Listen,
    /// Where uploads land: a folder (created if missing), or
    /// s3://BUCKET[/PREFIX] for an S3-compatible object store, configured
    /// by AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY. [default: file_upload]
    #[arg(long, value_name = "FOLDER|s3://BUCKET[/PREFIX]")]
    root: String,
    /// Read the shared secret from this file (taken literally, one trailing
    /// newline dropped).
    #[arg(long, value_name = "PATH")]
    secret_file: PathBuf,
    /// Accounts file (TOML): one secret, home folder, quota and max_files
    /// per user. Reloaded on SIGHUP and when it changes.
    #[arg(long, value_name = "FILE")]
    users: PathBuf,
    /// Most connections served at once; more are told the server is busy.
    /// Lowered to what the open-file limit allows, with a log line.
    /// [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: usize,
    /// Threads for connections that are doing something (a login, a
    /// command, a transfer); more such connections wait their turn. Idle
    /// connections hold none. More are added only while all of these are
    /// stuck on slow peers. [default: 64]
    #[arg(long, value_name = "N")]
    workers: usize,
    /// Most connections one address may hold (an IPv6 /64 counts as one).
    /// [default: 1000]
    #[arg(long, value_name = "N")]
    max_per_address: usize,
    /// Most logins one address may have under way at once (an IPv6 /64
    /// counts as one); its further connections wait for their turn. An
    /// anonymous client's turn lasts until its first request is in.
    /// [default: 16]
    #[arg(long, value_name = "N")]
    max_logins_per_address: usize,
    /// Failed logins one address may make in a minute; after that it is
    /// refused until the minute is over. [default: 30]
    #[arg(long, value_name = "N")]
    max_failed_logins: u32,
    /// TLS handshakes one address may start in a second, after a burst of
    /// as many (each costs the server a key exchange and a signature,
    /// whoever sends it); more wait their turn. [default: 64]
    #[arg(long, value_name = "N")]
    max_handshakes_per_second: u32,
    /// Drop a peer that sends nothing for this long, or takes this long for
    /// the login or one header. [default: 60]
    #[arg(long, value_name = "SECS")]
    idle_timeout: u64,
    /// Close a connection whose peer has not read the whole of one reply
    /// (a long listing, say) this long after it began.
    /// [default: five times --idle-timeout]
    #[arg(long, value_name = "SECS")]
    reply_timeout: u64,
    /// Drop an upload whose body comes slower than this (bytes per second,
    /// e.g. 1KiB; 0 for no floor), averaged over --min-rate-window. Its
    /// partial file stays for a resume. [default: 1KiB]
    #[arg(long, value_name = "RATE")]
    min_rate: Size,
    /// The window --min-rate is averaged over. [default: 60]
    #[arg(long, value_name = "SECS")]
    min_rate_window: u64,
    /// On SIGTERM or SIGINT, how long running commands may take to finish
    /// before the server exits anyway (their partial uploads stay).
    /// [default: 30]
    #[arg(long, value_name = "SECS")]
    shutdown_grace: u64,
    /// Drop a peer that has not logged in this long after connecting.
    /// [default: 10]
    #[arg(long, value_name = "SECS")]
    login_timeout: u64,
    /// Largest file accepted, e.g. 10GiB. [default: no limit]
    #[arg(long, value_name = "SIZE")]
    max_file_size: Size,
    /// Refuse uploads whose name exists instead of replacing the file.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    no_overwrite: bool,
    /// Make uploaded files (0644) and folders (0755) readable by every user
    /// on this machine. Without it only the server's user can read them
    /// (0600 and 0700).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    shared_files: bool,
    /// Answer ok only after the file and its folder entry are on disk (fsync).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    durable: bool,
    /// Delete partial uploads untouched for this many hours. [default: 168]
    #[arg(long, value_name = "HOURS")]
    partial_ttl: u64,
    /// Log more (each frame).
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    verbose: bool,
    /// Log nothing but errors.
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    quiet: bool,
    /// How log lines are written: text, or json (one object per line).
    /// RUST_LOG, when set, picks what is logged. [default: text]
    #[arg(long, value_name = "FORMAT")]
    log_format: LogFormat,
    /// Refuse the original protocol's plaintext login; serve only clients
    /// that use TLS (ftp-client does by default).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    require_tls: bool,
    /// Let clients that skip the login (the original FtpClient) upload into
    /// ROOT/anonymous: put only, never replacing a file. Off by default.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    anonymous: bool,
    /// Space the anonymous uploads may use together. [default: 1GiB]
    #[arg(long, value_name = "SIZE")]
    anonymous_quota: Size,
    /// Files the anonymous uploads may leave together, partial uploads
    /// included. [default: one per 4 KiB of --anonymous-quota, at least
    /// 1000]
    #[arg(long, value_name = "N")]
    anonymous_max_files: u64,
    /// With an object store (--root s3://...): memory all uploads may hold
    /// for their parts and small files together. One upload may hold a
    /// quarter of it, one account's uploads (or all anonymous ones) half;
    /// a file whose parts would not fit in a quarter is refused.
    /// [default: 1GiB]
    #[arg(long, value_name = "SIZE")]
    upload_memory: Size,
    /// Folder of the TLS certificate and key (created on first start).
    /// Default: the per-user config folder, where local clients find it.
    #[arg(long, value_name = "DIR")]
    tls_dir: PathBuf,
    /// Serve Prometheus metrics over HTTP on this address (port 0 picks a
    /// free one; the log says which).
    #[arg(long, value_name = "ADDR")]
    metrics: SocketAddr,
    /// Run after each upload is stored: a command (split like a shell
    /// would, run without one; the event as JSON on stdin and in FTP_*
    /// variables) or an http(s):// URL (the event POSTed as JSON).
    #[arg(long, value_name = "COMMAND|URL")]
    on_upload: String,
    /// Like --on-upload, when a download starts.
    #[arg(long, value_name = "COMMAND|URL")]
    on_download: String,
    /// Like --on-upload, after an rm removed a file or folder.
    #[arg(long, value_name = "COMMAND|URL")]
    on_delete: String,
    /// Run on each upload's bytes (a command's stdin; a URL's POST body)
    /// before it takes its name: a non-zero exit or an HTTP 4xx refuses
    /// the upload, with the first line of the output as the reason. A
    /// check that fails or times out refuses it too. Folder roots only.
    #[arg(long, value_name = "COMMAND|URL")]
    on_upload_check: String,
    /// What one run of a hook may take; a command is then killed. A hook
    /// that failed runs up to 3 more times. [default: 30]
    #[arg(long, value_name = "SECS")]
    hook_timeout: u64,
    /// Events that may wait for their hook; more are dropped, counted and
    /// logged. [default: 1000]
    #[arg(long, value_name = "N")]
    hook_queue: usize,
}

impl ServerFlags {
    /// Reads a config file. Relative paths in it (`root`, `users`,
    /// `secret-file`, `tls-dir`) are taken from the file's folder, as the
    /// users file's `secret_file` is, so the file means the same wherever
    /// the server is started from.
    ///
    /// Fails with [`Error::Config`] naming the line and what is allowed,
    /// for an unknown key or a value of the wrong kind.
    pub(crate) fn load(path: &Path) -> Result<ServerFlags> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: None,
            reason: format!("cannot read: {}", crate::error::reason(&e)),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        ServerFlags::parse(&text, path).map(|flags| flags.anchored_at(base))
    }

    /// Parses the text of a config file; `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<ServerFlags> {
        toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: e.span().map(|s| crate::error::line_of(text, s.start)),
            reason: e.message().trim_end().replace('\n', "; "),
        })
    }

    /// The same, relative paths joined to `base`.
    fn anchored_at(mut self, base: &Path) -> ServerFlags {
        let anchor = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut().filter(|p| p.is_relative()) {
                *path = base.join(&*path);
            }
        };
        anchor(&mut self.secret_file);
        anchor(&mut self.users);
        anchor(&mut self.tls_dir);
        if let Some(root) = self.root.as_mut().filter(|r| !r.starts_with("s3://")) {
            if Path::new(root.as_str()).is_relative() {
                *root = base.join(&*root).to_string_lossy().into_owned();
            }
        }
        self
    }
}

/// The address to listen on, as `--listen` takes it (`8080` alone, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listen(pub SocketAddr);

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Listen, String> {
        parse_listen(s).map(Listen)
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Listen, D::Error> {
        from_text(d)
    }
}

/// A value written as the text its flag takes, with the flag's error.
fn from_text<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

impl Serialize for LogFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<LogFormat, D::Error> {
        from_text(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerFlags> {
        ServerFlags::parse(text, Path::new("server.toml"))
    }

    #[test]
    fn keys_are_the_flags_names_and_values_take_the_flags_forms() {
        let flags = parse(
            "listen = \"9000\"\nmax-file-size = \"10GiB\"\nmin-rate = 512\ndurable = true\n\
             log-format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(flags.listen.unwrap().0.to_string(), "0.0.0.0:9000");
        assert_eq!(flags.max_file_size, Some(Size(10 << 30)));
        assert_eq!(flags.min_rate, Some(Size(512)));
        assert_eq!(flags.durable, Some(true));
        assert_eq!(flags.log_format, Some(LogFormat::Json));
        assert_eq!(flags.workers, None);
        assert!(ServerFlags::keys().any(|k| k == "max-handshakes-per-second"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line_and_what_is_allowed() {
        let cases = [
            (
                "workers = 4\nport = 21\n",
                "server.toml:2: unknown field `port`, expected one of `listen`, `root`",
            ),
            (
                "\nworkers = \"many\"\n",
                "server.toml:2: invalid type: string \"many\", expected usize",
            ),
            (
                "max-file-size = \"lots\"\n",
                "server.toml:1: invalid size \"lots\"",
            ),
            (
                "max-file-size = true\n",
                "server.toml:1: a size such as 10GiB, or a number of bytes",
            ),
            (
                "log-format = \"xml\"\n",
                "server.toml:1: unknown log format \"xml\": use text or json",
            ),
            ("listen = \"nowhere:x\"\n", "server.toml:1: "),
            (
                "idle-timeout = -1\n",
                "server.toml:1: invalid value: integer `-1`, expected u64",
            ),
            (
                "durable = 1\n",
                "server.toml:1: invalid type: integer `1`, expected a boolean",
            ),
            (
                "[workers]\n",
                "server.toml:1: invalid type: map, expected usize",
            ),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {text:?}:\n got {got}\nwant {want}"
            );
        }
    }

    #[test]
    fn the_command_line_wins_key_by_key() {
        let file = parse("workers = 4\nidle-timeout = 9\n").unwrap();
        let cli = ServerFlags {
            workers: Some(8),
            ..ServerFlags::default()
        };
        let both = cli.overlay(file);
        assert_eq!((both.workers, both.idle_timeout), (Some(8), Some(9)));
    }

    #[test]
    fn relative_paths_start_at_the_files_folder_and_buckets_stay() {
        let flags = parse("users = \"users.toml\"\nroot = \"s3://b/p\"\ntls-dir = \"/etc/ftp\"\n")
            .unwrap()
            .anchored_at(Path::new("/srv/ftp"));
        assert_eq!(flags.users.unwrap(), Path::new("/srv/ftp/users.toml"));
        assert_eq!(flags.root.unwrap(), "s3://b/p");
        assert_eq!(flags.tls_dir.unwrap(), Path::new("/etc/ftp"));
    }
}
