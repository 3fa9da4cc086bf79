//! Views folded straight over the stream: the writer's reducers give the
//! writer's states, resume from their snapshots, follow a live
//! replication, read old and versioned lines as the writer does, and
//! refuse a stream that does not continue their snapshot.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, open_log};
use eventfold::{Event, EventLog, Upcasters, View};
use eventfold_nats::{Error, Mirror, StreamView, Target};
use serde_json::{Value, json};

type Balances = BTreeMap<String, i64>;
type Counts = BTreeMap<String, u64>;

fn balances_view(views: &Path) -> View<Balances> {
    View::new("balances", common::balances, views).unwrap()
}

fn counts_view(views: &Path) -> View<Counts> {
    View::new("counts", common::counts, views).unwrap()
}

/// The `seq` a snapshot file records.
fn snapshot_seq(views: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read(views.join(format!("{name}.snapshot.json"))).ok()?;
    serde_json::from_slice::<Value>(&text).ok()?["seq"].as_u64()
}

#[tokio::test]
async fn views_folded_over_the_stream_equal_the_writers_and_resume_from_their_snapshots() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let views = elsewhere.path();
    let mut log = open_log(data.path(), 64 * 1024); // rotates every 64 KiB
    common::append(&mut log, 0, 20_000, 500);
    assert!(data.path().join("archive.jsonl.zst").exists());
    common::replicate_until(data.path(), &server.url(), "v", 20_000).await;
    let target = Target::new(&server.url(), "v");

    let mut b = StreamView::new(balances_view(views), target.clone()).unwrap();
    let mut c = StreamView::new(counts_view(views), target.clone()).unwrap();
    assert_eq!(b.catch_up().await.unwrap(), 20_000);
    assert_eq!(c.catch_up().await.unwrap(), 20_000);
    log.refresh_all().unwrap();
    assert_eq!(b.state(), log.view::<Balances>("balances").unwrap());
    assert_eq!(c.state(), log.view::<Counts>("counts").unwrap());
    assert_eq!(snapshot_seq(views, "balances"), Some(20_000));
    drop((b, c));

    // More events; new views (another process) go on from the snapshots.
    common::append(&mut log, 20_000, 30_000, 500);
    common::replicate_until(data.path(), &server.url(), "v", 30_000).await;
    let mut b = StreamView::new(balances_view(views), target.clone()).unwrap();
    assert_eq!(b.next_seq(), 20_000);
    assert_eq!(b.catch_up().await.unwrap(), 30_000);
    log.refresh_all().unwrap();
    assert_eq!(b.state(), log.view::<Balances>("balances").unwrap());
}

#[tokio::test]
async fn a_view_follows_a_live_replication_and_saves_when_the_stream_is_quiet() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let views = elsewhere.path().to_owned();
    let mut log = open_log(data.path(), 64 * 1024);
    common::append(&mut log, 0, 100, 100);
    common::replicate_until(data.path(), &server.url(), "live", 100).await;
    let target = Target::new(&server.url(), "live");

    let mut view = StreamView::new(counts_view(&views), target).unwrap();
    let watched = views.clone();
    let following = tokio::spawn(async move {
        // Stops once the snapshot, saved when the stream is quiet, holds
        // every event.
        let stop = async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while snapshot_seq(&watched, "counts") != Some(5_000) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        view.run_until(stop).await.map(|()| view)
    });
    // The writer goes on while the view follows.
    let url = server.url();
    let dir = data.path().to_owned();
    let replicating =
        tokio::spawn(async move { common::replicate_until(&dir, &url, "live", 5_000).await });
    for from in (100..5_000).step_by(490) {
        common::append(&mut log, from, (from + 490).min(5_000), 49);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(replicating.await.unwrap(), 5_000);
    let view = following.await.unwrap().unwrap();
    assert_eq!(view.next_seq(), 5_000);
    log.refresh_all().unwrap();
    assert_eq!(view.state(), log.view::<Counts>("counts").unwrap());
}

/// The writer's event types, versions and upcasters: `paid` was
/// `payment` with euros before (lines without `seq`, from before sequence
/// numbers), and is at version 2 now (lines with `"v":2`).
fn upcasters() -> Upcasters {
    Upcasters::new()
        .upcast(
            "payment",
            1,
            "paid",
            |data| json!({"cents": data["euros"].as_i64().unwrap_or(0) * 100}),
        )
        .upcast("paid", 1, "paid", |data| data)
}

fn total(sum: i64, event: &Event) -> i64 {
    match event.event_type.as_str() {
        "paid" => sum + event.data["cents"].as_i64().unwrap_or(0),
        _ => sum,
    }
}

