//! The standby mirror: follows the stream with an ordered consumer and
//! appends each event to a local eventfold directory, so that it holds
//! the same lines, byte for byte, with the same sequence numbers: a
//! directory that `eventfold verify` accepts, and on which the same views
//! run as on the writer's.
//!
//! On start it checks the stream's message at the mirror's last event
//! against the mirror (log id, line hash, chain hash), so a mirror is
//! never continued from another log's stream. Each message is checked
//! before it is appended: its position, its line hash, its chain hash.
//! Its payload is appended as it is (`EventLog::append_lines`), so lines
//! written before sequence numbers (no `seq`) and lines of a schema
//! version (`"v"`) are mirrored byte for byte too; the log checks each
//! line as a reader would.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventfold::EventLog;

use crate::error::{Error, Result};
use crate::follow::{self, Feed, Follower, Position};
use crate::stop::Stop;
use crate::stream::{self, Target};
use crate::wire;
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
        follow::catch_up(self).await?;
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
    /// [`Error::Unmirrorable`] for a message whose payload is not an event
    /// an eventfold reader accepts at its place; [`Error::Log`] if
    /// appending fails.
    pub async fn run_until(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        follow::until_stopped(self, &mut Stop::new(stop)).await
    }

    /// Appends the batch's lines as they are, with one sync, and empties
    /// it. A line the log refuses fails the mirror, after the lines before
    /// it are appended.
    fn append(&mut self, batch: &mut Vec<(Vec<u8>, u64)>) -> Result<()> {
        let Some(&(_, last_chain)) = batch.last() else {
            return Ok(());
        };
        let first = self.log.next_seq();
        let lines: Vec<&[u8]> = batch.iter().map(|(line, _)| line.as_slice()).collect();
        let result = match self.log.append_lines(first, &lines) {
            Ok(_) => {
                self.chain = last_chain;
                Ok(())
            }
            Err(eventfold::Error::InvalidLine { seq, detail }) => {
                let good = usize::try_from(seq.saturating_sub(first))
                    .map_or(0, |good| good.min(lines.len()));
                if good > 0 {
                    self.log.append_lines(first, &lines[..good])?;
                    self.chain = batch[good - 1].1;
                }
                Err(Error::Unmirrorable { seq, detail })
            }
            Err(e) => Err(e.into()),
        };
        // The log id is event 0's line hash, once event 0 is in the mirror.
        if first == 0 && self.log.next_seq() > 0 {
            self.log_id = Some(wire::line_hash(lines[0]));
        }
        batch.clear();
        result
    }
}

impl Follower for Mirror {
    fn target(&self) -> &Target {
        &self.target
    }

    fn notice(&self, message: &str) {
        (self.notice)(message);
    }

    /// Checks that the stream continues the mirror, then appends its
    /// messages from the mirror's next event on, until the mirror holds
    /// `until` events (or forever), or `stop`.
    async fn follow<F: Future<Output = ()>>(
        &mut self,
        stream: &async_nats::jetstream::stream::Stream,
        until: Option<u64>,
        stop: &mut Stop<F>,
    ) -> Result<()> {
        let name = self.target.stream().to_owned();
        let next = self.log.next_seq();
        if next > 0 {
            check_continues(stream, &name, next, self.log_id.clone(), self.chain).await?;
        }
        if until.is_some_and(|u| next >= u) {
            return Ok(());
        }
        let at = Position {
            next,
            log_id: self.log_id.clone(),
            chain: self.chain,
        };
        let mut feed = Feed::open(stream, &self.target, at).await?;
        // Each line checked and not appended yet, with the chain hash after it.
        let mut batch: Vec<(Vec<u8>, u64)> = Vec::new();
        loop {
            let checked = if batch.is_empty() {
                tokio::select! {
                    m = feed.next() => m,
                    () = stop.wait() => return Ok(()),
                }
            } else {
                match tokio::time::timeout(LINGER, feed.next()).await {
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
            let checked = match checked {
                Ok(checked) => checked,
                Err(e) => {
                    // What was checked before is kept.
                    self.append(&mut batch)?;
                    return Err(e);
                }
            };
            let seq = checked.seq;
            batch.push((checked.line, checked.chain));
            let full = batch.len() >= BATCH;
            let done = until.is_some_and(|u| seq + 1 >= u);
            if full || done {
                self.append(&mut batch)?;
                if done || stop.fired() {
                    return Ok(());
                }
            }
        }
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
