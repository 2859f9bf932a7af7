//! Who may log in: one shared secret, or a users file with a secret, a home
//! folder and an optional quota (bytes and entries) per user.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use serde::Deserialize;
use toml::Spanned;

use crate::config::secret::{read_secret_file, Secret};
use crate::config::units::parse_size;
use crate::error::{Error, Result};
use crate::server::quota::default_max_files;
use crate::wire::auth::AnswerKeys;
use crate::wire::names::validate_name;

/// The name of the anonymous account, and of its home below the root.
pub const ANONYMOUS: &str = "anonymous";

/// One account.
#[derive(Debug, Clone)]
pub struct Account {
    /// The user's name; `None` in single-secret mode.
    pub name: Option<String>,
    /// The key the user answers challenges with.
    pub secret: Secret,
    /// Bytes the user may store, partial uploads included.
    pub quota: Option<u64>,
    /// Files and folders the user may hold, partial uploads included.
    pub max_files: Option<u64>,
}

impl Account {
    /// The user's home folder, as its path from the store's root: `NAME`,
    /// or the root itself in single-secret mode.
    pub fn home(&self) -> Vec<String> {
        self.name.iter().cloned().collect()
    }

    /// The account of clients that do not log in (`--anonymous`): home
    /// `ROOT/anonymous`, with its own quota. Its entry limit is the
    /// server's `--anonymous-max-files`, which the session applies.
    pub fn anonymous(quota: u64) -> Account {
        Account {
            name: Some(ANONYMOUS.into()),
            // Never compared: nobody logs in as this account.
            secret: Secret::new(b"-".to_vec()).unwrap_or_else(|_| unreachable!()),
            quota: Some(quota),
            max_files: None,
        }
    }

    /// The name to show in logs.
    pub fn label(&self) -> &str {
        // A server with one shared secret has no user names.
        self.name.as_deref().unwrap_or("(shared secret)")
    }
}

/// Everyone who may log in.
#[derive(Debug, Clone)]
pub struct Accounts {
    accounts: Vec<Account>,
    secrets: Vec<Secret>,
}

impl Accounts {
    /// Single-secret mode: whoever knows `secret` uses the whole root.
    pub fn single(secret: Secret) -> Accounts {
        Accounts::from_vec(vec![Account {
            name: None,
            secret,
            quota: None,
            max_files: None,
        }])
    }

    fn from_vec(accounts: Vec<Account>) -> Accounts {
        let secrets = accounts.iter().map(|a| a.secret.clone()).collect();
        Accounts { accounts, secrets }
    }

    /// The keys, in account order, for [`crate::wire::auth::find_key`].
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// The account at `index`.
    pub fn get(&self, index: usize) -> Option<&Account> {
        self.accounts.get(index)
    }

    /// All accounts.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// Whether accounts have homes of their own.
    pub fn is_multi_user(&self) -> bool {
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
    pub fn load(path: &Path, anonymous: bool) -> Result<Accounts> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: None,
            reason: format!("cannot read: {}", crate::error::reason(&e)),
        })?;
        Accounts::parse(&text, path, anonymous)
    }

    /// Parses the text of a users file; `path` names it in errors and is
    /// where relative `secret_file` paths start from. See [`Accounts::load`].
    pub fn parse(text: &str, path: &Path, anonymous: bool) -> Result<Accounts> {
        let fail = |span: Option<std::ops::Range<usize>>, reason: String| Error::Config {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            reason,
        };
        let file: UsersFile =
            toml::from_str(text).map_err(|e| fail(e.span(), e.message().to_string()))?;
        if file.user.is_empty() {
            return Err(fail(None, "no [[user]] entries".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        let mut accounts = Vec::new();
        for user in file.user {
            let name_span = Some(user.name.span());
            let name = user_name(user.name, &mut names, anonymous, &fail)?;
            let entry = (user.secret, user.secret_file);
            let secret = user_secret(&name, name_span.clone(), entry, base, &fail)?;
            // The login tells accounts apart by the key HMAC really uses,
            // not by the bytes written.
            if !keys.insert(secret.hmac_md5_key()) {
                return Err(fail(
                    name_span,
                    format!("user {name:?} has the same secret as another user"),
                ));
            }
            let (quota, max_files) = user_limits(user.quota, user.max_files, &fail)?;
            accounts.push(Account {
                name: Some(name),
                secret,
                quota,
                max_files,
            });
        }
        Ok(Accounts::from_vec(accounts))
    }
}

/// The accounts in force and their answer keys, prepared together so
/// that a login checks a key and finds its account in the same list.
#[derive(Debug)]
pub struct Roster {
    /// Who may log in.
    pub accounts: Accounts,
    /// Their HMAC-MD5 keys, prepared once for checking answers.
    pub keys: AnswerKeys,
}

impl Roster {
    /// The account named `name` (`None`: the shared secret's).
    pub fn find(&self, name: Option<&str>) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name.as_deref() == name)
    }
}

