//! A command written back as it would be typed again: what a stopped
//! batch tells the user to run to finish it.

use crate::client::filter::Filters;

use super::{SyncOptions, Transfer};

impl Transfer {
    /// The command as it would be typed again, `verb` (`put`, `get`)
    /// first: what a stopped batch tells the user to run to finish it.
    pub(crate) fn line(&self, verb: &str) -> String {
        let flags: String = [
            (self.recursive, 'r'),
            (self.preserve, 'p'),
            (self.verbose, 'v'),
            (self.force, 'f'),
            (self.checksum, 'c'),
        ]
        .iter()
        .filter_map(|(on, f)| on.then_some(*f))
        .collect();
        let mut words = vec![verb.to_string()];
        if !flags.is_empty() {
            words.push(format!("-{flags}"));
        }
        if self.force_all {
            words.push("--force-all".into());
        }
        if let Some(list) = &self.failed_list {
            words.push(format!("--failed-list {}", quoted(list)));
        }
        filter_words(&self.filters, &mut words);
        let names = self.sources.iter().chain(&self.remote).chain(&self.local);
        // A name that starts with '-' goes after --, as it was typed.
        if self.sources.iter().any(|s| s.starts_with('-')) {
            words.push("--".into());
        }
        words.extend(names.map(|n| quoted(n)));
        words.join(" ")
    }
}

impl SyncOptions {
    /// The `sync` command as it would be typed again.
    pub(crate) fn line(&self) -> String {
        let flags: String = [
            (self.dry_run, 'n'),
            (self.checksum, 'c'),
            (self.preserve, 'p'),
            (self.verbose, 'v'),
            (self.itemize, 'i'),
        ]
        .iter()
        .filter_map(|(on, f)| on.then_some(*f))
        .collect();
        let mut words = vec!["sync".to_string()];
        if !flags.is_empty() {
            words.push(format!("-{flags}"));
        }
        if self.delete {
            words.push("--delete".into());
        }
        filter_words(&self.filters, &mut words);
        if [&self.source, &self.target]
            .iter()
            .any(|s| s.starts_with('-'))
        {
            words.push("--".into());
        }
        words.extend([quoted(&self.source), quoted(&self.target)]);
        words.join(" ")
    }
}

/// The filter options, each as typed.
fn filter_words(filters: &Filters, words: &mut Vec<String>) {
    let given = [
        ("--exclude-from", &filters.exclude_from),
        ("--exclude", &filters.exclude),
        ("--include", &filters.include),
    ];
    for (option, values) in given {
        words.extend(values.iter().map(|v| format!("{option} {}", quoted(v))));
    }
}

/// A word as the shell would read it back: quoted when it must be.
fn quoted(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| word.to_string(), |q| q.into_owned())
}

#[cfg(test)]
mod tests {
    use crate::client::command::Command;

    #[test]
    fn a_command_is_written_back_as_it_would_be_typed() {
        for line in [
            "put -r tree",
            "put -rc --force-all 'my tree' other",
            "get -rv photos/2025 ./restored",
            "put a.bin b.bin",
            "put -- -odd.txt",
            "sync -c --delete photos :photos",
            "put -r --exclude-from list --exclude '*.log' --include keep.log tree",
        ] {
            let again = match Command::parse_line(line) {
                Ok(Some(Command::Put(t))) => t.line("put"),
                Ok(Some(Command::Get(t))) => t.line("get"),
                Ok(Some(Command::Sync(s))) => s.line(),
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(again, line);
        }
    }
}
