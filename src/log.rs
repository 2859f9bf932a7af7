//! One line per event on stderr, with a UTC timestamp and a level.
//!
//! Names in log lines are escaped, so a file name cannot forge log lines;
//! secrets are never passed here.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Only errors that stop the server.
    Quiet,
    /// Connections, logins and commands.
    Info,
    /// Everything, including each frame.
    Debug,
}

/// Writes log lines to stderr.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    level: Level,
}

impl Logger {
    /// A logger that prints events at `level` and below.
    pub fn new(level: Level) -> Logger {
        Logger { level }
    }

    /// Whether a line at `level` would be printed.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level && self.level != Level::Quiet
    }

    /// Logs an ordinary event.
    pub fn info(&self, args: fmt::Arguments<'_>) {
        self.line(Level::Info, "info", args);
    }

    /// Logs a detail.
    pub fn debug(&self, args: fmt::Arguments<'_>) {
        self.line(Level::Debug, "debug", args);
    }

    /// Logs something wrong; printed unless quiet.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.line(Level::Info, "warn", args);
    }

    fn line(&self, level: Level, tag: &str, args: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        let line = format!("{} {tag} {args}\n", timestamp(SystemTime::now()));
        // One write per line so that lines from many threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so that no date crate is needed for log lines.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(timestamp(t), "2026-11-18T11:06:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn quiet_prints_nothing() {
        assert!(!Logger::new(Level::Quiet).enabled(Level::Info));
        assert!(Logger::new(Level::Info).enabled(Level::Info));
        assert!(!Logger::new(Level::Info).enabled(Level::Debug));
    }
}
