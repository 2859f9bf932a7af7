//! `put` and `get`: their words parsed.

use crate::client::filter::Filters;

use super::words::Words;
use super::{Command, ParseError, Transfer};

/// The filter options, which take a value each.
pub(super) const FILTERS: [&str; 3] = ["exclude", "include", "exclude-from"];

/// The filter options given.
pub(super) fn filters(w: &Words) -> Filters {
    Filters {
        exclude: w.values("exclude"),
        include: w.values("include"),
        exclude_from: w.values("exclude-from"),
    }
}

/// `put [-rpvc] [--force-all] [--failed-list FILE] FILE... | LOCAL REMOTE`
/// and `get [-rpvfc] ... PATH... [LOCAL]`.
///
/// Two names are LOCAL and REMOTE (`put`) or REMOTE and LOCAL (`get`), as
/// sftp reads them; `get`'s last name is where to whenever there are two
/// or more, `put`'s only when there are exactly two.
pub(super) fn parse_transfer(cmd: &str, args: &[String]) -> Result<Command, ParseError> {
    let (usage, flags) = match cmd {
        "put" => (PUT_USAGE, "rpvc"),
        _ => (GET_USAGE, "rpvfc"),
    };
    let long = ["force-all"];
    let valued = ["failed-list", FILTERS[0], FILTERS[1], FILTERS[2]];
    let mut w = Words::split_valued(cmd, args, flags, &long, &valued, usage)?;
    if w.operands.is_empty() {
        return Err(ParseError(format!("usage: {usage}")));
    }
    let last = match (cmd, w.operands.len()) {
        ("put", 2) | ("get", 2..) => w.operands.pop(),
        _ => None,
    };
    let (local, remote) = match cmd {
        "put" => (None, last),
        _ => (last, None),
    };
    let transfer = Transfer {
        recursive: w.has('r'),
        preserve: w.has('p'),
        verbose: w.has('v'),
        force: w.has('f'),
        checksum: w.has('c'),
        force_all: w.has_long("force-all"),
        failed_list: w.value("failed-list"),
        filters: filters(&w),
        sources: w.operands,
        local,
        remote,
    };
    Ok(match cmd {
        "put" => Command::Put(transfer),
        _ => Command::Get(transfer),
    })
}

const PUT_USAGE: &str = "put [-rpvc] [--force-all] [--failed-list FILE] [--exclude PATTERN] \
                         [--include PATTERN] [--exclude-from FILE] FILE... (or LOCAL REMOTE)";
const GET_USAGE: &str = "get [-rpvfc] [--force-all] [--failed-list FILE] [--exclude PATTERN] \
                         [--include PATTERN] [--exclude-from FILE] PATH... [LOCAL]";

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Transfer {
        match Command::parse_line(line) {
            Ok(Some(Command::Put(t) | Command::Get(t))) => t,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn two_names_are_local_and_remote_as_in_sftp() {
        let t = parsed("put big.bin big-r.bin");
        assert_eq!(t.sources, ["big.bin"]);
        assert_eq!(t.remote.as_deref(), Some("big-r.bin"));
        let t = parsed("put a b c");
        assert_eq!(t.sources, ["a", "b", "c"]);
        assert_eq!(t.remote, None);
        let t = parsed("get a b c");
        assert_eq!(t.sources, ["a", "b"]);
        assert_eq!(t.local.as_deref(), Some("c"));
    }

    #[test]
    fn options_for_reruns_parse() {
        let t = parsed("put -rc --force-all --failed-list /tmp/f.txt tree");
        assert!(t.recursive && t.checksum && t.force_all);
        assert_eq!(t.failed_list.as_deref(), Some("/tmp/f.txt"));
        let t = parsed("get -r --failed-list=left.txt tree");
        assert_eq!(t.failed_list.as_deref(), Some("left.txt"));
        let e = Command::parse_line("put --failed-list").unwrap_err();
        assert!(e.0.contains("--failed-list needs a value"), "{e}");
    }
}
