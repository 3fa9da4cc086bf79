//! The JetStream side: connecting, creating or checking the stream, and
//! reading the message at a position.

use std::time::Duration;

use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};

use crate::error::{Error, Result, nats};
use crate::wire::Stamp;

/// How long messages' ids are remembered by the server for
/// de-duplication. The exactly-once guarantee does not depend on it
/// (expected-last-sequence does that); it only makes a retried publish
/// answer "duplicate" instead of "wrong last sequence".
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where a stream is: the servers, the stream's name and its subject.
///
/// # Examples
///
/// ```
/// use eventfold_nats::Target;
///
/// let target = Target::new("nats://127.0.0.1:4222", "orders").replicas(3);
/// assert_eq!(target.subject(), "eventfold.orders");
/// let target = target.with_subject("shop.orders");
/// assert_eq!(target.subject(), "shop.orders");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Target {
    servers: Vec<String>,
    stream: String,
    subject: String,
    replicas: usize,
}

impl Target {
    /// The stream `stream` on the servers `servers` (a NATS URL, or
    /// several separated by commas: the members of a cluster). The
    /// subject is `eventfold.<stream>`, and a stream created by the
    /// replicator has one replica.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::Target;
    ///
    /// let target = Target::new("nats://a:4222,nats://b:4222", "orders");
    /// assert_eq!(target.stream(), "orders");
    /// ```
    pub fn new(servers: &str, stream: &str) -> Target {
        Target {
            servers: servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            stream: stream.to_owned(),
            subject: format!("eventfold.{stream}"),
            replicas: 1,
        }
    }

    /// The subject the events are published on (the stream holds only
    /// that subject).
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::Target;
    ///
    /// let target = Target::new("nats://127.0.0.1:4222", "orders").with_subject("o");
    /// assert_eq!(target.subject(), "o");
    /// ```
    pub fn with_subject(mut self, subject: &str) -> Target {
        self.subject = subject.to_owned();
        self
    }

    /// How many replicas a stream created by the replicator gets: 3 in a
    /// cluster of three or more servers, for the guarantee to survive the
    /// loss of one. An existing stream is left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::Target;
    ///
    /// let target = Target::new("nats://127.0.0.1:4222", "orders").replicas(3);
    /// # let _ = target;
    /// ```
    pub fn replicas(mut self, replicas: usize) -> Target {
        self.replicas = replicas.max(1);
        self
    }

    /// The stream's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::Target;
    ///
    /// assert_eq!(Target::new("nats://127.0.0.1:4222", "orders").stream(), "orders");
    /// ```
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The subject.
    ///
    /// # Examples
    ///
    /// ```
    /// use eventfold_nats::Target;
    ///
    /// assert_eq!(Target::new("nats://127.0.0.1:4222", "o").subject(), "eventfold.o");
    /// ```
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Connects, retrying while the servers cannot be reached (a server
    /// being restarted); the client reconnects by itself afterwards.
    pub(crate) async fn connect(&self, in_flight: usize) -> Result<jetstream::Context> {
        if self.servers.is_empty() {
            return Err(Error::Nats {
                what: "connecting".into(),
                detail: "no server address given".into(),
            });
        }
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .connect(self.servers.as_slice())
            .await
            .map_err(|e| nats(format!("connecting to {}", self.servers.join(",")), e))?;
        Ok(jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(in_flight.max(1))
            .backpressure_on_inflight(true)
            .build(client))
    }

    /// The stream's configuration when the replicator creates it.
    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: DUPLICATE_WINDOW,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            description: Some("an eventfold log, replicated by eventfold-nats".into()),
            ..Default::default()
        }
    }

    /// The stream, created if it does not exist, checked if it does.
    pub(crate) async fn open_or_create(&self, js: &jetstream::Context) -> Result<stream::Stream> {
        let stream = match js.get_stream(&self.stream).await {
            Ok(stream) => stream,
            Err(e) if is_not_found(&e) => js
                .create_stream(self.config())
                .await
                .map_err(|e| nats(format!("creating the stream {:?}", self.stream), e))?,
            Err(e) => return Err(nats(format!("looking up the stream {:?}", self.stream), e)),
        };
        self.check(stream.cached_info())?;
        Ok(stream)
    }

    /// The stream, which must exist.
    pub(crate) async fn open(&self, js: &jetstream::Context) -> Result<stream::Stream> {
        let stream = js.get_stream(&self.stream).await.map_err(|e| {
            if is_not_found(&e) {
                Error::Nats {
                    what: format!("opening the stream {:?}", self.stream),
                    detail: "there is no such stream: start the replicator first".into(),
                }
            } else {
                nats(format!("looking up the stream {:?}", self.stream), e)
            }
        })?;
        Ok(stream)
    }

    /// Refuses a stream whose settings cannot keep the guarantee.
    fn check(&self, info: &stream::Info) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::StreamConfig {
                stream: self.stream.clone(),
                detail,
            })
        };
        let config = &info.config;
        if config.storage != stream::StorageType::File {
            return bad("it keeps messages in memory; it needs file storage".into());
        }
        if config.subjects != [self.subject.clone()] {
            return bad(format!(
                "its subjects are {:?}, not only {:?}: use --subject, or another stream",
                config.subjects, self.subject
            ));
        }
        if config.persist_mode == Some(stream::PersistenceMode::Async) {
            return bad("its persist mode is async: acknowledged messages can be lost".into());
        }
        if config.max_messages > 0 || config.max_bytes > 0 || config.max_age > Duration::ZERO {
            return bad("it has limits (max messages, bytes or age) that would drop events".into());
        }
        Ok(())
    }
}

