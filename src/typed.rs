//! Typed events: Rust values that serialize to the line format, appended
//! with every check that they read back as written, and decoded straight
//! from the line for typed views, without building a `serde_json::Value`.
//!
//! A typed event is a value whose serialization is an object with a
//! `"type"` string and `"data"`: serde's adjacent tagging,
//! `#[serde(tag = "type", content = "data")]` on an enum, which is exactly
//! the line format. A typed view knows its enum's variant names (asked of
//! its `Deserialize` implementation once), so that it can tell an event
//! type it does not name (skipped, or an error in a strict view) from an
//! event of a type it names whose `data` does not decode (always an
//! error).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::ser::{self, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::error::{Error, Result};
use crate::event::{AnyObject, Event, Header, StoredLine};
use crate::upcast::Upcasters;

/// A reducer over typed events: [`ReduceFn`](crate::ReduceFn) for an
/// event type `E` of your own, which eventfold decodes from each line.
///
/// Register it with
/// [`EventLogBuilder::typed_view`](crate::EventLogBuilder::typed_view).
/// The same rules apply as for any reducer: keep it pure, and bump the
/// view's version
/// ([`EventLogBuilder::view_version`](crate::EventLogBuilder::view_version))
/// whenever you change what it computes.
///
/// # Examples
///
/// ```
/// use eventfold::TypedReduceFn;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
/// enum Ledger {
///     Deposited { amount: u64 },
///     Withdrawn { amount: u64 },
/// }
///
/// fn balance(balance: i64, event: &Ledger) -> i64 {
///     match event {
///         Ledger::Deposited { amount } => balance + *amount as i64,
///         Ledger::Withdrawn { amount } => balance - *amount as i64,
///     }
/// }
/// let reducer: TypedReduceFn<i64, Ledger> = balance;
/// assert_eq!(reducer(0, &Ledger::Deposited { amount: 5 }), 5);
/// ```
pub type TypedReduceFn<S, E> = fn(S, &E) -> S;

/// A reducer over typed events that also gets each event's sequence
/// number, as [`ReduceSeqFn`](crate::ReduceSeqFn) does.
///
/// # Examples
///
/// ```
/// use eventfold::TypedReduceSeqFn;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(tag = "type", content = "data")]
/// enum Account { Renamed(String) }
///
/// fn renamed_at(_: Option<u64>, seq: u64, _: &Account) -> Option<u64> {
///     Some(seq)
/// }
/// let reducer: TypedReduceSeqFn<Option<u64>, Account> = renamed_at;
/// assert_eq!(reducer(None, 7, &Account::Renamed("b".into())), Some(7));
/// ```
pub type TypedReduceSeqFn<S, E> = fn(S, u64, &E) -> S;

