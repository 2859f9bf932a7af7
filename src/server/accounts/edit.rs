//! `ftp-server user add | remove | list`: the users file edited in place,
//! its comments, order and layout kept (`toml_edit`), and replaced whole
//! (a new file renamed over it, mode 0600), so that a running server that
//! watches it reads either the old file or the new one, never half.

use std::fs;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use super::Accounts;
use crate::config::secret::random_secret_text;
use crate::config::units::Size;
use crate::error::{Error, Result};
use crate::net::tls::Fingerprint;
use crate::server::commands::refusals::store_refusal;
use crate::storage::{Store, StoreError};
use crate::wire::names::validate_name;

/// What `user add` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NewUser {
    /// The user's name, which is also their home folder.
    pub(crate) name: String,
    /// Bytes they may store.
    pub(crate) quota: Option<u64>,
    /// Files and folders they may hold.
    pub(crate) max_files: Option<u64>,
}

/// Adds `user` to the users file at `path` (made if missing) with a new
/// random secret, and returns the secret.
///
/// Fails when the name is invalid or taken, or the file cannot be read,
/// parsed or written; the file is then left as it was.
pub(crate) fn add(path: &Path, user: &NewUser, anonymous: bool) -> Result<String> {
    validate_name(&user.name)
        .map_err(|e| Error::Usage(format!("invalid user name {:?}: {e}", user.name)))?;
    let mut doc = read(path)?;
    let users = user_tables(&mut doc, path)?;
    if users.iter().any(|t| name_of(t) == Some(user.name.as_str())) {
        return Err(Error::Usage(format!(
            "{} already has a user {:?}; remove it first, or pick another name",
            path.display(),
            user.name
        )));
    }
    let secret = random_secret_text();
    let mut entry = Table::new();
    entry["name"] = toml_edit::value(user.name.as_str());
    entry["secret"] = toml_edit::value(secret.as_str());
    if let Some(quota) = user.quota {
        entry["quota"] = toml_edit::value(Size(quota).to_string());
    }
    if let Some(n) = user.max_files.and_then(|n| i64::try_from(n).ok()) {
        entry["max_files"] = toml_edit::value(n);
    }
    users.push(entry);
    write(path, &doc.to_string(), anonymous)?;
    Ok(secret)
}

/// Removes the user `name` from the users file at `path`.
///
/// Fails when there is no such user, when they are the only one (a users
/// file without users is refused by the server), or the file cannot be
/// read, parsed or written.
pub(crate) fn remove(path: &Path, name: &str, anonymous: bool) -> Result<()> {
    let mut doc = read(path)?;
    let users = user_tables(&mut doc, path)?;
    let Some(at) = users.iter().position(|t| name_of(t) == Some(name)) else {
        return Err(Error::Usage(format!(
            "{} has no user {name:?}; `ftp-server user list` shows who it has",
            path.display()
        )));
    };
    if users.len() == 1 {
        return Err(Error::Usage(format!(
            "{name:?} is the only user in {}; add another first (a users file needs one)",
            path.display()
        )));
    }
    users.remove(at);
    write(path, &doc.to_string(), anonymous)
}

/// Writes one line per account: name, quota, files allowed, and what the
/// home holds now, read from `store`.
///
/// Fails when `out` cannot be written; a home the store cannot measure
/// says why on its line.
pub(crate) fn list(accounts: &Accounts, store: &dyn Store, out: &mut impl Write) -> Result<()> {
    let fail = |e| Error::io("writing the list", e);
    writeln!(
        out,
        "{:<24} {:>12} {:>10} {:>12} {:>8}",
        "USER", "QUOTA", "MAX_FILES", "USED", "FILES"
    )
    .map_err(fail)?;
    for account in accounts.iter() {
        let show = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        let (used, files) = match store.usage(&account.home()) {
            Ok(u) => (u.bytes.to_string(), u.entries.to_string()),
            Err(StoreError::Folder(_)) => ("0".into(), "0".into()),
            Err(StoreError::File(e)) if e.kind() == ErrorKind::NotFound => ("0".into(), "0".into()),
            Err(e) => (
                format!("unknown ({})", store_refusal(e, "").message),
                "-".into(),
            ),
        };
        let quota = account.quota.map(|q| Size(q).to_string());
        writeln!(
            out,
            "{:<24} {:>12} {:>10} {:>12} {:>8}",
            account.label(),
            quota.unwrap_or_else(|| "-".into()),
            show(account.max_files),
            used,
            files
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// The one line a new user runs to connect: their secret, the server's
/// address (`THIS-HOST` when it listens on every interface) and, when the
/// server's certificate is known, its fingerprint to pin.
pub(crate) fn client_line(
    secret: &str,
    listen: SocketAddr,
    fingerprint: Option<Fingerprint>,
) -> String {
    let server = match listen.ip().is_unspecified() {
        true => format!("THIS-HOST:{}", listen.port()),
        false => listen.to_string(),
    };
    let pin = fingerprint.map_or(String::new(), |f| format!(" --fingerprint {f}"));
    format!("FTP_SECRET={secret} ftp-client --server {server}{pin}")
}

fn read(path: &Path) -> Result<DocumentMut> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::Config {
                path: path.to_path_buf(),
                line: None,
                reason: format!("cannot read: {}", crate::error::reason(&e)),
            })
        }
    };
    text.parse()
        .map_err(|e: toml_edit::TomlError| Error::Config {
            path: path.to_path_buf(),
            line: e.span().map(|s| crate::error::line_of(&text, s.start)),
            reason: e.message().to_string(),
        })
}

