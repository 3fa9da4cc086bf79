//! The data model: the events this app appends, the states its views hold,
//! and the reducers that fold one into the other.
//!
//! This is the whole "database schema" of the app. Three kinds of event go
//! into `app.jsonl`:
//!
//! ```text
//! {"type":"todo_added",  "data":{"id":"<uuid>","text":"Buy milk","created_at":1764028800},"ts":…}
//! {"type":"todo_toggled","data":{"id":"<uuid>","done":true},"ts":…}
//! {"type":"todo_deleted","data":{"id":"<uuid>"},"ts":…}
//! ```
//!
//! Three views fold them: `todos` ([`TodoState`], the list on the page),
//! `stats` ([`StatsState`], the numbers beside it) and `names`
//! ([`NamesState`], the text of every todo ever added, which the activity
//! feed needs to say what a toggle or a delete was about). The history
//! itself is the rest: the activity feed ([`FeedEntry`]) reads events by
//! sequence number, and time travel folds the same reducers up to any
//! event. The reducers are plain
//! functions: they do no I/O, never panic on odd data, and ignore event
//! types and ids they do not know, so they can be tested without a server
//! (`cargo test --lib --features ssr`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Event type: a todo was created. Data: `id`, `text`, `created_at`.
pub const TODO_ADDED: &str = "todo_added";
/// Event type: a todo was marked done or not done. Data: `id`, `done` (the
/// new value).
pub const TODO_TOGGLED: &str = "todo_toggled";
/// Event type: a todo was deleted. Data: `id`.
pub const TODO_DELETED: &str = "todo_deleted";

/// The longest todo text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// One todo, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// A UUID, chosen by the server when the todo is added.
    pub id: String,
    /// What to do, as typed (trimmed).
    pub text: String,
    /// Whether it is done.
    pub done: bool,
    /// When it was added, in Unix seconds.
    pub created_at: u64,
}

/// The `todos` view: the todos that exist now, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TodoState {
    /// The live todos, in the order they were added.
    pub items: Vec<Todo>,
}

impl TodoState {
    /// The todo with this id, if it exists (and was not deleted).
    pub fn get(&self, id: &str) -> Option<&Todo> {
        self.items.iter().find(|todo| todo.id == id)
    }
}

/// The `stats` view.
///
/// It keeps, besides its counters, whether each live todo is done: that is
/// what lets it count "done now" right when a todo is toggled back and
/// forth, deleted while done, or named by an event with an unknown id.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsState {
    /// Todos ever created.
    pub total_created: u64,
    /// Todos ever deleted.
    pub total_deleted: u64,
    /// Live todos by id: `true` when done.
    pub live: BTreeMap<String, bool>,
}

impl StatsState {
    /// The figures the page shows.
    pub fn summary(&self) -> Stats {
        let done = self.live.values().filter(|done| **done).count() as u64;
        Stats {
            total_created: self.total_created,
            open: self.live.len() as u64 - done,
            done,
            total_deleted: self.total_deleted,
        }
    }
}

/// The statistics shown beside the list.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Todos ever created.
    pub total_created: u64,
    /// Live todos not done.
    pub open: u64,
    /// Live todos done.
    pub done: u64,
    /// Todos ever deleted.
    pub total_deleted: u64,
}

/// The `names` view: the text of every todo ever added, deleted ones
/// included, so that the activity feed can name the todo of a toggle or a
/// delete however long ago it was added.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamesState {
    /// Todo texts by id.
    pub texts: BTreeMap<String, String>,
}

/// What one event did, as the activity feed tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A todo was added.
    Added,
    /// A todo was marked done.
    Completed,
    /// A done todo was marked not done.
    Reopened,
    /// A todo was toggled by an event that does not say which way.
    Toggled,
    /// A todo was deleted.
    Deleted,
    /// An event this app does not know (written by another program).
    Other,
}

/// One line of the activity feed: an event of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// The event's sequence number: its place in the whole history.
    pub seq: u64,
    /// When it was appended, in Unix seconds.
    pub ts: u64,
    /// What it did.
    pub kind: ChangeKind,
    /// The text of the todo it was about, when known.
    pub text: Option<String>,
}

impl FeedEntry {
    /// What happened, in a few words: `added “Buy milk”`.
    pub fn describe(&self) -> String {
        let verb = match self.kind {
            ChangeKind::Added => "added",
            ChangeKind::Completed => "completed",
            ChangeKind::Reopened => "reopened",
            ChangeKind::Toggled => "toggled",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Other => return "made another change".to_owned(),
        };
        match &self.text {
            Some(text) => format!("{verb} “{text}”"),
            None => format!("{verb} a todo"),
        }
    }
}

