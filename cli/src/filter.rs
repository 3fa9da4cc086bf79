//! Which events a command shows: by type and by timestamp.

use eventfold::Event;

/// A test on events; the default lets every event through.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// The types to keep; all when empty.
    pub types: Vec<String>,
    /// Keep only events with `ts >= since`.
    pub since: Option<u64>,
    /// Keep only events with `ts < until`.
    pub until: Option<u64>,
}

impl Filter {
    /// A filter on types alone.
    pub fn types(types: &[String]) -> Filter {
        Filter {
            types: types.to_vec(),
            ..Filter::default()
        }
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.since.is_none_or(|since| event.ts >= since)
            && self.until.is_none_or(|until| event.ts < until)
    }

    /// Whether every event passes.
    pub fn is_all(&self) -> bool {
        self.types.is_empty() && self.since.is_none() && self.until.is_none()
    }
}