/// Whether a stream look-up failed because there is no such stream.
fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(j)
        if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// The stream's last message, read from the leader (not a replica that
/// may lag): `None` for an empty stream.
pub(crate) struct Tip {
    /// The stream sequence of the last message (the number of events).
    pub(crate) last: u64,
    pub(crate) stamp: Option<Stamp>,
}

/// Reads the stream's state and its last message, refusing a stream with
/// holes (deleted or purged messages).
pub(crate) async fn tip(stream: &stream::Stream, name: &str) -> Result<Tip> {
    let info = stream
        .get_info()
        .await
        .map_err(|e| nats(format!("reading the state of the stream {name:?}"), e))?;
    let state = &info.state;
    if state.last_sequence == 0 {
        return Ok(Tip {
            last: 0,
            stamp: None,
        });
    }
    if state.first_sequence != 1 || state.messages != state.last_sequence {
        return Err(Error::Divergence {
            stream: name.to_owned(),
            detail: format!(
                "it holds {} messages from sequence {} to {}: messages were deleted or purged",
                state.messages, state.first_sequence, state.last_sequence
            ),
        });
    }
    let stamp = checked_message(stream, name, state.last_sequence).await?;
    Ok(Tip {
        last: state.last_sequence,
        stamp: Some(stamp),
    })
}

/// Reads message `position` (1-based) and checks that it is event
/// `position - 1` of some log, with its line's hash right.
pub(crate) async fn checked_message(
    stream: &stream::Stream,
    name: &str,
    position: u64,
) -> Result<Stamp> {
    let message = stream.get_raw_message(position).await.map_err(|e| {
        nats(
            format!("reading message {position} of the stream {name:?}"),
            e,
        )
    })?;
    let diverged = |detail: String| Error::Divergence {
        stream: name.to_owned(),
        detail,
    };
    let stamp = Stamp::parse(Some(&message.headers))
        .map_err(|why| diverged(format!("message {position} is not eventfold's: {why}")))?;
    if stamp.seq + 1 != position {
        return Err(diverged(format!(
            "message {position} says it is event {}, not event {}",
            stamp.seq,
            position - 1
        )));
    }
    if crate::wire::hash64(&message.payload) != stamp.hash {
        return Err(diverged(format!(
            "message {position} (event {}) was changed: its payload does not match its \
             Eventfold-Hash header",
            stamp.seq
        )));
    }
    Ok(stamp)
}