/// A page of the activity feed, newest first.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPage {
    /// The entries, newest first.
    pub entries: Vec<FeedEntry>,
    /// The `before` of the next older page, if there is one.
    pub older: Option<u64>,
    /// The `before` of the next newer page, if this is not the newest
    /// (equal to `head` when that newer page is the latest).
    pub newer: Option<u64>,
    /// How many events the history holds: the next sequence number.
    pub head: u64,
    /// The server's clock when the page was read, in Unix seconds: the
    /// relative times are counted from it, so that the server and the
    /// browser render the same words.
    pub now: u64,
}

/// How many entries a page of the activity feed holds.
pub const FEED_PAGE: u64 = 10;

/// Where the history stands, for the time-travel control.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// How many events the history holds: the next sequence number.
    pub head: u64,
    /// The event the page shows the state after, when it shows the past;
    /// `None` for now.
    pub at: Option<FeedEntry>,
    /// The server's clock, in Unix seconds.
    pub now: u64,
}

/// `seconds` ago, in words: "just now", "5 minutes ago", "2 days ago".
pub fn ago(now: u64, then: u64) -> String {
    let seconds = now.saturating_sub(then);
    let (n, unit) = match seconds {
        0..10 => return "just now".to_owned(),
        10..60 => (seconds, "second"),
        60..3600 => (seconds / 60, "minute"),
        3600..86_400 => (seconds / 3600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Why a todo text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Nothing but whitespace.
    Empty,
    /// Longer than [`MAX_TEXT_CHARS`]; carries its length in characters.
    TooLong(usize),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Empty => f.write_str("Type what you need to do first."),
            TextError::TooLong(chars) => write!(
                f,
                "A todo can be at most {MAX_TEXT_CHARS} characters long; this one has {chars}."
            ),
        }
    }
}

/// Checks a todo text typed by a user and returns it trimmed.
pub fn validate_text(text: &str) -> Result<&str, TextError> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        Err(TextError::Empty)
    } else if chars > MAX_TEXT_CHARS {
        Err(TextError::TooLong(chars))
    } else {
        Ok(text)
    }
}

#[cfg(feature = "ssr")]
pub use reducers::*;

/// The reducers and event constructors: server side only, as they use the
/// `eventfold` crate, which does not build for the browser.
#[cfg(feature = "ssr")]
mod reducers {
    use super::*;
    use eventfold::Event;
    use serde_json::json;

    /// A `todo_added` event.
    pub fn todo_added(id: &str, text: &str, created_at: u64) -> Event {
        Event::new(
            TODO_ADDED,
            json!({"id": id, "text": text, "created_at": created_at}),
        )
    }

    /// A `todo_toggled` event; `done` is the new value.
    pub fn todo_toggled(id: &str, done: bool) -> Event {
        Event::new(TODO_TOGGLED, json!({"id": id, "done": done}))
    }

    /// A `todo_deleted` event.
    pub fn todo_deleted(id: &str) -> Event {
        Event::new(TODO_DELETED, json!({"id": id}))
    }

    fn id_of(event: &Event) -> Option<&str> {
        event.data["id"].as_str()
    }

    /// The new `done` value of a `todo_toggled` event: its `done` field, or,
    /// if it has none, the opposite of `current`.
    fn toggled_value(event: &Event, current: bool) -> bool {
        event.data["done"].as_bool().unwrap_or(!current)
    }

    /// Folds one event into the `todos` view.
    pub fn todo_reducer(mut state: TodoState, event: &Event) -> TodoState {
        match event.event_type.as_str() {
            TODO_ADDED => {
                let Some(id) = id_of(event) else {
                    return state;
                };
                if state.get(id).is_none() {
                    state.items.push(Todo {
                        id: id.to_owned(),
                        text: event.data["text"].as_str().unwrap_or_default().to_owned(),
                        done: false,
                        created_at: event.data["created_at"].as_u64().unwrap_or(event.ts),
                    });
                }
            }
            TODO_TOGGLED => {
                if let Some(todo) =
                    id_of(event).and_then(|id| state.items.iter_mut().find(|todo| todo.id == id))
                {
                    todo.done = toggled_value(event, todo.done);
                }
            }
            TODO_DELETED => {
                if let Some(id) = id_of(event) {
                    state.items.retain(|todo| todo.id != id);
                }
            }
            _ => {} // not ours
        }
        state
    }

    /// Folds one event into the `names` view.
    pub fn names_reducer(mut state: NamesState, event: &Event) -> NamesState {
        if event.event_type == TODO_ADDED
            && let (Some(id), Some(text)) = (id_of(event), event.data["text"].as_str())
        {
            state
                .texts
                .entry(id.to_owned())
                .or_insert_with(|| text.to_owned());
        }
        state
    }