/// The file's `[[user]]` tables, made when there are none.
fn user_tables<'d>(doc: &'d mut DocumentMut, path: &Path) -> Result<&'d mut ArrayOfTables> {
    let item = doc
        .entry("user")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        line: None,
        reason: "`user` is not a list of [[user]] tables".into(),
    })
}

fn name_of(table: &Table) -> Option<&str> {
    table.get("name").and_then(Item::as_str)
}

/// Checks `text` as the server would read it, then puts it at `path`:
/// written to a new file (mode 0600) beside it and renamed over it.
fn write(path: &Path, text: &str, anonymous: bool) -> Result<()> {
    Accounts::parse(text, path, anonymous)?;
    let mut staged = path.as_os_str().to_owned();
    staged.push(format!(".{}.new", std::process::id()));
    let staged = std::path::PathBuf::from(staged);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .and_then(|mut f| {
            // The mode above is filtered by the umask.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            // Run as root for a server run as its own user, the file must
            // stay that user's, or the server could no longer read it.
            // Anyone else cannot give a file away, and need not.
            if let Ok(old) = fs::metadata(path) {
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&staged, path));
    if written.is_err() {
        let _ = fs::remove_file(&staged);
    }
    written.map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "# the team\n[[user]]\n# admin\nname = \"alice\"\nsecret = \"a-key\"\n\n\
                         [[user]]\nname = \"bob\"\nsecret = \"b-key\" # until June\n";

    fn user(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            quota: Some(1 << 30),
            max_files: Some(500),
        }
    }

    #[test]
    fn add_keeps_comments_and_order_and_the_file_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        fs::write(&path, START).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let secret = add(&path, &user("carol"), false).unwrap();
        assert_eq!(secret.len(), 64);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(START), "{text}");
        assert!(
            text.ends_with(&format!(
            "[[user]]\nname = \"carol\"\nsecret = \"{secret}\"\nquota = \"1GiB\"\nmax_files = 500\n"
        )),
            "{text}"
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let accounts = Accounts::load(&path, false).unwrap();
        let carol = accounts.iter().find(|a| a.label() == "carol").unwrap();
        assert_eq!((carol.quota, carol.max_files), (Some(1 << 30), Some(500)));
    }

    #[test]
    fn add_makes_the_file_and_remove_takes_one_user_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add(
            &path,
            &NewUser {
                name: "dan".into(),
                ..NewUser::default()
            },
            false,
        )
        .unwrap();
        add(&path, &user("erin"), false).unwrap();
        remove(&path, "dan", false).unwrap();
        let names: Vec<_> = Accounts::load(&path, false)
            .unwrap()
            .iter()
            .map(|a| a.label().to_string())
            .collect();
        assert_eq!(names, ["erin"]);
    }

    #[test]
    fn refusals_leave_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        fs::write(&path, START).unwrap();
        let cases = [
            (
                add(&path, &user("bob"), false).map(drop),
                "already has a user \"bob\"",
            ),
            (
                add(&path, &user("../x"), false).map(drop),
                "invalid user name \"../x\"",
            ),
            (
                add(&path, &user("anonymous"), true).map(drop),
                "would share ROOT/anonymous",
            ),
            (remove(&path, "zed", false), "has no user \"zed\""),
        ];
        for (got, want) in cases {
            let got = got.unwrap_err().to_string();
            assert!(got.contains(want), "{got}");
        }
        remove(&path, "bob", false).unwrap();
        let only = remove(&path, "alice", false).unwrap_err().to_string();
        assert!(only.contains("is the only user"), "{only}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
