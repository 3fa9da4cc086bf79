//! What the tool shows: event lines (for people, and as JSON), colour
//! when a person is looking, and progress bars on stderr.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use eventfold::Event;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::time;

/// Below this many events, a command finishes too fast for a progress bar
/// to help: none is drawn.
const PROGRESS_FROM: u64 = 50_000;
/// Progress is counted in steps of this many events, so that counting
/// costs nothing next to reading.
pub const PROGRESS_STEP: u64 = 4096;

/// What the standard streams are connected to, as seen once at start.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// Whether stdout is a terminal.
    pub stdout: bool,
    /// Whether stderr is a terminal.
    pub stderr: bool,
    /// Whether the environment asks for no colour (`NO_COLOR` set and not
    /// empty, as <https://no-color.org> defines it).
    pub no_color: bool,
}

impl Terminal {
    /// Looks at the process's standard streams and environment.
    pub fn detect() -> Terminal {
        Terminal {
            stdout: io::stdout().is_terminal(),
            stderr: io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }

    /// The style for stdout: colour only on a terminal, and not against
    /// `NO_COLOR`.
    pub fn style(&self) -> Style {
        Style {
            colour: self.stdout && !self.no_color,
        }
    }

    /// A progress bar over `total` events, labelled `what`: drawn on stderr
    /// when that is a terminal, the output is not (it would break the
    /// lines it shares the screen with), and `total` is large enough to
    /// take a while. Otherwise hidden: counting into it does nothing.
    pub fn progress(&self, total: u64, what: &'static str) -> ProgressBar {
        if !self.stderr || self.stdout || total < PROGRESS_FROM {
            return ProgressBar::hidden();
        }
        drawn_bar(
            total,
            what,
            "{msg} [{bar:40}] {human_pos}/{human_len} events, {eta} left",
        )
    }
}

impl Terminal {
    /// A progress bar over `total` bytes, labelled `what`, drawn on stderr
    /// when that is a terminal and `total` is large enough to take a
    /// while; hidden otherwise.
    pub fn byte_progress(&self, total: u64, what: &'static str) -> ProgressBar {
        if !self.stderr || total < PROGRESS_BYTES_FROM {
            return ProgressBar::hidden();
        }
        drawn_bar(
            total,
            what,
            "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes}, {binary_bytes_per_sec}, {eta} left",
        )
    }
}

/// A progress bar on stderr over `total`, labelled `what`, drawn with
/// indicatif's `template`.
fn drawn_bar(total: u64, what: &'static str, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(template)
        .expect("the templates are valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Below this many bytes, a check or copy is too quick for a progress bar.
const PROGRESS_BYTES_FROM: u64 = 16 * 1024 * 1024;

/// `bytes` for people: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// ANSI styling of text for stdout, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether to write ANSI codes at all.
    colour: bool,
}

impl Style {
    /// `text` dimmed.
    pub fn dim<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.paint("\x1b[2m", text)
    }

    /// `text` in bold.
    pub fn bold<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.paint("\x1b[1m", text)
    }

    /// `text` between the ANSI `code` and a reset, when colour is on.
    fn paint<'a>(&self, code: &str, text: &'a str) -> Cow<'a, str> {
        if self.colour {
            Cow::Owned(format!("{code}{text}\x1b[0m"))
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// How events are written, one a line.
#[derive(Debug, Clone, Copy)]
pub enum EventFormat {
    /// `SEQ  TIMESTAMP  TYPE  DATA`, for people.
    Human(Style),
    /// The export line: a JSON object with `seq` first (see [`JsonLine`]).
    Json,
}

impl EventFormat {
    /// Writes event `seq` as one line, newline included.
    ///
    /// # Errors
    ///
    /// The error of writing to `out`.
    pub fn write(&self, out: &mut impl Write, seq: u64, event: &Event) -> io::Result<()> {
        match self {
            EventFormat::Human(style) => {
                let data = compact_json(&event.data);
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    style.dim(&seq.to_string()),
                    time::rfc3339(event.ts),
                    style.bold(&printable(&event.event_type)),
                    printable(&data)
                )
            }
            EventFormat::Json => {
                serde_json::to_writer(&mut *out, &JsonLine::new(seq, event))?;
                out.write_all(b"\n")
            }
        }
    }
}

/// One event as `export` and `tail --json` write it: the event's stored
/// fields, with its sequence number first, so that each line reads alone
/// (`jq`, DuckDB's `read_json`).
#[derive(Debug, Serialize)]
pub struct JsonLine<'a> {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// The event's data.
    pub data: &'a Value,
    /// The event's timestamp, in Unix seconds.
    pub ts: u64,
    /// The event's id, left out when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// The event's metadata, left out when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<&'a Map<String, Value>>,
}

impl<'a> JsonLine<'a> {
    /// The line of event `seq`.
    pub fn new(seq: u64, event: &'a Event) -> JsonLine<'a> {
        JsonLine {
            seq,
            event_type: &event.event_type,
            data: &event.data,
            ts: event.ts,
            id: event.id.as_deref(),
            meta: event.meta.as_ref(),
        }
    }
}

/// `value` as compact JSON.
pub fn compact_json(value: &Value) -> String {
    // Serializing a Value cannot fail: its keys are strings.
    serde_json::to_string(value).expect("a JSON value serializes")
}

/// `text` with its control characters escaped (`\u{1b}`), so that text
/// from the log cannot move the cursor or recolour a terminal. JSON
/// already escapes those below U+0020, but not DEL nor the C1 controls.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            write!(escaped, "\\u{{{:x}}}", u32::from(c)).expect("writing to a String succeeds");
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_line_puts_seq_first_and_leaves_out_what_is_unset() {
        let event = Event::with_ts("paid", json!({"amount": 5}), 7);
        let mut out = Vec::new();
        EventFormat::Json.write(&mut out, 3, &event).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"seq\":3,\"type\":\"paid\",\"data\":{\"amount\":5},\"ts\":7}\n"
        );
    }

    #[test]
    fn human_line_without_colour() {
        let event = Event::with_ts("paid", json!({"amount": 5}), 0);
        let mut out = Vec::new();
        EventFormat::Human(Style { colour: false })
            .write(&mut out, 3, &event)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3  1970-01-01T00:00:00Z  paid  {\"amount\":5}\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(printable("a\x1b[2Jb\u{9b}"), "a\\u{1b}[2Jb\\u{9b}");
        assert!(matches!(printable("plain é"), Cow::Borrowed(_)));
    }
}