    /// The activity feed's line for event `seq`; `name` finds the text of
    /// a todo by id (the `names` view).
    pub fn feed_entry(
        seq: u64,
        event: &Event,
        name: impl FnOnce(&str) -> Option<String>,
    ) -> FeedEntry {
        let kind = match event.event_type.as_str() {
            TODO_ADDED => ChangeKind::Added,
            TODO_TOGGLED => match event.data["done"].as_bool() {
                Some(true) => ChangeKind::Completed,
                Some(false) => ChangeKind::Reopened,
                None => ChangeKind::Toggled,
            },
            TODO_DELETED => ChangeKind::Deleted,
            _ => ChangeKind::Other,
        };
        let text = match (kind, id_of(event)) {
            (ChangeKind::Other, _) | (_, None) => None,
            (ChangeKind::Added, Some(_)) => event.data["text"].as_str().map(str::to_owned),
            (_, Some(id)) => name(id),
        };
        FeedEntry {
            seq,
            ts: event.ts,
            kind,
            text,
        }
    }

    /// Folds one event into the `stats` view.
    pub fn stats_reducer(mut state: StatsState, event: &Event) -> StatsState {
        let Some(id) = id_of(event) else {
            return state;
        };
        match event.event_type.as_str() {
            TODO_ADDED if !state.live.contains_key(id) => {
                state.live.insert(id.to_owned(), false);
                state.total_created += 1;
            }
            TODO_TOGGLED => {
                if let Some(done) = state.live.get_mut(id) {
                    *done = toggled_value(event, *done);
                }
            }
            TODO_DELETED => {
                let deleted = state.live.remove(id).is_some();
                state.total_deleted += u64::from(deleted);
            }
            _ => {} // not ours, or a todo_added with an id already seen
        }
        state
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use eventfold::Event;
    use serde_json::json;

    fn fold(events: &[Event]) -> (TodoState, Stats) {
        let todos = events.iter().fold(TodoState::default(), todo_reducer);
        let stats = events.iter().fold(StatsState::default(), stats_reducer);
        (todos, stats.summary())
    }

    fn stats(total_created: u64, open: u64, done: u64, total_deleted: u64) -> Stats {
        Stats {
            total_created,
            open,
            done,
            total_deleted,
        }
    }

    #[test]
    fn add_appends_in_order() {
        let (todos, s) = fold(&[todo_added("a", "milk", 10), todo_added("b", "eggs", 11)]);
        let texts: Vec<_> = todos.items.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["milk", "eggs"]);
        assert_eq!(todos.items[0].created_at, 10);
        assert!(todos.items.iter().all(|t| !t.done));
        assert_eq!(s, stats(2, 2, 0, 0));
    }

    #[test]
    fn toggle_twice_returns_to_open_without_inflating_done() {
        let mut events = vec![todo_added("a", "milk", 1), todo_toggled("a", true)];
        let (todos, s) = fold(&events);
        assert!(todos.items[0].done);
        assert_eq!(s, stats(1, 0, 1, 0));

        events.push(todo_toggled("a", false));
        let (todos, s) = fold(&events);
        assert!(!todos.items[0].done);
        assert_eq!(s, stats(1, 1, 0, 0));

        for _ in 0..5 {
            events.push(todo_toggled("a", true));
            events.push(todo_toggled("a", false));
        }
        events.push(todo_toggled("a", true));
        assert_eq!(fold(&events).1, stats(1, 0, 1, 0));
    }

    #[test]
    fn repeated_toggle_to_the_same_value_counts_once() {
        let events = [
            todo_added("a", "milk", 1),
            todo_toggled("a", true),
            todo_toggled("a", true),
        ];
        assert_eq!(fold(&events).1, stats(1, 0, 1, 0));
    }

    #[test]
    fn toggle_without_done_field_flips() {
        let events = [
            todo_added("a", "milk", 1),
            Event::new(TODO_TOGGLED, json!({"id": "a"})),
        ];
        let (todos, s) = fold(&events);
        assert!(todos.items[0].done);
        assert_eq!(s, stats(1, 0, 1, 0));
    }

