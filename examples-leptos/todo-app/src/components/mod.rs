//! The page's parts: the list with its form, one row, the statistics.

pub mod stats;
pub mod todo_item;
pub mod todo_list;

use crate::server::{AddTodo, AppError, DeleteTodo, ToggleTodo};
use leptos::prelude::*;

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
