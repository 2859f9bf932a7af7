//! Who may log in: one shared secret, or a users file ([`file`]) with a
//! secret, a home folder, a quota (bytes and entries) and limits per user;
//! and the accounts in force, which a reload replaces ([`book`]); and the
//! users file edited by `ftp-server user` ([`edit`]).

mod book;
pub(crate) mod edit;
mod file;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

pub(crate) use book::{AccountBook, Roster, Seat};

use crate::config::cidr::Cidr;
use crate::config::secret::Secret;
use crate::error::{Error, Result};
use crate::io::throttle::SharedRate;

/// The name of the anonymous account, and of its home below the root.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// One account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The user's name; `None` in single-secret mode.
    pub(crate) name: Option<String>,
    /// The key the user answers challenges with.
    pub(crate) secret: Secret,
    /// Bytes the user may store, partial uploads included.
    pub(crate) quota: Option<u64>,
    /// Files and folders the user may hold, partial uploads included.
    pub(crate) max_files: Option<u64>,
    /// What else bounds the account.
    pub(crate) limits: Limits,
}

/// What bounds an account beyond its quota. A login that breaks one is
/// refused as a wrong secret is, and the log says which.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    /// Most connections the account may have open at once.
    pub(crate) max_connections: Option<usize>,
    /// Downloads, listings and the like only: no put, rm, mv or mkdir.
    pub(crate) read_only: bool,
    /// The addresses the account may log in from; anywhere if `None`.
    pub(crate) allowed_from: Option<Vec<Cidr>>,
    /// Bytes per second the account's connections may move together,
    /// one schedule for uploads and one for downloads.
    pub(crate) rate: Option<Rates>,
}

/// An account's shared rate schedules, one per direction.
#[derive(Debug, Clone)]
pub(crate) struct Rates {
    /// What uploads share.
    pub(crate) up: Arc<SharedRate>,
    /// What downloads share.
    pub(crate) down: Arc<SharedRate>,
}

impl Rates {
    /// New schedules of `per_second` bytes per second each.
    pub(crate) fn new(per_second: u64) -> Rates {
        Rates {
            up: Arc::new(SharedRate::new(per_second)),
            down: Arc::new(SharedRate::new(per_second)),
        }
    }

    /// The rate, in bytes per second.
    pub(crate) fn per_second(&self) -> u64 {
        self.up.per_second()
    }
}

impl Limits {
    /// Whether `ip` may log in to the account.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        self.allowed_from
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|r| r.contains(ip)))
    }

    /// The account's download `rate`, shared by all its downloads, if it
    /// has one: a reply books each chunk with it and waits in the poller
    /// until the chunk is due, holding no thread.
    pub(crate) fn down_rate(&self) -> Option<Arc<SharedRate>> {
        self.rate.as_ref().map(|rates| rates.down.clone())
    }

    /// Waits until `n` upload bytes just read fit the account's `rate`
    /// shared by all its uploads; the client's sending slows to match.
    pub(crate) fn pace_up(&self, n: usize) {
        if let Some(rates) = &self.rate {
            std::thread::sleep(rates.up.book(n));
        }
    }
}

impl Account {
    /// The user's home folder, as its path from the store's root: `NAME`,
    /// or the root itself in single-secret mode.
    pub(crate) fn home(&self) -> Vec<String> {
        self.name.iter().cloned().collect()
    }

    /// The account of clients that do not log in (`--anonymous`): home
    /// `ROOT/anonymous`, with its own quota. Its entry limit is the
    /// server's `--anonymous-max-files`, which the session applies.
    pub(crate) fn anonymous(quota: u64) -> Account {
        Account {
            name: Some(ANONYMOUS.into()),
            // Never compared: nobody logs in as this account.
            secret: Secret::new(b"-".to_vec()).unwrap_or_else(|_| unreachable!()),
            quota: Some(quota),
            max_files: None,
            limits: Limits::default(),
        }
    }

    /// The account of a server with one shared secret: the whole root,
    /// no limits.
    pub(crate) fn shared(secret: Secret) -> Account {
        Account {
            name: None,
            secret,
            quota: None,
            max_files: None,
            limits: Limits::default(),
        }
    }

    /// The name to show in logs.
    pub(crate) fn label(&self) -> &str {
        // A server with one shared secret has no user names.
        self.name.as_deref().unwrap_or("(shared secret)")
    }
}

/// Everyone who may log in.
#[derive(Debug, Clone)]
pub(crate) struct Accounts {
    accounts: Vec<Account>,
    secrets: Vec<Secret>,
}

impl Accounts {
    /// Single-secret mode: whoever knows `secret` uses the whole root.
    pub(crate) fn single(secret: Secret) -> Accounts {
        Accounts::from_vec(vec![Account::shared(secret)])
    }

    fn from_vec(accounts: Vec<Account>) -> Accounts {
        let secrets = accounts.iter().map(|a| a.secret.clone()).collect();
        Accounts { accounts, secrets }
    }

    /// The keys, in account order, for [`crate::wire::auth::find_key`].
    pub(crate) fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// The account at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&Account> {
        self.accounts.get(index)
    }

    /// All accounts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// Whether accounts have homes of their own.
    #[cfg(test)]
    pub(crate) fn is_multi_user(&self) -> bool {
        self.accounts.iter().any(|a| a.name.is_some())
    }

    /// Reads a users file; `anonymous` says whether the server lets
    /// clients that do not log in upload (`--anonymous`).
    ///
    /// Fails with [`Error::Config`], naming the line and the reason, for
    /// TOML errors, a missing or invalid name, a user without a secret or
    /// with two, an unreadable secret file, a bad quota, duplicate names,
    /// duplicate secrets (as HMAC-MD5 keys), a user named `anonymous` on a
    /// server with `--anonymous`, or no users at all.
    pub(crate) fn load(path: &Path, anonymous: bool) -> Result<Accounts> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: None,
            reason: format!("cannot read: {}", crate::error::reason(&e)),
        })?;
        Accounts::parse(&text, path, anonymous)
    }
}
