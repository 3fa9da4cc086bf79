//! One row of the list.

use super::Actions;
use crate::state::Todo;
use leptos::prelude::*;

/// A todo with its two buttons: the round one toggles it, the cross
/// deletes it. Each is a small form, so both work without JavaScript too.
/// `read_only` (the past, in time travel) shows the todo without them.
#[component]
pub fn TodoItem(
    /// The todo shown.
    todo: Todo,
    /// The actions its buttons dispatch.
    actions: Actions,
    /// Whether to show it without buttons (the past).
    read_only: bool,
) -> impl IntoView {
    let Todo { id, text, done, .. } = todo;
    let toggle_label = if done {
        "Mark as not done"
    } else {
        "Mark as done"
    };
    let (toggle_id, delete_id) = (id.clone(), id.clone());
    if read_only {
        return view! {
            <li class=if done { "todo done past" } else { "todo past" } data-id=id>
                <span class="check" aria-label=if done { "Done" } else { "Not done" }>
                    {if done { "✓" } else { "" }}
                </span>
                <span class="text">{text}</span>
            </li>
        }
        .into_any();
    }
    view! {
        <li class=if done { "todo done" } else { "todo" } data-id=id>
            <ActionForm action=actions.toggle attr:class="toggle-form">
                <input type="hidden" name="id" value=toggle_id/>
                <button
                    type="submit"
                    class="check"
                    title=toggle_label
                    aria-label=toggle_label
                    aria-pressed=if done { "true" } else { "false" }
                >
                    {if done { "✓" } else { "" }}
                </button>
            </ActionForm>
            <span class="text">{text}</span>
            <ActionForm action=actions.delete attr:class="delete-form">
                <input type="hidden" name="id" value=delete_id/>
                <button type="submit" class="delete" title="Delete" aria-label="Delete">
                    "×"
                </button>
            </ActionForm>
        </li>
    }
    .into_any()
}
