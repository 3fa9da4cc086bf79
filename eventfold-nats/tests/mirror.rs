//! The standby mirror: it passes `verify`, opens with eventfold, resumes
//! where it stopped, and follows a live replication.

mod common;

use std::time::Duration;

use common::{Server, open_log};
use eventfold::{EventLog, EventReader};
use eventfold_nats::{Mirror, Target};

#[tokio::test]
async fn a_mirrored_standby_passes_verify_and_opens_with_eventfold() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    let standby = tempfile::tempdir().unwrap();
    let mut log = open_log(data.path(), 64 * 1024);
    common::append(&mut log, 0, 3000, 100);
    common::replicate_until(data.path(), &server.url(), "m", 3000).await;

    let target = Target::new(&server.url(), "m");
    let small = EventLog::builder(standby.path())
        .max_log_size(32 * 1024)
        .open()
        .unwrap();
    let mut mirror = Mirror::with_log(small, target.clone()).unwrap();
    assert_eq!(mirror.catch_up().await.unwrap(), 3000);
    drop(mirror);

    // More events, and the mirror resumes from where it stopped.
    common::append(&mut log, 3000, 5000, 100);
    common::replicate_until(data.path(), &server.url(), "m", 5000).await;
    let mut mirror = Mirror::open(standby.path(), target).unwrap();
    assert_eq!(mirror.next_seq(), 3000);
    assert_eq!(mirror.catch_up().await.unwrap(), 5000);
    drop(mirror);

    let report = EventReader::open(standby.path())
        .unwrap()
        .verify(&mut |_, _| {})
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, 5000);
    assert!(report.frames > 0, "the standby rotated too");
    assert_eq!(
        common::log_lines(standby.path()),
        common::log_lines(data.path())
    );
    let reopened = EventLog::open(standby.path()).unwrap();
    assert_eq!(reopened.next_seq(), 5000);
}

#[tokio::test]
async fn the_mirror_follows_a_live_replication() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    let standby = tempfile::tempdir().unwrap();
    let mut log = open_log(data.path(), 64 * 1024);
    common::append(&mut log, 0, 10, 10);
    let url = server.url();
    let dir = data.path().to_owned();
    let replicator =
        tokio::spawn(async move { common::replicate_until(&dir, &url, "live", 2000).await });
    let mut mirror = Mirror::open(standby.path(), Target::new(&server.url(), "live")).unwrap();
    let follower = tokio::spawn(async move {
        let stop = async {
            while EventReader::open(standby.path())
                .unwrap()
                .next_seq()
                .unwrap()
                < 2000
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        mirror.run_until(stop).await.unwrap();
        (mirror.next_seq(), standby)
    });
    for i in (10..2000).step_by(10) {
        common::append(&mut log, i, i + 10, 10);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(replicator.await.unwrap(), 2000);
    let (next, standby) = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the mirror catches up")
        .unwrap();
    assert_eq!(next, 2000);
    assert_eq!(
        common::log_lines(standby.path()),
        common::log_lines(data.path())
    );
}

/// Publishes `lines` as events 0.. of a log whose stream nothing else
/// writes, stamped as the replicator stamps them (right hashes, right
/// chain), whatever the lines hold.
async fn publish_stamped(url: &str, name: &str, lines: &[&str]) {
    use async_nats::jetstream::{self, stream};
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("eventfold.{name}")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let hash = |line: &str| xxhash_rust::xxh3::xxh3_64(line.as_bytes());
    let log = format!("{:016x}", hash(lines[0]));
    let mut chain = 0u64;
    for (seq, line) in lines.iter().enumerate() {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&chain.to_le_bytes());
        bytes[8..].copy_from_slice(&hash(line).to_le_bytes());
        chain = xxhash_rust::xxh3::xxh3_64(&bytes);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Eventfold-Log", log.as_str());
        headers.insert("Eventfold-Seq", seq.to_string().as_str());
        headers.insert("Eventfold-Hash", format!("{:016x}", hash(line)).as_str());
        headers.insert("Eventfold-Chain", format!("{chain:016x}").as_str());
        js.publish_with_headers(
            format!("eventfold.{name}"),
            headers,
            line.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

/// A message that is stamped right but is no event at its place (here a
/// schema version readers refuse) stops the mirror after the events
/// before it, which it keeps: the standby verifies, and a restart goes on
/// from there and stops at the same message.
#[tokio::test]
async fn a_message_that_is_no_event_stops_the_mirror_after_the_events_before_it() {
    let server = Server::single();
    let lines = [
        r#"{"type":"a","data":1,"ts":5,"seq":0}"#,
        r#"{"type":"a","data":2,"ts":5}"#,
        r#"{"type":"a","data":3,"ts":5,"v":"x","seq":2}"#,
        r#"{"type":"a","data":4,"ts":5,"seq":3}"#,
    ];
    publish_stamped(&server.url(), "bad", &lines).await;
    let standby = tempfile::tempdir().unwrap();
    let target = Target::new(&server.url(), "bad");
    for _ in 0..2 {
        let mut mirror = Mirror::open(standby.path(), target.clone()).unwrap();
        match mirror.catch_up().await {
            Err(eventfold_nats::Error::Unmirrorable { seq: 2, detail }) => {
                assert!(detail.contains("not a valid event"), "{detail}")
            }
            other => panic!("expected event 2 to be refused, got {other:?}"),
        }
        assert_eq!(mirror.next_seq(), 2);
    }
    assert_eq!(common::log_lines(standby.path()), lines[..2]);
    let report = EventReader::open(standby.path())
        .unwrap()
        .verify(&mut |_, _| {})
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
