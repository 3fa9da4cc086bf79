//! The views of the crash workloads (the kill torture and the power-loss
//! test): their state, their reducers and the builder that registers them,
//! and how a child writer reports what it does.

use std::io::Write;
use std::path::Path;

use eventfold::{Event, EventLog, EventLogBuilder};
use serde::{Deserialize, Serialize};

use super::{counter_reducer, mix, sum_reducer};

/// An order-sensitive digest of the event numbers folded so far.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    pub count: u64,
    /// The number the next event should carry.
    pub next: u64,
    /// Events whose number was not `next`: must stay 0.
    pub disorder: u64,
    pub digest: u64,
}

/// Folds an event's `n` and timestamp into the [`Chain`].
pub fn chain_reducer(mut state: Chain, event: &Event) -> Chain {
    let n = event.data["n"].as_u64().unwrap_or(u64::MAX);
    if n != state.next {
        state.disorder += 1;
    }
    state.next = n.wrapping_add(1);
    state.count += 1;
    state.digest = mix(state.digest ^ n ^ event.ts.rotate_left(32));
    state
}

/// Counts the events of type `other`.
pub fn others_reducer(count: u64, event: &Event) -> u64 {
    count + u64::from(event.event_type == "other")
}

/// A builder of `dir` with the workload's views, "count"
/// ([`counter_reducer`]), "sum" ([`sum_reducer`]), "chain"
/// ([`chain_reducer`]) and "others" ([`others_reducer`]), and
/// `max_log_size`.
pub fn workload_log(dir: &Path, max_log_size: u64) -> EventLogBuilder {
    EventLog::builder(dir)
        .max_log_size(max_log_size)
        .view::<u64>("count", counter_reducer)
        .view::<u64>("sum", sum_reducer)
        .view::<Chain>("chain", chain_reducer)
        .view::<u64>("others", others_reducer)
}

/// A child writer's report to its parent: `line` on a line of its own on
/// stdout, in one write (a pipe write this small is atomic), flushed.
pub fn say(line: String) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("\n{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .expect("stdout");
}
