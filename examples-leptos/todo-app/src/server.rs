//! The server functions: the only place where the app touches eventfold.
//!
//! Writes (`add_todo`, `toggle_todo`, `delete_todo`, `import_todos`) lock
//! the log for one append, on a blocking thread (eventfold is synchronous
//! and an append waits for the disk). They validate against the current
//! `todos` view while holding the lock, so two clients cannot both act on a
//! todo that one of them just deleted.
//!
//! Reads of the present (`get_todos`, `get_stats`) refresh a view under
//! the same lock; reads of the past and of the history (`get_todos` and
//! `get_stats` with `at`, `get_feed`, `get_timeline`) go through an
//! [`EventReader`](eventfold::EventReader), which takes no lock: a long
//! walk through the archive never holds up a write. No read depends on the
//! last write having worked: after a failed write the log refuses to write
//! but its views still fold every acknowledged event, and the next write
//! first recovers the log in place ([`EventLog::recover`]).
//!
//! The same functions are called by the hydrated page (as `fetch` requests)
//! and by plain HTML forms when JavaScript is off: they all take form-encoded
//! arguments at fixed URLs under `/api/`. Beside them, `/api/changes` is a
//! stream of server-sent events ([`ssr::Store::changes`]) that tells every
//! open page when the log grew.
//!
//! [`EventLog::recover`]: https://docs.rs/eventfold-log

use crate::state::{FeedPage, Stats, Timeline, Todo};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most lines one import may hold.
pub const MAX_IMPORT_LINES: usize = 1000;

/// What can go wrong in a server function, worded for the person using the
/// page. None of them carries a detail of the server (a path, an OS error,
/// the storage library's words): those go to the server's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// The input was refused; nothing was written.
    Invalid(String),
    /// The todo does not exist (any more); nothing was written.
    NotFound,
    /// The change could not be saved (a full or failing disk); nothing of
    /// it was written.
    Unsaved,
    /// The data could not be read.
    Unavailable,
    /// The server stopped using its data after an internal error.
    Broken,
    /// The request did not get through, or its answer could not be read.
    Request,
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppError::Invalid(message) => message,
            AppError::NotFound => {
                "That todo no longer exists: it was probably deleted in another window. \
                 The list now shows the current todos."
            }
            AppError::Unsaved => {
                "Could not save, try again: the server cannot write to its storage \
                 right now. Nothing of this change was saved; your other todos are safe."
            }
            AppError::Unavailable => {
                "The server cannot read its storage right now; reload the page in a moment."
            }
            AppError::Broken => {
                "The server stopped using its data after an internal error; \
                 restart the server (no saved todo is lost)."
            }
            AppError::Request => {
                "The request did not get through to the server. \
                 Check the connection and try again."
            }
        })
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        report(format_args!("a server function call failed: {value}"));
        AppError::Request
    }
}

/// Writes a line for whoever runs the app: on the server to its standard
/// error, in the browser to the console. It never fails nor panics (as
/// `eprintln!` does when it cannot write): the server's log may be on the
/// very disk that is full, and then the line is lost, not the request.
pub fn report(message: fmt::Arguments<'_>) {
    #[cfg(feature = "ssr")]
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "todo-app: {message}");
    }
    #[cfg(not(feature = "ssr"))]
    leptos::logging::error!("todo-app: {message}");
}

/// Adds a todo. Refuses empty, whitespace-only and too long text.
#[server(endpoint = "add_todo")]
pub async fn add_todo(
    /// What to do, as typed.
    text: String,
) -> Result<(), AppError> {
    use crate::state::{todo_added, validate_text};

    let text = validate_text(&text)
        .map_err(|e| AppError::Invalid(e.to_string()))?
        .to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = ssr::unix_now();
    ssr::write(move |log| {
        log.append(&todo_added(&id, &text, created_at))
            .map_err(ssr::unsaved)?;
        Ok(())
    })
    .await
}

