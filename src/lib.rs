//! Your application state is a fold over an event log.
//!
//! eventfold keeps an application's state as a fold over an append-only log
//! of events, in one directory and with no server:
//!
//! - **Events** ([`Event`]) are appended to `app.jsonl`, one JSON line each,
//!   synced to disk before [`EventLog::append`] returns.
//! - **Reducers** ([`ReduceFn`]) are pure functions `fn(S, &Event) -> S`,
//!   or `fn(S, &E) -> S` over your own event enum ([`TypedReduceFn`],
//!   appended with [`EventLog::append_typed`]).
//! - **Views** ([`View`]) fold every event through a reducer. Each keeps a
//!   [`Snapshot`] in `views/NAME.snapshot.json`, so a refresh reads only the
//!   events appended since.
//!
//! Old history is rotated into `archive.jsonl.zst`, a series of zstd frames
//! that only new or rebuilt views ever read. The log is never migrated:
//! [`Upcasters`] turn old event shapes into today's as they are read, and
//! a view's version ([`EventLogBuilder::view_version`]) rebuilds snapshots
//! that an older reducer wrote.
//!
//! One process writes a directory; threads in it can share the writer as
//! a [`SharedLog`], whose appends share syncs (group commit). Any number of
//! processes can read it at the same time with an [`EventReader`], which
//! takes no lock, writes nothing and can follow the log as it grows.
//!
//! ```
//! use eventfold::{Event, EventLog};
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Default, Clone, Serialize, Deserialize)]
//! struct Todos {
//!     items: Vec<String>,
//! }
//!
//! fn todos(mut state: Todos, event: &Event) -> Todos {
//!     if event.event_type == "todo_added" {
//!         state.items.push(event.data["text"].as_str().unwrap_or_default().to_owned());
//!     }
//!     state
//! }
//!
//! # let dir = tempfile::tempdir()?;
//! let mut log = EventLog::builder(dir.path()).view::<Todos>("todos", todos).open()?;
//! log.append(&Event::new("todo_added", json!({"text": "buy milk"})))?;
//! log.refresh_all()?;
//! assert_eq!(log.view::<Todos>("todos")?.items, ["buy milk"]);
//! # Ok::<(), eventfold::Error>(())
//! ```
//!
//! The guide, `docs/guide.md`, explains how it works, the file formats and
//! exactly what survives a crash.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backup;
mod canonical;
mod durable;
mod error;
mod event;
mod frames;
mod history;
mod index;
mod inspect;
mod lines;
mod log;
mod publish;
mod reader;
mod rotation;
mod shared;
mod snapshot;
mod tail;
mod typed;
mod upcast;
mod verify;
mod view;

pub use crate::backup::Backup;
pub use crate::error::{Error, Result};
pub use crate::event::Event;
pub use crate::history::{HistoryRef, Source};
pub use crate::inspect::{EventSummary, Inspection, PendingFile, ViewSummary, WriterState};
pub use crate::lines::{ReadFrom, ReadFull, ReadSeq, SeqEvents, SeqLines};
pub use crate::log::{EventLog, EventLogBuilder};
pub use crate::reader::{EventReader, Follow};
pub use crate::shared::SharedLog;
pub use crate::snapshot::Snapshot;
pub use crate::typed::{TypedReduceFn, TypedReduceSeqFn};
pub use crate::upcast::{UpcastFn, Upcasters};
pub use crate::verify::{Problem, Verification};
pub use crate::view::{ReduceFn, ReduceSeqFn, View};

/// The README's code, compiled and run as doctests so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's code, compiled and run as doctests so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