impl Event {
    /// An event from a typed value `event`, whose serialization must be an
    /// object with a `"type"` string and `"data"` (serde's adjacent
    /// tagging, `#[serde(tag = "type", content = "data")]` on an enum; a
    /// unit variant has no `data`, stored as `null`), stamped with the
    /// current time.
    ///
    /// Checked so that what is stored reads back as `event`: no float in
    /// it is `NaN` or infinite (JSON has no such numbers; serde_json would
    /// write `null`), and its line, decoded as `E` again, serializes the
    /// same (this catches a field left out that reads back as another
    /// default, and other serializations that do not round-trip; values
    /// that JSON cannot tell apart, such as `Some(None)` and `None` of an
    /// `Option<Option<_>>`, read back as the one JSON keeps). [`EventLog::append_typed`]
    /// is the short way to append one.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Error, Event};
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::json;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
    /// enum Reading {
    ///     Measured { celsius: f64 },
    /// }
    ///
    /// let event = Event::from_typed(&Reading::Measured { celsius: 21.5 })?;
    /// assert_eq!((event.event_type.as_str(), event.data), ("measured", json!({"celsius": 21.5})));
    ///
    /// let refused = Event::from_typed(&Reading::Measured { celsius: f64::NAN });
    /// assert!(matches!(refused, Err(Error::InvalidEvent { event_type, .. }) if event_type == "measured"));
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] if `event` does not serialize as such an
    /// object or would not read back as it is; [`Error::Serialize`] if it
    /// does not serialize at all.
    ///
    /// [`EventLog::append_typed`]: crate::EventLog::append_typed
    pub fn from_typed<E: Serialize + DeserializeOwned>(event: &E) -> Result<Event> {
        let value = serde_json::to_value(event).map_err(|source| Error::Serialize {
            what: format!("a typed event ({})", std::any::type_name::<E>()),
            source,
        })?;
        let (event_type, data) = split_tagged::<E>(value.clone())?;
        check_finite(event, &event_type, false)?;
        let result = Event::new(event_type, data);
        // What is stored is `type` and `data` of this line: decoded again,
        // they must give the same value.
        result.to_json_line()?;
        let back = decode_data::<E>(&result.event_type, &result.data.to_string())
            .map_err(|e| e.to_string())
            .and_then(|back| serde_json::to_value(&back).map_err(|e| e.to_string()));
        match back {
            Ok(back) if back == value => Ok(result),
            Ok(back) => Err(Error::InvalidEvent {
                event_type: result.event_type,
                reason: format!(
                    "it would read back as {}, not as the {} it is (a field left out \
                     that reads back as another default, or a serialization that does not \
                     round-trip)",
                    crate::error::excerpt(back.to_string().as_bytes()),
                    crate::error::excerpt(value.to_string().as_bytes()),
                ),
            }),
            Err(e) => Err(Error::InvalidEvent {
                event_type: result.event_type,
                reason: format!(
                    "its line would not decode as {} again: {e}",
                    std::any::type_name::<E>()
                ),
            }),
        }
    }

    /// An event of type `event_type` whose data is `data`, serialized,
    /// stamped with the current time: the explicit `(type, data)` form of
    /// [`from_typed`](Self::from_typed), for data of any serializable type.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Event;
    /// use serde::Serialize;
    /// use serde_json::json;
    ///
    /// #[derive(Serialize)]
    /// struct Deposit { account: String, amount: u64 }
    ///
    /// let event = Event::from_data("deposited", &Deposit { account: "a".into(), amount: 5 })?;
    /// assert_eq!(event.data, json!({"account": "a", "amount": 5}));
    /// assert!(Event::from_data("measured", &[1.0, f64::INFINITY]).is_err());
    /// # Ok::<(), eventfold::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] if a float in `data` is `NaN` or infinite;
    /// [`Error::Serialize`] if `data` does not serialize.
    pub fn from_data<D: Serialize + ?Sized>(
        event_type: impl Into<String>,
        data: &D,
    ) -> Result<Event> {
        let event_type = event_type.into();
        check_finite(data, &event_type, true)?;
        let data = serde_json::to_value(data).map_err(|source| Error::Serialize {
            what: format!("the data of an event of type {event_type:?}"),
            source,
        })?;
        Ok(Event::new(event_type, data))
    }
}

/// The `type` and `data` of a typed event's serialization.
fn split_tagged<E>(value: Value) -> Result<(String, Value)> {
    let how = "derive its Serialize with #[serde(tag = \"type\", content = \"data\")]";
    let refuse = |reason: String| Error::InvalidEvent {
        event_type: std::any::type_name::<E>().to_owned(),
        reason,
    };
    let Value::Object(mut object) = value else {
        return Err(refuse(format!(
            "it serializes as {}, not as an object with \"type\" and \"data\": {how}",
            crate::error::excerpt(value.to_string().as_bytes())
        )));
    };
    let event_type = match object.remove("type") {
        Some(Value::String(event_type)) => event_type,
        Some(other) => {
            return Err(refuse(format!(
                "its \"type\" is {other}, not a string: {how}"
            )));
        }
        None => return Err(refuse(format!("it serializes with no \"type\": {how}"))),
    };
    let data = object.remove("data").unwrap_or(Value::Null);
    if let Some(key) = object.keys().next() {
        return Err(Error::InvalidEvent {
            event_type,
            reason: format!(
                "it serializes with a key {key:?} beside \"type\" and \"data\", which the line \
                 has no place for: {how}"
            ),
        });
    }
    Ok((event_type, data))
}

