//! The server's log: `tracing` events on stderr, as text or as JSON lines.
//!
//! Every connection runs inside a `conn` span that carries the peer's
//! address and, after the login, the user, so event messages need not
//! repeat them. Names in messages are escaped, so a file name cannot forge
//! a log line; secrets are never logged. Each event is an [`Event`] with a
//! [`Kind`] and fields (see `event`); the JSON format writes them flat,
//! the text format writes the sentence only.

mod event;
mod format;

pub(crate) use event::{connection_span, detail, logged_in, Event, Kind};

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};

/// How much the server says, from `-q` / `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verbosity {
    /// Only errors.
    Quiet,
    /// Connections, logins and commands.
    Normal,
    /// Everything, including each header.
    Verbose,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// The filter for a verbosity: our own events at the chosen level, other
/// crates' only when they warn.
fn directives(verbosity: Verbosity) -> &'static str {
    match verbosity {
        Verbosity::Quiet => "error",
        Verbosity::Normal => "warn,ftp=info,ftp_server=info",
        Verbosity::Verbose => "warn,ftp=debug,ftp_server=debug",
    }
}

/// Installs the process-wide subscriber. `RUST_LOG`, when set, replaces
/// the filter that `verbosity` picks.
///
/// Fails when `RUST_LOG` does not parse or a subscriber is already set.
pub(crate) fn init(verbosity: Verbosity, format: LogFormat) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|e| Error::Usage(format!("invalid RUST_LOG {spec:?}: {e}")))?,
        _ => EnvFilter::new(directives(verbosity)),
    };
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let installed = format::subscriber(filter, format, ansi, std::io::stderr).try_init();
    installed.map_err(|e| Error::Usage(format!("cannot set up logging: {e}")))
}
