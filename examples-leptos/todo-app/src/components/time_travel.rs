//! Time travel: a slider and a stepper over the history.

use super::{Page, page_href};
use crate::server::get_timeline;
use crate::state::{Timeline, ago};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_navigate;

/// A slider over every change of the history, with "earlier" and "later"
/// steps and a button to show the chosen point; in the past, a banner says
/// which change the page shows and leads back to now. Everything is a link
/// or a GET form (`?at=SEQ`), so it works without JavaScript; with it, the
/// router moves without reloading and the slider moves as it is let go.
#[component]
pub fn TimeTravel(
    /// What the parts of the page share.
    page: Page,
) -> impl IntoView {
    let timeline = Resource::new(
        move || (page.version(), page.at.get()),
        |(_, at)| get_timeline(at),
    );
    view! {
        <section class="card travel" aria-label="Time travel">
            <Transition fallback=|| view! { <p class="muted">"Loading the history…"</p> }>
                {move || Suspend::new(async move {
                    match timeline.await {
                        Ok(timeline) => view! { <Control timeline page/> }.into_any(),
                        Err(e) => view! {
                            <p class="message error" role="alert" id="travel-error">
                                {e.to_string()} " " <a href="/" class="back-to-now">"Back to now"</a>
                            </p>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
    .into_any()
}

#[component]
fn Control(timeline: Timeline, page: Page) -> impl IntoView {
    let Timeline { head, at, now } = timeline;
    let Some(last) = head.checked_sub(1) else {
        return view! {
            <p class="muted travel-empty">
                "History: no changes yet. Every change will be here to look back at."
            </p>
        }
        .into_any();
    };
    let current = at.as_ref().map_or(last, |entry| entry.seq);
    let before = page.before;
    let earlier = (current > 0).then(|| {
        let href = move || page_href(Some(current - 1), before.get());
        view! { <a class="step earlier" href=href title="One change earlier">"◀ Earlier"</a> }
    });
    let later = (at.is_some() && current < last).then(|| {
        let href = move || page_href(Some(current + 1), before.get());
        view! { <a class="step later" href=href title="One change later">"Later ▶"</a> }
    });
    let navigate = use_navigate();
    let on_change = move |ev| {
        if let Ok(seq) = event_target_value(&ev).parse::<u64>() {
            navigate(
                &page_href(Some(seq), before.get_untracked()),
                Default::default(),
            );
        }
    };
    let position = format!("Change {} of {head}", current + 1);
    let banner = at.map(|entry| {
        view! {
            <div class="past-banner" role="status" id="past-banner" data-at=entry.seq>
                <p>
                    "You are looking at the past: the list and the statistics as they were right after change "
                    <strong>{entry.seq + 1}</strong> " of " {head} ", when someone "
                    {entry.describe()} " (" {ago(now, entry.ts)} "). Nothing can be changed here."
                </p>
                <a href=move || page_href(None, before.get()) class="back-to-now">"Back to now"</a>
            </div>
        }
    });
    view! {
        <Form method="GET" action="/" attr:class="travel-form">
            <label for="travel-at" class="travel-label">"History"</label>
            {earlier}
            <input
                id="travel-at"
                class="travel-slider"
                type="range"
                name="at"
                min="0"
                max=last
                value=current
                aria-valuetext=position.clone()
                on:change=on_change
            />
            {later}
            <button type="submit" class="travel-go">"Show"</button>
            <span class="travel-position">{position}</span>
        </Form>
        {banner}
    }
    .into_any()
}
