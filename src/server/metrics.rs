//! What the server counts, in Prometheus' text format, and the small HTTP
//! responder that serves it to a scraper (`--metrics ADDR`).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::logging::{Event, Kind};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Which hook ran, and how it ended: `ok`, `attempt_failed` (one run,
/// retried or not), `failed` (given up) or `dropped` (the queue was full).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HookLabels {
    /// `upload`, `download` or `delete`.
    pub(crate) event: &'static str,
    /// How it ended.
    pub(crate) result: &'static str,
}

/// How a login ended, and in which dialect.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LoginLabels {
    /// `ok` or `failed`.
    pub(crate) result: &'static str,
    /// `legacy` for the seed's plaintext HMAC-MD5 login.
    pub(crate) dialect: &'static str,
}

/// One command and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CommandLabels {
    /// The command's name, or `?` for a header that was no request.
    pub(crate) command: &'static str,
    /// `ok`, `error` (refused with a reply) or `aborted` (connection lost).
    pub(crate) result: &'static str,
}

/// Every figure the server exports. Cheap to update: atomics only.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Connections open now.
    pub(crate) connections_active: Gauge,
    /// Connections accepted since start.
    pub(crate) connections: Counter,
    /// Connections turned away at the connection limit.
    pub(crate) refused_busy: Counter,
    /// Logins by result and dialect.
    pub(crate) logins: Family<LoginLabels, Counter>,
    /// Commands by name and result.
    pub(crate) commands: Family<CommandLabels, Counter>,
    /// File bytes received by puts.
    pub(crate) bytes_in: Counter,
    /// File bytes sent by gets.
    pub(crate) bytes_out: Counter,
    /// Uploads stored under their name.
    pub(crate) uploads_committed: Counter,
    /// Uploads refused after their body began, or cut off.
    pub(crate) uploads_failed: Counter,
    /// Uploads that resumed earlier partial data.
    pub(crate) uploads_resumed: Counter,
    /// Seconds each put or get took.
    pub(crate) transfer_seconds: Histogram,
    /// Hook runs by event and result.
    pub(crate) hooks: Family<HookLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `ftp_` prefix.
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("ftp"),
            connections_active: Gauge::default(),
            connections: Counter::default(),
            refused_busy: Counter::default(),
            logins: Family::default(),
            commands: Family::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            uploads_committed: Counter::default(),
            uploads_failed: Counter::default(),
            uploads_resumed: Counter::default(),
            // 1 ms to about 9 hours.
            transfer_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 13)),
            hooks: Family::default(),
        };
        m.register_all();
        m
    }

    fn register_all(&mut self) {
        let r = &mut self.registry;
        r.register(
            "connections_active",
            "Connections open now",
            self.connections_active.clone(),
        );
        r.register(
            "connections",
            "Connections accepted",
            self.connections.clone(),
        );
        let busy = self.refused_busy.clone();
        r.register("connections_refused_busy", "Refused at the limit", busy);
        r.register(
            "logins",
            "Logins by result and dialect",
            self.logins.clone(),
        );
        r.register(
            "commands",
            "Commands by name and result",
            self.commands.clone(),
        );
        r.register(
            "received_bytes",
            "File bytes received by puts",
            self.bytes_in.clone(),
        );
        r.register(
            "sent_bytes",
            "File bytes sent by gets",
            self.bytes_out.clone(),
        );
        let (done, failed) = (self.uploads_committed.clone(), self.uploads_failed.clone());
        r.register("uploads_committed", "Uploads stored under their name", done);
        r.register(
            "uploads_failed",
            "Uploads refused mid-way or cut off",
            failed,
        );
        let resumed = self.uploads_resumed.clone();
        r.register(
            "uploads_resumed",
            "Uploads that resumed partial data",
            resumed,
        );
        let seconds = self.transfer_seconds.clone();
        r.register(
            "transfer_duration_seconds",
            "Duration of each put and get",
            seconds,
        );
        let hooks = self.hooks.clone();
        r.register("hooks", "Hook runs by event and result", hooks);
    }

    /// Counts a command that ended with `result`.
    pub(crate) fn command(&self, command: &'static str, result: &'static str) {
        self.commands
            .get_or_create(&CommandLabels { command, result })
            .inc();
    }

    /// Counts a hook run of `event` that ended with `result`; returns the
    /// count before.
    pub(crate) fn hook(&self, event: &'static str, result: &'static str) -> u64 {
        self.hooks
            .get_or_create(&HookLabels { event, result })
            .inc()
    }

    /// Counts a login.
    pub(crate) fn login(&self, result: &'static str, dialect: &'static str) {
        self.logins
            .get_or_create(&LoginLabels { result, dialect })
            .inc();
    }

    /// Everything, in the OpenMetrics text format.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Most bytes of a scraper's request that are read.
