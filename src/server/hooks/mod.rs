//! Hooks: a command or a URL the server tells of each upload, download
//! and delete (`on-upload`, `on-download`, `on-delete`), after the reply.
//!
//! A command reached the reply before its hook runs: the event goes on a
//! bounded queue that a few threads of its own drain, so a slow or failing
//! hook delays no transfer and no other user. Past the queue's bound an
//! event is dropped and counted; nothing waits in unbounded memory.

mod check;
mod event;
mod run;

use std::fs::File;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use check::Verdict;
pub(crate) use event::{home_path, Event, EventKind};
pub(crate) use run::Attempts;

use crate::logging::{Event as LogEvent, Kind};
use crate::server::metrics::Metrics;

/// Threads that run hooks: a hook that hangs until its timeout holds one,
/// and the other goes on with the queue.
const HOOK_THREADS: usize = 2;

/// What a hook is: a program run without a shell, or a URL POSTed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hook {
    /// The program and its arguments, split as a POSIX shell would split
    /// the setting's text, but run without one.
    Command {
        /// The setting as written.
        text: String,
        /// The program, then its arguments.
        argv: Vec<String>,
    },
    /// An `http://` or `https://` URL.
    Url(String),
}

impl Hook {
    /// The hook a setting's `text` names.
    ///
    /// Fails with the reason when the text is empty or its quotes are not
    /// closed.
    pub(crate) fn parse(text: &str) -> Result<Hook, String> {
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Hook::Url(text.to_string()));
        }
        match shlex::split(text) {
            Some(argv) if !argv.is_empty() => Ok(Hook::Command {
                text: text.to_string(),
                argv,
            }),
            Some(_) => Err("empty; give a command or an http(s):// URL".into()),
            None => Err(format!(
                "cannot split {text:?} into a command and its arguments (a quote is not closed)"
            )),
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hook::Command { text, .. } => f.write_str(text),
            Hook::Url(url) => f.write_str(url),
        }
    }
}

/// The hook of each kind of event, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HookSet {
    /// Run after a put is stored under its name.
    pub(crate) on_upload: Option<Hook>,
    /// Run when a get starts sending a file.
    pub(crate) on_download: Option<Hook>,
    /// Run after an `rm` removed a file or a folder.
    pub(crate) on_delete: Option<Hook>,
    /// Run on an upload's bytes before it takes its name; may refuse it.
    pub(crate) on_upload_check: Option<Hook>,
}

impl HookSet {
    fn for_kind(&self, kind: EventKind) -> Option<&Hook> {
        match kind {
            EventKind::Upload => self.on_upload.as_ref(),
            EventKind::Download => self.on_download.as_ref(),
            EventKind::Delete => self.on_delete.as_ref(),
        }
    }

    fn is_empty(&self) -> bool {
        self.on_upload.is_none() && self.on_download.is_none() && self.on_delete.is_none()
    }
}

/// One event on its way to its hook.
struct Job {
    hook: Hook,
    event: Event,
}

/// The hooks of a server and the queue their events wait on.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    set: HookSet,
    /// `None` when no hook is set: no thread runs then.
    queue: Option<SyncSender<Job>>,
    metrics: Arc<Metrics>,
    /// What one run of the upload check may take.
    check_timeout: Duration,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} for {}", self.event.kind.as_str(), self.event.path)
    }
}

