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

use crate::error::{Error, Result};
use crate::event::{Event, Header, StoredLine};
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
        let line = result.to_json_line()?;
        let back = serde_json::from_str::<E>(&line)
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
    /// Folds the line (`header` its parsed fields) into `state`; an error
    /// gives the state back, with what is wrong with the line.
    fn fold(
        &self,
        state: S,
        seq: u64,
        header: &Header<'_>,
        line: &[u8],
        upcasters: Option<&Upcasters>,
        unknown: Unknown,
    ) -> std::result::Result<S, (S, String)>;
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
}

impl<S, E> TypedFold<S> for Typed<S, E>
where
    S: Send,
    E: DeserializeOwned,
{
    fn fold(
        &self,
        state: S,
        seq: u64,
        header: &Header<'_>,
        line: &[u8],
        upcasters: Option<&Upcasters>,
        unknown: Unknown,
    ) -> std::result::Result<S, (S, String)> {
        let version = header.v.unwrap_or(1);
        let (event_type, decoded): (Cow<'_, str>, _) = match upcasters {
            Some(upcasters) if upcasters.applies(&header.event_type, version) => {
                // An old shape: built as a `Value`, upcast, then decoded.
                let stored: StoredLine = match serde_json::from_slice(line) {
                    Ok(stored) => stored,
                    Err(e) => return Err((state, format!("line is not a valid event: {e}"))),
                };
                let event = upcasters.apply(stored.into_event(), version);
                let tagged = serde_json::json!({"type": event.event_type, "data": event.data});
                (Cow::Owned(event.event_type), E::deserialize(tagged))
            }
            _ => (
                Cow::Borrowed(&*header.event_type),
                serde_json::from_slice::<E>(line),
            ),
        };
        let event = match decoded {
            Ok(event) => event,
            Err(e) => {
                let named = self.variants.is_none_or(|v| v.contains(&&*event_type));
                if !named && unknown == Unknown::Skip {
                    return Ok(state);
                }
                let what = std::any::type_name::<E>();
                let detail = if named {
                    format!(
                        "the event of type {event_type:?} does not decode as {what}: {e} (an \
                         upcaster can turn its old shape into today's)"
                    )
                } else {
                    format!(
                        "the event type {event_type:?} is not one that {what} names, and this \
                         view is strict about unknown types"
                    )
                };
                return Err((state, detail));
            }
        };
        Ok(match self.reducer {
            TypedReducer::Plain(f) => f(state, &event),
            TypedReducer::WithSeq(f) => f(state, seq, &event),
        })
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