/// Refuses a value holding a `NaN` or infinite float, naming where it is
/// (`data.readings[2]`, say); `in_data` when `value` is the data itself
/// rather than the whole tagged event.
fn check_finite<T: Serialize + ?Sized>(value: &T, event_type: &str, in_data: bool) -> Result<()> {
    let mut check = FloatCheck {
        path: if in_data {
            vec!["data".to_owned()]
        } else {
            Vec::new()
        },
        index: Vec::new(),
    };
    match value.serialize(&mut check) {
        Ok(()) => Ok(()),
        Err(Found(reason)) => Err(Error::InvalidEvent {
            event_type: event_type.to_owned(),
            reason,
        }),
    }
}

/// A serializer that serializes nothing: it walks a value and stops at
/// the first float that JSON cannot hold.
struct FloatCheck {
    /// Field names and indexes down to the value being walked.
    path: Vec<String>,
    /// The next index of each sequence being walked.
    index: Vec<usize>,
}

/// What [`FloatCheck`] found (or a serializer's own error).
#[derive(Debug)]
struct Found(String);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Found(msg.to_string())
    }
}

impl FloatCheck {
    fn float(&self, value: f64) -> std::result::Result<(), Found> {
        if value.is_finite() {
            return Ok(());
        }
        let mut at = String::new();
        for part in &self.path {
            if !part.starts_with('[') && !at.is_empty() {
                at.push('.');
            }
            at.push_str(part);
        }
        let at = if at.is_empty() {
            "the value".to_owned()
        } else {
            at
        };
        Err(Found(format!(
            "{at} is {value}, which JSON cannot hold (serde_json would store null and lose it)"
        )))
    }

    fn within<T: Serialize + ?Sized>(
        &mut self,
        part: String,
        value: &T,
    ) -> std::result::Result<(), Found> {
        self.path.push(part);
        let result = value.serialize(&mut *self);
        self.path.pop();
        result
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> std::result::Result<(), Found> {
        let i = self.index.last().copied().unwrap_or(0);
        if let Some(last) = self.index.last_mut() {
            *last += 1;
        }
        self.within(format!("[{i}]"), value)
    }

    fn start(&mut self) -> &mut Self {
        self.index.push(0);
        self
    }

    fn end(&mut self) -> std::result::Result<(), Found> {
        self.index.pop();
        Ok(())
    }
}

/// The serializer's methods that only take a scalar.
macro_rules! scalars {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, _: $ty) -> std::result::Result<(), Found> { Ok(()) })*
    };
}

