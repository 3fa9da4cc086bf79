//! The event type and its one-line JSON form.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The longest line eventfold writes or reads, newline excluded: 256 MiB.
/// A longer line in a file can only be damage, and reading it whole could
/// exhaust memory.
pub(crate) const MAX_LINE: u64 = 256 * 1024 * 1024;

/// One fact that happened in the application, as stored in the log.
///
/// An event is a type name, arbitrary JSON data and a timestamp, and
/// optionally an id and metadata chosen by the caller. The log has no
/// opinion about the shape of `data`: it stores what it is given, and
/// reducers give events their meaning.
///
/// In `app.jsonl` an event is exactly one line of compact JSON, with the
/// type under the key `"type"`, followed by the event's sequence number,
/// `"seq"`, which the log adds (see [`EventLog::next_seq`]):
///
/// ```text
/// {"type":"todo_added","data":{"text":"buy milk"},"ts":1764028800,"seq":0}
/// ```
///
/// `id` and `meta` appear only when they are set, so an event without
/// them is stored exactly as eventfold has always stored it (lines
/// written before sequence numbers existed have no `"seq"` either: their
/// position is their place in the file):
///
/// ```text
/// {"type":"deposited","data":{"amount":5},"ts":1764028800,"id":"7f3a","meta":{"actor":"ana"},"seq":1}
/// ```
///
/// [`EventLog::next_seq`]: crate::EventLog::next_seq
///
/// # Examples
///
/// ```
/// use eventfold::Event;
/// use serde_json::json;
///
/// let event = Event::new("todo_added", json!({"text": "buy milk"}));
/// assert_eq!(event.event_type, "todo_added");
/// assert_eq!(event.data["text"], "buy milk");
/// assert!(event.ts > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The kind of event, for example `"todo_added"`. Serialized as `"type"`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's payload: any JSON value. The log does not validate it.
    pub data: Value,
    /// When the event was created, in seconds since the Unix epoch.
    pub ts: u64,
    /// An identifier chosen by the caller (a UUID or a ULID, say), or
    /// `None`. eventfold stores it and gives it back; it does not check
    /// that ids are unique. With [`EventLog::append_if`] it makes a
    /// retried append exactly-once (see there). Serialized as `"id"`,
    /// and left out of the line when `None`.
    ///
    /// [`EventLog::append_if`]: crate::EventLog::append_if
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free-form metadata about the event rather than of it: who caused it,
    /// correlation and causation ids, a request id. `None`, or a JSON
    /// object; serialized as `"meta"`, and left out of the line when
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
}

impl Event {
    /// How deeply arrays and objects may nest in `data`: 126.
    ///
    /// serde_json refuses to parse JSON nested more than 128 levels, and a
    /// stored line adds one (the event object), so eventfold refuses to
    /// append an event whose `data` nests deeper than this, with
    /// [`Error::InvalidEvent`]. A scalar has depth 0, `[1]` depth 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event, EventLog};
    /// use serde_json::json;
    ///
    /// let mut data = json!(1);
    /// for _ in 0..Event::MAX_DEPTH + 1 {
    ///     data = json!([data]);
    /// }
    /// # let dir = tempfile::tempdir()?;
    /// let mut log = EventLog::open(dir.path())?;
    /// let refused = log.append(&Event::new("deep", data));
    /// assert!(matches!(refused, Err(Error::InvalidEvent { .. })));
    /// assert_eq!(log.active_len(), 0);
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    pub const MAX_DEPTH: usize = 126;

