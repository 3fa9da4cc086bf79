//! The statistics panel, fed by the `stats` view alone.

use super::Page;
use crate::server::get_stats;
use crate::state::Stats;
use leptos::prelude::*;

/// Created, open, done and deleted counts with a progress bar. It has its
/// own resource and its own server function: a second view of the same
/// log powers a second part of the page. In the past (time travel), the
/// figures as they were then.
#[component]
pub fn StatsPanel(
    /// What the parts of the page share.
    page: Page,
) -> impl IntoView {
    let stats = Resource::new(
        move || (page.version(), page.at.get()),
        |(_, at)| get_stats(at),
    );
    view! {
        <aside class="card stats" aria-label="Statistics">
            <h2>"Statistics"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match stats.await {
                        Ok(stats) => view! { <Figures stats/> }.into_any(),
                        Err(e) => view! {
                            <p class="message error" role="alert">{e.to_string()}</p>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </aside>
    }
    .into_any()
}

#[component]
fn Figures(stats: Stats) -> impl IntoView {
    let live = stats.open + stats.done;
    let percent = (stats.done * 100).checked_div(live).unwrap_or(0);
    let tile = |key: &'static str, label: &'static str, value: u64| {
        view! {
            <div class="tile" data-stat=key>
                <dt>{label}</dt>
                <dd>{value}</dd>
            </div>
        }
    };
    view! {
        <dl class="tiles">
            {tile("created", "Created", stats.total_created)}
            {tile("open", "Open", stats.open)}
            {tile("done", "Done", stats.done)}
            {tile("deleted", "Deleted", stats.total_deleted)}
        </dl>
        <div class="progress" aria-hidden="true">
            <div class="bar" style=format!("width: {percent}%")></div>
        </div>
        <p class="muted progress-label">
            {if live == 0 {
                "No todos on the list.".to_owned()
            } else {
                format!("{percent}% of the list is done.")
            }}
        </p>
    }
}
