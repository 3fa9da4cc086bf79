//! The activity feed: the latest changes, newest first, paged backwards
//! through the whole history.

use super::{Page, page_href};
use crate::server::get_feed;
use crate::state::{FeedPage, ago};
use leptos::prelude::*;

/// "Added “Buy milk” · 2 minutes ago", one line per event, read by
/// sequence number from the log (archive included) with `get_feed`. Each
/// line links to the page as it was right after that change (time
/// travel); "Older" and "Newer" page through the history, as plain links
/// that work without JavaScript too.
#[component]
pub fn ActivityFeed(
    /// What the parts of the page share.
    page: Page,
) -> impl IntoView {
    let feed = Resource::new(
        move || (page.version(), page.before.get()),
        |(_, before)| get_feed(before),
    );
    view! {
        <section class="card feed" aria-label="Activity">
            <h2>"Activity"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match feed.await {
                        Ok(feed) => view! { <Entries feed page/> }.into_any(),
                        Err(e) => view! {
                            <p class="message error" role="alert">
                                "Could not load the activity. " {e.to_string()}
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
fn Entries(feed: FeedPage, page: Page) -> impl IntoView {
    let FeedPage {
        entries,
        older,
        newer,
        head,
        now,
    } = feed;
    if entries.is_empty() {
        return view! { <p class="muted">"No changes yet: they will show here."</p> }.into_any();
    }
    let at = page.at;
    let lines = entries
        .into_iter()
        .map(|entry| {
            let seq = entry.seq;
            let class = move || match at.get() {
                Some(at) if at == seq => "entry current",
                Some(at) if seq > at => "entry later",
                _ => "entry",
            };
            view! {
                <li class=class data-seq=seq>
                    <a
                        class="what"
                        href=page_href(Some(seq), page.before.get_untracked())
                        title="See the list as it was right after this change"
                    >
                        {entry.describe()}
                    </a>
                    <span class="when">{ago(now, entry.ts)}</span>
                </li>
            }
        })
        .collect_view();
    let newer = newer.map(|before| {
        let before = (before < head).then_some(before);
        view! {
            <a class="newer" href=move || page_href(at.get(), before)>"← Newer"</a>
        }
    });
    let older = older.map(|before| {
        view! {
            <a class="older" href=move || page_href(at.get(), Some(before))>"Older →"</a>
        }
    });
    view! {
        <ol class="feed-list">{lines}</ol>
        <nav class="pager" aria-label="Pages of the activity">{newer} {older}</nav>
    }
    .into_any()
}
