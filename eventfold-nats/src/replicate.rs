//! Replication out: following a local log as a reader and publishing each
//! event to the stream, in order, exactly once.
//!
//! # The protocol
//!
//! 1. Wait for event 0 (its line hash is the log id, see
//!    [`wire`](crate::wire)); read the cursor file, if one is given.
//! 2. Create the stream if it does not exist (file storage, one subject,
//!    no deletes or purges), or check that its settings keep the
//!    guarantee.
//! 3. Read the stream's last message from the leader and check it against
//!    the local log: the same log id, the same line hash at that
//!    sequence number, the same chain hash (so every earlier message
//!    agrees too), and no more events than the log has. Any difference is
//!    [`Error::Divergence`], and nothing is published.
//! 4. If the stream holds fewer events than were acknowledged before (as
//!    the cursor file or this run knows), say so: they are republished
//!    by the next step.
//! 5. Publish every event from there on, many in flight at once, each with
//!    `Nats-Expected-Last-Sequence` equal to its sequence number: the
//!    server stores event `seq` only as message `seq + 1`, so no event is
//!    ever stored twice or out of order, whatever the de-duplication
//!    window. When one publish fails, the ones after it fail the same
//!    check; the replicator then goes back to step 3 and resumes from the
//!    stream's real last message.
//!
//! A publish acknowledged by the server is durable as far as the server's
//! settings make it (see the crate's README); the data directory is never
//! written.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, context::PublishAckFuture, context::PublishErrorKind};
use bytes::Bytes;
use eventfold::EventReader;
use tokio::sync::mpsc::error::TryRecvError;

use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::stop::Stop;
use crate::stream::{self, Target};
use crate::wire::{self, Stamp};
use crate::{Notice, local};

/// How often the cursor file is rewritten while events are acknowledged.
const CURSOR_EVERY: Duration = Duration::from_secs(1);
/// The longest wait for the answers to the publishes in flight after one
/// failed.
const DRAIN: Duration = Duration::from_secs(5);
/// The longest pause between two attempts after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Replicates one eventfold log into one JetStream stream.
///
/// # Examples
///
/// ```no_run
/// use eventfold_nats::{Replicator, Target};
///
/// # async fn run() -> Result<(), eventfold_nats::Error> {
/// let target = Target::new("nats://127.0.0.1:4222", "orders");
/// let replicator = Replicator::new("./data", target)?.cursor_file("/var/lib/orders.cursor");
/// // Runs until the future completes (here: Ctrl-C), then finishes the
/// // publishes in flight.
/// let summary = replicator.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await?;
/// println!("{} events acknowledged", summary.acked);
/// # Ok(()) }
/// ```
#[must_use]
pub struct Replicator {
    reader: EventReader,
    target: Target,
    cursor: Option<PathBuf>,
    in_flight: usize,
    progress: Progress,
    notice: Notice,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("dir", &self.reader.dir())
            .field("target", &self.target)
            .field("cursor", &self.cursor)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// What a run of the replicator did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// How many events the stream holds, acknowledged (the next event to
    /// publish).
    pub acked: u64,
    /// How many acknowledged events the stream had lost, and were
    /// published again.
    pub republished: u64,
}

/// Live counters of a running [`Replicator`], readable from another task
/// or thread (for a progress line, or a test).
///
/// # Examples
///
/// ```
/// use eventfold_nats::{Replicator, Target};
///
/// # let dir = tempfile::tempdir().unwrap();
/// let replicator = Replicator::new(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?;
/// let progress = replicator.progress();
/// assert_eq!(progress.acked(), 0);
/// # Ok::<(), eventfold_nats::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    acked: AtomicU64,
    republished: AtomicU64,
}

impl Progress {
    /// How many events the stream holds, as last acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(eventfold_nats::Progress::default().acked(), 0);
    /// ```
    pub fn acked(&self) -> u64 {
        self.0.acked.load(Ordering::Relaxed)
    }

    /// How many lost events were published again.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(eventfold_nats::Progress::default().republished(), 0);
    /// ```
    pub fn republished(&self) -> u64 {
        self.0.republished.load(Ordering::Relaxed)
    }
}

