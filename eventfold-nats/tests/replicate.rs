//! A 100k-event history with rotations, replicated into a real server:
//! the stream holds exactly the log, and the views folded on a mirror of
//! the stream, and straight over the stream, equal the writer's.

mod common;

use std::collections::BTreeMap;

use common::{Server, assert_stream_is_log, open_log};
use eventfold::View;
use eventfold_nats::{Mirror, StreamView, Target};

#[tokio::test]
async fn a_history_with_rotations_is_replicated_and_its_views_folded_elsewhere() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    let n = 100_000;
    let mut log = open_log(data.path(), 1 << 20); // rotations every 1 MiB
    common::append(&mut log, 0, n / 2, 1000);
    let archive = data.path().join("archive.jsonl.zst");
    assert!(archive.exists(), "the history was rotated");

    // Half the history, then the rest: the second run resumes.
    let acked = common::replicate_until(data.path(), &server.url(), "hist", n / 2).await;
    assert_eq!(acked, n / 2);
    common::append(&mut log, n / 2, n, 1000);
    let acked = common::replicate_until(data.path(), &server.url(), "hist", n).await;
    assert_eq!(acked, n);
    assert_stream_is_log(&server.url(), "hist", data.path()).await;

    // Another machine: a standby mirrored from the stream, with the same
    // views as the writer's.
    let standby = tempfile::tempdir().unwrap();
    let target = Target::new(&server.url(), "hist");
    let mirrored = Mirror::with_log(open_log(standby.path(), 1 << 20), target.clone())
        .unwrap()
        .catch_up()
        .await
        .unwrap();
    assert_eq!(mirrored, n);
    log.refresh_all().unwrap();
    let mut copy = open_log(standby.path(), 1 << 20);
    copy.refresh_all().unwrap();
    let b = |l: &eventfold::EventLog| l.view::<BTreeMap<String, i64>>("balances").unwrap().clone();
    let c = |l: &eventfold::EventLog| l.view::<BTreeMap<String, u64>>("counts").unwrap().clone();
    assert_eq!(b(&copy), b(&log));
    assert_eq!(c(&copy), c(&log));
    assert_eq!(c(&log).values().sum::<u64>(), n);
    assert_eq!(
        common::log_lines(standby.path()),
        common::log_lines(data.path())
    );

    // And a second service: the same views folded straight over the stream.
    let elsewhere = tempfile::tempdir().unwrap();
    let view = View::new("balances", common::balances, elsewhere.path()).unwrap();
    let mut folded = StreamView::new(view, target).unwrap();
    assert_eq!(folded.catch_up().await.unwrap(), n);
    assert_eq!(*folded.state(), b(&log));
}
