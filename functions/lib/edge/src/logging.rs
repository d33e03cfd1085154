//! Log lines: one event is one line, whatever the outside sent. Every value an event carries (a
//! subscription id from a notification, Graph's error text, an address) is escaped and bounded
//! here, in the one formatter every function and the local runner use, so that no call site has to
//! remember it:
//! - control characters (newline, carriage return, ANSI escapes, DEL, C1) and the invisible
//!   characters that reorder or hide text (bidirectional overrides, zero-width, line and paragraph
//!   separators, byte-order mark) are written as `\u{…}`, and a backslash as `\\`, so that what
//!   was sent can be told from an escape;
//! - a value is cut after [`MAX_VALUE_CHARS`] characters (the message after
//!   [`MAX_MESSAGE_CHARS`]), and says how many bytes were left out.
//!
//! Text lines (the local runner) quote every value that is not a plain word, so that a value
//! cannot pass for another field; JSON lines (Lambda, for CloudWatch) are one JSON object.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The most characters of one field's value written.
pub const MAX_VALUE_CHARS: usize = 256;
/// The most characters of an event's message written.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Installs the formatter as the process's subscriber, unless one is installed already (a
/// component instance a host reuses); `RUST_LOG` sets the level (`info` unless set). `json` for
/// Lambda (CloudWatch adds the time), text with the time otherwise.
pub fn init(json: bool) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .event_format(LogLine { json })
        .try_init()
        .ok();
}

/// The event formatter: see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct LogLine {
    pub json: bool,
}

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(&self.line(event))
    }
}

impl LogLine {
    /// The event as one line, its newline included.
    pub fn line(&self, event: &Event<'_>) -> String {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str();
        let mut out = String::new();
        if self.json {
            let mut map = serde_json::Map::new();
            map.insert("level".into(), level.into());
            if let Some(message) = fields.message {
                map.insert("message".into(), message.into());
            }
            for (name, value) in fields.values {
                map.insert(name.into(), value.into_json());
            }
            out.push_str(&serde_json::Value::Object(map).to_string());
        } else {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = write!(out, "{now} {level:>5}");
            if let Some(message) = fields.message {
                out.push(' ');
                out.push_str(&message);
            }
            for (name, value) in fields.values {
                let _ = write!(out, " {name}=");
                value.write_text(&mut out);
            }
        }
        out.push('\n');
        out
    }
}

/// A field's value, as recorded.
enum Value {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Value {
    fn into_json(self) -> serde_json::Value {
        match self {
            Value::Text(s) => s.into(),
            Value::Number(n) => n.into(),
            Value::Bool(b) => b.into(),
        }
    }

