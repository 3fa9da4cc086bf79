//! The server functions: the only place where the app touches eventfold.
//!
//! Each one takes the shared log out of the Leptos context, locks it for as
//! long as one append or one refresh takes (on a blocking thread, since
//! eventfold is synchronous and an append waits for the disk), and unlocks.
//! Writes validate against the current `todos` view while holding the lock,
//! so two clients cannot both act on a todo that one of them just deleted.
//!
//! The same functions are called by the hydrated page (as `fetch` requests)
//! and by plain HTML forms when JavaScript is off: they all take form-encoded
//! arguments at fixed URLs under `/api/`.

use crate::state::{Stats, Todo};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What can go wrong in a server function, worded for the person using the
/// page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// The input was refused; nothing was written.
    Invalid(String),
    /// The todo does not exist (any more); nothing was written.
    NotFound,
    /// The data store failed or is unavailable.
    Storage(String),
    /// The request did not get through, or its answer could not be read.
    Request(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Invalid(message) => f.write_str(message),
            AppError::NotFound => f.write_str(
                "That todo no longer exists: it was probably deleted in another window. \
                 The list now shows the current todos.",
            ),
            AppError::Storage(message) => write!(f, "The todo store failed: {message}"),
            AppError::Request(message) => {
                write!(f, "The request to the server failed: {message}")
            }
        }
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value.to_string())
    }
}

/// Adds a todo. Refuses empty, whitespace-only and too long text.
#[server(endpoint = "add_todo")]
pub async fn add_todo(text: String) -> Result<(), AppError> {
    use crate::state::{todo_added, validate_text};

    let text = validate_text(&text)
        .map_err(|e| AppError::Invalid(e.to_string()))?
        .to_owned();
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = ssr::unix_now();
    ssr::with_log(move |log| {
        log.append(&todo_added(&id, &text, created_at))?;
        Ok(())
    })
    .await
}

/// Marks a todo done if it is open, open if it is done.
#[server(endpoint = "toggle_todo")]
pub async fn toggle_todo(id: String) -> Result<(), AppError> {
    use crate::state::todo_toggled;

    ssr::with_log(move |log| {
        let done = ssr::current_todo(log, &id)?.done;
        log.append(&todo_toggled(&id, !done))?;
        Ok(())
    })
    .await
}

/// Deletes a todo.
#[server(endpoint = "delete_todo")]
pub async fn delete_todo(id: String) -> Result<(), AppError> {
    use crate::state::todo_deleted;

    ssr::with_log(move |log| {
        ssr::current_todo(log, &id)?;
        log.append(&todo_deleted(&id))?;
        Ok(())
    })
    .await
}

/// The current todos, oldest first.
#[server(endpoint = "get_todos")]
pub async fn get_todos() -> Result<Vec<Todo>, AppError> {
    use crate::state::TodoState;

    ssr::with_log(|log| {
        log.refresh_view(ssr::TODOS)?;
        Ok(log.view::<TodoState>(ssr::TODOS)?.items.clone())
    })
    .await
}

/// The statistics, from the `stats` view alone.
#[server(endpoint = "get_stats")]
pub async fn get_stats() -> Result<Stats, AppError> {
    use crate::state::StatsState;

    ssr::with_log(|log| {
        log.refresh_view(ssr::STATS)?;
        Ok(log.view::<StatsState>(ssr::STATS)?.summary())
    })
    .await
}

/// The shared log and the helpers the server functions use.
#[cfg(feature = "ssr")]
pub mod ssr {
    use super::AppError;
    use crate::state::{StatsState, Todo, TodoState, stats_reducer, todo_reducer};
    use eventfold::EventLog;
    use leptos::prelude::use_context;
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The name of the view holding the list.
    pub const TODOS: &str = "todos";
    /// The name of the view holding the statistics.
    pub const STATS: &str = "stats";

    /// The event log, shared by every request through the Leptos context.
    #[derive(Clone, Debug)]
    pub struct Store(Arc<Mutex<EventLog>>);

    impl Store {
        /// Opens (or creates) the log in `dir` with the app's two views;
        /// the active log is rotated into the archive past `max_log_size`
        /// bytes.
        pub fn open(dir: &Path, max_log_size: u64) -> eventfold::Result<Store> {
            let log = EventLog::builder(dir)
                .max_log_size(max_log_size)
                .view::<TodoState>(TODOS, todo_reducer)
                .view::<StatsState>(STATS, stats_reducer)
                .open()?;
            Ok(Store(Arc::new(Mutex::new(log))))
        }

        /// Runs `f` with the log locked. A lock poisoned by an earlier
        /// panic becomes an error, not a second panic.
        pub fn with<T>(
            &self,
            f: impl FnOnce(&mut EventLog) -> Result<T, AppError>,
        ) -> Result<T, AppError> {
            let mut log = self.0.lock().map_err(|_| {
                AppError::Storage(
                    "it is unavailable because an earlier request failed while using it; \
                     restart the server (no saved todo is lost)"
                        .into(),
                )
            })?;
            f(&mut log)
        }

        /// Saves the views' snapshots, for a clean shutdown.
        pub fn save(&self) -> Result<(), AppError> {
            self.with(|log| Ok(log.save_views()?))
        }
    }

    impl From<eventfold::Error> for AppError {
        fn from(error: eventfold::Error) -> Self {
            eprintln!("todo-app: eventfold error: {error}");
            AppError::Storage(error.to_string())
        }
    }

    /// Runs `f` with the log locked, on a blocking thread.
    pub async fn with_log<T, F>(f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut EventLog) -> Result<T, AppError> + Send + 'static,
    {
        let store = use_context::<Store>()
            .ok_or_else(|| AppError::Storage("the server has no data store configured".into()))?;
        tokio::task::spawn_blocking(move || store.with(f))
            .await
            .unwrap_or_else(|e| {
                eprintln!("todo-app: a request failed: {e}");
                Err(AppError::Storage(
                    "an internal error stopped this request".into(),
                ))
            })
    }

    /// The live todo with this id, as of now.
    pub fn current_todo(log: &mut EventLog, id: &str) -> Result<Todo, AppError> {
        log.refresh_view(TODOS)?;
        log.view::<TodoState>(TODOS)?
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
            assert!(matches!(error, AppError::Storage(_)));
            assert!(error.to_string().contains("restart the server"));
        }

        #[test]
        fn unknown_ids_are_not_found_and_write_nothing() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), 0).unwrap();
            store
                .with(|log| Ok(log.append(&todo_added("a", "milk", 1))?))
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
    }
}
