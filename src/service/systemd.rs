//! Running under systemd: the listening socket it passes (`LISTEN_FDS`),
//! and the state it is told (`Type=notify`): `READY=1` once listening,
//! `RELOADING=1` and `READY=1` around a reload, `STOPPING=1` at shutdown,
//! `STATUS=` with the connections open, and watchdog pings when it asks
//! for them (`WATCHDOG_USEC`). Outside systemd every call does nothing.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sd_notify::NotifyState;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{Error, Result};
use crate::logging::{Event, Kind};
use crate::server::metrics::Metrics;
use crate::server::THREAD_STACK;
use crate::service::reload::Phase;

/// How often `STATUS=` is refreshed when no watchdog asks for more.
pub(crate) const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The listening socket systemd passed, if it passed one.
///
/// Fails when `LISTEN_FDS` is malformed or names more than one socket:
/// the server listens on one address, and the unit should say so.
pub(crate) fn passed_listener() -> Result<Option<TcpListener>> {
    let fds = sd_notify::listen_fds()
        .map_err(|e| Error::Usage(format!("LISTEN_FDS from systemd: {e}")))?;
    let fds: Vec<_> = fds.collect();
    match fds[..] {
        [] => Ok(None),
        // systemd hands the descriptor over to this process, which owns
        // it from here on; nothing else in it uses the number.
        [fd] => Ok(Some(TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) }))),
        _ => Err(Error::Usage(format!(
            "systemd passed {} sockets (LISTEN_FDS); the server listens on one, so give \
             the .socket unit one ListenStream=",
            fds.len()
        ))),
    }
}

/// Tells systemd `state`; a failure is logged, never fatal, since the
/// server serves whether or not its manager hears it.
fn tell(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        Event::new(Kind::Debug).debug(format_args!(
            "telling systemd failed: {}",
            crate::error::reason(&e)
        ));
    }
}

/// The server listens: `READY=1`, with a first status.
pub(crate) fn ready(metrics: &Metrics) {
    tell(&[NotifyState::Ready, NotifyState::Status(&status(metrics))]);
}

/// Before and after a reload.
pub(crate) fn reload_phase(phase: Phase) {
    match phase {
        Phase::Reloading => match NotifyState::monotonic_usec_now() {
            // systemd matches the reload to its request by this time.
            Ok(now) => tell(&[NotifyState::Reloading, now]),
            Err(_) => tell(&[NotifyState::Reloading]),
        },
        Phase::Ready => tell(&[NotifyState::Ready]),
    }
}

fn status(metrics: &Metrics) -> String {
    let open = metrics.connections_active.get();
    format!("serving; {open} connections open")
}

/// Under systemd (`NOTIFY_SOCKET` set): refreshes `STATUS=` every
/// [`STATUS_EVERY`], and pings the watchdog at half its interval when
/// systemd set one, from a thread of its own.
///
/// Fails when the thread cannot start.
pub(crate) fn start_heartbeat(metrics: Arc<Metrics>) -> Result<()> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(());
    }
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    thread::Builder::new()
        .name("ftp-heartbeat".into())
        .stack_size(THREAD_STACK)
        .spawn(move || loop {
            thread::sleep(every);
            let status = status(&metrics);
            match watchdog {
                Some(_) => tell(&[NotifyState::Watchdog, NotifyState::Status(&status)]),
                None => tell(&[NotifyState::Status(&status)]),
            }
        })
        .map(drop)
        .map_err(|e| Error::io("starting the heartbeat thread", e))
}

/// A flag that SIGTERM or SIGINT raises, telling systemd `STOPPING=1`
/// first: the server then stops accepting and lets running commands
/// finish.
///
/// Fails when the handler or its thread cannot be set up.
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Error::io("installing the signal handler", e))?;
    let raised = stop.clone();
    thread::Builder::new()
        .name("ftp-signals".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            if signals.forever().next().is_some() {
                tell(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
                raised.store(true, Ordering::SeqCst);
            }
        })
        .map(drop)
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(stop)
}