/// Adds one todo per non-blank line of `text`, all or none (one batch):
/// the way another program (a script, `curl`) imports a list through the
/// server. Returns how many were added.
#[server(endpoint = "import_todos")]
pub async fn import_todos(
    /// One todo per line.
    text: String,
) -> Result<usize, AppError> {
    use crate::state::{todo_added, validate_text};

    let created_at = ssr::unix_now();
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line = validate_text(line)
            .map_err(|e| AppError::Invalid(format!("Line {}: {e}", number + 1)))?;
        let id = uuid::Uuid::new_v4().to_string();
        events.push(todo_added(&id, line, created_at));
    }
    if events.is_empty() {
        return Err(AppError::Invalid("There is no todo to import.".into()));
    }
    if events.len() > MAX_IMPORT_LINES {
        return Err(AppError::Invalid(format!(
            "An import can hold at most {MAX_IMPORT_LINES} todos; this one has {}.",
            events.len()
        )));
    }
    ssr::write(move |log| {
        log.append_batch(&events).map_err(ssr::unsaved)?;
        Ok(events.len())
    })
    .await
}

/// Marks a todo done if it is open, open if it is done.
#[server(endpoint = "toggle_todo")]
pub async fn toggle_todo(
    /// The todo's id.
    id: String,
) -> Result<(), AppError> {
    use crate::state::todo_toggled;

    ssr::write(move |log| {
        let done = ssr::current_todo(log, &id)?.done;
        log.append(&todo_toggled(&id, !done))
            .map_err(ssr::unsaved)?;
        Ok(())
    })
    .await
}

/// Deletes a todo.
#[server(endpoint = "delete_todo")]
pub async fn delete_todo(
    /// The todo's id.
    id: String,
) -> Result<(), AppError> {
    use crate::state::todo_deleted;

    ssr::write(move |log| {
        ssr::current_todo(log, &id)?;
        log.append(&todo_deleted(&id)).map_err(ssr::unsaved)?;
        Ok(())
    })
    .await
}

/// The todos, oldest first: now, or as they were after event `at`.
#[server(endpoint = "get_todos")]
pub async fn get_todos(
    /// The event after which to show the list; `None`: now.
    at: Option<u64>,
) -> Result<Vec<Todo>, AppError> {
    use crate::state::{TodoState, todo_reducer};

    match at {
        None => {
            ssr::read(|log| {
                log.refresh_view(ssr::TODOS).map_err(ssr::unavailable)?;
                let todos = log.view::<TodoState>(ssr::TODOS);
                Ok(todos.map_err(ssr::unavailable)?.items.clone())
            })
            .await
        }
        Some(at) => Ok(ssr::past(todo_reducer, at).await?.items),
    }
}

/// The statistics, from the `stats` view: now, or as they were after
/// event `at`.
#[server(endpoint = "get_stats")]
pub async fn get_stats(
    /// The event after which to count; `None`: now.
    at: Option<u64>,
) -> Result<Stats, AppError> {
    use crate::state::{StatsState, stats_reducer};

    match at {
        None => {
            ssr::read(|log| {
                log.refresh_view(ssr::STATS).map_err(ssr::unavailable)?;
                let stats = log.view::<StatsState>(ssr::STATS);
                Ok(stats.map_err(ssr::unavailable)?.summary())
            })
            .await
        }
        Some(at) => Ok(ssr::past(stats_reducer, at).await?.summary()),
    }
}

