//! Streams that do not match the log are refused with an error that says
//! how, and nothing is published; a stream that lost acknowledged events
//! is reported and completed.

mod common;

use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, stream};
use common::{Server, assert_stream_is_log, open_log};
use eventfold::{Event, EventLog};
use eventfold_nats::{Error, Mirror, Replicator, Target};
use serde_json::json;

/// Replicates `dir` until the stream holds what the log holds, or the
/// replicator's error.
async fn replicate(dir: &std::path::Path, url: &str, stream: &str) -> Result<u64, Error> {
    let until = eventfold::EventReader::open(dir)
        .unwrap()
        .next_seq()
        .unwrap();
    let replicator = Replicator::new(dir, Target::new(url, stream)).unwrap();
    let progress = replicator.progress();
    replicator
        .run_until(async move {
            while progress.acked() < until {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .map(|s| s.acked)
}

fn divergence(result: Result<u64, Error>) -> String {
    match result {
        Err(e @ Error::Divergence { .. }) => e.to_string(),
        other => panic!("expected a divergence, got {other:?}"),
    }
}

async fn message_count(url: &str, name: &str) -> u64 {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn a_stream_of_another_log_is_refused() {
    let server = Server::single();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::append(&mut open_log(a.path(), 1 << 20), 0, 10, 10);
    let mut log_b = EventLog::open(b.path()).unwrap();
    log_b.append(&Event::with_ts("other", json!(1), 5)).unwrap();
    assert_eq!(replicate(a.path(), &server.url(), "s").await.unwrap(), 10);
    let e = divergence(replicate(b.path(), &server.url(), "s").await);
    assert!(e.contains("another log"), "{e}");
    assert_eq!(
        message_count(&server.url(), "s").await,
        10,
        "nothing was published"
    );

    // The mirror refuses it too: a standby of log A is not continued from
    // a stream of log B.
    replicate(b.path(), &server.url(), "t").await.unwrap();
    let standby = tempfile::tempdir().unwrap();
    Mirror::open(standby.path(), Target::new(&server.url(), "s"))
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    let mut mirror = Mirror::open(standby.path(), Target::new(&server.url(), "t")).unwrap();
    let e = mirror.catch_up().await.unwrap_err();
    assert!(matches!(e, Error::Divergence { .. }), "{e}");
    assert_eq!(mirror.next_seq(), 10);
}

#[tokio::test]
async fn a_stream_that_differs_at_an_earlier_event_is_refused() {
    let server = Server::single();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::append(&mut open_log(a.path(), 1 << 20), 0, 10, 10);
    // The same events but the fifth: the same id, the same last line.
    let mut log_b = open_log(b.path(), 1 << 20);
    common::append(&mut log_b, 0, 4, 10);
    log_b
        .append(&Event::with_ts("changed", json!(4), 1))
        .unwrap();
    common::append(&mut log_b, 5, 10, 10);
    let (la, lb) = (common::log_lines(a.path()), common::log_lines(b.path()));
    assert_eq!(
        (la[0] == lb[0], la[4] == lb[4], la[9] == lb[9]),
        (true, false, true)
    );
    replicate(a.path(), &server.url(), "s").await.unwrap();
    let e = divergence(replicate(b.path(), &server.url(), "s").await);
    assert!(e.contains("an event before 9 differs"), "{e}");
}

#[tokio::test]
async fn a_stream_with_more_events_than_the_log_is_refused() {
    let server = Server::single();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::append(&mut open_log(a.path(), 1 << 20), 0, 10, 10);
    common::append(&mut open_log(b.path(), 1 << 20), 0, 5, 10); // an older copy
    replicate(a.path(), &server.url(), "s").await.unwrap();
    let e = divergence(replicate(b.path(), &server.url(), "s").await);
    assert!(e.contains("holds 10 events, more than the log's 5"), "{e}");
}

#[tokio::test]
async fn a_changed_message_is_refused() {
    let server = Server::single();
    let a = tempfile::tempdir().unwrap();
    common::append(&mut open_log(a.path(), 1 << 20), 0, 3, 10);
    let line = &common::log_lines(a.path())[0];
    // A message that claims to be event 0 of this log, with its hash, but
    // another payload.
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.create_stream(stream::Config {
        name: "s".into(),
        subjects: vec!["eventfold.s".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    let hash = eventfold_nats::line_hash(line.as_bytes());
    headers.insert("Eventfold-Log", hash.as_str());
    headers.insert("Eventfold-Seq", "0");
    headers.insert("Eventfold-Hash", hash.as_str());
    headers.insert("Eventfold-Chain", "0000000000000000");
    let changed = line.replace("deposited", "deposiTed");
    js.publish_with_headers("eventfold.s", headers, changed.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let e = divergence(replicate(a.path(), &server.url(), "s").await);
    assert!(e.contains("message 1 (event 0) was changed"), "{e}");

    let standby = tempfile::tempdir().unwrap();
    let e = Mirror::open(standby.path(), Target::new(&server.url(), "s"))
        .unwrap()
        .catch_up()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("was changed"), "{e}");
    assert_eq!(
        common::log_lines(standby.path()).len(),
        0,
        "nothing mirrored"
    );
}

#[tokio::test]
async fn lost_acknowledged_events_are_reported_and_published_again() {
    let server = Server::single();
    let a = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap(); // the cursor lives outside the data directory
    let cursor = scratch.path().join("s.cursor");
    common::append(&mut open_log(a.path(), 1 << 20), 0, 20, 10);
    let run = |notices: Arc<Mutex<Vec<String>>>| {
        let replicator = Replicator::new(a.path(), Target::new(&server.url(), "s"))
            .unwrap()
            .cursor_file(&cursor)
            .on_notice(move |text| notices.lock().unwrap().push(text.to_owned()));
        let progress = replicator.progress();
        replicator.run_until(async move {
            while progress.acked() < 20 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    };
    let notices = Arc::new(Mutex::new(Vec::new()));
    assert_eq!(run(notices.clone()).await.unwrap().republished, 0);
    assert!(
        std::fs::read_to_string(&cursor)
            .unwrap()
            .contains("\"acked\":20")
    );
    // The server loses the stream (its storage, say).
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.delete_stream("s").await.unwrap();
    let summary = run(notices.clone()).await.unwrap();
    assert_eq!(summary.republished, 20);
    let notices = notices.lock().unwrap().join("\n");
    assert!(notices.contains("it lost events 0 to 19"), "{notices}");
    assert_stream_is_log(&server.url(), "s", a.path()).await;
}
