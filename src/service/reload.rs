//! Changing the accounts and limits while the server runs: `SIGHUP` (what
//! `systemctl reload` sends), or an edit of the users file, reloads it;
//! `SIGHUP` also reads the config file again and applies its limits,
//! rates and quotas. A file that does not load is refused whole and what
//! is in force stays; the log says why, or names what changed.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use signal_hook::consts::SIGHUP;
use signal_hook::iterator::Signals;

use crate::error::{Error, Result};
use crate::logging::{Event, Kind};
use crate::server::accounts::{AccountBook, Accounts};
use crate::server::live::Live;
use crate::server::settings::flags::ServerFlags;
use crate::server::settings::live::Changes;
use crate::server::settings::Settings;
use crate::server::THREAD_STACK;

/// How long the users file must stay quiet after a change before it is
/// read: an editor's save (write, rename, chmod) is one reload, and a file
/// half written is not read while its writer is still at it.
pub(crate) const SETTLE: Duration = Duration::from_millis(250);

/// Why the accounts are read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `SIGHUP`.
    Signal,
    /// The users file changed.
    Edit,
}

/// Where a reload stands, for a service manager to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// About to read the file.
    Reloading,
    /// Done, whether the file was taken or refused.
    Ready,
}

/// What a reload reads, and where it puts it.
pub(crate) struct Reloads {
    /// The accounts in force.
    pub(crate) book: Arc<AccountBook>,
    /// The users file; `None` for a server with one shared secret, which
    /// has nothing to reload (a `SIGHUP` is logged, and does not stop it).
    pub(crate) users: Option<PathBuf>,
    /// Whether the server takes anonymous uploads (`anonymous`), which
    /// rules out a user of that name.
    pub(crate) anonymous: bool,
    /// The config file, if the server has one, with the command line
    /// over it and the settings in force: a `SIGHUP` checks it again.
    pub(crate) config: Option<ConfigFile>,
}

/// The server's config file, as a reload reads it again.
pub(crate) struct ConfigFile {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// The command line, which wins over it.
    pub(crate) cli: ServerFlags,
    /// What the server runs with.
    pub(crate) in_force: Settings,
    /// The limits, rates and quotas the running server reads.
    pub(crate) live: Arc<Live>,
}

impl ConfigFile {
    /// Reads the file again: its limits, rates and quotas are put in
    /// force at once, and the log names them; the other settings it
    /// changed are named as needing a restart (the listener, the workers,
    /// the store and the identity are built from them at start). A file
    /// that would not start the server is refused whole, so it is caught
    /// now rather than at the next restart.
    fn apply(&mut self) {
        let path = self.path.display();
        let read = match Settings::gather(self.cli.clone(), Some(&self.path)) {
            Ok(read) => read,
            Err(e) => {
                return Event::new(Kind::Reload)
                    .result("refused")
                    .warn(format_args!(
                        "SIGHUP: the config file would not start the server: {e}; the settings in \
                     force stay"
                    ))
            }
        };
        let changes = self.in_force.reload_from(&read);
        self.live.set(self.in_force.limits());
        if changes == Changes::default() {
            Event::new(Kind::Reload)
                .result("unchanged")
                .info(format_args!(
                    "SIGHUP: the config file {path} is as the server runs it"
                ));
        }
        if !changes.applied.is_empty() {
            Event::new(Kind::Reload)
                .result("applied")
                .info(format_args!(
                    "SIGHUP: the config file {path} changed: {}; in force now",
                    changes.applied.join("; ")
                ));
        }
        if !changes.need_restart.is_empty() {
            Event::new(Kind::Reload)
                .result("needs_restart")
                .warn(format_args!(
                "SIGHUP: the config file {path} changed: {}; a restart applies it (limits, rates \
                 and quotas apply at once, and the accounts, in the users file)",
                changes.need_restart.join("; ")
            ));
        }
    }
}