/// A page of the activity feed: the [`FEED_PAGE`](crate::state::FEED_PAGE)
/// events before event `before` (the latest ones without it), newest
/// first, read by sequence number from the whole history, archive
/// included.
#[server(endpoint = "get_feed")]
pub async fn get_feed(
    /// The page ends before this event; `None`: the latest page.
    before: Option<u64>,
) -> Result<FeedPage, AppError> {
    use crate::state::FEED_PAGE;

    let reader = ssr::store()?.reader();
    let (head, events) = ssr::blocking(move || {
        let head = reader.next_seq().map_err(ssr::unavailable)?;
        let end = before.map_or(head, |before| before.min(head));
        let start = end.saturating_sub(FEED_PAGE);
        let events = ssr::events(&reader, start, end)?;
        Ok((head, events))
    })
    .await?;
    let start = events.first().map_or(0, |(seq, _)| *seq);
    let end = events.last().map_or(0, |(seq, _)| seq + 1);
    let mut entries = ssr::entries(events).await?;
    entries.reverse();
    Ok(FeedPage {
        entries,
        older: (start > 0).then_some(start),
        newer: (end < head).then(|| (end + FEED_PAGE).min(head)),
        head,
        now: ssr::unix_now(),
    })
}

/// Where the history stands: how many events it holds and, with `at`,
/// which event the page shows the state after.
#[server(endpoint = "get_timeline")]
pub async fn get_timeline(
    /// The event the page shows the state after; `None`: now.
    at: Option<u64>,
) -> Result<Timeline, AppError> {
    let reader = ssr::store()?.reader();
    let (head, event) = ssr::blocking(move || {
        let head = reader.next_seq().map_err(ssr::unavailable)?;
        let event = match at {
            Some(at) if at < head => ssr::events(&reader, at, at + 1)?,
            _ => Vec::new(),
        };
        Ok((head, event))
    })
    .await?;
    if at.is_some_and(|at| at >= head) {
        return Err(AppError::Invalid(format!(
            "There is no change number {} yet: the history holds {head}.",
            at.unwrap_or_default().saturating_add(1)
        )));
    }
    Ok(Timeline {
        head,
        at: ssr::entries(event).await?.pop(),
        now: ssr::unix_now(),
    })
}

