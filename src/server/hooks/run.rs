//! Running one hook for one event: the command or the POST, bounded by a
//! timeout, tried again a fixed number of times with a growing pause.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Event, Hook};
use crate::logging::{Event as LogEvent, Kind};
use crate::server::metrics::Metrics;

/// How often a running command is looked at for its end.
const POLL: Duration = Duration::from_millis(10);

/// How each event is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempts {
    /// What one run may take; a command still running then is killed.
    pub(crate) timeout: Duration,
    /// Runs after the first that failed.
    pub(crate) retries: u32,
    /// The pause before the first retry; it doubles each time.
    pub(crate) backoff: Duration,
}

/// Why one run failed, for the log.
#[derive(Debug)]
pub(super) enum Failure {
    Spawn(String, std::io::Error),
    Timeout(Duration),
    Exit(ExitStatus),
    Wait(std::io::Error),
    Status(u16),
    Http(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Spawn(program, e) => write!(f, "cannot start {program:?}: {e}"),
            Failure::Timeout(after) => write!(f, "still running after {after:?}; killed"),
            Failure::Exit(status) => write!(f, "exited with {status}"),
            Failure::Wait(e) => write!(f, "cannot wait for it: {e}"),
            Failure::Status(status) => write!(f, "answered HTTP {status}"),
            Failure::Http(e) => write!(f, "{e}"),
        }
    }
}

impl Failure {
    /// A receiver's 4xx says the request itself is unwelcome: sending it
    /// again would be refused again.
    fn is_final(&self) -> bool {
        matches!(self, Failure::Status(s) if (400..500).contains(s))
    }
}

/// Delivers `event` to `hook`, trying again as `attempts` says; each
/// failure is logged and counted, and so is giving up.
pub(super) fn deliver(hook: &Hook, event: &Event, attempts: &Attempts, metrics: &Metrics) {
    let kind = event.kind.as_str();
    let tries = attempts.retries.saturating_add(1);
    let mut pause = attempts.backoff;
    for attempt in 1..=tries {
        let failure = match run_once(hook, event, attempts.timeout) {
            Ok(()) => {
                metrics.hook(kind, "ok");
                return;
            }
            Err(failure) => failure,
        };
        metrics.hook(kind, "attempt_failed");
        LogEvent::new(Kind::Hook)
            .path(&event.path)
            .result("failed")
            .warn(format_args!(
                "{kind} hook for {} ({attempt} of {tries}): {failure}",
                event.path
            ));
        if failure.is_final() {
            break;
        }
        if attempt < tries {
            std::thread::sleep(pause);
            pause = pause.saturating_mul(2);
        }
    }
    metrics.hook(kind, "failed");
    LogEvent::new(Kind::Hook)
        .path(&event.path)
        .result("gave_up")
        .warn(format_args!("{kind} hook for {}: gave up", event.path));
}

fn run_once(hook: &Hook, event: &Event, timeout: Duration) -> Result<(), Failure> {
    match hook {
        Hook::Command { argv, .. } => run_command(argv, event, timeout),
        Hook::Url(url) => post(url, event, timeout),
    }
}

/// Runs the program of `argv` with the event on stdin and in its
/// environment, and no shell.
fn run_command(argv: &[String], event: &Event, timeout: Duration) -> Result<(), Failure> {
    let Some((program, args)) = argv.split_first() else {
        let none = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no program named");
        return Err(Failure::Spawn(String::new(), none));
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(event.environment())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Failure::Spawn(program.clone(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // The event is a few hundred bytes, well within a pipe's buffer,
        // so this does not wait on the program. One that never reads its
        // stdin is not at fault.
        let _ = stdin.write_all(&event.to_json());
    }
    match wait_within(&mut child, timeout, &mut || {})? {
        status if status.success() => Ok(()),
        status => Err(Failure::Exit(status)),
    }
}

/// The child's exit status, or a timeout once it was killed; `tick` runs
/// each time it is looked at.
pub(super) fn wait_within(
    child: &mut Child,
    timeout: Duration,
    tick: &mut dyn FnMut(),
) -> Result<ExitStatus, Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        tick();
        if let Some(status) = child.try_wait().map_err(Failure::Wait)? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Timeout(timeout));
        }
        std::thread::sleep(POLL);
    }
}

/// POSTs the event as JSON; any 2xx is success.
fn post(url: &str, event: &Event, timeout: Duration) -> Result<(), Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(&event.to_json()[..])
        .map_err(|e| Failure::Http(e.to_string()))?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        status => Err(Failure::Status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hooks::EventKind;

    fn command(text: &str) -> Hook {
        Hook::parse(text).unwrap()
    }

    fn count(metrics: &Metrics, result: &str) -> bool {
        let line = format!("ftp_hooks_total{{event=\"upload\",result=\"{result}\"}} ");
        metrics.render().lines().any(|l| l.starts_with(&line))
    }

    #[test]
    fn a_failing_command_is_tried_again_then_given_up() {
        let metrics = Metrics::new();
        let attempts = Attempts {
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(1),
        };
        let event = Event::now(EventKind::Upload, &[], "a");
        deliver(&command("false"), &event, &attempts, &metrics);
        let text = metrics.render();
        assert!(text.contains("result=\"attempt_failed\"} 3"), "{text}");
        assert!(text.contains("result=\"failed\"} 1"), "{text}");
        deliver(&command("true"), &event, &attempts, &metrics);
        assert!(count(&metrics, "ok"));
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let event = Event::now(EventKind::Upload, &[], "a");
        let started = Instant::now();
        let got = run_once(&command("sleep 20"), &event, Duration::from_millis(200));
        assert!(matches!(got, Err(Failure::Timeout(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let missing = run_once(
            &command("/nonexistent/hook"),
            &event,
            Duration::from_secs(1),
        );
        assert!(matches!(missing, Err(Failure::Spawn(..))), "{missing:?}");
    }
}
