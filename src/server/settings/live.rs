//! Which settings a reload of the config file applies to the running
//! server (its limits, rates and quotas, see [`crate::server::live`]), and
//! which need a restart.

use std::time::Duration;

use super::Settings;
use crate::server::live::Limits;

/// The config file's keys that a reload applies at once.
pub(crate) const RELOADABLE: [&str; 6] = [
    "max-file-size",
    "min-rate",
    "min-rate-window",
    "max-per-address",
    "anonymous-quota",
    "anonymous-max-files",
];

/// What a reload found changed, in the config file's words
/// (`key: old -> new`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Applied at once.
    pub(crate) applied: Vec<String>,
    /// In force only after a restart.
    pub(crate) need_restart: Vec<String>,
}

impl Settings {
    /// The limits these settings put in force.
    pub(crate) fn limits(&self) -> Limits {
        let window = Duration::from_secs(self.min_rate_window.max(1));
        Limits {
            max_file_size: self.max_file_size.unwrap_or(u64::MAX),
            floor: (self.min_rate > 0).then_some((self.min_rate, window)),
            max_per_address: self.max_per_address,
            anonymous_quota: self.anonymous_quota,
            anonymous_max_files: self.anonymous_max_files,
        }
    }

    /// Takes the reloadable settings of `read` (the config file read
    /// again), and says what changed: those now in force, and the others,
    /// which stay as they are until a restart.
    pub(crate) fn reload_from(&mut self, read: &Settings) -> Changes {
        let mut changes = Changes::default();
        for change in self.changes(read) {
            let key = change.split(':').next().unwrap_or_default();
            match RELOADABLE.contains(&key) {
                true => changes.applied.push(change),
                false => changes.need_restart.push(change),
            }
        }
        self.max_file_size = read.max_file_size;
        self.min_rate = read.min_rate;
        self.min_rate_window = read.min_rate_window;
        self.max_per_address = read.max_per_address;
        self.anonymous_quota = read.anonymous_quota;
        self.anonymous_max_files = read.anonymous_max_files;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::settings::flags::ServerFlags;

    fn settings(text: &str) -> Settings {
        let flags: ServerFlags = toml::from_str(text).unwrap();
        Settings::from_flags(flags).unwrap()
    }

    #[test]
    fn a_reload_takes_the_limits_and_leaves_the_rest_for_a_restart() {
        let mut in_force = settings("workers = 3\nmax-file-size = \"1MiB\"\nmin-rate = 0\n");
        let read = settings("workers = 5\nmax-file-size = \"2MiB\"\nmin-rate = \"2KiB\"\n");
        let changes = in_force.reload_from(&read);
        assert_eq!(
            changes.applied,
            [
                "min-rate: \"0\" -> \"2KiB\"",
                "max-file-size: \"1MiB\" -> \"2MiB\""
            ]
        );
        assert_eq!(changes.need_restart, ["workers: 3 -> 5"]);
        let limits = in_force.limits();
        assert_eq!(limits.max_file_size, 2 << 20);
        assert_eq!(limits.floor, Some((2048, Duration::from_secs(60))));
        // What needs a restart is still told at the next reload.
        let again = in_force.reload_from(&read);
        assert!(again.applied.is_empty(), "{again:?}");
        assert_eq!(again.need_restart, ["workers: 3 -> 5"]);
    }

    #[test]
    fn every_reloadable_key_is_a_key_of_the_config_file() {
        let keys: Vec<String> = ServerFlags::keys().collect();
        for key in RELOADABLE {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
    }
}
