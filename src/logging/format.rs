//! How an event becomes a line: the text format's sentence, or one flat
//! JSON object whose keys a shipper filters on (`jq 'select(.path=="x")'`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, JsonFields, Writer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use super::event::{Kind, STRUCTURED};
use super::LogFormat;

/// The subscriber for `format`, writing to `writer`: one place for both
/// the server and the tests below.
pub(super) fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => Box::new(builder.fmt_fields(TextFields).finish()),
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .finish(),
        ),
    }
}

/// The text format's fields: the sentence and any ad-hoc fields, but not
/// the structured ones, which the sentence says already.
#[derive(Debug, Default)]
pub(crate) struct TextFields;

impl<'a> MakeVisitor<Writer<'a>> for TextFields {
    type Visitor = Prose<'a>;
    fn make_visitor(&self, target: Writer<'a>) -> Prose<'a> {
        Prose(DefaultVisitor::new(target, true))
    }
}

/// The default text visitor, deaf to the structured fields.
pub(crate) struct Prose<'a>(DefaultVisitor<'a>);

fn shown(field: &Field) -> bool {
    !STRUCTURED.contains(&field.name())
}

impl Visit for Prose<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if shown(field) {
            self.0.record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if shown(field) {
            self.0.record_error(field, value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if shown(field) {
            self.0.record_debug(field, value);
        }
    }
}

impl VisitOutput<fmt::Result> for Prose<'_> {
    fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

impl VisitFmt for Prose<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.0.writer()
    }
}

/// One JSON object per event: `timestamp`, `level`, the fields of the
/// spans it is in (the connection's `peer` and `user`), then its own
/// fields, all at the top level.
#[derive(Debug, Default)]
pub(crate) struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            jiff::Timestamp::now().to_string().into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            let extensions = span.extensions();
            // The span's fields, as the JSON field formatter wrote them.
            let fields = extensions.get::<FormattedFields<N>>();
            if let Some(Ok(Value::Object(map))) = fields.map(|f| serde_json::from_str(f)) {
                line.extend(map);
            }
        }
        event.record(&mut Fields(&mut line));
        if !line.contains_key("event") {
            line.insert("event".into(), Kind::Library.name().into());
            line.insert("target".into(), event.metadata().target().into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Collects an event's fields into a JSON object, numbers and booleans as
/// such.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::logging::event::set_user;
    use crate::logging::{connection_span, Event};

    /// What the subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One upload's event inside a connection's span, as `format` writes it.
    fn logged(format: LogFormat) -> String {
        let written = Written::default();
        let out = written.clone();
        let subscriber = subscriber(EnvFilter::new("info"), format, false, move || out.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = connection_span("10.0.0.1:4000");
            let _in = span.enter();
            set_user("alice");
            Event::new(Kind::Command)
                .cmd("put")
                .path("a b.txt")
                .result("ok")
                .bytes(3)
                .took(std::time::Duration::from_millis(7))
                .resumed(Some(false))
                .digest(Some("abc"))
                .info(format_args!("put a b.txt ok stored 3 bytes"));
        });
        let bytes = written.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_the_span_and_the_event_fields_at_the_top() {
        let text = logged(LogFormat::Json);
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(&text).unwrap();
        let expected = [
            ("event", Value::from("command")),
            ("peer", "10.0.0.1:4000".into()),
            ("user", "alice".into()),
            ("cmd", "put".into()),
            ("path", "a b.txt".into()),
            ("result", "ok".into()),
            ("bytes", 3.into()),
            ("duration_ms", 7.into()),
            ("resumed", false.into()),
            ("digest", "abc".into()),
            ("level", "INFO".into()),
            ("message", "put a b.txt ok stored 3 bytes".into()),
        ];
        for (key, value) in expected {
            assert_eq!(line[key], value, "{key} in {text}");
        }
        assert!(line["timestamp"].is_string(), "{text}");
        // Fields not set are left out, not written as null.
        assert!(
            line.get("code").is_none() && line.get("skipped").is_none(),
            "{text}"
        );
    }

    #[test]
    fn text_lines_keep_the_sentence_and_the_span_only() {
        let text = logged(LogFormat::Text);
        assert!(
            text.trim_end().ends_with(
                "INFO conn{peer=10.0.0.1:4000 user=\"alice\"}: put a b.txt ok stored 3 bytes"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_librarys_own_event_is_named_too() {
        let written = Written::default();
        let out = written.clone();
        let subscriber = subscriber(EnvFilter::new("warn"), LogFormat::Json, false, move || {
            out.clone()
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "rustls::conn", "a peer sent an alert");
        });
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["event"], "library", "{text}");
        assert_eq!(line["target"], "rustls::conn", "{text}");
        assert_eq!(line["message"], "a peer sent an alert", "{text}");
    }
}
