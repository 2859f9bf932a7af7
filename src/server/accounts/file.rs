//! The users file: one `[[user]]` table per account, read whole or not
//! at all, every error naming its line.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Account, Accounts, Limits, Rates};
use crate::config::cidr::Cidr;
use crate::config::secret::{read_secret_file, Secret};
use crate::config::units::parse_size;
use crate::error::{Error, Result};
use crate::server::quota::default_max_files;
use crate::wire::names::validate_name;

use super::ANONYMOUS;

impl Accounts {
    /// Parses the text of a users file; `path` names it in errors and is
    /// where relative `secret_file` paths start from. See [`Accounts::load`].
    pub(crate) fn parse(text: &str, path: &Path, anonymous: bool) -> Result<Accounts> {
        let fail = |span: Option<std::ops::Range<usize>>, reason: String| Error::Config {
            path: path.to_path_buf(),
            line: span.map(|s| crate::error::line_of(text, s.start)),
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
            let rules = UserRules {
                max_connections: user.max_connections,
                read_only: user.read_only,
                allowed_from: user.allowed_from,
                rate: user.rate,
            };
            let limits = user_rules(rules, &fail)?;
            accounts.push(Account {
                name: Some(name),
                secret,
                quota,
                max_files,
                limits,
            });
        }
        Ok(Accounts::from_vec(accounts))
    }
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

/// A user's limits beyond the quota, each checked where it is written.
fn user_rules(rules: UserRules, fail: &Fail) -> Result<Limits> {
    let allowed_from = match rules.allowed_from {
        Some(ranges) => Some(
            ranges
                .into_iter()
                .map(|r| {
                    let span = r.span();
                    r.get_ref().parse::<Cidr>().map_err(|e| fail(Some(span), e))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let rate = match rules.rate {
        Some(r) => {
            let span = r.span();
            let per_second = parse_size(r.get_ref().trim_end_matches("/s"))
                .map_err(|e| fail(Some(span.clone()), format!("rate: {e} (bytes per second)")))?;
            if per_second == 0 {
                let why = "rate = \"0\" would stop every transfer; leave rate out for no limit";
                return Err(fail(Some(span), why.into()));
            }
            Some(Rates::new(per_second))
        }
        None => None,
    };
    Ok(Limits {
        max_connections: rules.max_connections,
        read_only: rules.read_only.unwrap_or(false),
        allowed_from,
        rate,
    })
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
    max_connections: Option<usize>,
    read_only: Option<bool>,
    allowed_from: Option<Vec<Spanned<String>>>,
    rate: Option<Spanned<String>>,
}

/// The limits a `[[user]]` table may add to its quota.
struct UserRules {
    max_connections: Option<usize>,
    read_only: Option<bool>,
    allowed_from: Option<Vec<Spanned<String>>>,
    rate: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Accounts> {
        Accounts::parse(text, Path::new("users.toml"), true)
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
    fn limits_are_read_as_written() {
        let a = parse(
            "[[user]]\nname = \"a\"\nsecret = \"k\"\nmax_connections = 2\nread_only = true\n\
             allowed_from = [\"192.0.2.0/24\", \"2001:db8::/32\"]\nrate = \"1MiB/s\"\n\
             [[user]]\nname = \"b\"\nsecret = \"j\"\n",
        )
        .unwrap();
        let limits = &a.get(0).unwrap().limits;
        assert_eq!(limits.max_connections, Some(2));
        assert!(limits.read_only);
        assert!(limits.allows("192.0.2.9".parse().unwrap()));
        assert!(!limits.allows("127.0.0.1".parse().unwrap()));
        assert_eq!(limits.rate.as_ref().map(|r| r.per_second()), Some(1 << 20));
        let open = &a.get(1).unwrap().limits;
        assert!(!open.read_only && open.rate.is_none() && open.max_connections.is_none());
        assert!(open.allows("203.0.113.1".parse().unwrap()));
    }

    /// Each text is refused with an error that starts as written.
    fn refused_with(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            let got = parse(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {text:?}:\n got {got}\nwant {want}"
            );
        }
    }

    #[test]
    fn bad_limits_name_the_line_and_reason() {
        let cases = [
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nallowed_from = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n",
                "users.toml:4: invalid address range \"10.1.2.3/8\"",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\n\nrate = \"fast\"\n",
                "users.toml:5: rate: invalid size \"fast\"",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nrate = \"0\"\n",
                "users.toml:4: rate = \"0\" would stop every transfer",
            ),
            (
                "[[user]]\nname = \"a\"\nsecret = \"k\"\nread_only = \"yes\"\n",
                "users.toml:4: invalid type: string \"yes\", expected a boolean",
            ),
        ];
        refused_with(&cases);
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
        refused_with(&cases);
    }
}
