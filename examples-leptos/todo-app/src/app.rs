//! The HTML shell, the router and the home page.

use crate::components::Page;
use crate::components::feed::ActivityFeed;
use crate::components::stats::StatsPanel;
use crate::components::time_travel::TimeTravel;
use crate::components::todo_list::TodoList;
use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// The document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>"Todos · eventfold"</title>
                <link rel="stylesheet" href="/pkg/todo_app.css"/>
                <link
                    rel="icon"
                    href="data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='%234f46e5'/><path d='M4.5 8.2l2.3 2.3 4.7-4.8' stroke='white' stroke-width='1.8' fill='none'/></svg>"
                />
                <HydrationScripts options/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: one page, and a "not found" page for other paths.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <Routes fallback=NotFound>
                // Async: the server waits for the data and sends a complete
                // page, which is useful on its own without JavaScript.
                <Route path=path!("/") view=HomePage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

/// The time-travel control above, the list and the activity feed below
/// it, the statistics beside them.
#[component]
fn HomePage() -> impl IntoView {
    let page = Page::new();
    // Set once the browser has hydrated the page (effects run only there),
    // and once the live stream is open.
    let hydrated = RwSignal::new(false);
    let connected = RwSignal::new(false);
    Effect::new(move |_| {
        hydrated.set(true);
        #[cfg(feature = "hydrate")]
        crate::components::listen_live(page.live, connected);
    });
    view! {
        <div
            class="page"
            class:in-past=move || page.in_past()
            data-hydrated=move || hydrated.get().then_some("true")
            data-live=move || connected.get().then_some("open")
        >
            <header class="masthead">
                <h1>"Todos"</h1>
                <p class="tagline">"Every change is an event in an append-only log."</p>
            </header>
            <TimeTravel page/>
            <main class="layout">
                <div class="column">
                    <section class="card list" aria-label="Todos">
                        <TodoList page/>
                    </section>
                    <ActivityFeed page/>
                </div>
                <StatsPanel page/>
            </main>
            <footer class="footer">
                "Stored with eventfold: one JSON line per change in "
                <code>"app.jsonl"</code>
                ", folded into views by plain Rust reducers."
            </footer>
        </div>
    }
}

/// Any other path.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <div class="page">
            <header class="masthead">
                <h1>"Not found"</h1>
                <p class="tagline">
                    "There is nothing here. " <a href="/">"Back to your todos"</a>
                </p>
            </header>
        </div>
    }
}
