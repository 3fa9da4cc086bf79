//! Views folded straight over the stream, on any machine that reaches the
//! server: the writer's reducers and the same snapshot files, without a
//! local copy of the log.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfold::View;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Notice;
use crate::error::{Error, Result};
use crate::follow::{self, Feed, Follower, Position};
use crate::stop::Stop;
use crate::stream::{self, Target};
use crate::wire;

/// How long the stream stays quiet before a view saves what it folded
/// since its last snapshot.
const QUIET: Duration = Duration::from_millis(500);
/// While messages keep coming, the snapshot is saved at least this often,
/// so that a restart folds at most this much again.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// An [`eventfold::View`] folded over the stream with an ordered consumer:
/// the same reducer computes the same state as the writer's view of the
/// same name, on another machine, from the messages the
/// [`Replicator`](crate::Replicator) published.
///
/// The view's snapshot (`NAME.snapshot.json` in the view's directory,
/// the format of a log's views) records how many events it holds and the
/// line hash of the last one; a new `StreamView` goes on from there, after
/// checking that the stream's message at that place has that hash. Every
/// message is checked before it is folded: its position, its line hash,
/// its log, and the chain hash over the events before it.
///
/// # Examples
///
/// ```no_run
/// use eventfold::{Event, View};
/// use eventfold_nats::{StreamView, Target};
///
/// fn balance(total: i64, e: &Event) -> i64 { total + e.data["amount"].as_i64().unwrap_or(0) }
///
/// # async fn run() -> Result<(), eventfold_nats::Error> {
/// let view = View::new("balance", balance, "./views")?;
/// let mut view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?;
/// view.catch_up().await?; // every event the stream holds now
/// println!("balance after {} events: {}", view.next_seq(), view.state());
/// # Ok(()) }
/// ```
#[must_use]
pub struct StreamView<S> {
    view: View<S>,
    target: Target,
    /// Where the fold stands in the stream, once checked against it.
    at: Option<Position>,
    /// Whether the state is ahead of the snapshot on disk, and when the
    /// snapshot was last saved (kept across reconnections).
    unsaved: bool,
    saved_at: Instant,
    notice: Notice,
}