impl ser::Serializer for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8], serialize_unit_struct: &'static str);

    fn serialize_f32(self, v: f32) -> std::result::Result<(), Found> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> std::result::Result<(), Found> {
        self.float(v)
    }
    fn serialize_none(self) -> std::result::Result<(), Found> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> std::result::Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> std::result::Result<(), Found> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> std::result::Result<(), Found> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> std::result::Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> std::result::Result<(), Found> {
        self.within(variant.to_owned(), value)
    }
    fn serialize_seq(self, _: Option<usize>) -> std::result::Result<Self, Found> {
        Ok(self.start())
    }
    fn serialize_tuple(self, _: usize) -> std::result::Result<Self, Found> {
        Ok(self.start())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> std::result::Result<Self, Found> {
        Ok(self.start())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> std::result::Result<Self, Found> {
        self.path.push(variant.to_owned());
        Ok(self.start())
    }
    fn serialize_map(self, _: Option<usize>) -> std::result::Result<Self, Found> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> std::result::Result<Self, Found> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> std::result::Result<Self, Found> {
        self.path.push(variant.to_owned());
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        v: &T,
    ) -> std::result::Result<(), Found> {
        self.element(v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        FloatCheck::end(self)
    }
}

impl ser::SerializeTuple for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_element<T: Serialize + ?Sized>(
        &mut self,
        v: &T,
    ) -> std::result::Result<(), Found> {
        self.element(v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        FloatCheck::end(self)
    }
}

impl ser::SerializeTupleStruct for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> std::result::Result<(), Found> {
        self.element(v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        FloatCheck::end(self)
    }
}

impl ser::SerializeTupleVariant for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> std::result::Result<(), Found> {
        self.element(v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        self.path.pop();
        FloatCheck::end(self)
    }
}

impl ser::SerializeMap for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> std::result::Result<(), Found> {
        // The key as JSON shows it, for the path of what is inside.
        let key = serde_json::to_value(key).map_or_else(
            |_| "?".to_owned(),
            |key| match key {
                Value::String(key) => key,
                other => other.to_string(),
            },
        );
        self.path.push(key);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> std::result::Result<(), Found> {
        let result = v.serialize(&mut **self);
        self.path.pop();
        result
    }
    fn end(self) -> std::result::Result<(), Found> {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> std::result::Result<(), Found> {
        self.within(key.to_owned(), v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut FloatCheck {
    type Ok = ();
    type Error = Found;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> std::result::Result<(), Found> {
        self.within(key.to_owned(), v)
    }
    fn end(self) -> std::result::Result<(), Found> {
        self.path.pop();
        Ok(())
    }
}

pub(crate) use crate::lines::LineFailure;

/// How a typed view treats an event type its enum does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Skipped: a newer program's events, which this one has no use for.
    Skip,
    /// An error naming the line, as for an event that does not decode.
    Fail,
}

/// A typed view's reducer with its event type erased, as a view holds it:
/// decodes each line and folds it.
pub(crate) trait TypedFold<S>: Send + Sync {
    /// Folds `line` (as stored, without its newline) into `state`.
    /// `number` checks the line's own `seq` against its place and gives
    /// the sequence number to fold it with. An error gives the state back.
    fn fold(
        &self,
        state: S,
        line: &[u8],
        number: &mut dyn FnMut(Option<u64>) -> Result<u64>,
        upcasters: Option<&Upcasters>,
        unknown: Unknown,
    ) -> std::result::Result<S, (S, LineFailure)>;
}

/// The reducer of a typed view, of either kind.
pub(crate) enum TypedReducer<S, E> {
    Plain(TypedReduceFn<S, E>),
    WithSeq(TypedReduceSeqFn<S, E>),
}

/// A typed reducer and what it knows of its event type.
pub(crate) struct Typed<S, E> {
    reducer: TypedReducer<S, E>,
    /// The variant names of `E`, when its `Deserialize` tells them.
    variants: Option<&'static [&'static str]>,
    _event: PhantomData<fn() -> E>,
}

impl<S, E: DeserializeOwned> Typed<S, E> {
    pub(crate) fn new(reducer: TypedReducer<S, E>) -> Typed<S, E> {
        Typed {
            reducer,
            variants: variant_names::<E>(),
            _event: PhantomData,
        }
    }

    /// Whether `E` names `event_type` (or cannot tell).
    fn names(&self, event_type: &str) -> bool {
        self.variants.is_none_or(|v| v.contains(&event_type))
    }

    fn apply(&self, state: S, seq: u64, event: &E) -> S {
        match self.reducer {
            TypedReducer::Plain(f) => f(state, event),
            TypedReducer::WithSeq(f) => f(state, seq, event),
        }
    }

    /// The line in one pass: its fields read, `data` decoded straight into
    /// `E` (or passed over, for a type `E` does not name). `None` when the
    /// pass fails or cannot decide, for [`decode_slowly`](Self::decode_slowly)
    /// to find out why.
    fn decode_quickly<'a>(
        &self,
        line: &'a [u8],
        upcasters: Option<&Upcasters>,
    ) -> Option<LineParts<'a, E>> {
        let seed = LineSeed::<E> {
            variants: self.variants,
            upcast: upcasters,
            _event: PhantomData,
        };
        // Checked as UTF-8 once, the strings inside need no check of their
        // own (a line that is not UTF-8 goes the slow way, to its error).
        let text = std::str::from_utf8(line).ok()?;
        if let Some(split) = canonical::split(text) {
            return self.decode_split(&split, upcasters);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let parts = de::DeserializeSeed::deserialize(seed, &mut de).ok()?;
        de.end().ok()?;
        parts.complete().then_some(parts)
    }

    /// A line of the shape eventfold writes (see [`canonical::split`]): its
    /// data parsed straight into `E`, or checked and passed over for a type
    /// `E` does not name. `None` for an upcast, or data that does not
    /// parse or decode, which the slow path then reads.
    fn decode_split<'a>(
        &self,
        split: &canonical::Split<'a>,
        upcasters: Option<&Upcasters>,
    ) -> Option<LineParts<'a, E>> {
        let version = split.version.unwrap_or(1);
        if upcasters.is_some_and(|u| u.applies(split.event_type, version)) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(split.data);
        let data = if self
            .variants
            .is_some_and(|v| !v.contains(&split.event_type))
        {
            de::Deserialize::deserialize(&mut de).map(|Checked| Data::Skipped)
        } else {
            let seed = DataSeed::<E> {
                tag: split.event_type,
                _event: PhantomData,
            };
            de::DeserializeSeed::deserialize(seed, &mut de).map(Data::Decoded)
        };
        let data = data.ok()?;
        de.end().ok()?;
        Some(LineParts {
            event_type: Some(Cow::Borrowed(split.event_type)),
            data,
            ts: true,
            seq: split.seq,
        })
    }

    /// The line read the long way, with every failure named: the line's
    /// fields, then (upcast if need be) its event as `E`. `Ok(None)` for a
    /// type that `E` does not name, when such types are skipped.
    fn decode_slowly(
        &self,
        line: &[u8],
        number: &mut dyn FnMut(Option<u64>) -> Result<u64>,
        upcasters: Option<&Upcasters>,
        unknown: Unknown,
    ) -> std::result::Result<(u64, Option<E>), LineFailure> {
        let header: Header<'_> = serde_json::from_slice(line).map_err(|e| {
            LineFailure::Detail(format!(
                "line is not a valid event: {}",
                crate::error::shorten(e)
            ))
        })?;
        let seq = number(header.seq).map_err(LineFailure::Error)?;
        let version = header.v.unwrap_or(1);
        let (event_type, decoded): (Cow<'_, str>, _) = match upcasters {
            Some(upcasters) if upcasters.applies(&header.event_type, version) => {
                // An old shape: built as a `Value`, upcast, then decoded.
                let stored: StoredLine = serde_json::from_slice(line)
                    .map_err(|e| LineFailure::Detail(format!("line is not a valid event: {e}")))?;
                let event = upcasters.apply(stored.into_event(), version);
                let tagged = serde_json::json!({"type": event.event_type, "data": event.data});
                (Cow::Owned(event.event_type), E::deserialize(tagged))
            }
            _ => (
                Cow::Borrowed(&*header.event_type),
                decode_data::<E>(&header.event_type, header.data.get()),
            ),
        };
        match decoded {
            Ok(event) => Ok((seq, Some(event))),
            Err(_) if !self.names(&event_type) && unknown == Unknown::Skip => {
                // Passed over, but only if it is a valid event.
                match serde_json::from_str::<Checked>(header.data.get()) {
                    Ok(Checked) => Ok((seq, None)),
                    Err(e) => Err(LineFailure::Detail(format!(
                        "line is not a valid event: {e}"
                    ))),
                }
            }
            Err(e) => {
                let what = std::any::type_name::<E>();
                Err(LineFailure::Detail(if self.names(&event_type) {
                    format!(
                        "the event of type {event_type:?} does not decode as {what}: {e} (if it \
                         is an older shape of the event, register an upcaster that turns it into \
                         today's)"
                    )
                } else {
                    format!(
                        "the event type {event_type:?} is not one that {what} names, and this \
                         view is strict about unknown types (add the variant, register an \
                         upcaster into a type it names, or make the view lenient)"
                    )
                }))
            }
        }
    }
}

