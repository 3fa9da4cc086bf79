//! The list: the form that adds a todo, and the todos.

use super::Page;
use super::todo_item::TodoItem;
use crate::server::{AddTodo, get_todos};
use crate::state::MAX_TEXT_CHARS;
use leptos::html::Input;
use leptos::prelude::*;

/// The form and the list. Fetches the todos with `get_todos`, again after
/// every completed action and every live update, and keeps showing the old
/// list until the new one arrives, so nothing flickers. In the past (time
/// travel) it shows the list as it was then, without the form or buttons.
#[component]
pub fn TodoList(
    /// What the parts of the page share.
    page: Page,
) -> impl IntoView {
    let actions = page.actions;
    let todos = Resource::new(
        move || (page.version(), page.at.get()),
        |(_, at)| get_todos(at),
    );

    // Empty the text box as soon as a todo is sent, so that the next one can
    // be typed while it is saved; if it is refused, put its text back to be
    // corrected, unless something else was typed meanwhile. (With
    // JavaScript; without it, every post loads the page anew anyway.)
    let input = NodeRef::<Input>::new();
    let sent = StoredValue::new(String::new());
    Effect::new(move |_| {
        if let (Some(AddTodo { text }), Some(input)) = (actions.add.input().get(), input.get()) {
            input.set_value("");
            sent.set_value(text);
        }
    });
    Effect::new(move |_| {
        if let (Some(Err(_)), Some(input)) = (actions.add.value().get(), input.get())
            && input.value().is_empty()
        {
            sent.with_value(|text| input.set_value(text));
        }
    });
    let add_error = move || actions.add.value().get().and_then(Result::err);
    let placeholder = format!("What needs to be done? (up to {MAX_TEXT_CHARS} characters)");

    let form = move || {
        let placeholder = placeholder.clone();
        (!page.in_past()).then(move || {
            view! {
        <ActionForm action=actions.add attr:class="add-form">
            <input
                type="text"
                name="text"
                class="add-input"
                placeholder=placeholder
                aria-label="New todo"
                autocomplete="off"
                autofocus
                node_ref=input
            />
            <button type="submit" class="add-button" disabled=move || actions.add.pending().get()>
                "Add"
            </button>
        </ActionForm>
            }
        })
    };

    view! {
        {form}
        {move || add_error().map(|e| view! { <p class="message error" role="alert" id="add-error">{e.to_string()}</p> })}
        {move || actions.row_error().map(|e| view! { <p class="message error" role="alert" id="row-error">{e.to_string()}</p> })}
        <Transition fallback=|| view! { <p class="muted">"Loading your todos…"</p> }>
            {move || Suspend::new(async move {
                match todos.await {
                    Ok(items) if items.is_empty() => {
                        let empty = if page.in_past() {
                            "The list was empty then."
                        } else {
                            "Nothing to do. Add your first todo above."
                        };
                        view! { <p class="empty">{empty}</p> }.into_any()
                    }
                    Ok(items) => view! {
                        <ul class="todos">
                            {items
                                .into_iter()
                                .map(|todo| view! { <TodoItem todo actions read_only=page.in_past()/> })
                                .collect_view()}
                        </ul>
                    }
                    .into_any(),
                    Err(e) => view! {
                        <p class="message error" role="alert">"Could not load your todos. " {e.to_string()}</p>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}