/// Why a session of publishing ended.
enum Fail {
    /// Start again from the stream's last message, after a pause.
    Retry(Error),
    /// Stop: retrying cannot help.
    Fatal(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        match e {
            Error::Nats { .. } => Fail::Retry(e),
            e => Fail::Fatal(e),
        }
    }
}

/// The state that lasts across sessions of one run.
struct Run {
    log: String,
    cursor: Option<Cursor>,
    cursor_saved: Instant,
    /// The most events known to have been acknowledged.
    acked: u64,
    republished: u64,
    /// `(seq, line hash, chain)` of the last events published, to check
    /// the stream's last message without reading the log from 0.
    recent: VecDeque<(u64, u64, u64)>,
}

impl Replicator {
    /// A replicator of the data directory `dir` (read through an
    /// [`EventReader`]: no lock, nothing written) into `target`.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Replicator, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let replicator = Replicator::new(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?;
    /// # let _ = replicator;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if `dir` is not a directory that can be read.
    pub fn new(dir: impl AsRef<Path>, target: Target) -> Result<Replicator> {
        Ok(Replicator {
            reader: EventReader::open(dir)?,
            target,
            cursor: None,
            in_flight: 256,
            progress: Progress::default(),
            notice: crate::stderr_notice(),
        })
    }