impl<S, E> TypedFold<S> for Typed<S, E>
where
    S: Send,
    E: DeserializeOwned,
{
    fn fold(
        &self,
        state: S,
        line: &[u8],
        number: &mut dyn FnMut(Option<u64>) -> Result<u64>,
        upcasters: Option<&Upcasters>,
        unknown: Unknown,
    ) -> std::result::Result<S, (S, LineFailure)> {
        let mut numbered = None;
        if let Some(parts) = self.decode_quickly(line, upcasters) {
            let seq = match number(parts.seq) {
                Ok(seq) => seq,
                Err(e) => return Err((state, LineFailure::Error(e))),
            };
            match parts.data {
                Data::Decoded(event) => return Ok(self.apply(state, seq, &event)),
                Data::Skipped if unknown == Unknown::Skip => return Ok(state),
                // Strict about a type the enum does not name: the slow
                // path says so, with the line numbered already.
                _ => numbered = Some(seq),
            }
        }
        let mut again = |found| match numbered {
            Some(seq) => Ok(seq),
            None => number(found),
        };
        match self.decode_slowly(line, &mut again, upcasters, unknown) {
            Ok((seq, Some(event))) => Ok(self.apply(state, seq, &event)),
            Ok((_, None)) => Ok(state),
            Err(failure) => Err((state, failure)),
        }
    }
}