const MAX_REQUEST: u64 = 8 * 1024;

/// How long a scraper has to send its whole request, however it trickles
/// in; then the connection is closed. Prometheus sends it at once.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// How long writing the answer may block on a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most scrapes answered at once; past it a newcomer is closed at once, so
/// that many slow peers cost threads only up to here, each for at most
/// [`REQUEST_DEADLINE`] and [`WRITE_TIMEOUT`].
const MAX_SCRAPES: usize = 16;

/// Serves `GET /metrics` on `listener`: a thread accepts, and each scrape
/// gets a thread of its own, so one slow peer delays no other; each is
/// bounded in size and time, and their number is bounded.
///
/// Fails when the thread cannot be started.
pub(crate) fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<()> {
    let running = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("ftp-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if running.fetch_add(1, Ordering::SeqCst) >= MAX_SCRAPES {
                    running.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (metrics, running) = (metrics.clone(), running.clone());
                let spawned = thread::Builder::new()
                    .name("ftp-scrape".into())
                    .spawn(move || {
                        if let Err(e) = answer(stream, &metrics) {
                            Event::new(Kind::Debug)
                                .debug(format_args!("metrics scrape failed: {e}"));
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    Event::new(Kind::Internal).warn(format_args!(
                        "cannot start a thread for a metrics scrape: {e}"
                    ));
                }
            }
        })
        .map(|_| ())
}

/// Reads a request head (up to the blank line) within the deadline.
///
/// Fails with `TimedOut` when the deadline passes first.
fn read_head(stream: &TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut request = Vec::new();
    let mut limited = stream.take(MAX_REQUEST);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request took too long",
            ));
        }
        limited.get_ref().set_read_timeout(Some(left))?;
        match limited.read(&mut buf)? {
            0 => break,
            n => request.extend_from_slice(&buf[..n]),
        }
    }
    Ok(request)
}

fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let request = read_head(&stream, Instant::now() + REQUEST_DEADLINE)?;
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, kind, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ")
    {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ("200 OK", kind, metrics.render())
    } else {
        (
            "404 Not Found",
            "text/plain",
            "try GET /metrics\n".to_string(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_labels_and_prefix() {
        let m = Metrics::new();
        m.connections.inc();
        m.login("ok", "legacy");
        m.command("put", "ok");
        m.bytes_in.inc_by(42);
        m.transfer_seconds.observe(0.5);
        let text = m.render();
        assert!(text.contains("ftp_connections_total 1"), "{text}");
        assert!(
            text.contains(r#"ftp_logins_total{result="ok",dialect="legacy"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ftp_commands_total{command="put",result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("ftp_received_bytes_total 42"), "{text}");
        assert!(
            text.contains("ftp_transfer_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn the_responder_serves_metrics_and_refuses_other_paths() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::new());
        m.connections.inc_by(3);
        serve(listener, m).unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("ftp_connections_total 3"), "{ok}");
        assert!(get("/secret").starts_with("HTTP/1.1 404"));
    }
}