impl<S: std::fmt::Debug> std::fmt::Debug for StreamView<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamView")
            .field("view", &self.view)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<S> StreamView<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    /// Folds `view` over the stream of `target`, from its snapshot if it
    /// has one (see [`View::load_folded`]), else from event 0. Give the
    /// view the writer's [upcasters](View::with_upcasters) and
    /// [version](View::with_version), as the writer's view has them.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    /// use eventfold_nats::{StreamView, Target};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let view = View::new("count", count, dir.path())?;
    /// let view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?;
    /// assert_eq!(view.next_seq(), 0); // no snapshot yet
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the snapshot exists but cannot be read, or the
    /// view was refreshed from a log.
    pub fn new(mut view: View<S>, target: Target) -> Result<StreamView<S>> {
        view.load_folded()?;
        Ok(StreamView {
            view,
            target,
            at: None,
            unsaved: false,
            saved_at: Instant::now(),
            notice: crate::stderr_notice(),
        })
    }

    /// Where messages for people go (a retry after a server failure):
    /// standard error unless set.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    /// use eventfold_nats::{StreamView, Target};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let view = View::new("count", count, dir.path())?;
    /// let view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?
    ///     .on_notice(|text| eprintln!("view: {text}"));
    /// # let _ = view;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn on_notice(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> StreamView<S> {
        self.notice = Arc::new(f);
        self
    }

    /// The view's state: the fold of events `0..next_seq()`.
    ///
    /// # Examples
    ///
    /// See [`StreamView`].
    pub fn state(&self) -> &S {
        self.view.state()
    }

    /// How many events the state holds: the sequence number of the next
    /// event to fold.
    ///
    /// # Examples
    ///
    /// See [`StreamView::new`].
    pub fn next_seq(&self) -> u64 {
        self.view.next_seq()
    }

    /// The view itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    /// use eventfold_nats::{StreamView, Target};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let view = View::new("count", count, dir.path())?;
    /// let view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?;
    /// assert_eq!(view.view().name(), "count");
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn view(&self) -> &View<S> {
        &self.view
    }

    /// Gives the view back, its snapshot saved.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::{Event, View};
    /// use eventfold_nats::{StreamView, Target};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let view = View::new("count", count, dir.path())?;
    /// let view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?;
    /// assert_eq!(*view.into_view()?.state(), 0);
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the snapshot cannot be saved.
    pub fn into_view(mut self) -> Result<View<S>> {
        self.view.save_folded()?;
        Ok(self.view)
    }

    /// Folds every event the stream holds now, saves the snapshot, and
    /// returns how many events the state holds.
    ///
    /// # Examples
    ///
    /// See [`StreamView`].
    ///
    /// # Errors
    ///
    /// As for [`run_until`](Self::run_until), and [`Error::Nats`] if the
    /// server cannot be reached.
    pub async fn catch_up(&mut self) -> Result<u64> {
        follow::catch_up(self).await?;
        self.view.save_folded()?;
        Ok(self.next_seq())
    }

    /// Folds the stream and goes on with each new event until `stop`
    /// completes; the snapshot is saved when the stream has been quiet for
    /// half a second, every 5 seconds while messages keep coming, and at
    /// the stop. Failures of the server are retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use eventfold::{Event, View};
    /// use eventfold_nats::{StreamView, Target};
    ///
    /// fn count(n: u64, _: &Event) -> u64 { n + 1 }
    ///
    /// # async fn run() -> Result<(), eventfold_nats::Error> {
    /// let view = View::new("count", count, "./views")?;
    /// let mut view = StreamView::new(view, Target::new("nats://127.0.0.1:4222", "orders"))?;
    /// view.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Divergence`] if the stream does not continue the view's
    /// snapshot (another log's stream, fewer events than the snapshot
    /// holds, a changed message, a gap); [`Error::Log`] for a line the
    /// view cannot fold (see [`View::fold_line`]) or a snapshot that
    /// cannot be saved at the stop.
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let result = follow::until_stopped(self, &mut Stop::new(stop)).await;
        // The error that stopped the fold comes first; a snapshot that
        // could not be saved after it only costs folding again.
        match (result, self.view.save_folded()) {
            (Err(e), Err(save)) => {
                (self.notice)(&format!("could not save the view's snapshot: {save}"));
                Err(e)
            }
            (Err(e), Ok(())) => Err(e),
            (Ok(()), saved) => saved.map_err(Error::from),
        }
    }

    /// Saves the snapshot while following: a failure is a message, not
    /// the end of the fold (the snapshot is a cache; the next save tries
    /// again).
    fn save_quietly(&mut self) {
        self.saved_at = Instant::now();
        match self.view.save_folded() {
            Ok(()) => self.unsaved = false,
            Err(e) => (self.notice)(&format!(
                "could not save the view's snapshot, will try again: {e}"
            )),
        }
    }

    /// Folds the feed's messages until the view holds `until` events (or
    /// forever), or `stop`.
    async fn fold_feed(
        &mut self,
        feed: &mut Feed,
        until: Option<u64>,
        stop: &mut Stop<impl Future<Output = ()>>,
    ) -> Result<()> {
        loop {
            let unsaved = self.unsaved;
            let checked = tokio::select! {
                checked = feed.next() => checked?,
                () = tokio::time::sleep(QUIET), if unsaved => {
                    self.save_quietly();
                    continue;
                }
                () = stop.wait() => return Ok(()),
            };
            self.view.fold_line(checked.seq, &checked.line)?;
            self.unsaved = true;
            if until.is_some_and(|u| checked.seq + 1 >= u) {
                return Ok(());
            }
            if self.saved_at.elapsed() >= SAVE_EVERY {
                self.save_quietly();
            }
        }
    }

    /// Where the view stands in the stream: checked once against the
    /// stream's message for the view's last event (its line hash must be
    /// the one the view folded), then kept as the view folds.
    async fn position(
        &mut self,
        stream: &async_nats::jetstream::stream::Stream,
    ) -> Result<Position> {
        let next = self.view.next_seq();
        if let Some(at) = &self.at
            && at.next == next
        {
            return Ok(at.clone());
        }
        if next == 0 {
            return Ok(Position {
                next: 0,
                log_id: None,
                chain: 0,
            });
        }
        let name = self.target.stream();
        let diverged = |detail: String| Error::Divergence {
            stream: name.to_owned(),
            detail,
        };
        let tip = stream::tip(stream, name).await?;
        if tip.last < next {
            return Err(diverged(format!(
                "the view {:?} holds {next} events, the stream only {}: the stream lost events \
                 the view folded, or the view's snapshot is of another stream (delete {} to \
                 fold the stream from event 0)",
                self.view.name(),
                tip.last,
                self.view.snapshot_path().display()
            )));
        }
        let stamp = stream::checked_message(stream, name, next).await?;
        let theirs = wire::hex(stamp.hash);
        // `load_folded` loads no snapshot with events that does not name
        // its last line; without one there is nothing to check against.
        let Some(ours) = self.view.last_line_hash() else {
            return Err(diverged(format!(
                "the view {:?} holds {next} events but does not know the line hash of the \
                 last: its place in the stream cannot be checked (delete {} to fold the \
                 stream from event 0)",
                self.view.name(),
                self.view.snapshot_path().display()
            )));
        };
        if ours != theirs {
            return Err(diverged(format!(
                "event {} differs between the stream and the view {:?} (line hash {theirs} in \
                 the stream, {ours} in the view's snapshot): the snapshot was folded from \
                 another history (delete {} to fold the stream from event 0)",
                next - 1,
                self.view.name(),
                self.view.snapshot_path().display()
            )));
        }
        let at = Position {
            next,
            log_id: Some(stamp.log),
            chain: stamp.chain,
        };
        self.at = Some(at.clone());
        Ok(at)
    }
}

impl<S> Follower for StreamView<S>
where
    S: Serialize + DeserializeOwned + Default + Clone + Send + 'static,
{
    fn target(&self) -> &Target {
        &self.target
    }

    fn notice(&self, message: &str) {
        (self.notice)(message);
    }

    /// Checks where the view stands against the stream, then folds its
    /// messages from there until the view holds `until` events (or
    /// forever), or `stop`.
    async fn follow<F: Future<Output = ()>>(
        &mut self,
        stream: &async_nats::jetstream::stream::Stream,
        until: Option<u64>,
        stop: &mut Stop<F>,
    ) -> Result<()> {
        let at = self.position(stream).await?;
        if until.is_some_and(|u| at.next >= u) {
            return Ok(());
        }
        let mut feed = Feed::open(stream, &self.target, at).await?;
        let result = self.fold_feed(&mut feed, until, stop).await;
        // Kept for the next follow, which uses it only if the view folded
        // every line the feed checked.
        self.at = Some(feed.position().clone());
        result
    }
}
