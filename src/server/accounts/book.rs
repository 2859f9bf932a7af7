//! The accounts in force, replaced whole by a reload, and the seats
//! their connections hold.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::{Account, Accounts};
use crate::wire::auth::AnswerKeys;

/// The accounts in force and their answer keys, prepared together so
/// that a login checks a key and finds its account in the same list.
#[derive(Debug)]
pub(crate) struct Roster {
    /// Who may log in.
    pub(crate) accounts: Accounts,
    /// Their HMAC-MD5 keys, prepared once for checking answers.
    pub(crate) keys: AnswerKeys,
    /// Where each name is in `accounts`: each request looks its account
    /// up by name.
    by_name: HashMap<Option<String>, usize>,
}

impl Roster {
    /// The account named `name` (`None`: the shared secret's).
    pub(crate) fn find(&self, name: Option<&str>) -> Option<&Account> {
        let at = self.by_name.get(&name.map(str::to_string))?;
        self.accounts.get(*at)
    }
}

/// The roster a reload replaces whole. A login step, and each request,
/// takes the one in force when it starts, so a changed secret applies
/// from the next login and a changed quota from the next request; a
/// request that finds its user gone ends the connection.
#[derive(Debug)]
pub(crate) struct AccountBook {
    current: RwLock<Arc<Roster>>,
    /// Connections open per account name (`None`: the shared secret's),
    /// kept across reloads.
    seats: Mutex<HashMap<Option<String>, usize>>,
}

/// Why a login with the right secret is refused: a rule of the account's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer's address is outside the account's `allowed_from`.
    AllowedFrom(IpAddr),
    /// The account has its `max_connections` open.
    MaxConnections(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AllowedFrom(ip) => write!(f, "allowed_from: {ip} is not in its ranges"),
            Refusal::MaxConnections(n) => write!(f, "max_connections: {n} are open already"),
        }
    }
}

/// A logged-in connection's place in its account: its name, by which
/// each request finds the account in force, and one of its
/// `max_connections`, given back when the connection ends.
#[derive(Debug)]
pub(crate) struct Seat {
    book: Arc<AccountBook>,
    name: Option<String>,
}

impl Seat {
    /// The account's name (`None`: the shared secret's).
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut seats = self.book.seats.lock();
        if let Some(n) = seats.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                seats.remove(&self.name);
            }
        }
    }
}

impl AccountBook {
    /// A book holding `accounts`.
    pub(crate) fn new(accounts: Accounts) -> AccountBook {
        AccountBook {
            current: RwLock::new(Arc::new(Roster::of(accounts))),
            seats: Mutex::new(HashMap::new()),
        }
    }

    /// Lets `account`, whose secret the peer at `ip` proved, log in if its
    /// rules allow: a seat while the connection lasts, or the rule that
    /// refuses it.
    pub(crate) fn admit(self: &Arc<Self>, account: &Account, ip: IpAddr) -> Result<Seat, Refusal> {
        if !account.limits.allows(ip) {
            return Err(Refusal::AllowedFrom(ip));
        }
        let mut seats = self.seats.lock();
        let open = seats.entry(account.name.clone()).or_insert(0);
        if let Some(max) = account.limits.max_connections {
            if *open >= max {
                return Err(Refusal::MaxConnections(*open));
            }
        }
        *open += 1;
        Ok(Seat {
            book: self.clone(),
            name: account.name.clone(),
        })
    }

    /// The roster in force.
    pub(crate) fn current(&self) -> Arc<Roster> {
        self.current.read().clone()
    }

    /// Puts `accounts` in force, and says what changed from before, one
    /// phrase per account, for the log.
    pub(crate) fn replace(&self, mut accounts: Accounts) -> Vec<String> {
        // An unchanged rate keeps its schedule, so that transfers under
        // way and those after the reload still share one.
        let old = self.current();
        for account in accounts.accounts.iter_mut() {
            let before = old.find(account.name.as_deref()).map(|a| &a.limits.rate);
            if let (Some(Some(was)), Some(now)) = (before, &account.limits.rate) {
                if was.per_second() == now.per_second() {
                    account.limits.rate = Some(was.clone());
                }
            }
        }
        let new = Arc::new(Roster::of(accounts));
        let old = std::mem::replace(&mut *self.current.write(), new.clone());
        changes(&old.accounts, &new.accounts)
    }
}

impl Roster {
    fn of(accounts: Accounts) -> Roster {
        Roster {
            keys: AnswerKeys::new(accounts.secrets()),
            by_name: index(&accounts),
            accounts,
        }
    }
}