impl Hooks {
    /// The hooks of `set`, each run with `attempts`, their events queued
    /// up to `bound` deep, counted in `metrics`. Starts the threads that
    /// run them, if any hook is set.
    ///
    /// Fails only when a thread cannot be started.
    pub(crate) fn start(
        set: HookSet,
        attempts: Attempts,
        bound: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Hooks> {
        let check_timeout = attempts.timeout;
        if set.is_empty() {
            return Ok(Hooks {
                set,
                queue: None,
                metrics,
                check_timeout,
            });
        }
        let (tx, rx) = mpsc::sync_channel(bound.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..HOOK_THREADS {
            let (rx, metrics) = (rx.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("hooks-{i}"))
                .spawn(move || drain(&rx, &attempts, &metrics))?;
        }
        Ok(Hooks {
            set,
            queue: Some(tx),
            metrics,
            check_timeout,
        })
    }

    /// Whether an upload check is set.
    pub(crate) fn checks_uploads(&self) -> bool {
        self.set.on_upload_check.is_some()
    }

    /// Runs the upload check, if one is set, on `contents` (the upload's
    /// stored bytes): in this thread, within the hook timeout, once.
    /// Logs and counts what it decided.
    pub(crate) fn check_upload(&self, event: &Event, contents: std::io::Result<File>) -> Verdict {
        let Some(hook) = &self.set.on_upload_check else {
            return Verdict::Pass;
        };
        let verdict = match check::rewound(contents) {
            Ok(file) => check::check(hook, event, file, self.check_timeout),
            Err(e) => Verdict::Failed(format!("cannot read the upload: {e}")),
        };
        let result = match &verdict {
            Verdict::Pass => "ok",
            Verdict::Refused(reason) => {
                LogEvent::new(Kind::UploadCheck)
                    .path(&event.path)
                    .result("refused")
                    .info(format_args!(
                        "upload check refused {}: {reason}",
                        event.path
                    ));
                "refused"
            }
            Verdict::Failed(why) => {
                LogEvent::new(Kind::UploadCheck)
                    .path(&event.path)
                    .result("failed")
                    .warn(format_args!(
                        "upload check for {} failed, refused: {why}",
                        event.path
                    ));
                "failed"
            }
        };
        self.metrics.hook("upload_check", result);
        verdict
    }

    /// Whether a hook is set for `kind`: what only its event needs is
    /// looked up only then.
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.set.for_kind(kind).is_some()
    }

    /// Queues `event` for its hook, if one is set; drops and counts it
    /// when the queue is full. Never waits.
    pub(crate) fn fire(&self, event: Event) {
        let (Some(queue), Some(hook)) = (&self.queue, self.set.for_kind(event.kind)) else {
            return;
        };
        let kind = event.kind.as_str();
        let job = Job {
            hook: hook.clone(),
            event,
        };
        match queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let before = self.metrics.hook(kind, "dropped");
                // One line per power of two, so a flood of events cannot
                // flood the log as well.
                if before.is_power_of_two() || before == 0 {
                    LogEvent::new(Kind::Hook)
                        .result("dropped")
                        .warn(format_args!(
                            "hook queue full: dropped the {job:?} ({} dropped so far)",
                            before + 1
                        ));
                }
            }
            Err(TrySendError::Disconnected(job)) => {
                LogEvent::new(Kind::Hook)
                    .result("dropped")
                    .warn(format_args!("hook threads gone: dropped the {job:?}"));
            }
        }
    }
}

/// One hook thread: runs the queued jobs, one at a time, until the server
/// ends.
fn drain(rx: &Mutex<Receiver<Job>>, attempts: &Attempts, metrics: &Metrics) {
    loop {
        // The lock is held only while waiting for a job, not while it runs.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        run::deliver(&job.hook, &job.event, attempts, metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_split_as_a_shell_would_and_a_url_is_kept() {
        let hook = Hook::parse("scan --db '/var/lib/a b' x\\ y").unwrap();
        let Hook::Command { argv, .. } = &hook else {
            panic!("{hook:?}")
        };
        assert_eq!(argv, &["scan", "--db", "/var/lib/a b", "x y"]);
        assert_eq!(hook.to_string(), "scan --db '/var/lib/a b' x\\ y");
        let url = "https://hooks.example/up?x=1";
        assert_eq!(Hook::parse(url).unwrap(), Hook::Url(url.into()));
        assert!(Hook::parse("scan \"open").is_err());
        assert!(Hook::parse("").is_err());
    }

    #[test]
    fn no_hook_set_starts_no_thread_and_fire_does_nothing() {
        let metrics = Arc::new(Metrics::new());
        let attempts = Attempts {
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::ZERO,
        };
        let hooks = Hooks::start(HookSet::default(), attempts, 1, metrics.clone()).unwrap();
        assert!(hooks.queue.is_none());
        hooks.fire(Event::now(EventKind::Upload, &[], "a"));
        assert!(!metrics.render().contains("ftp_hooks_total{"));
    }
}