/// `data` (a JSON text) decoded as the content of `E`'s variant
/// `event_type`: `E` sees only `{"type", "data"}`, as it serialized them.
fn decode_data<E: DeserializeOwned>(event_type: &str, data: &str) -> serde_json::Result<E> {
    let mut de = serde_json::Deserializer::from_str(data);
    let seed = DataSeed::<E> {
        tag: event_type,
        _event: PhantomData,
    };
    let event = de::DeserializeSeed::deserialize(seed, &mut de)?;
    de.end()?;
    Ok(event)
}

/// Any JSON value, read and dropped, but checked as a `Value` would be:
/// numbers in range, string escapes valid (what `IgnoredAny` does not
/// check). For the data of events a typed view passes over.
struct Checked;

impl<'de> de::Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked)
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Checked, A::Error> {
        while map.next_entry::<CheckedKey, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// An object key, checked as a `Value`'s would be: not serde_json's
/// reserved raw-value key.
struct CheckedKey;

impl<'de> de::Deserialize<'de> for CheckedKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let key = Text::deserialize(d)?;
        if key.0 == crate::event::RESERVED_KEY {
            return Err(de::Error::custom("a reserved key"));
        }
        Ok(CheckedKey)
    }
}

/// What one pass over a line found.
struct LineParts<'a, E> {
    event_type: Option<Cow<'a, str>>,
    data: Data<E>,
    ts: bool,
    seq: Option<u64>,
}

impl<E> LineParts<'_, E> {
    /// Whether the line had everything a valid event has, and its data
    /// was decided on.
    fn complete(&self) -> bool {
        self.event_type.is_some()
            && self.ts
            && !matches!(self.data, Data::Missing | Data::Undecided)
    }
}

/// What became of a line's `data` in one pass.
enum Data<E> {
    /// No `data` (yet).
    Missing,
    /// Decoded as `E`.
    Decoded(E),
    /// Passed over: a type that `E` does not name.
    Skipped,
    /// Left for the slow path: before its type, or of a type with
    /// upcasters.
    Undecided,
}

/// The keys of a stored line.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Type,
    Data,
    Ts,
    Seq,
    V,
    Id,
    Meta,
    #[serde(other)]
    Other,
}

impl Field {
    /// Its place among the known keys, which may appear once each.
    fn index(&self) -> Option<usize> {
        match self {
            Field::Type => Some(0),
            Field::Data => Some(1),
            Field::Ts => Some(2),
            Field::Seq => Some(3),
            Field::V => Some(4),
            Field::Id => Some(5),
            Field::Meta => Some(6),
            Field::Other => None,
        }
    }
}

/// Reads one stored line in one pass (see [`Typed::decode_quickly`]).
struct LineSeed<'u, E> {
    variants: Option<&'static [&'static str]>,
    upcast: Option<&'u Upcasters>,
    _event: PhantomData<fn() -> E>,
}

impl<'de, E: de::Deserialize<'de>> de::DeserializeSeed<'de> for LineSeed<'_, E> {
    type Value = LineParts<'de, E>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, E: de::Deserialize<'de>> de::Visitor<'de> for LineSeed<'_, E> {
    type Value = LineParts<'de, E>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event")
    }