    /// Creates an event stamped with the current time.
    ///
    /// `ts` is the current Unix time in seconds (0 if the system clock is
    /// set before 1970).
    ///
    /// A `serde_json::Value` cannot hold a float that is `NaN` or
    /// infinite: `json!(f64::NAN)` is already `null` before eventfold sees
    /// it, and the number is lost without an error. Build events from your
    /// own types with [`Event::from_typed`] or [`Event::from_data`], which
    /// refuse such floats.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::new("note_tagged", json!({"note": 3, "tag": "home"}));
    /// assert_eq!(event.data["tag"], "home");
    /// assert_eq!(json!(f64::NAN), json!(null)); // lost before it is an event
    /// ```
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Event::with_ts(event_type, data, ts)
    }

    /// Creates an event with an explicit timestamp.
    ///
    /// Useful for importing history and for tests that need byte-identical
    /// events.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::with_ts("imported", json!(null), 1_700_000_000);
    /// assert_eq!(event.ts, 1_700_000_000);
    /// ```
    pub fn with_ts(event_type: impl Into<String>, data: Value, ts: u64) -> Self {
        Event {
            event_type: event_type.into(),
            data,
            ts,
            id: None,
            meta: None,
        }
    }

    /// Sets the event's [`id`](Event::id).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::with_ts("paid", json!({"amount": 5}), 7).with_id("01JF8Z3K");
    /// assert_eq!(event.id.as_deref(), Some("01JF8Z3K"));
    /// assert_eq!(
    ///     event.to_json_line()?,
    ///     r#"{"type":"paid","data":{"amount":5},"ts":7,"id":"01JF8Z3K"}"#
    /// );
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds one entry to the event's [`meta`](Event::meta)data, creating
    /// the object on the first call; a key set twice keeps the last value.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::with_ts("paid", json!(5), 7)
    ///     .with_meta("actor", json!("ana"))
    ///     .with_meta("correlation_id", json!("req-19"));
    /// let meta = event.meta.as_ref().expect("set above");
    /// assert_eq!(meta["actor"], "ana");
    /// assert_eq!(
    ///     event.to_json_line()?,
    ///     r#"{"type":"paid","data":5,"ts":7,"meta":{"actor":"ana","correlation_id":"req-19"}}"#
    /// );
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    #[must_use]
    pub fn with_meta(mut self, key: impl Into<String>, value: Value) -> Self {
        self.meta
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
        self
    }

    /// Serializes the event as compact JSON on one line, without the
    /// trailing newline: the line the log stores, but for the `"seq"` the
    /// log adds at its end.
    ///
    /// JSON escapes every control character inside strings, so the result
    /// never contains a newline, whatever the event holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde_json::json;
    ///
    /// let event = Event::with_ts("note", json!({"text": "two\nlines"}), 7);
    /// let line = event.to_json_line()?;
    /// assert_eq!(line, r#"{"type":"note","data":{"text":"two\nlines"},"ts":7}"#);
    /// assert!(!line.contains('\n'));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] if the line could not be read back exactly
    /// (see [`MAX_DEPTH`](Self::MAX_DEPTH));
    /// [`Error::EventTooLarge`] if the line would exceed 256 MiB.
    pub fn to_json_line(&self) -> Result<String> {
        let mut buf = Vec::new();
        self.serialize_checked(&mut buf)?;
        // serde_json only ever writes UTF-8.
        Ok(String::from_utf8(buf).expect("serde_json writes UTF-8"))
    }

    /// Parses one stored line (without its newline) back into an event.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    ///
    /// let event = Event::from_json_line(r#"{"type":"x","data":[1,2],"ts":5}"#)?;
    /// assert_eq!(event.event_type, "x");
    /// assert_eq!(event.ts, 5);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The serde_json error if the line is not JSON or lacks `type`, `data`
    /// or `ts`.
    pub fn from_json_line(line: &str) -> std::result::Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// Appends the event's stored line, with sequence number `seq` and its
    /// newline, to `buf`, after checking that it reads back exactly as it
    /// is. On error `buf` is as it was.
    /// `version` is the schema version of its type (see
    /// [`Upcasters`](crate::Upcasters)), written as `"v"` when above 1.
    pub(crate) fn write_line(&self, buf: &mut Vec<u8>, seq: u64, version: u32) -> Result<()> {
        let start = buf.len();
        self.serialize_checked(buf)?;
        // The event's JSON is an object: its closing brace makes way for
        // the version and the sequence number.
        buf.pop();
        write_version(buf, version);
        writeln!(buf, ",\"seq\":{seq}}}").expect("writing to a Vec succeeds");
        if (buf.len() - start - 1) as u64 > MAX_LINE {
            let size = (buf.len() - start - 1) as u64;
            buf.truncate(start);
            return Err(self.too_large(size));
        }
        Ok(())
    }

    /// Appends the event's JSON to `buf` after checking that it reads back
    /// exactly as it is. On error `buf` is as it was.
    fn serialize_checked(&self, buf: &mut Vec<u8>) -> Result<()> {
        let checked = check_readable(&self.data, 0).and_then(|()| match &self.meta {
            Some(meta) => check_object(meta, 0),
            None => Ok(()),
        });
        if let Err(reason) = checked {
            return Err(Error::InvalidEvent {
                event_type: self.event_type.clone(),
                reason,
            });
        }
        let start = buf.len();
        if let Err(source) = serde_json::to_writer(&mut *buf, self) {
            buf.truncate(start);
            return Err(Error::Serialize {
                what: format!("event of type {:?}", self.event_type),
                source,
            });
        }
        let size = (buf.len() - start) as u64;
        if size > MAX_LINE {
            buf.truncate(start);
            return Err(self.too_large(size));
        }
        Ok(())
    }

    fn too_large(&self, size: u64) -> Error {
        Error::EventTooLarge {
            event_type: self.event_type.clone(),
            size,
            max: MAX_LINE,
        }
    }
}

/// Events checked and serialized ahead of knowing their sequence numbers,
/// as a thread prepares them before it joins a group commit: each event's
/// JSON without its closing brace, which numbering puts back after the
/// `seq`.
#[derive(Debug, Default)]
pub(crate) struct Unnumbered {
    json: Vec<u8>,
    /// Where each event's JSON ends in `json`, and its type (for an error).
    events: Vec<(usize, String)>,
}

