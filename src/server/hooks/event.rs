//! What a hook is told: one upload, download or delete, as JSON (a
//! command's stdin, a URL's POST body) and as `FTP_*` environment
//! variables (a command's).

use std::net::IpAddr;

use serde::Serialize;

/// Which setting's hook an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EventKind {
    /// `on-upload`.
    Upload,
    /// `on-download`.
    Download,
    /// `on-delete`.
    Delete,
}

impl EventKind {
    /// The name in the event's JSON and in the metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::Upload => "upload",
            EventKind::Download => "download",
            EventKind::Delete => "delete",
        }
    }
}

/// One event, as its hook receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event {
    /// What happened.
    #[serde(rename = "event")]
    pub(crate) kind: EventKind,
    /// The account's name; `None` for an anonymous upload.
    pub(crate) user: Option<String>,
    /// The file's path in the account's home, from `/`.
    pub(crate) path: String,
    /// The file's size in bytes (for a delete, what it freed).
    pub(crate) size: u64,
    /// The file's BLAKE3 digest in hex, when the server knows it without
    /// reading the file again.
    pub(crate) blake3: Option<String>,
    /// The client's address.
    pub(crate) peer: Option<IpAddr>,
    /// When it happened, RFC 3339 in UTC.
    pub(crate) time: String,
    /// Whether an upload or download continued from an offset.
    pub(crate) resumed: bool,
}

/// A file's path from its home: its folders, then its name, each after a
/// `/`.
pub(crate) fn home_path(folder: &[String], name: &str) -> String {
    let mut path = String::new();
    for part in folder.iter().map(String::as_str).chain([name]) {
        path.push('/');
        path.push_str(part);
    }
    path
}

impl Event {
    /// An event of `kind` for `path` in a home (its folders, then its
    /// name), at this moment; the rest is filled in by the caller.
    pub(crate) fn now(kind: EventKind, folder: &[String], name: &str) -> Event {
        Event {
            kind,
            user: None,
            path: home_path(folder, name),
            size: 0,
            blake3: None,
            peer: None,
            time: jiff::Timestamp::now().to_string(),
            resumed: false,
        }
    }

    /// The event with what is known once the command is done: the file's
    /// `size`, its `digest` if known, whether it `resumed`; its time is
    /// now.
    pub(crate) fn sized(mut self, size: u64, digest: Option<blake3::Hash>, resumed: bool) -> Event {
        self.size = size;
        self.blake3 = digest.map(|h| h.to_hex().to_string());
        self.resumed = resumed;
        self.time = jiff::Timestamp::now().to_string();
        self
    }

    /// The event as the environment of a hook command: one `FTP_*`
    /// variable per field, empty when the field has no value.
    pub(crate) fn environment(&self) -> Vec<(&'static str, String)> {
        let or_empty = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("FTP_EVENT", self.kind.as_str().to_string()),
            ("FTP_USER", or_empty(self.user.clone())),
            ("FTP_PATH", self.path.clone()),
            ("FTP_SIZE", self.size.to_string()),
            ("FTP_BLAKE3", or_empty(self.blake3.clone())),
            ("FTP_PEER", or_empty(self.peer.map(|p| p.to_string()))),
            ("FTP_TIME", self.time.clone()),
            ("FTP_RESUMED", self.resumed.to_string()),
        ]
    }

    /// The event as JSON.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and booleans always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_environment_carry_every_field() {
        let mut event = Event::now(EventKind::Upload, &["docs".into()], "a b.txt");
        event.user = Some("alice".into());
        event.size = 5;
        event.peer = Some([127, 0, 0, 1].into());
        let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(json["event"], "upload");
        assert_eq!(json["path"], "/docs/a b.txt");
        assert_eq!(json["user"], "alice");
        assert_eq!(json["size"], 5);
        assert_eq!(json["blake3"], serde_json::Value::Null);
        assert_eq!(json["peer"], "127.0.0.1");
        assert_eq!(json["resumed"], false);
        assert!(json["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok());
        let env = event.environment();
        assert!(env.contains(&("FTP_PATH", "/docs/a b.txt".into())));
        assert!(env.contains(&("FTP_BLAKE3", String::new())));
        assert_eq!(env.len(), 8);
    }
}
