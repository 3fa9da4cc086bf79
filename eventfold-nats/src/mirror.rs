//! The standby mirror: follows the stream with an ordered consumer and
//! appends each event to a local eventfold directory, so that it holds
//! the same lines, byte for byte, with the same sequence numbers: a
//! directory that `eventfold verify` accepts, and on which the same views
//! run as on the writer's.
//!
//! On start it checks the stream's message at the mirror's last event
//! against the mirror (log id, line hash, chain hash), so a mirror is
//! never continued from another log's stream. Each message is checked
//! before it is appended: its position, its line hash, its chain hash,
//! and that appending its event writes exactly its line (which holds for
//! every line eventfold writes; a line from before sequence numbers, with
//! no `seq`, would not, and is refused).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use eventfold::{Event, EventLog};
use futures_util::StreamExt;

use crate::error::{Error, Result, nats};
use crate::stop::Stop;
use crate::stream::{self, Target};
use crate::wire::{self, Stamp};
use crate::{Notice, local};

/// At most this many events are appended with one sync.
const BATCH: usize = 1000;
/// How long a partial batch waits for more messages before it is written.
const LINGER: Duration = Duration::from_millis(2);

/// Mirrors a stream into a local eventfold directory (the standby), which
/// it opens as its writer.
///
/// # Examples
///
/// ```no_run
/// use eventfold_nats::{Mirror, Target};
///
/// # async fn run() -> Result<(), eventfold_nats::Error> {
/// let target = Target::new("nats://127.0.0.1:4222", "orders");
/// let mut mirror = Mirror::open("./standby", target)?;
/// let next = mirror.catch_up().await?; // everything the stream holds now
/// println!("the standby holds events 0 to {}", next - 1);
/// # Ok(()) }
/// ```
#[must_use]
pub struct Mirror {
    log: EventLog,
    target: Target,
    /// The chain hash of the mirror's last event (0 when empty).
    chain: u64,
    /// The mirror's log id, once it has event 0.
    log_id: Option<String>,
    notice: Notice,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("dest", &self.log.dir())
            .field("next_seq", &self.log.next_seq())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// Opens (or creates) the standby directory `dest` as its writer,
    /// mirroring `target`. Rotation follows the library's default size.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mirror = Mirror::open(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?;
    /// assert_eq!(mirror.next_seq(), 0);
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the directory cannot be opened (another writer
    /// has it, say).
    pub fn open(dest: impl AsRef<Path>, target: Target) -> Result<Mirror> {
        Mirror::with_log(EventLog::open(dest)?, target)
    }

    /// Mirrors into an already opened log (to choose its `max_log_size`,
    /// or register views on it).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold::EventLog;
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = EventLog::builder(dir.path()).max_log_size(1 << 20).open()?;
    /// let mirror = Mirror::with_log(log, Target::new("nats://127.0.0.1:4222", "s"))?;
    /// # let _ = mirror;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Log`] if the log's history cannot be read.
    pub fn with_log(log: EventLog, target: Target) -> Result<Mirror> {
        let reader = log.reader();
        let next = log.next_seq();
        let (chain, log_id) = if next == 0 {
            (0, None)
        } else {
            (
                local::chain_at(&reader, next - 1)?.0,
                local::log_id(&reader)?,
            )
        };
        Ok(Mirror {
            log,
            target,
            chain,
            log_id,
            notice: crate::stderr_notice(),
        })
    }

    /// Where messages for people go (a retry after a server failure):
    /// standard error unless set.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mirror = Mirror::open(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?
    ///     .on_notice(|text| eprintln!("mirror: {text}"));
    /// # let _ = mirror;
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn on_notice(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Mirror {
        self.notice = Arc::new(f);
        self
    }

    /// The sequence number of the next event the mirror will append.
    ///
    /// # Examples
    ///
    /// See [`Mirror::open`].
    pub fn next_seq(&self) -> u64 {
        self.log.next_seq()
    }

    /// The standby log, to refresh views on it or read it.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mirror = Mirror::open(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?;
    /// assert_eq!(mirror.log().next_seq(), 0);
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Gives the standby log back (to serve from it after a fail-over).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mirror = Mirror::open(dir.path(), Target::new("nats://127.0.0.1:4222", "s"))?;
    /// let log = mirror.into_log();
    /// assert_eq!(log.next_seq(), 0);
    /// # Ok::<(), eventfold_nats::Error>(())
    /// ```
    pub fn into_log(self) -> EventLog {
        self.log
    }

    /// Mirrors every event the stream holds now, and returns the mirror's
    /// next sequence number.
    ///
    /// # Examples
    ///
    /// See [`Mirror`].
    ///
    /// # Errors
    ///
    /// As for [`run_until`](Self::run_until), and [`Error::Nats`] if the
    /// server cannot be reached.
    pub async fn catch_up(&mut self) -> Result<u64> {
        let js = self.target.connect(16).await?;
        let stream = self.target.open(&js).await?;
        let last = stream::tip(&stream, self.target.stream()).await?.last;
        self.follow(&stream, Some(last), &mut Stop::new(std::future::pending()))
            .await?;
        Ok(self.next_seq())
    }

    /// Mirrors the stream and goes on with each new event, until `stop`
    /// completes (the batch being written is finished first). Failures of
    /// the server are retried.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use eventfold_nats::{Mirror, Target};
    ///
    /// # async fn run() -> Result<(), eventfold_nats::Error> {
    /// let mut mirror = Mirror::open("./standby", Target::new("nats://127.0.0.1:4222", "s"))?;
    /// mirror.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Divergence`] if the stream does not continue the mirror
    /// (another log's stream, a changed message, a gap);
    /// [`Error::Unmirrorable`] for a message whose line eventfold would
    /// not write byte for byte; [`Error::Log`] if appending fails.
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let mut stop = Stop::new(stop);
        let js = tokio::select! {
            js = self.target.connect(16) => js?,
            () = stop.wait() => return Ok(()),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = async {
                let stream = self.target.open(&js).await?;
                self.follow(&stream, None, &mut stop).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e @ Error::Nats { .. }) => {
                    if stop.fired() {
                        return Ok(());
                    }
                    (self.notice)(&format!("{e}; trying again"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.wait() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks that the stream continues the mirror, then appends its
    /// messages from the mirror's next event on, until the mirror holds
    /// `until` events (or forever), or `stop`.
    async fn follow(
        &mut self,
        stream: &async_nats::jetstream::stream::Stream,
        until: Option<u64>,
        stop: &mut Stop<impl Future<Output = ()>>,
    ) -> Result<()> {
        let name = self.target.stream().to_owned();
        let next = self.log.next_seq();
        if next > 0 {
            check_continues(stream, &name, next, self.log_id.clone(), self.chain).await?;
        }
        if until.is_some_and(|u| next >= u) {
            return Ok(());
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next + 1,
                },
                filter_subject: self.target.subject().to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| nats(format!("following the stream {name:?}"), e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| nats(format!("following the stream {name:?}"), e))?;
        let mut batch: Vec<Event> = Vec::new();
        loop {
            let message = if batch.is_empty() {
                tokio::select! {
                    m = messages.next() => m,
                    () = stop.wait() => return Ok(()),
                }
            } else {
                match tokio::time::timeout(LINGER, messages.next()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.append(&mut batch)?;
                        if until.is_some_and(|u| self.log.next_seq() >= u) || stop.fired() {
                            return Ok(());
                        }
                        continue;
                    }
                }
            };
            let Some(message) = message else {
                self.append(&mut batch)?;
                return Err(nats(format!("following the stream {name:?}"), "it ended"));
            };
            let expected = self.log.next_seq() + batch.len() as u64;
            let event = message
                .map_err(|e| nats(format!("following the stream {name:?}"), e))
                .and_then(|message| {
                    let position = message
                        .info()
                        .map_err(|e| nats("reading a message's position", e))?
                        .stream_sequence;
                    self.checked(&name, expected, position, &message)
                });
            match event {
                Ok(event) => batch.push(event),
                Err(e) => {
                    // What was checked before is kept.
                    self.append(&mut batch)?;
                    return Err(e);
                }
            }
            let full = batch.len() >= BATCH;
            let done = until.is_some_and(|u| expected + 1 >= u);
            if full || done {
                self.append(&mut batch)?;
                if done || stop.fired() {
                    return Ok(());
                }
            }
        }
    }

    /// Checks message `position`, which must be event `expected`, and
    /// gives its event.
    fn checked(
        &mut self,
        name: &str,
        expected: u64,
        position: u64,
        message: &async_nats::jetstream::Message,
    ) -> Result<Event> {
        let diverged = |detail: String| Error::Divergence {
            stream: name.to_owned(),
            detail,
        };
        if position != expected + 1 {
            return Err(diverged(format!(
                "message {} follows message {expected}: the stream lost messages",
                position
            )));
        }
        let stamp = Stamp::parse(message.headers.as_ref())
            .map_err(|why| diverged(format!("message {position} is not eventfold's: {why}")))?;
        if stamp.seq != expected {
            return Err(diverged(format!(
                "message {position} says it is event {}, not {expected}",
                stamp.seq
            )));
        }
        let line = std::str::from_utf8(&message.payload).map_err(|_| Error::Unmirrorable {
            seq: expected,
            detail: "its payload is not UTF-8".into(),
        })?;
        let hash = wire::hash64(line.as_bytes());
        if hash != stamp.hash {
            return Err(diverged(format!(
                "message {position} (event {expected}) was changed: its payload does not match \
                 its Eventfold-Hash header"
            )));
        }
        match &self.log_id {
            None => self.log_id = Some(wire::hex(hash)),
            Some(id) if *id != stamp.log => {
                return Err(diverged(format!(
                    "message {position} is an event of the log {}, not of the log {id}",
                    stamp.log
                )));
            }
            Some(_) => {}
        }
        let chain = wire::chain(self.chain, hash);
        if chain != stamp.chain {
            return Err(diverged(format!(
                "message {position} (event {expected}) does not follow the events before it \
                 (chain hash {} where {} was expected)",
                wire::hex(stamp.chain),
                wire::hex(chain)
            )));
        }
        let event = Event::from_json_line(line).map_err(|e| Error::Unmirrorable {
            seq: expected,
            detail: format!("its payload is not an event: {e}"),
        })?;
        let rewritten = event.to_json_line().map_err(|e| Error::Unmirrorable {
            seq: expected,
            detail: e.to_string(),
        })?;
        let same = rewritten
            .strip_suffix('}')
            .is_some_and(|head| line.strip_prefix(head) == Some(&format!(",\"seq\":{expected}}}")));
        if !same {
            return Err(Error::Unmirrorable {
                seq: expected,
                detail: "eventfold would store it as another line (a line written before \
                         sequence numbers, or not by eventfold)"
                    .into(),
            });
        }
        self.chain = chain;
        Ok(event)
    }

    /// Appends the batch with one sync, and empties it.
    fn append(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        if !batch.is_empty() {
            self.log.append_batch(batch)?;
            batch.clear();
        }
        Ok(())
    }
}

/// Checks that the stream's message for the mirror's last event is
/// that event.
async fn check_continues(
    stream: &async_nats::jetstream::stream::Stream,
    name: &str,
    next: u64,
    log_id: Option<String>,
    chain: u64,
) -> Result<()> {
    let diverged = |detail: String| Error::Divergence {
        stream: name.to_owned(),
        detail,
    };
    let tip = stream::tip(stream, name).await?;
    if tip.last < next {
        return Err(diverged(format!(
            "the standby holds {next} events, the stream only {}: events the stream does \
             not have",
            tip.last
        )));
    }
    let stamp = stream::checked_message(stream, name, next).await?;
    if Some(&stamp.log) != log_id.as_ref() {
        return Err(diverged(format!(
            "the stream holds the events of the log {}, the standby those of the log {}",
            stamp.log,
            log_id.as_deref().unwrap_or("?")
        )));
    }
    if stamp.chain != chain {
        return Err(diverged(format!(
            "event {} differs between the stream and the standby (chain hashes {} and {})",
            next - 1,
            wire::hex(stamp.chain),
            wire::hex(chain)
        )));
    }
    Ok(())
}