/// The roster a reload replaces whole. A login step, and each request,
/// takes the one in force when it starts, so a changed secret applies
/// from the next login and a changed quota from the next request; a
/// request that finds its user gone ends the connection.
#[derive(Debug)]
pub struct AccountBook {
    current: RwLock<Arc<Roster>>,
}

impl AccountBook {
    /// A book holding `accounts`.
    pub fn new(accounts: Accounts) -> AccountBook {
        AccountBook {
            current: RwLock::new(Arc::new(Roster::of(accounts))),
        }
    }

    /// The roster in force.
    pub fn current(&self) -> Arc<Roster> {
        self.current.read().clone()
    }

    /// Puts `accounts` in force, and says what changed from before, one
    /// phrase per account, for the log.
    pub fn replace(&self, accounts: Accounts) -> Vec<String> {
        let new = Arc::new(Roster::of(accounts));
        let old = std::mem::replace(&mut *self.current.write(), new.clone());
        changes(&old.accounts, &new.accounts)
    }
}

impl Roster {
    fn of(accounts: Accounts) -> Roster {
        Roster {
            keys: AnswerKeys::new(accounts.secrets()),
            accounts,
        }
    }
}

/// What differs between two sets of accounts, for the log: who was added
/// or removed, and whose secret or limits changed (never the secrets).
pub fn changes(old: &Accounts, new: &Accounts) -> Vec<String> {
    let find = |set: &'_ Accounts, name: &Option<String>| -> Option<Account> {
        set.iter().find(|a| &a.name == name).cloned()
    };
    let mut said = Vec::new();
    for a in new.iter() {
        let Some(before) = find(old, &a.name) else {
            said.push(format!("added {}", a.label()));
            continue;
        };
        if before.secret.as_bytes() != a.secret.as_bytes() {
            said.push(format!("{}: secret changed", a.label()));
        }
        let show = |v: Option<u64>| v.map_or("none".to_string(), |n| n.to_string());
        for (what, was, now) in [
            ("quota", before.quota, a.quota),
            ("max_files", before.max_files, a.max_files),
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
    for a in old.iter().filter(|a| find(new, &a.name).is_none()) {
        said.push(format!("removed {}", a.label()));
    }
    said
}

/// What may fail a users file: the span it is about, and why.
type Fail<'a> = dyn Fn(Option<std::ops::Range<usize>>, String) -> Error + 'a;

/// A user's name: valid, not defined before (`seen` holds the names
/// before it), and not the drop box's on a server with `--anonymous`.
fn user_name(
    name: Spanned<String>,
    seen: &mut HashSet<String>,
    anonymous: bool,
    fail: &Fail,
) -> Result<String> {
    let span = Some(name.span());
    let name = name.into_inner();
    validate_name(&name)
        .map_err(|e| fail(span.clone(), format!("invalid user name {name:?}: {e}")))?;
    if !seen.insert(name.clone()) {
        return Err(fail(span, format!("user {name:?} is defined twice")));
    }
    if anonymous && name == ANONYMOUS {
        return Err(fail(
            span,
            "user \"anonymous\" would share ROOT/anonymous, the drop box of clients \
             that do not log in (--anonymous); rename the user, or run the server \
             without --anonymous"
                .into(),
        ));
    }
    Ok(name)
}

/// A user's quota in bytes, and in files and folders: `max_files` as
/// written, else the default that goes with a quota.
fn user_limits(
    quota: Option<Spanned<String>>,
    max_files: Option<Spanned<u64>>,
    fail: &Fail,
) -> Result<(Option<u64>, Option<u64>)> {
    let quota = match quota {
        Some(q) => {
            let span = q.span();
            Some(parse_size(q.get_ref()).map_err(|e| fail(Some(span), e))?)
        }
        None => None,
    };
    let max_files = max_files
        .map(Spanned::into_inner)
        .or(quota.map(default_max_files));
    Ok((quota, max_files))
}

/// A user's secret: given inline or in a file named relative to the users
/// file, exactly one of the two.
fn user_secret(
    name: &str,
    name_span: Option<std::ops::Range<usize>>,
    (inline, file): (Option<Spanned<String>>, Option<Spanned<String>>),
    base: &Path,
    fail: &Fail,
) -> Result<Secret> {
    match (inline, file) {
        (Some(s), None) => {
            let span = s.span();
            Secret::new(s.into_inner().into_bytes())
                .map_err(|_| fail(Some(span), format!("user {name:?} has an empty secret")))
        }
        (None, Some(f)) => {
            let span = f.span();
            let p = base.join(f.into_inner());
            read_secret_file(&p).map_err(|e| fail(Some(span), e.to_string()))
        }
        (Some(s), Some(_)) => Err(fail(
            Some(s.span()),
            format!("user {name:?} has both `secret` and `secret_file`; keep one"),
        )),
        (None, None) => Err(fail(
            name_span,
            format!("user {name:?} needs `secret` or `secret_file`"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: Spanned<String>,
    secret: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    quota: Option<Spanned<String>>,
    max_files: Option<Spanned<u64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Accounts> {
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
    fn good_file() {
        let a = parse(
            "[[user]]\nname = \"alice\"\nsecret = \"a-key\"\nquota = \"1MiB\"\n\n[[user]]\nname = \"bob\"\nsecret = \"b-key\"\n",
        )
        .unwrap();
        let alice = a.get(0).unwrap();
        assert_eq!(alice.label(), "alice");
        assert_eq!(alice.quota, Some(1 << 20));
        assert_eq!(alice.max_files, Some(default_max_files(1 << 20)));
        assert_eq!(alice.home(), ["alice"]);
        assert_eq!(a.get(1).unwrap().quota, None);
        assert_eq!(a.get(1).unwrap().max_files, None);
        assert!(a.is_multi_user());
    }

    #[test]
    fn max_files_is_taken_as_written_and_anonymous_is_a_name_without_the_drop_box() {
        let text = "[[user]]\nname = \"anonymous\"\nsecret = \"k\"\nmax_files = 7\n";
        let a = Accounts::parse(text, Path::new("users.toml"), false).unwrap();
        let only = a.get(0).unwrap();
        assert_eq!((only.quota, only.max_files), (None, Some(7)));
    }

    #[test]
    fn errors_name_the_line_and_reason() {
        let cases = [
            (
                "[[user]]\nname = \"alice\"\n",
                "users.toml:2: user \"alice\" needs `secret` or `secret_file`",
            ),
            (
                "[[user]]\nname = \"../x\"\nsecret = \"k\"\n",
                "users.toml:2: invalid user name",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\n[[user]]\nname = \"a\"\nsecret = \"j\"\n",
                "users.toml:5: user \"a\" is defined twice",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\n[[user]]\nname = \"b\"\nsecret = \"k\"\n",
                "users.toml:5: user \"b\" has the same secret",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nquota = \"lots\"\n",
                "users.toml:4: invalid size",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nshell = \"/bin/sh\"\n",
                "users.toml:4: unknown field `shell`",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\n[[user]]\nname = \"b\"\nsecret = \"k\\u0000\"\n",
                "users.toml:5: user \"b\" has the same secret",
            ),
            (
                "[[user]]\nname = \"anonymous\"\nsecret = \"k\"\n",
                "users.toml:2: user \"anonymous\" would share ROOT/anonymous",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nmax_files = -1\n",
                "users.toml:4:",
            ),
            ("[[user]\n", "users.toml:1:"),
            ("", "users.toml: no [[user]] entries"),
            (
                "[[user]]\nname = \"a\"\nsecret_file = \"/nonexistent/key\"\n",
                "users.toml:3: cannot read the secret file",
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
}