    fn visit_map<A: de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut parts = LineParts {
            event_type: None,
            data: Data::Missing,
            ts: false,
            seq: None,
        };
        let mut seen = [false; 7];
        while let Some(field) = map.next_key::<Field>()? {
            if let Some(at) = field.index() {
                if seen[at] {
                    return Err(de::Error::custom("a key appears twice"));
                }
                seen[at] = true;
            }
            match field {
                Field::Type => parts.event_type = Some(map.next_value::<Text<'de>>()?.0),
                Field::Data => {
                    parts.data = match parts.event_type.as_deref() {
                        Some(t) if self.upcast.is_some_and(|u| u.has_steps_from(t)) => {
                            map.next_value::<de::IgnoredAny>()?;
                            Data::Undecided
                        }
                        Some(t) if self.variants.is_some_and(|v| !v.contains(&t)) => {
                            map.next_value::<Checked>()?;
                            Data::Skipped
                        }
                        Some(t) => Data::Decoded(map.next_value_seed(DataSeed::<E> {
                            tag: t,
                            _event: PhantomData,
                        })?),
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                            Data::Undecided
                        }
                    }
                }
                Field::Ts => {
                    map.next_value::<u64>()?;
                    parts.ts = true;
                }
                Field::Seq => parts.seq = map.next_value::<Option<u64>>()?,
                Field::V => {
                    map.next_value::<Option<u32>>()?;
                }
                Field::Id => {
                    map.next_value::<Option<Text<'de>>>()?;
                }
                Field::Meta => {
                    map.next_value::<Option<AnyObject>>()?;
                }
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// A string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// Decodes a line's `data` as the content of `E`'s variant `tag`: `E` is
/// given the object `{"type": tag, "data": <the data>}` it expects, with
/// the data read straight from the line.
struct DataSeed<'t, E> {
    tag: &'t str,
    _event: PhantomData<fn() -> E>,
}

impl<'de, E: de::Deserialize<'de>> de::DeserializeSeed<'de> for DataSeed<'_, E> {
    type Value = E;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<E, D::Error> {
        E::deserialize(Tagged {
            tag: self.tag,
            content: d,
        })
    }
}

/// The object `{"type": tag, "data": content}`, as a deserializer.
struct Tagged<'t, D> {
    tag: &'t str,
    content: D,
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Tagged<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, D::Error> {
        visitor.visit_map(TaggedMap {
            tag: self.tag,
            content: Some(self.content),
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The two entries of [`Tagged`].
struct TaggedMap<'t, D> {
    tag: &'t str,
    content: Option<D>,
    /// 0 before the tag's key, 1 before its value, 2 before the content's
    /// key, 3 before its value, 4 at the end.
    next: u8,
}

impl<'de, D: de::Deserializer<'de>> de::MapAccess<'de> for TaggedMap<'_, D> {
    type Error = D::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, D::Error> {
        let key = match self.next {
            0 => "type",
            2 if self.content.is_some() => "data",
            _ => return Ok(None),
        };
        self.next += 1;
        seed.deserialize(de::value::StrDeserializer::<D::Error>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, D::Error> {
        self.next += 1;
        match self.next {
            2 => seed.deserialize(de::value::StrDeserializer::<D::Error>::new(self.tag)),
            _ => match self.content.take() {
                Some(content) => seed.deserialize(content),
                None => Err(de::Error::custom("the data was read already")),
            },
        }
    }
}

/// The variant names of `E`, asked of its `Deserialize` implementation:
/// for an enum, the derived code reports them when it meets a tag it does
/// not know. `None` when `E` does not tell (not an enum, a hand-written
/// implementation, a variant with `#[serde(other)]`).
fn variant_names<E: DeserializeOwned>() -> Option<&'static [&'static str]> {
    match E::deserialize(Probe) {
        Err(ProbeError::Variants(names)) => Some(names),
        _ => None,
    }
}

/// A tag no enum names.
const PROBE_TAG: &str = "\u{0}eventfold-probe";

/// A deserializer that offers one object, `{"type": PROBE_TAG}`, to see
/// which variants the enum expects instead.
struct Probe;

#[derive(Debug)]
enum ProbeError {
    Variants(&'static [&'static str]),
    Other,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ProbeError::Other
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        ProbeError::Variants(expected)
    }
}

impl<'de> de::Deserializer<'de> for Probe {
    type Error = ProbeError;

    fn deserialize_any<V: de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, ProbeError> {
        visitor.visit_map(ProbeMap { tag_given: false })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The one-key object [`Probe`] offers.
struct ProbeMap {
    tag_given: bool,
}

impl<'de> de::MapAccess<'de> for ProbeMap {
    type Error = ProbeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, ProbeError> {
        if self.tag_given {
            return Ok(None);
        }
        self.tag_given = true;
        seed.deserialize("type".into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, ProbeError> {
        seed.deserialize(PROBE_TAG.into_deserializer())
    }
}
