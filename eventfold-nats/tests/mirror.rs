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