    /// Plain words as they are; anything else quoted, with `"` escaped (a backslash is already
    /// `\\`, see [`Clean`]).
    fn write_text(&self, out: &mut String) {
        match self {
            Value::Text(s) => {
                let plain = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_alphanumeric() || "._:/@+-,#%".contains(c));
                if plain {
                    out.push_str(s);
                } else {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Vec<(&'static str, Value)>,
}

impl Fields {
    fn text(&mut self, field: &Field, shown: impl FnOnce(&mut Clean) -> fmt::Result) {
        let message = field.name() == "message";
        let mut clean = Clean::new(if message {
            MAX_MESSAGE_CHARS
        } else {
            MAX_VALUE_CHARS
        });
        let _ = shown(&mut clean);
        let text = clean.finish();
        if message {
            self.message = Some(text);
        } else {
            self.values.push((field.name(), Value::Text(text)));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, |c| write!(c, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, |c| c.write_str(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, |c| write!(c, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values
            .push((field.name(), Value::Number(value.into())));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values
            .push((field.name(), Value::Number(value.into())));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match serde_json::Number::from_f64(value) {
            Some(n) => self.values.push((field.name(), Value::Number(n))),
            None => self.text(field, |c| write!(c, "{value}")),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.name(), Value::Bool(value)));
    }
}

/// A writer that escapes as it goes and keeps at most `left` characters, counting the bytes it
/// leaves out (so that a 900 KB value costs no more than its count).
struct Clean {
    out: String,
    left: usize,
    cut: usize,
}

impl Clean {
    fn new(max: usize) -> Self {
        Self {
            out: String::new(),
            left: max,
            cut: 0,
        }
    }

    fn finish(mut self) -> String {
        if self.cut > 0 {
            let _ = write!(self.out, "…[{} more bytes]", self.cut);
        }
        self.out
    }
}

impl fmt::Write for Clean {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.left == 0 {
                self.cut += c.len_utf8();
                continue;
            }
            self.left -= 1;
            if hidden(c) {
                let _ = write!(self.out, "\\u{{{:x}}}", u32::from(c));
            } else if c == '\\' {
                self.out.push_str("\\\\");
            } else {
                self.out.push(c);
            }
        }
        Ok(())
    }
}

/// Characters that end, rewrite or hide a line on a terminal or in a log viewer.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What one `warn!` with two outside values writes, as the functions log them.
    fn logged(json: bool, subscription: &str, error: &str) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(LogLine { json })
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(subscription = %subscription, error, count = 3u64, "dropped {} items", 2);
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Reads a text line's fields back: ` name=word` or ` name="quoted \" text"`.
    fn text_fields(line: &str) -> Vec<(String, String)> {
        let rest = line
            .split_once(" dropped 2 items")
            .expect("the message")
            .1
            .trim_end_matches('\n');
        let mut chars = rest.chars().peekable();
        let mut fields = Vec::new();
        while chars.next() == Some(' ') {
            let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next().unwrap() {
                            '"' => value.push('"'),
                            c => {
                                value.push('\\');
                                value.push(c);
                            }
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek().copied().filter(|c| *c != ' ') {
                    value.push(c);
                    chars.next();
                }
            }
            fields.push((name, value));
        }
        fields
    }

    /// Values as the outside could send them: any character, with newlines, ANSI escapes,
    /// bidirectional overrides, quotes and `key=value` look-alikes well represented.
    fn outside() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(String::from),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\u{1b}[31m".to_string()),
            Just("\u{202e}".to_string()),
            Just("\" level=ERROR message=\"forged".to_string()),
            Just("\\".to_string()),
            "[a-z0-9-]{1,12}",
        ];
        prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
    }

    fn one_clean_line(line: &str) {
        assert!(line.ends_with('\n'), "{line:?}");
        let body = &line[..line.len() - 1];
        assert!(!body.chars().any(hidden), "{line:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn an_outside_value_never_forges_a_line_nor_a_field(s in outside(), e in outside()) {
            let text = logged(false, &s, &e);
            one_clean_line(&text);
            let names: Vec<String> = text_fields(&text).into_iter().map(|(n, _)| n).collect();
            prop_assert_eq!(names, vec!["subscription", "error", "count"]);

            let json = logged(true, &s, &e);
            one_clean_line(&json);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            prop_assert_eq!(keys.len(), 5, "{}", json);
            prop_assert_eq!(&v["count"], 3);
            prop_assert_eq!(&v["message"], "dropped 2 items");
            // What is plain comes through as it was.
            if s.chars().count() <= MAX_VALUE_CHARS && !s.chars().any(|c| hidden(c) || c == '\\') {
                prop_assert_eq!(v["subscription"].as_str().unwrap(), s.as_str());
                let fields = text_fields(&text);
                prop_assert_eq!(fields[0].1.as_str(), s.as_str());
            }
        }
    }

    /// A POST of many bad notifications writes one bounded line, not one per item (4 KB of body
    /// once gave 84 KB of log).
    #[tokio::test]
    async fn a_batch_of_bad_notifications_is_one_short_line() {
        use mailbridge_core::fakes::{InMemoryQueue, InMemoryStateStore};
        use mailbridge_core::services::webhook::Webhook;
        let webhook = Webhook::new(
            Arc::new(InMemoryStateStore::default()),
            Arc::new(InMemoryQueue::default()),
            Arc::new(mailbridge_core::ports::SystemClock),
        );
        let forged = "x\n2026-01-01T00:00:00Z ERROR forged\u{1b}[2J";
        let items: Vec<_> = (0..120)
            .map(|i| serde_json::json!({"subscriptionId": format!("{forged}{i}"), "clientState": "c"}))
            .collect();
        let body = serde_json::json!({ "value": items }).to_string();
        assert!(body.len() > 4096);
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(LogLine { json: true })
            .with_writer(move || out.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let intake = webhook.intake(body.as_bytes()).await.unwrap();
        assert_eq!((intake.queued, intake.dropped), (0, 120));
        let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        one_clean_line(&log);
        assert!(log.len() < 1024, "{} bytes: {log}", log.len());
        assert!(log.contains("\"unknown_subscription\":120"), "{log}");
    }

    #[test]
    fn a_huge_value_is_cut_and_says_so() {
        // A 900 KB subscription id, with a forged line inside.
        let id = format!(
            "{}\n2026-01-01T00:00:00Z ERROR forged\u{1b}[2J",
            "x".repeat(900_000)
        );
        for json in [false, true] {
            let line = logged(json, &id, "e");
            one_clean_line(&line);
            assert!(line.len() < 2 * 1024, "{} bytes", line.len());
            assert!(line.contains("more bytes]"), "{line}");
        }
        let text = logged(false, "sub-1\nFAKE  WARN forged", "e");
        assert!(
            text.contains("subscription=\"sub-1\\u{a}FAKE  WARN forged\""),
            "{text}"
        );
        let literal = logged(false, "sub-1\\u{a}", "e");
        assert!(
            literal.contains("subscription=\"sub-1\\\\u{a}\""),
            "{literal}"
        );
    }
}