    #[test]
    fn delete_removes_and_counts_open_or_done() {
        let events = [
            todo_added("a", "milk", 1),
            todo_added("b", "eggs", 2),
            todo_added("c", "bread", 3),
            todo_toggled("b", true),
            todo_deleted("b"),
            todo_deleted("a"),
        ];
        let (todos, s) = fold(&events);
        let ids: Vec<_> = todos.items.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["c"]);
        assert_eq!(s, stats(3, 1, 0, 2));
    }

    #[test]
    fn unknown_and_deleted_ids_change_nothing() {
        let base = vec![
            todo_added("a", "milk", 1),
            todo_toggled("a", true),
            todo_added("b", "eggs", 2),
            todo_deleted("b"),
        ];
        let before = fold(&base);
        let mut events = base.clone();
        events.extend([
            todo_toggled("nope", true),
            todo_deleted("nope"),
            todo_toggled("b", true),
            todo_deleted("b"),
            todo_added("a", "duplicate id", 9),
        ]);
        assert_eq!(fold(&events), before);
        assert_eq!(before.1, stats(2, 0, 1, 1));
    }

    #[test]
    fn odd_data_is_ignored_not_panicked_on() {
        let events = [
            Event::new(TODO_ADDED, json!(null)),
            Event::new(TODO_ADDED, json!({"id": 7})),
            Event::new(TODO_TOGGLED, json!("a")),
            Event::new(TODO_DELETED, json!([])),
            Event::new("something_else", json!({"id": "a"})),
        ];
        assert_eq!(fold(&events), (TodoState::default(), Stats::default()));
    }

    #[test]
    fn added_without_created_at_uses_the_event_time() {
        let event = Event::with_ts(TODO_ADDED, json!({"id": "a", "text": "milk"}), 42);
        let todos = todo_reducer(TodoState::default(), &event);
        assert_eq!(todos.items[0].created_at, 42);
    }

    #[test]
    fn names_keep_every_text_ever_added() {
        let events = [
            todo_added("a", "milk", 1),
            todo_added("b", "eggs", 2),
            todo_deleted("a"),
            todo_added("a", "not the first text", 3),
            Event::new(TODO_ADDED, json!({"id": "c"})),
        ];
        let names = events.iter().fold(NamesState::default(), names_reducer);
        let texts: Vec<_> = names
            .texts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(texts, [("a", "milk"), ("b", "eggs")]);
    }

    #[test]
    fn feed_entries_say_what_happened() {
        let name = |id: &str| (id == "a").then(|| "milk".to_owned());
        let cases = [
            (todo_added("a", "milk", 1), "added “milk”"),
            (todo_toggled("a", true), "completed “milk”"),
            (todo_toggled("a", false), "reopened “milk”"),
            (
                Event::new(TODO_TOGGLED, json!({"id": "a"})),
                "toggled “milk”",
            ),
            (todo_deleted("a"), "deleted “milk”"),
            (todo_deleted("gone"), "deleted a todo"),
            (Event::new(TODO_DELETED, json!(null)), "deleted a todo"),
            (
                Event::new("renamed", json!({"id": "a"})),
                "made another change",
            ),
        ];
        for (seq, (event, want)) in cases.into_iter().enumerate() {
            let entry = feed_entry(seq as u64, &event, name);
            assert_eq!((entry.seq, entry.describe()), (seq as u64, want.to_owned()));
            assert_eq!(entry.ts, event.ts);
        }
    }

    #[test]
    fn relative_times() {
        let now = 1_000_000;
        let cases = [
            (now, "just now"),
            (now + 5, "just now"), // a clock a little ahead
            (now - 9, "just now"),
            (now - 10, "10 seconds ago"),
            (now - 60, "1 minute ago"),
            (now - 119, "1 minute ago"),
            (now - 7200, "2 hours ago"),
            (now - 86_400, "1 day ago"),
            (now - 10 * 86_400, "10 days ago"),
        ];
        for (then, want) in cases {
            assert_eq!(ago(now, then), want, "{then}");
        }
    }

    #[test]
    fn text_validation() {
        assert_eq!(validate_text("  buy milk \n"), Ok("buy milk"));
        assert_eq!(validate_text(""), Err(TextError::Empty));
        assert_eq!(validate_text(" \t\n "), Err(TextError::Empty));
        let max = "é".repeat(MAX_TEXT_CHARS);
        assert_eq!(validate_text(&max), Ok(max.as_str()));
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(validate_text(&long), Err(TextError::TooLong(501)));
        assert!(TextError::TooLong(501).to_string().contains("500"));
    }

    #[test]
    fn works_as_eventfold_views_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            eventfold::EventLog::builder(dir.path())
                .view::<TodoState>("todos", todo_reducer)
                .view::<StatsState>("stats", stats_reducer)
                .open()
                .unwrap()
        };
        {
            let mut log = open();
            log.append(&todo_added("a", "milk", 1)).unwrap();
            log.append(&todo_added("b", "eggs", 1)).unwrap();
            log.append(&todo_toggled("a", true)).unwrap();
            log.append(&todo_deleted("b")).unwrap();
            log.refresh_all().unwrap();
        }
        let mut log = open();
        log.refresh_all().unwrap();
        assert_eq!(log.view::<TodoState>("todos").unwrap().items.len(), 1);
        let summary = log.view::<StatsState>("stats").unwrap().summary();
        assert_eq!(summary, stats(2, 0, 1, 1));
    }
}
