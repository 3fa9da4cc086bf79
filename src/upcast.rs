//! Upcasting: old event shapes read in today's, while the file keeps its
//! lines as they were written.
//!
//! Every stored line has a schema version per event type: its `"v"` field,
//! absent for version 1. An [`Upcasters`] registry holds steps, each
//! turning the `data` of one event type at one version into the next
//! version, possibly under a new type name (a rename). Reading applies
//! the steps in a chain, so that reducers, readers, rebuilds and
//! `read_full` only ever see events in today's shape; appending stamps each
//! event with its type's current version, so that new events are not
//! upcast again.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::Event;

/// An upcaster: today's `data` of an event from the `data` of its older
/// shape. A pure function, like a reducer: it runs on every read of an old
/// event.
///
/// # Examples
///
/// ```
/// use eventfold::UpcastFn;
/// use serde_json::{Value, json};
///
/// /// Version 1 had no priority: version 2 defaults it.
/// fn add_priority(mut data: Value) -> Value {
///     if let Some(object) = data.as_object_mut() {
///         object.entry("priority").or_insert(json!("normal"));
///     }
///     data
/// }
/// let step: UpcastFn = add_priority;
/// assert_eq!(step(json!({"text": "milk"})), json!({"text": "milk", "priority": "normal"}));
/// ```
pub type UpcastFn = fn(Value) -> Value;

/// One step of a chain: `(type, version)` becomes `(to_type, version + 1)`.
#[derive(Clone)]
struct Step {
    to_type: String,
    f: UpcastFn,
}

/// The upcasters of an application: how events of older shapes become
/// today's before any reducer sees them.
///
/// Register it with
/// [`EventLogBuilder::upcasters`](crate::EventLogBuilder::upcasters) and,
/// for readers, [`EventReader::with_upcasters`](crate::EventReader::with_upcasters).
/// Each step is keyed by an event type and a version; an event's version is
/// its line's `"v"` field, which the log writes (absent means 1). Steps
/// chain: an event of version 1 goes through the steps for 1, 2, 3... as
/// far as they are registered, each under the type the one before gave it.
/// The current version of a type, which new events are written with, is
/// one more than the highest version a step turns into that type (1 if
/// none does).
///
/// The files keep their lines as written: upcasting happens on every read,
/// and changing an upcaster changes what every view folds on its next
/// rebuild (bump the views' versions, see
/// [`EventLogBuilder::view_version`](crate::EventLogBuilder::view_version)).
///
/// # Examples
///
/// ```
/// use eventfold::{Event, EventLog, Upcasters};
/// use serde_json::{Value, json};
///
/// fn split_name(mut data: Value) -> Value {
///     let name = data["name"].as_str().unwrap_or_default().to_owned();
///     let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
///     data = json!({"first": first, "last": last});
///     data
/// }
///
/// # let dir = tempfile::tempdir()?;
/// // Yesterday's code wrote "customer_added" with one `name`.
/// EventLog::open(dir.path())?.append(&Event::new("customer_added", json!({"name": "Ada Lovelace"})))?;
///
/// // Today's reads it as "customer_joined" with `first` and `last`.
/// let upcasters = Upcasters::new().upcast("customer_added", 1, "customer_joined", split_name);
/// assert_eq!(upcasters.version_of("customer_joined"), 2);
/// let log = EventLog::builder(dir.path()).upcasters(upcasters).open()?;
/// let (event, _) = log.read_full()?.next().expect("one event")?;
/// assert_eq!(event.event_type, "customer_joined");
/// assert_eq!(event.data, json!({"first": "Ada", "last": "Lovelace"}));
/// # Ok::<(), eventfold::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Upcasters {
    /// The steps by the type and version they start from.
    steps: HashMap<String, HashMap<u32, Step>>,
    /// The current version of every type a step turns into.
    current: HashMap<String, u32>,
    /// The first registration that cannot stand, reported on use.
    problem: Option<String>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps: Vec<String> = self
            .steps
            .iter()
            .flat_map(|(from, by_version)| {
                by_version
                    .iter()
                    .map(move |(v, step)| format!("{from} v{v} -> {} v{}", step.to_type, v + 1))
            })
            .collect();
        steps.sort();
        f.debug_struct("Upcasters").field("steps", &steps).finish()
    }
}

impl Upcasters {
    /// No upcasters: every event is read as it was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Upcasters;
    ///
    /// assert_eq!(Upcasters::new().version_of("anything"), 1);
    /// ```
    pub fn new() -> Upcasters {
        Upcasters::default()
    }

