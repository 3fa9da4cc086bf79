//! Replicates an eventfold log into a NATS JetStream stream exactly once,
//! and mirrors the stream into a standby eventfold directory.
//!
//! - A [`Replicator`] follows a data directory as a reader (beside the
//!   live writer, taking no lock, writing nothing) and publishes every
//!   event to a stream, in order: message `seq + 1` of the stream is
//!   event `seq`, its payload the event's stored line byte for byte.
//!   Every publish is conditional on the stream's last sequence, so an
//!   event is never stored twice nor out of order, and a restart resumes
//!   after the stream's last message once it has checked that message
//!   against the log (see [`replicate`](crate::Replicator) for the
//!   protocol and [`Error::Divergence`] for what it refuses).
//! - A [`Mirror`] follows the stream with an ordered consumer and appends
//!   its events to a local eventfold directory: a standby that holds the
//!   same lines with the same sequence numbers, that `eventfold verify`
//!   accepts, and on which the writer's views run unchanged (open it with
//!   [`eventfold::EventLog::builder`] and the same `.view(...)` calls).
//!
//! The message format (headers, log id, chain hash) is described once,
//! in the README's "Message format" section.
//!
//! ```no_run
//! use eventfold_nats::{Mirror, Replicator, Target};
//!
//! # async fn run() -> Result<(), eventfold_nats::Error> {
//! let target = Target::new("nats://127.0.0.1:4222", "orders");
//! // On the writer's machine:
//! let replicator = Replicator::new("./data", target.clone())?.cursor_file("./orders.cursor");
//! tokio::spawn(replicator.run_until(std::future::pending()));
//! // On another machine:
//! let mut mirror = Mirror::open("./standby", target)?;
//! mirror.catch_up().await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cursor;
mod error;
mod follow;
mod local;
mod mirror;
mod replicate;
mod stop;
mod stream;
mod views;
mod wire;

use std::sync::Arc;

pub use crate::error::{Error, Result};
pub use crate::mirror::Mirror;
pub use crate::replicate::{Progress, Replicator, Summary};
pub use crate::stream::Target;
pub use crate::views::StreamView;
pub use crate::wire::line_hash;

/// Where messages for people go.
pub(crate) type Notice = Arc<dyn Fn(&str) + Send + Sync>;

/// Messages for people on standard error.
pub(crate) fn stderr_notice() -> Notice {
    Arc::new(|text| eprintln!("eventfold-nats: {text}"))
}

/// The README's code, compiled as doctests so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
