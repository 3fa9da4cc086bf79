//! Following the stream from an event on, with an ordered consumer: each
//! message checked against the ones before it (its position, its line
//! hash, its log, its chain hash) before anyone uses its line. The mirror
//! and the stream views read the stream through it.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;

use crate::error::{Error, Result, nats};
use crate::stop::Stop;
use crate::stream::{self as streams, Target};
use crate::wire::{self, Stamp};

/// A reader of the stream that knows where it stands: the mirror and the
/// stream views. [`catch_up`] and [`until_stopped`] drive it.
pub(crate) trait Follower {
    /// The stream it reads.
    fn target(&self) -> &Target;

    /// Tells people something (a retry), without stopping.
    fn notice(&self, message: &str);

    /// Checks where the reader stands against `stream`, then takes its
    /// messages from there until the reader holds `until` events (or
    /// forever), or `stop`.
    async fn follow<F: Future<Output = ()>>(
        &mut self,
        stream: &stream::Stream,
        until: Option<u64>,
        stop: &mut Stop<F>,
    ) -> Result<()>;
}

/// Follows the stream up to its last message as of now, once.
pub(crate) async fn catch_up(reader: &mut impl Follower) -> Result<()> {
    let target = reader.target().clone();
    let js = target.connect(16).await?;
    let stream = target.open(&js).await?;
    let last = streams::tip(&stream, target.stream()).await?.last;
    reader
        .follow(&stream, Some(last), &mut Stop::new(std::future::pending()))
        .await
}

/// Follows the stream until `stop`: a failure of the server is told and
/// tried again, after 50 ms doubling up to 2 s; any other error ends it.
pub(crate) async fn until_stopped<F: Future<Output = ()>>(
    reader: &mut impl Follower,
    stop: &mut Stop<F>,
) -> Result<()> {
    let target = reader.target().clone();
    let js = tokio::select! {
        js = target.connect(16) => js?,
        () = stop.wait() => return Ok(()),
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let attempt = async {
            let stream = target.open(&js).await?;
            reader.follow(&stream, None, stop).await
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e @ Error::Nats { .. }) => {
                if stop.fired() {
                    return Ok(());
                }
                reader.notice(&format!("{e}; trying again"));
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

/// Where a reader of the stream stands: the next event it expects, the
/// log its events are of (once it has event 0) and the chain hash of the
/// events before.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub(crate) next: u64,
    pub(crate) log_id: Option<String>,
    pub(crate) chain: u64,
}

/// One checked message: event `seq`, its stored line, and the chain hash
/// of the events up to it.
pub(crate) struct Checked {
    pub(crate) seq: u64,
    pub(crate) line: Vec<u8>,
    pub(crate) chain: u64,
}

/// The messages of the stream from a position on.
pub(crate) struct Feed {
    messages: jetstream::consumer::pull::Ordered,
    name: String,
    at: Position,
}

impl Feed {
    /// Follows `stream` from event `at.next` on.
    pub(crate) async fn open(
        stream: &stream::Stream,
        target: &Target,
        at: Position,
    ) -> Result<Feed> {
        let name = target.stream().to_owned();
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: at.next + 1,
                },
                filter_subject: target.subject().to_owned(),
                ..Default::default()
            })
            .await
            .map_err(|e| nats(format!("following the stream {name:?}"), e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| nats(format!("following the stream {name:?}"), e))?;
        Ok(Feed { messages, name, at })
    }

    /// Where the feed stands: after the last message it gave.
    pub(crate) fn position(&self) -> &Position {
        &self.at
    }

    /// The next message, checked; waits for it. An error of the server
    /// is [`Error::Nats`] (follow again from where the caller stands); a
    /// message that does not continue the ones before is
    /// [`Error::Divergence`].
    pub(crate) async fn next(&mut self) -> Result<Checked> {
        let name = &self.name;
        let message = match self.messages.next().await {
            Some(message) => {
                message.map_err(|e| nats(format!("following the stream {name:?}"), e))?
            }
            None => return Err(nats(format!("following the stream {name:?}"), "it ended")),
        };
        let position = message
            .info()
            .map_err(|e| nats("reading a message's position", e))?
            .stream_sequence;
        let checked = check(name, &mut self.at, position, &message)?;
        Ok(checked)
    }
}

/// Checks message `position` against `at` (it must be event `at.next`,
/// of the same log, following the chain), and moves `at` past it.
fn check(
    name: &str,
    at: &mut Position,
    position: u64,
    message: &jetstream::Message,
) -> Result<Checked> {
    let expected = at.next;
    let diverged = |detail: String| Error::Divergence {
        stream: name.to_owned(),
        detail,
    };
    if position != expected + 1 {
        return Err(diverged(format!(
            "message {position} follows message {expected}: the stream lost messages"
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
    let hash = wire::hash64(&message.payload);
    if hash != stamp.hash {
        return Err(diverged(format!(
            "message {position} (event {expected}) was changed: its payload does not match \
             its Eventfold-Hash header"
        )));
    }
    match &at.log_id {
        // The log id is the line hash of event 0.
        None if expected == 0 && stamp.log != wire::hex(hash) => {
            return Err(diverged(format!(
                "message {position} is event 0, whose line hash {} is the log's id, but it \
                 says it is of the log {}",
                wire::hex(hash),
                stamp.log
            )));
        }
        None => at.log_id = Some(stamp.log.clone()),
        Some(id) if *id != stamp.log => {
            return Err(diverged(format!(
                "message {position} is an event of the log {}, not of the log {id}",
                stamp.log
            )));
        }
        _ => {}
    }
    let chain = wire::chain(at.chain, hash);
    if chain != stamp.chain {
        return Err(diverged(format!(
            "message {position} (event {expected}) does not follow the events before it \
             (chain hash {} where {} was expected)",
            wire::hex(stamp.chain),
            wire::hex(chain)
        )));
    }
    at.next += 1;
    at.chain = chain;
    Ok(Checked {
        seq: expected,
        line: message.payload.to_vec(),
        chain,
    })
}