    /// Adds a step: events of `event_type` at `version` (1 for events
    /// written before any upcaster existed) are read as `to_type` (the same
    /// name, or a new one for a rename) at `version + 1`, their `data`
    /// turned by `f`.
    ///
    /// A version of 0 or `u32::MAX`, a second step for the same type and
    /// version, or a step that no other step leads to (from version 3 of
    /// a type when nothing arrives at its version 3) is an error when the
    /// upcasters are used (opening the log or the reader), naming the
    /// step.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Upcasters;
    /// use serde_json::{Value, json};
    ///
    /// fn rename_amount(mut data: Value) -> Value {
    ///     if let Some(amount) = data.as_object_mut().and_then(|o| o.remove("amt")) {
    ///         data["amount"] = amount;
    ///     }
    ///     data
    /// }
    /// fn cents(mut data: Value) -> Value {
    ///     data["amount"] = json!(data["amount"].as_u64().unwrap_or(0) * 100);
    ///     data
    /// }
    /// let upcasters = Upcasters::new()
    ///     .upcast("deposit", 1, "deposited", rename_amount) // v1 -> v2, renamed
    ///     .upcast("deposited", 2, "deposited", cents); // v2 -> v3
    /// assert_eq!(upcasters.version_of("deposited"), 3);
    /// ```
    #[must_use = "upcast returns the upcasters with the step added"]
    pub fn upcast(mut self, event_type: &str, version: u32, to_type: &str, f: UpcastFn) -> Self {
        let from = self.steps.entry(event_type.to_owned()).or_default();
        if self.problem.is_none() {
            if version == u32::MAX {
                self.problem = Some(format!(
                    "the upcaster of {event_type:?} from version {version}: there is no version \
                     after it"
                ));
            } else if version == 0 {
                self.problem = Some(format!(
                    "the upcaster of {event_type:?} from version 0: versions start at 1 (events \
                     without a \"v\" field)"
                ));
            } else if from.contains_key(&version) {
                self.problem = Some(format!(
                    "two upcasters of {event_type:?} from version {version}: keep one"
                ));
            }
        }
        from.insert(
            version,
            Step {
                to_type: to_type.to_owned(),
                f,
            },
        );
        let next = version.saturating_add(1);
        let current = self.current.entry(to_type.to_owned()).or_insert(1);
        *current = (*current).max(next);
        self
    }

    /// The current version of `event_type`: the one new events of that
    /// type are written with, and the one upcast events arrive at.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::Upcasters;
    /// use serde_json::Value;
    ///
    /// let upcasters = Upcasters::new().upcast("a", 1, "a", |data: Value| data);
    /// assert_eq!((upcasters.version_of("a"), upcasters.version_of("b")), (2, 1));
    /// ```
    pub fn version_of(&self, event_type: &str) -> u32 {
        self.current.get(event_type).copied().unwrap_or(1)
    }

    /// Whether there is no step at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The registration that cannot stand, as an error: a bad step, or a
    /// gap in a chain (a step from version `v` > 1 of a type that no step
    /// turns anything into at `v`, so that older events never reach it).
    pub(crate) fn check(&self) -> Result<()> {
        if let Some(problem) = &self.problem {
            return Err(Error::InvalidConfig {
                reason: problem.clone(),
            });
        }
        let mut starts: Vec<(&str, u32)> = self
            .steps
            .iter()
            .flat_map(|(from, by_version)| by_version.keys().map(move |v| (from.as_str(), *v)))
            .collect();
        starts.sort_unstable();
        for (from, version) in starts {
            let reached = version == 1
                || self.steps.values().any(|by_version| {
                    by_version
                        .get(&(version - 1))
                        .is_some_and(|step| step.to_type == from)
                });
            if !reached {
                return Err(Error::InvalidConfig {
                    reason: format!(
                        "the upcaster of {from:?} from version {version} is not reached: no \
                         upcaster turns an event into {from:?} at version {version}, so events \
                         of older versions would stop short of it (add the missing step)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether an event of `event_type` at `version` is upcast.
    pub(crate) fn applies(&self, event_type: &str, version: u32) -> bool {
        self.steps
            .get(event_type)
            .is_some_and(|by_version| by_version.contains_key(&version))
    }

    /// Whether some step starts from `event_type`, at any version.
    pub(crate) fn has_steps_from(&self, event_type: &str) -> bool {
        self.steps.contains_key(event_type)
    }

    /// `event`, read at `version`, in today's shape.
    pub(crate) fn apply(&self, mut event: Event, mut version: u32) -> Event {
        while let Some(step) = self
            .steps
            .get(&event.event_type)
            .and_then(|by_version| by_version.get(&version))
        {
            event.data = (step.f)(std::mem::take(&mut event.data));
            event.event_type.clone_from(&step.to_type);
            // A step from the last version is refused when registered.
            version = version.saturating_add(1);
        }
        event
    }
}