/// Where each account's name is in `accounts`.
fn index(accounts: &Accounts) -> HashMap<Option<String>, usize> {
    let names = accounts.iter().map(|a| a.name.clone());
    names.enumerate().map(|(i, name)| (name, i)).collect()
}

/// What differs between two sets of accounts, for the log: who was added
/// or removed, and whose secret or limits changed (never the secrets).
pub(crate) fn changes(old: &Accounts, new: &Accounts) -> Vec<String> {
    let (before_at, now_at) = (index(old), index(new));
    let mut said = Vec::new();
    for a in new.iter() {
        let Some(before) = before_at.get(&a.name).and_then(|i| old.get(*i)) else {
            said.push(format!("added {}", a.label()));
            continue;
        };
        if before.secret.as_bytes() != a.secret.as_bytes() {
            said.push(format!("{}: secret changed", a.label()));
        }
        let show = |v: Option<u64>| v.map_or("none".to_string(), |n| n.to_string());
        let (was, now) = (&before.limits, &a.limits);
        let rate = |l: &super::Limits| l.rate.as_ref().map(|r| r.per_second());
        let most = |l: &super::Limits| l.max_connections.map(|n| n as u64);
        if was.read_only != now.read_only {
            said.push(format!(
                "{}: read_only {} -> {}",
                a.label(),
                was.read_only,
                now.read_only
            ));
        }
        if was.allowed_from != now.allowed_from {
            said.push(format!("{}: allowed_from changed", a.label()));
        }
        for (what, was, now) in [
            ("quota", before.quota, a.quota),
            ("max_files", before.max_files, a.max_files),
            ("max_connections", most(was), most(now)),
            ("rate", rate(was), rate(now)),
        ] {
            if was != now {
                said.push(format!(
                    "{}: {what} {} -> {}",
                    a.label(),
                    show(was),
                    show(now)
                ));
            }
        }
    }
    for a in old.iter().filter(|a| !now_at.contains_key(&a.name)) {
        said.push(format!("removed {}", a.label()));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> crate::error::Result<Accounts> {
        Accounts::parse(text, Path::new("users.toml"), true)
    }

    #[test]
    fn a_replaced_roster_says_who_came_went_and_changed_and_finds_by_name() {
        let book = AccountBook::new(
            parse(
                "[[user]]\nname = \"alice\"\nsecret = \"a\"\nquota = \"1MiB\"\n\
                 [[user]]\nname = \"bob\"\nsecret = \"b\"\n",
            )
            .unwrap(),
        );
        let changed = book.replace(
            parse(
                "[[user]]\nname = \"carol\"\nsecret = \"c\"\n\
                 [[user]]\nname = \"alice\"\nsecret = \"a2\"\nquota = \"2KiB\"\nmax_files = 7\n",
            )
            .unwrap(),
        );
        assert_eq!(
            changed,
            [
                "added carol",
                "alice: secret changed",
                "alice: quota 1048576 -> 2048",
                "alice: max_files 1000 -> 7",
                "removed bob",
            ]
        );
        let now = book.current();
        assert_eq!(now.find(Some("alice")).unwrap().quota, Some(2048));
        assert!(now.find(Some("bob")).is_none());
        assert_eq!(now.keys.find(&[0; 32], &[0; 16]), None);
    }

    #[test]
    fn seats_are_bounded_by_max_connections_and_come_back_when_dropped() {
        let book = Arc::new(AccountBook::new(
            parse(
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nmax_connections = 2\n\
                 allowed_from = [\"127.0.0.0/8\"]\n",
            )
            .unwrap(),
        ));
        let roster = book.current();
        let a = roster.find(Some("a")).unwrap();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            book.admit(a, there).unwrap_err(),
            Refusal::AllowedFrom(there)
        );
        let first = book.admit(a, here).unwrap();
        let second = book.admit(a, here).unwrap();
        assert_eq!(second.name(), Some("a"));
        assert_eq!(book.admit(a, here).unwrap_err(), Refusal::MaxConnections(2));
        drop(first);
        let third = book.admit(a, here).unwrap();
        // A reload keeps the count: the seats belong to the book.
        book.replace(
            parse("[[user]]\nname = \"a\"\nsecret = \"k\"\nmax_connections = 2\n").unwrap(),
        );
        let now = book.current();
        let err = book.admit(now.find(Some("a")).unwrap(), there).unwrap_err();
        assert_eq!(err.to_string(), "max_connections: 2 are open already");
        drop((second, third));
        assert!(book.seats.lock().is_empty());
    }
}