/// The shared log, the live-update stream and the helpers the server
/// functions use.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::AppError;
    use crate::state::{
        FeedEntry, NamesState, StatsState, Todo, TodoState, feed_entry, names_reducer,
        stats_reducer, todo_reducer,
    };
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    use eventfold::{Event, EventLog, EventReader, ReduceFn};
    use futures::{Stream, StreamExt, stream};
    use leptos::prelude::use_context;
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    use std::thread;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tokio::sync::{broadcast, watch};

    /// The name of the view holding the list.
    pub const TODOS: &str = "todos";
    /// The name of the view holding the statistics.
    pub const STATS: &str = "stats";
    /// The name of the view holding every todo's text, for the feed.
    pub const NAMES: &str = "names";

    /// How long the follower waits for an event before it checks that the
    /// store still exists.
    const FOLLOW_SLICE: Duration = Duration::from_millis(500);
    /// How long the follower pauses after a read error before it tries
    /// again.
    const FOLLOW_RETRY: Duration = Duration::from_secs(1);
    /// How soon a page reconnects to the live stream when it broke (a
    /// restart of the server, say).
    const LIVE_RETRY: Duration = Duration::from_secs(1);

    /// The event log, shared by every request through the Leptos context,
    /// with a reader beside it and the live-update channel.
    #[derive(Clone, Debug)]
    pub struct Store(Arc<Inner>);

    #[derive(Debug)]
    struct Inner {
        log: Mutex<EventLog>,
        reader: EventReader,
        /// The next sequence number, each time the follower saw the log
        /// grow.
        changes: broadcast::Sender<u64>,
        /// The next sequence number as the follower last saw it.
        head: AtomicU64,
        /// Set to `true` when the server stops: ends every live stream.
        stopping: watch::Sender<bool>,
    }

    impl Store {
        /// Opens (or creates) the log in `dir` with the app's three views;
        /// the active log is rotated into the archive past `max_log_size`
        /// bytes. Starts the follower: a thread that follows the log's
        /// files from their end and announces each growth on
        /// [`changes`](Store::changes), whoever appended.
        pub fn open(dir: &Path, max_log_size: u64) -> eventfold::Result<Store> {
            let log = EventLog::builder(dir)
                .max_log_size(max_log_size)
                .view::<TodoState>(TODOS, todo_reducer)
                .view::<StatsState>(STATS, stats_reducer)
                .view::<NamesState>(NAMES, names_reducer)
                .open()?;
            let reader = log.reader();
            let head = log.next_seq();
            let store = Store(Arc::new(Inner {
                log: Mutex::new(log),
                reader: reader.clone(),
                changes: broadcast::channel(16).0,
                head: AtomicU64::new(head),
                stopping: watch::channel(false).0,
            }));
            let weak = Arc::downgrade(&store.0);
            thread::Builder::new()
                .name("todo-app follower".into())
                .spawn(move || follow(&reader, head, &weak))?;
            Ok(store)
        }

        /// Runs `f` with the log locked. A lock poisoned by an earlier
        /// panic becomes an error, not a second panic.
        pub fn with<T>(
            &self,
            f: impl FnOnce(&mut EventLog) -> Result<T, AppError>,
        ) -> Result<T, AppError> {
            let mut log = self.0.log.lock().map_err(|_| {
                super::report(format_args!(
                    "the log's lock is poisoned by an earlier panic"
                ));
                AppError::Broken
            })?;
            f(&mut log)
        }

        /// Runs `f` with the log locked, to write: a log that refuses
        /// writes after a failed one is first recovered in place, so that
        /// the first write after a storage fault cleared succeeds.
        pub fn write<T>(
            &self,
            f: impl FnOnce(&mut EventLog) -> Result<T, AppError>,
        ) -> Result<T, AppError> {
            self.with(|log| {
                if log.is_poisoned() {
                    log.recover().map_err(|e| {
                        super::report(format_args!("the log still cannot be written: {e}"));
                        AppError::Unsaved
                    })?;
                    super::report(format_args!(
                        "the log recovered from an earlier failed write"
                    ));
                }
                f(log)
            })
        }

        /// A reader of the same directory, which takes no lock.
        pub fn reader(&self) -> EventReader {
            self.0.reader.clone()
        }

        /// The next sequence number as the follower last saw it.
        pub fn head(&self) -> u64 {
            self.0.head.load(Ordering::Acquire)
        }

        /// A receiver of the log's growth: the next sequence number, each
        /// time the follower saw new events (several appends close together
        /// may be announced once).
        pub fn changes(&self) -> broadcast::Receiver<u64> {
            self.0.changes.subscribe()
        }

        /// A receiver that sees `true` once the server stops.
        pub fn stopping(&self) -> watch::Receiver<bool> {
            self.0.stopping.subscribe()
        }

        /// Ends every live stream, so that a graceful shutdown does not
        /// wait for open pages to close them.
        pub fn stop_live(&self) {
            self.0.stopping.send_replace(true);
        }

        /// Saves the views' snapshots, for a clean shutdown.
        pub fn save(&self) -> Result<(), AppError> {
            self.with(|log| log.save_views().map_err(unsaved))
        }
    }

    /// The follower: follows the log from `from` and publishes the next
    /// sequence number after each burst of events, until the store is
    /// gone. It reads the files, so it sees every acknowledged append,
    /// from any request; a read error is logged and the follow goes on
    /// from its cursor.
    fn follow(reader: &EventReader, from: u64, store: &Weak<Inner>) {
        let mut follow = reader.follow(from);
        loop {
            match follow.next_timeout(FOLLOW_SLICE) {
                Some(Ok(_)) => {
                    // Take the rest of the burst without waiting.
                    while let Some(Ok(_)) = follow.next_timeout(Duration::ZERO) {}
                    let Some(store) = store.upgrade() else { return };
                    let head = follow.next_seq();
                    store.head.store(head, Ordering::Release);
                    // No receiver (no open page) is not an error.
                    let _ = store.changes.send(head);
                }
                Some(Err(e)) => {
                    // The follower goes on from its cursor.
                    super::report(format_args!("following the log failed, trying again: {e}"));
                    thread::sleep(FOLLOW_RETRY);
                }
                None => {}
            }
            if store.strong_count() == 0 {
                return;
            }
        }
    }

    /// A write failed: the details go to the server's log, the visitor
    /// gets [`AppError::Unsaved`].
    pub fn unsaved(error: eventfold::Error) -> AppError {
        super::report(format_args!("a write failed: {error}"));
        AppError::Unsaved
    }

    /// A read failed: the details go to the server's log, the visitor
    /// gets [`AppError::Unavailable`].
    pub fn unavailable(error: eventfold::Error) -> AppError {
        super::report(format_args!("a read failed: {error}"));
        AppError::Unavailable
    }

    /// The store of this server, from the Leptos context.
    pub fn store() -> Result<Store, AppError> {
        use_context::<Store>().ok_or_else(|| {
            super::report(format_args!("the server has no data store configured"));
            AppError::Broken
        })
    }

    /// Runs `f` on a blocking thread.
    pub async fn blocking<T, F>(f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, AppError> + Send + 'static,
    {
        tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
            super::report(format_args!("a request failed: {e}"));
            Err(AppError::Broken)
        })
    }

    /// Runs `f` with the log locked, on a blocking thread, to read.
    pub async fn read<T, F>(f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut EventLog) -> Result<T, AppError> + Send + 'static,
    {
        let store = store()?;
        blocking(move || store.with(f)).await
    }

    /// Runs `f` with the log locked, on a blocking thread, to write (see
    /// [`Store::write`]).
    pub async fn write<T, F>(f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut EventLog) -> Result<T, AppError> + Send + 'static,
    {
        let store = store()?;
        blocking(move || store.write(f)).await
    }

    /// The state `reducer` folds from the first event through event `at`,
    /// read through the reader (no lock).
    pub async fn past<S: Default + Send + 'static>(
        reducer: ReduceFn<S>,
        at: u64,
    ) -> Result<S, AppError> {
        let reader = store()?.reader();
        blocking(move || {
            reader.state_at(reducer, at).map_err(|e| match e {
                eventfold::Error::InvalidSeq { next_seq, .. } => AppError::Invalid(format!(
                    "There is no change number {} yet: the history holds {next_seq}.",
                    at.saturating_add(1)
                )),
                e => unavailable(e),
            })
        })
        .await
    }

    /// Events `start..end` of the whole history, through `reader`.
    pub fn events(
        reader: &EventReader,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, Event)>, AppError> {
        let events = reader.read_from_seq(start).map_err(unavailable)?;
        events
            .take_while(|item| item.as_ref().map_or(true, |(seq, _, _)| *seq < end))
            .map(|item| item.map(|(seq, event, _)| (seq, event)))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }

    /// The feed's lines for `events`, naming todos from the `names` view.
    pub async fn entries(events: Vec<(u64, Event)>) -> Result<Vec<FeedEntry>, AppError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        read(move |log| {
            log.refresh_view(NAMES).map_err(unavailable)?;
            let names = log.view::<NamesState>(NAMES).map_err(unavailable)?;
            Ok(events
                .iter()
                .map(|(seq, event)| feed_entry(*seq, event, |id| names.texts.get(id).cloned()))
                .collect())
        })
        .await
    }

    /// The answer to `GET /api/changes`: a stream of server-sent events,
    /// one message whose data is the next sequence number when the stream
    /// opens, then one each time the follower saw the log grow. Open pages
    /// refetch what they show on each. The stream ends when the server
    /// stops ([`Store::stop_live`]).
    pub fn live_stream(
        store: &Store,
    ) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + Send + use<>> {
        let message = |head: u64| Ok(SseEvent::default().data(head.to_string()));
        let first = Ok(SseEvent::default()
            .retry(LIVE_RETRY)
            .data(store.head().to_string()));
        let rest = stream::unfold(
            (store.changes(), store.stopping()),
            move |(mut changes, mut stopping)| async move {
                loop {
                    let received = tokio::select! {
                        _ = stopping.wait_for(|stop| *stop) => return None,
                        received = changes.recv() => received,
                    };
                    match received {
                        Ok(head) => return Some((message(head), (changes, stopping))),
                        // Missed announcements: the next one still comes.
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        );
        Sse::new(stream::once(async move { first }).chain(rest)).keep_alive(KeepAlive::default())
    }

    /// The live todo with this id, as of now.
    pub fn current_todo(log: &mut EventLog, id: &str) -> Result<Todo, AppError> {
        log.refresh_view(TODOS).map_err(unavailable)?;
        log.view::<TodoState>(TODOS)
            .map_err(unavailable)?
            .get(id)
            .cloned()
            .ok_or(AppError::NotFound)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::state::todo_added;

        #[test]
        fn a_poisoned_lock_is_an_error_not_a_panic() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), 0).unwrap();
            let clone = store.clone();
            let panicked = std::thread::spawn(move || {
                clone.with::<()>(|_| panic!("a request panicking with the lock held"))
            })
            .join();
            assert!(panicked.is_err());
            let error = store.with(|_| Ok(())).unwrap_err();
            assert_eq!(error, AppError::Broken);
            assert!(error.to_string().contains("restart the server"));
        }

        #[test]
        fn unknown_ids_are_not_found_and_write_nothing() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), 0).unwrap();
            store
                .write(|log| log.append(&todo_added("a", "milk", 1)).map_err(unsaved))
                .unwrap();
            let before = store.with(|log| Ok(log.active_len())).unwrap();
            let error = store.with(|log| current_todo(log, "b")).unwrap_err();
            assert_eq!(error, AppError::NotFound);
            assert_eq!(store.with(|log| Ok(log.active_len())).unwrap(), before);
            assert_eq!(
                store.with(|log| current_todo(log, "a")).unwrap().text,
                "milk"
            );
        }

        #[test]
        fn a_second_server_on_the_same_directory_is_refused() {
            let dir = tempfile::tempdir().unwrap();
            let _first = Store::open(dir.path(), 0).unwrap();
            let error = Store::open(dir.path(), 0).unwrap_err();
            assert!(matches!(error, eventfold::Error::Locked { .. }), "{error}");
        }

        #[test]
        fn the_follower_announces_appends_and_stops_with_the_store() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), 0).unwrap();
            let mut changes = store.changes();
            store
                .write(|log| {
                    let events = [todo_added("a", "milk", 1), todo_added("b", "eggs", 1)];
                    log.append_batch(&events).map_err(unsaved)
                })
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut head = 0;
            while head < 2 {
                assert!(std::time::Instant::now() < deadline, "no announcement");
                match changes.try_recv() {
                    Ok(seq) => head = seq,
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            assert_eq!((head, store.head()), (2, 2));
            drop(store);
            // The follower ends with the store: the channel closes.
            loop {
                assert!(std::time::Instant::now() < deadline, "the follower runs on");
                match changes.try_recv() {
                    Err(broadcast::error::TryRecvError::Closed) => break,
                    _ => thread::sleep(Duration::from_millis(10)),
                }
            }
        }

        #[test]
        fn storage_errors_say_nothing_of_the_server() {
            let dir = tempfile::tempdir().unwrap();
            let error = eventfold::Error::Io {
                path: Some(dir.path().join("app.jsonl")),
                source: std::io::Error::from_raw_os_error(28),
            };
            let shown =
                [unsaved(error), AppError::Unavailable, AppError::Broken].map(|e| e.to_string());
            for text in &shown {
                assert!(!text.contains(&*dir.path().to_string_lossy()), "{text}");
                assert!(
                    !text.contains("os error") && !text.contains("app.jsonl"),
                    "{text}"
                );
            }
            assert!(
                shown[0].starts_with("Could not save, try again"),
                "{}",
                shown[0]
            );
        }
    }
}