    /// Keeps a cursor file at `path` (outside the data directory), so that
    /// a stream that lost acknowledged events is noticed after a restart;
    /// see the module's protocol. Without one, lost events are still
    /// republished, but only those lost during this run are reported.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Replicator, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let replicator = Replicator::new(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?
    ///     .cursor_file(dir.path().with_extension("cursor"));
    /// # let _ = replicator;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn cursor_file(mut self, path: impl Into<PathBuf>) -> Replicator {
        self.cursor = Some(path.into());
        self
    }

    /// How many publishes may wait for their acknowledgement at once
    /// (256 unless set; 1 publishes one event at a time).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Replicator, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let replicator =
    ///     Replicator::new(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?.in_flight(64);
    /// # let _ = replicator;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn in_flight(mut self, n: usize) -> Replicator {
        self.in_flight = n.max(1);
        self
    }

    /// Where messages for people go (a retry after a server failure, lost
    /// events being republished): standard error unless set.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Replicator, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let replicator = Replicator::new(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?
    ///     .on_notice(|text| eprintln!("replicator: {text}"));
    /// # let _ = replicator;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn on_notice(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Replicator {
        self.notice = Arc::new(f);
        self
    }

    /// The live counters of this replicator.
    ///
    /// # Examples
    ///
    /// See [`Progress`].
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// Replicates until `stop` completes: publishes every event, and
    /// waits for the writer's next ones; failures of the server are
    /// retried. When `stop` completes, the publishes in flight are
    /// finished (their acknowledgements awaited) and the cursor saved.
    ///
    /// # Examples
    ///
    /// See [`Replicator`].
    ///
    /// # Errors
    ///
    /// [`Error::Divergence`] if the stream and the log differ;
    /// [`Error::StreamConfig`] if the stream's settings cannot keep the
    /// guarantee; [`Error::Log`] if the log cannot be read;
    /// [`Error::Cursor`] for a bad cursor file; [`Error::Nats`] for an
    /// event larger than the server accepts. A server that cannot be
    /// reached is retried, not an error.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> Result<Summary> {
        let mut stop = Stop::new(stop);
        let Some(log) = self.wait_for_first(&mut stop).await? else {
            return Ok(self.summary(0, 0));
        };
        let cursor = match &self.cursor {
            Some(path) => Some(Cursor::load(path, self.target.stream(), &log)?),
            None => None,
        };
        let mut run = Run {
            log,
            acked: cursor.as_ref().map_or(0, |c| c.acked),
            cursor,
            cursor_saved: Instant::now(),
            republished: 0,
            recent: VecDeque::new(),
        };
        let js = tokio::select! {
            js = self.target.connect(self.in_flight + 16) => js?,
            () = stop.wait() => return Ok(self.summary(0, 0)),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let outcome = self.session(&js, &mut run, &mut stop).await;
            match outcome {
                Ok(()) => break,
                Err(Fail::Fatal(e)) => {
                    self.save_cursor(&mut run, true).ok();
                    return Err(e);
                }
                Err(Fail::Retry(e)) => {
                    if stop.fired() {
                        (self.notice)(&format!("{e}; stopping"));
                        break;
                    }
                    (self.notice)(&format!("{e}; trying again"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.wait() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.save_cursor(&mut run, true)?;
        Ok(self.summary(run.acked, run.republished))
    }

    fn summary(&self, acked: u64, republished: u64) -> Summary {
        Summary { acked, republished }
    }

    /// The log id, once the log has an event; `None` if `stop` came first.
    async fn wait_for_first(
        &self,
        stop: &mut Stop<impl Future<Output = ()>>,
    ) -> Result<Option<String>> {
        loop {
            let reader = self.reader.clone();
            let id = tokio::task::spawn_blocking(move || {
                reader.wait_for(0, Duration::from_millis(200))?;
                local::log_id(&reader)
            });
            let id = id
                .await
                .map_err(|e| crate::error::nats("reading the log", e))??;
            if id.is_some() {
                return Ok(id);
            }
            if stop.fired() {
                return Ok(None);
            }
        }
    }

    /// Writes the cursor if it is due (or `now`).
    fn save_cursor(&self, run: &mut Run, now: bool) -> Result<()> {
        if let Some(cursor) = &mut run.cursor
            && cursor.acked != run.acked
            && (now || run.cursor_saved.elapsed() >= CURSOR_EVERY)
        {
            cursor.save(run.acked)?;
            run.cursor_saved = Instant::now();
        }
        Ok(())
    }

    /// One session: check the stream's last message, then publish from
    /// there until `stop` or a failure.
    async fn session(
        &self,
        js: &jetstream::Context,
        run: &mut Run,
        stop: &mut Stop<impl Future<Output = ()>>,
    ) -> std::result::Result<(), Fail> {
        let name = self.target.stream();
        let stream = self.target.open_or_create(js).await?;
        let tip = stream::tip(&stream, name).await?;
        let (start, mut chain) = self.check_tip(&tip, run).await?;
        if start < run.acked {
            let lost = run.acked - start;
            (self.notice)(&format!(
                "the stream {name:?} holds {start} events, but {} were acknowledged: it lost \
                 events {start} to {} (a server that acknowledged before writing to disk, or \
                 lost its storage); publishing them again",
                run.acked,
                run.acked - 1
            ));
            run.republished += lost;
            self.progress
                .0
                .republished
                .fetch_add(lost, Ordering::Relaxed);
        }
        run.acked = start;
        self.progress.0.acked.store(start, Ordering::Relaxed);

        let mut lines = local::feed(self.reader.clone(), start, self.in_flight.max(256));
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        let mut stopping = false;
        loop {
            if stopping || stop.fired() {
                while let Some((seq, ack)) = in_flight.pop_front() {
                    self.acknowledged(run, seq, ack.await)?;
                }
                return Ok(());
            }
            while in_flight.len() < self.in_flight {
                match lines.try_recv() {
                    Ok(line) => {
                        let (seq, line) = line?;
                        match self.publish(js, run, &mut chain, seq, line).await {
                            Ok(ack) => in_flight.push_back((seq, ack)),
                            Err(fail) => return Err(drain(in_flight, fail).await),
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        return Err(Fail::Fatal(crate::error::nats(
                            "reading the log",
                            "the reading thread stopped",
                        )));
                    }
                }
            }
            match in_flight.pop_front() {
                Some((seq, ack)) => {
                    if let Err(fail) = self.acknowledged(run, seq, ack.await) {
                        return Err(drain(in_flight, fail).await);
                    }
                }
                None => tokio::select! {
                    line = lines.recv() => {
                        let Some(line) = line else { continue };
                        let (seq, line) = line?;
                        match self.publish(js, run, &mut chain, seq, line).await {
                            Ok(ack) => in_flight.push_back((seq, ack)),
                            Err(fail) => return Err(drain(in_flight, fail).await),
                        }
                    }
                    () = stop.wait() => stopping = true,
                },
            }
        }
    }

    /// Sends event `seq`, whose line is `line`, after `chain`.
    async fn publish(
        &self,
        js: &jetstream::Context,
        run: &mut Run,
        chain: &mut u64,
        seq: u64,
        line: String,
    ) -> std::result::Result<PublishAckFuture, Fail> {
        let hash = wire::hash64(line.as_bytes());
        *chain = wire::chain(*chain, hash);
        run.recent.push_back((seq, hash, *chain));
        while run.recent.len() > 2 * self.in_flight + 2 {
            run.recent.pop_front();
        }
        let stamp = Stamp {
            log: run.log.clone(),
            seq,
            hash,
            chain: *chain,
        };
        let message = PublishMessage::build()
            .payload(Bytes::from(line))
            .headers(stamp.headers());
        js.send_publish(self.target.subject().to_owned(), message)
            .await
            .map_err(|e| publish_failed(seq, &e))
    }

    /// Takes the server's answer to the publish of event `seq`.
    fn acknowledged(
        &self,
        run: &mut Run,
        seq: u64,
        ack: std::result::Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    ) -> std::result::Result<(), Fail> {
        let ack = ack.map_err(|e| publish_failed(seq, &e))?;
        if ack.sequence != seq + 1 {
            return Err(Fail::Fatal(Error::Divergence {
                stream: self.target.stream().to_owned(),
                detail: format!(
                    "the server stored event {seq} as message {} instead of {}",
                    ack.sequence,
                    seq + 1
                ),
            }));
        }
        run.acked = seq + 1;
        self.progress.0.acked.store(seq + 1, Ordering::Relaxed);
        self.save_cursor(run, false)?;
        Ok(())
    }

    /// Checks the stream's last message against the log: the sequence
    /// number to publish next and the chain hash before it.
    async fn check_tip(&self, tip: &stream::Tip, run: &Run) -> Result<(u64, u64)> {
        let Some(stamp) = &tip.stamp else {
            return Ok((0, 0));
        };
        let diverged = |detail: String| Error::Divergence {
            stream: self.target.stream().to_owned(),
            detail,
        };
        if stamp.log != run.log {
            return Err(diverged(format!(
                "the stream holds the events of another log (log id {}; this log's id, the line \
                 hash of its event 0, is {})",
                stamp.log, run.log
            )));
        }
        let seq = stamp.seq;
        let reader = self.reader.clone();
        let recent = run.recent.iter().find(|r| r.0 == seq).copied();
        let local = tokio::task::spawn_blocking(move || -> Result<Option<(u64, u64)>> {
            if reader.next_seq()? <= seq {
                return Ok(None);
            }
            match recent {
                Some((_, hash, chain)) => Ok(Some((chain, hash))),
                None => local::chain_at(&reader, seq).map(Some),
            }
        })
        .await
        .map_err(|e| crate::error::nats("reading the log", e))??;
        let Some((chain, hash)) = local else {
            return Err(diverged(format!(
                "the stream holds {} events, more than the log's {}: events the log does not \
                 have (was the log restored from an older backup?)",
                tip.last,
                self.reader.next_seq()?
            )));
        };
        if hash != stamp.hash {
            return Err(diverged(format!(
                "event {seq} differs: the stream's line hash is {}, the log's {}",
                wire::hex(stamp.hash),
                wire::hex(hash)
            )));
        }
        if chain != stamp.chain {
            return Err(diverged(format!(
                "an event before {seq} differs (the chain hashes of event {seq} are {} in the \
                 stream and {} in the log)",
                wire::hex(stamp.chain),
                wire::hex(chain)
            )));
        }
        Ok((tip.last, chain))
    }
}

/// After a failed publish: waits, all at once and for at most
/// [`DRAIN`], for the answers to the publishes still in flight (refusals,
/// mostly), so that the stream's last message is read once the server
/// has dealt with them; gives back `fail`.
async fn drain(in_flight: VecDeque<(u64, PublishAckFuture)>, fail: Fail) -> Fail {
    let answers =
        futures_util::future::join_all(in_flight.into_iter().map(|(_, ack)| ack.into_future()));
    let _ = tokio::time::timeout(DRAIN, answers).await;
    fail
}

/// What a failed publish of event `seq` means.
fn publish_failed(seq: u64, e: &jetstream::context::PublishError) -> Fail {
    let error = crate::error::nats(format!("publishing event {seq}"), e);
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => Fail::Fatal(Error::Nats {
            what: format!("publishing event {seq}"),
            detail: format!(
                "{e}: raise the server's max_payload above the largest event's line, or keep \
                 events smaller"
            ),
        }),
        _ => Fail::Retry(error),
    }
}