impl Unnumbered {
    /// Checks and serializes `events`, as [`Event::write_line`] does, each
    /// with the version `version_of` gives its type.
    pub(crate) fn prepare(
        events: &[Event],
        version_of: impl Fn(&str) -> u32,
    ) -> Result<Unnumbered> {
        let mut prepared = Unnumbered::default();
        for event in events {
            event.serialize_checked(&mut prepared.json)?;
            prepared.json.pop();
            write_version(&mut prepared.json, version_of(&event.event_type));
            prepared
                .events
                .push((prepared.json.len(), event.event_type.clone()));
        }
        Ok(prepared)
    }

    /// How many events there are.
    pub(crate) fn len(&self) -> u64 {
        self.events.len() as u64
    }

    /// Appends the events' stored lines to `buf`, numbered from
    /// `first_seq`. On error (a line over the limit once numbered) `buf`
    /// is as it was.
    pub(crate) fn write_numbered(&self, buf: &mut Vec<u8>, first_seq: u64) -> Result<()> {
        let before = buf.len();
        let mut start = 0;
        for (seq, (end, event_type)) in (first_seq..).zip(&self.events) {
            let line_start = buf.len();
            buf.extend_from_slice(&self.json[start..*end]);
            writeln!(buf, ",\"seq\":{seq}}}").expect("writing to a Vec succeeds");
            let size = (buf.len() - line_start - 1) as u64;
            if size > MAX_LINE {
                buf.truncate(before);
                return Err(Error::EventTooLarge {
                    event_type: event_type.clone(),
                    size,
                    max: MAX_LINE,
                });
            }
            start = *end;
        }
        Ok(())
    }
}

/// The fields of a stored line that every reader needs, read without
/// building its `data`: for typed views, which decode `data` themselves.
/// It accepts what [`StoredLine`] accepts.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) data: &'a serde_json::value::RawValue,
    #[allow(dead_code)]
    ts: u64,
    #[serde(default, borrow)]
    #[allow(dead_code)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<AnyObject>,
    #[serde(default)]
    pub(crate) seq: Option<u64>,
    /// The schema version of the event's type; absent means 1.
    #[serde(default)]
    pub(crate) v: Option<u32>,
}

/// An object, read and dropped: what `meta` must be.
pub(crate) struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<AnyObject, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// Writes `,"v":N` for a version above 1 (1 is the version of a line
/// without `"v"`).
fn write_version(buf: &mut Vec<u8>, version: u32) {
    if version > 1 {
        write!(buf, ",\"v\":{version}").expect("writing to a Vec succeeds");
    }
}

/// A line of the log as it is read: an [`Event`] and, for lines written
/// since sequence numbers exist, its `seq`.
#[derive(Deserialize)]
pub(crate) struct StoredLine {
    #[serde(rename = "type")]
    event_type: String,
    data: Value,
    ts: u64,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) seq: Option<u64>,
    /// The schema version of the event's type; absent means 1.
    #[serde(default)]
    pub(crate) v: Option<u32>,
}

impl StoredLine {
    /// The event of the line.
    pub(crate) fn into_event(self) -> Event {
        Event {
            event_type: self.event_type,
            data: self.data,
            ts: self.ts,
            id: self.id,
            meta: self.meta,
        }
    }
}

/// The object key that serde_json (with its `raw_value` feature, which
/// eventfold uses) reads as a raw JSON text rather than as a key: data
/// holding it would not read back as written.
pub(crate) const RESERVED_KEY: &str = "$serde_json::private::RawValue";

/// Checks that `value`, found `depth` levels deep in an event's data, is
/// JSON that serde_json parses back identically. Numbers need no check: a
/// `Value` cannot hold a non-finite float, and with serde_json's
/// `float_roundtrip` feature every finite one reads back bit for bit.
/// The walk stops at the first problem, so it never recurses deeper than
/// [`Event::MAX_DEPTH`].
fn check_readable(value: &Value, depth: usize) -> std::result::Result<(), String> {
    match value {
        Value::Array(items) => {
            if depth >= Event::MAX_DEPTH {
                return Err(too_deep());
            }
            items.iter().try_for_each(|c| check_readable(c, depth + 1))
        }
        Value::Object(map) => check_object(map, depth),
        _ => Ok(()),
    }
}

/// Why data nested past [`Event::MAX_DEPTH`] is refused.
fn too_deep() -> String {
    format!(
        "it nests arrays and objects more than {} deep, which serde_json cannot read back",
        Event::MAX_DEPTH
    )
}

/// [`check_readable`] for an object.
fn check_object(map: &Map<String, Value>, depth: usize) -> std::result::Result<(), String> {
    if map.contains_key(RESERVED_KEY) {
        return Err(format!(
            "it has an object with the key {RESERVED_KEY:?}, which serde_json reserves and \
             would not read back as written"
        ));
    }
    if depth >= Event::MAX_DEPTH {
        return Err(too_deep());
    }
    map.values().try_for_each(|c| check_readable(c, depth + 1))
}

/// The hash of one stored line (without its newline): xxh3-64.
pub(crate) fn line_hash(line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(line)
}

/// A line hash as snapshots store it: 16 lowercase hex digits.
pub(crate) fn hash_hex(hash: u64) -> String {
    format!("{hash:016x}")
}