impl Reloads {
    /// Takes `SIGHUP` from now on, watches the users file, and reloads on
    /// either from a thread of its own; `phase` is told before and after
    /// each reload. A watch that cannot be set up is logged, and leaves
    /// `SIGHUP`.
    ///
    /// Fails when the signal handler or the threads cannot be set up.
    pub(crate) fn start(self, phase: impl Fn(Phase) + Send + 'static) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        forward_signals(tx.clone())?;
        // Without a watch (out of inotify watches, say) the server still
        // runs, and reloads on SIGHUP.
        let watcher = self.users.as_deref().and_then(|path| {
            watch(path, tx)
                .inspect_err(|e| {
                    Event::new(Kind::Warning)
                        .warn(format_args!("{e}; edits of the users file need a SIGHUP"))
                })
                .ok()
        });
        thread::Builder::new()
            .name("ftp-reload".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                // The watch lasts as long as this thread.
                let _watcher = watcher;
                self.serve(&rx, &phase);
            })
            .map(drop)
            .map_err(|e| Error::io("starting the reload thread", e))
    }

    fn serve(mut self, rx: &Receiver<Trigger>, phase: &dyn Fn(Phase)) {
        while let Ok(mut trigger) = rx.recv() {
            // Edits come in bursts: wait until the file has been quiet.
            loop {
                match rx.recv_timeout(SETTLE) {
                    Ok(Trigger::Signal) => trigger = Trigger::Signal,
                    Ok(Trigger::Edit) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            phase(Phase::Reloading);
            if let (Trigger::Signal, Some(config)) = (trigger, &mut self.config) {
                config.apply();
            }
            self.reload(trigger);
            phase(Phase::Ready);
        }
    }

    /// Reads the users file again and puts it in force, or keeps the
    /// accounts in force when it does not load.
    pub(crate) fn reload(&self, trigger: Trigger) {
        let why = match trigger {
            Trigger::Signal => "SIGHUP",
            Trigger::Edit => "the users file changed",
        };
        let Some(path) = &self.users else {
            return Event::new(Kind::Reload)
                .info(format_args!("{why}: nothing to reload (no users file)"));
        };
        match Accounts::load(path, self.anonymous) {
            Ok(accounts) => {
                let changed = self.book.replace(accounts);
                let what = match changed.is_empty() {
                    true => "no change".to_string(),
                    false => changed.join("; "),
                };
                Event::new(Kind::Reload).result("ok").info(format_args!(
                    "{why}: reloaded the accounts from {}: {what}",
                    path.display()
                ));
            }
            Err(e) => Event::new(Kind::Reload)
                .result("refused")
                .warn(format_args!(
                    "{why}: the accounts in force stay, the users file is refused: {e}"
                )),
        }
    }
}

/// Sends a trigger for each `SIGHUP`, which no longer ends the process.
fn forward_signals(tx: Sender<Trigger>) -> Result<()> {
    let mut signals =
        Signals::new([SIGHUP]).map_err(|e| Error::io("installing the SIGHUP handler", e))?;
    thread::Builder::new()
        .name("ftp-sighup".into())
        .stack_size(THREAD_STACK)
        .spawn(move || {
            for _ in signals.forever() {
                if tx.send(Trigger::Signal).is_err() {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|e| Error::io("starting the signal thread", e))
}

/// Watches the users file's folder, not the file: an editor or `ftp-server
/// user` replaces the file by renaming a new one over it, which a watch on
/// the old file would never see.
fn watch(path: &Path, tx: Sender<Trigger>) -> Result<notify::RecommendedWatcher> {
    let name = path.file_name().map(|n| n.to_os_string());
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail = |e: notify::Error| Error::Usage(format!("cannot watch {}: {e}", folder.display()));
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = event.is_ok_and(|e| {
            !e.kind.is_access() && e.paths.iter().any(|p| p.file_name() == name.as_deref())
        });
        if ours {
            let _ = tx.send(Trigger::Edit);
        }
    })
    .map_err(fail)?;
    watcher
        .watch(&folder, RecursiveMode::NonRecursive)
        .map_err(fail)?;
    Ok(watcher)
}