#[tokio::test]
async fn old_and_versioned_lines_are_mirrored_byte_for_byte_and_folded_as_the_writer_does() {
    let server = Server::single();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("app.jsonl"),
        "{\"type\":\"payment\",\"data\":{\"euros\":3},\"ts\":1700000000}\n\
         {\"type\":\"payment\",\"data\":{\"euros\":4},\"ts\":1700000001}\n",
    )
    .unwrap();
    let mut log = EventLog::builder(data.path())
        .upcasters(upcasters())
        .view("total", total)
        .open()
        .unwrap();
    for cents in [50, 25] {
        log.append(&Event::new("paid", json!({"cents": cents})))
            .unwrap();
    }
    let lines = common::log_lines(data.path());
    assert!(!lines[0].contains("\"seq\""));
    assert!(lines[3].contains("\"v\":2"), "{}", lines[3]);
    common::replicate_until(data.path(), &server.url(), "old", 4).await;
    let target = Target::new(&server.url(), "old");

    let standby = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::open(standby.path(), target.clone()).unwrap();
    assert_eq!(mirror.catch_up().await.unwrap(), 4);
    drop(mirror);
    assert_eq!(common::log_lines(standby.path()), lines);

    let elsewhere = tempfile::tempdir().unwrap();
    let view = View::new("total", total, elsewhere.path())
        .unwrap()
        .with_upcasters(upcasters())
        .unwrap();
    let mut view = StreamView::new(view, target).unwrap();
    assert_eq!(view.catch_up().await.unwrap(), 4);
    log.refresh_all().unwrap();
    assert_eq!(*view.state(), 775);
    assert_eq!(*view.state(), *log.view::<i64>("total").unwrap());
}

fn divergence(result: Result<u64, Error>) -> String {
    match result {
        Err(e @ Error::Divergence { .. }) => e.to_string(),
        other => panic!("expected a divergence, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_that_does_not_continue_the_snapshot_is_refused() {
    let server = Server::single();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::append(&mut open_log(a.path(), 1 << 20), 0, 50, 10);
    let mut other = EventLog::open(b.path()).unwrap();
    for n in 0..80 {
        other.append(&Event::with_ts("other", json!(n), 5)).unwrap();
    }
    common::replicate_until(a.path(), &server.url(), "a", 50).await;
    common::replicate_until(b.path(), &server.url(), "b", 80).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let views = elsewhere.path();
    let mut view = StreamView::new(counts_view(views), Target::new(&server.url(), "a")).unwrap();
    assert_eq!(view.catch_up().await.unwrap(), 50);
    drop(view);

    // The snapshot holds 50 events of log a: stream b's event 49 is another.
    let mut view = StreamView::new(counts_view(views), Target::new(&server.url(), "b")).unwrap();
    let why = divergence(view.catch_up().await);
    assert!(why.contains("event 49 differs"), "{why}");
    assert_eq!(view.next_seq(), 50, "nothing was folded");

    // A stream shorter than the snapshot lost events the view folded.
    let short = tempfile::tempdir().unwrap();
    common::append(&mut open_log(short.path(), 1 << 20), 0, 20, 10);
    common::replicate_until(short.path(), &server.url(), "short", 20).await;
    let mut view =
        StreamView::new(counts_view(views), Target::new(&server.url(), "short")).unwrap();
    let why = divergence(view.catch_up().await);
    assert!(why.contains("the stream only 20"), "{why}");
    let snapshot = std::fs::read_to_string(views.join("counts.snapshot.json")).unwrap();
    assert!(snapshot.contains("\"seq\":50"), "{snapshot}");
}

/// A log's view snapshot saved just after a rotation holds events but
/// does not name the last one's line: put where a stream view looks, it
/// is not trusted (its place in the stream cannot be checked), and the
/// view folds the stream from event 0.
#[tokio::test]
async fn a_snapshot_that_cannot_be_checked_against_the_stream_is_not_used() {
    let server = Server::single();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut log_a = open_log(a.path(), 1 << 20);
    common::append(&mut log_a, 0, 50, 10);
    log_a.rotate().unwrap();
    drop(log_a);
    let mut log_b = open_log(b.path(), 1 << 20);
    common::append(&mut log_b, 0, 30, 10);
    log_b.append(&Event::with_ts("other", json!(1), 5)).unwrap();
    common::replicate_until(b.path(), &server.url(), "b", 31).await;

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(
        a.path().join("views/counts.snapshot.json"),
        elsewhere.path().join("counts.snapshot.json"),
    )
    .unwrap();
    let mut view = StreamView::new(
        counts_view(elsewhere.path()),
        Target::new(&server.url(), "b"),
    )
    .unwrap();
    assert_eq!(view.next_seq(), 0, "the snapshot of log a is not loaded");
    assert_eq!(view.catch_up().await.unwrap(), 31);
    log_b.refresh_all().unwrap();
    assert_eq!(view.state(), log_b.view::<Counts>("counts").unwrap());
}
