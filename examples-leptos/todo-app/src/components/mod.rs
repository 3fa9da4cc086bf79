//! The page's parts: the list with its form, one row, the statistics, the
//! activity feed and the time-travel control, and what they share
//! ([`Page`]).

pub mod feed;
pub mod stats;
pub mod time_travel;
pub mod todo_item;
pub mod todo_list;

use crate::server::{AddTodo, AppError, DeleteTodo, ToggleTodo};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// What every part of the page reads: the write actions, the live-update
/// signal, and the two query parameters, `at` (time travel: the event the
/// page shows the state after) and `before` (the feed's page).
#[derive(Clone, Copy)]
pub struct Page {
    /// The write actions.
    pub actions: Actions,
    /// The next sequence number the live stream last announced; it changes
    /// whenever the log grew, whoever wrote.
    pub live: RwSignal<u64>,
    /// `?at=SEQ`: the page shows the todos and the statistics as they were
    /// right after event `SEQ`, read-only. `None`: now.
    pub at: Memo<Option<u64>>,
    /// `?before=SEQ`: the feed shows the events before `SEQ`. `None`: the
    /// latest.
    pub before: Memo<Option<u64>>,
}

impl Page {
    /// Creates the actions and reads the query parameters (a value that is
    /// not a number is ignored).
    pub fn new() -> Self {
        let query = use_query_map();
        let number = move |key: &'static str| {
            Memo::new(move |_| query.read().get(key).and_then(|v| v.trim().parse().ok()))
        };
        Page {
            actions: Actions::new(),
            live: RwSignal::new(0),
            at: number("at"),
            before: number("before"),
        }
    }

    /// Changes whenever the data may have changed: an action of this page
    /// completed, or the live stream announced an append. Read it in a
    /// resource's source to refetch then.
    pub fn version(&self) -> (usize, u64) {
        (self.actions.version(), self.live.get())
    }

    /// Whether the page shows the past (and is then read-only).
    pub fn in_past(&self) -> bool {
        self.at.get().is_some()
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new()
    }
}

/// The link to this page with these query parameters.
pub fn page_href(at: Option<u64>, before: Option<u64>) -> String {
    match (at, before) {
        (None, None) => "/".to_owned(),
        (Some(at), None) => format!("/?at={at}"),
        (None, Some(before)) => format!("/?before={before}"),
        (Some(at), Some(before)) => format!("/?at={at}&before={before}"),
    }
}

/// Listens to the server's live stream (`/api/changes`, server-sent
/// events) for as long as the page is open, and sets `live` to each
/// announced sequence number; `connected` tells whether the stream is open.
/// The browser reconnects by itself when the stream breaks.
#[cfg(feature = "hydrate")]
pub fn listen_live(live: RwSignal<u64>, connected: RwSignal<bool>) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    let source = match web_sys::EventSource::new("/api/changes") {
        Ok(source) => source,
        Err(e) => {
            leptos::logging::error!("todo-app: no live updates: {e:?}");
            return;
        }
    };
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            if let Some(head) = event.data().as_string().and_then(|d| d.parse().ok()) {
                live.set(head);
            }
        });
    let on_open = Closure::<dyn FnMut()>::new(move || connected.set(true));
    let on_error = Closure::<dyn FnMut()>::new(move || connected.set(false));
    source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // The stream lives as long as the page: so do its handlers.
    on_message.forget();
    on_open.forget();
    on_error.forget();
    std::mem::forget(source);
}

/// The three write actions, shared by the list and the statistics: each
/// part refetches its data when any of them completes.
#[derive(Clone, Copy)]
pub struct Actions {
    /// Adds a todo.
    pub add: ServerAction<AddTodo>,
    /// Toggles a todo.
    pub toggle: ServerAction<ToggleTodo>,
    /// Deletes a todo.
    pub delete: ServerAction<DeleteTodo>,
}

impl Actions {
    /// Creates the actions. An error that a form post without JavaScript
    /// got back is picked up here, from the page's URL.
    pub fn new() -> Self {
        let actions = Actions {
            add: ServerAction::new(),
            toggle: ServerAction::new(),
            delete: ServerAction::new(),
        };
        // Only the message of the latest action is shown: starting one
        // clears what the others said.
        Effect::new(move |_| {
            let (add, toggle, delete) = (
                actions.add.pending().get(),
                actions.toggle.pending().get(),
                actions.delete.pending().get(),
            );
            if add || toggle || delete {
                if !add {
                    actions.add.value().set(None);
                }
                if !toggle {
                    actions.toggle.value().set(None);
                }
                if !delete {
                    actions.delete.value().set(None);
                }
            }
        });
        actions
    }

    /// How many actions have completed; read it to refetch after each.
    pub fn version(&self) -> usize {
        self.add.version().get() + self.toggle.version().get() + self.delete.version().get()
    }

    /// The error of the last toggle or delete, if it failed.
    pub fn row_error(&self) -> Option<AppError> {
        let failed = |value: Option<Result<(), AppError>>| value.and_then(Result::err);
        failed(self.toggle.value().get()).or_else(|| failed(self.delete.value().get()))
    }
}

impl Default for Actions {
    fn default() -> Self {
        Self::new()
    }
}
