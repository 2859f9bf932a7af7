//! The server's JSON log, read as an operator's shipper reads it: one
//! object per line, selected by its fields (`jq 'select(.path=="x")'`).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::ServerProcess;

/// The events of a JSON log, in order. A line that is not a JSON object
/// (a panic's message, say) is no event, and is left out.
pub fn events_in(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

/// A field as text: a string as it is, a number or a boolean as JSON
/// writes it.
pub fn field(event: &Value, name: &str) -> Option<String> {
    match event.get(name)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The event's sentence, the text format's line.
pub fn message(event: &Value) -> &str {
    event.get("message").and_then(Value::as_str).unwrap_or("")
}

/// Whether `event` has each field of `want` with that value (as [`field`]
/// shows it).
pub fn has_fields(event: &Value, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(name, value)| field(event, name).as_deref() == Some(*value))
}

impl ServerProcess {
    /// The server's log so far, event by event.
    pub fn events(&self) -> Vec<Value> {
        events_in(&self.log_text())
    }

    /// The events so far with each field of `want`.
    pub fn events_with(&self, want: &[(&str, &str)]) -> Vec<Value> {
        let mut events = self.events();
        events.retain(|e| has_fields(e, want));
        events
    }

    /// Waits up to 10 s for the `put` of `path` (from the home) refused
    /// with `code`, and returns its event.
    pub fn wait_for_refused_put(&self, path: &str, code: &str) -> Value {
        let want = [
            ("cmd", "put"),
            ("path", path),
            ("result", "error"),
            ("code", code),
        ];
        self.wait_for_event(&want)
    }

    /// Waits up to 10 s for an event with each field of `want`, and
    /// returns it.
    pub fn wait_for_event(&self, want: &[(&str, &str)]) -> Value {
        self.wait_for_said(want, "")
    }

    /// Waits up to 10 s for an event with each field of `want` whose
    /// sentence says `words`, and returns it.
    pub fn wait_for_said(&self, want: &[(&str, &str)], words: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut found = self.events_with(want);
            found.retain(|e| message(e).contains(words));
            if let Some(event) = found.into_iter().next() {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no event with {want:?} saying {words:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
