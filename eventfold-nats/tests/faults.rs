//! Server failures during replication, with a writer appending: a single
//! server killed and restarted, and a three-node cluster (replication
//! factor 3) losing a node; a mirror and a stream view following through
//! restarts. Nothing lost, nothing duplicated.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use common::{Cluster, Rng, Server, assert_stream_is_log, open_log};
use eventfold::{EventReader, View};
use eventfold_nats::{Mirror, Replicator, StreamView, Target};

/// Appends `n` events in small batches, a few milliseconds apart, in a
/// thread; sets `done` at the end.
fn writer(dir: &Path, n: u64, done: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let dir = dir.to_owned();
    thread::spawn(move || {
        let mut log = open_log(&dir, 256 * 1024);
        let mut rng = Rng::new(3);
        let mut i = 0;
        while i < n {
            let k = rng.range(1, 50).min(n - i);
            common::append(&mut log, i, i + k, k);
            i += k;
            thread::sleep(Duration::from_millis(2));
        }
        done.store(true, Ordering::SeqCst);
    })
}

/// Kills `server` three times, each time for a moment, in a thread that
/// gives it back at the end.
fn restart_three_times(mut server: Server) -> thread::JoinHandle<Server> {
    thread::spawn(move || {
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(400));
            server.kill();
            thread::sleep(Duration::from_millis(300));
            server.start();
        }
        server
    })
}

/// Runs the replicator until it has published all `n` events; its summary.
async fn replicate(dir: &Path, target: Target, n: u64) -> (eventfold_nats::Summary, u64) {
    let scratch = tempfile::tempdir().unwrap(); // the cursor lives outside the data directory
    let replicator = Replicator::new(dir, target)
        .unwrap()
        .cursor_file(scratch.path().join("faults.cursor"));
    let progress = replicator.progress();
    let start = Instant::now();
    let summary = replicator
        .run_until(async move {
            while progress.acked() < n {
                assert!(
                    start.elapsed() < Duration::from_secs(180),
                    "replication finishes"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("no error: server failures are retried");
    (summary, start.elapsed().as_millis() as u64)
}

#[tokio::test]
async fn a_server_killed_and_restarted_during_replication_loses_nothing() {
    let n = 20_000;
    let server = Server::single();
    let url = server.url();
    let data = tempfile::tempdir().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = writer(data.path(), n, done.clone());
    // While the writer appends and the replicator publishes.
    let chaos = restart_three_times(server);
    let (summary, _) = replicate(data.path(), Target::new(&url, "faults"), n).await;
    let _server = chaos.join().unwrap();
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(summary.acked, n);
    assert_eq!(
        summary.republished, 0,
        "sync_interval: always loses no acknowledged event"
    );
    assert_stream_is_log(&url, "faults", data.path()).await;
}

#[tokio::test]
async fn a_cluster_that_loses_a_node_during_replication_loses_nothing() {
    let n = 20_000;
    let mut cluster = Cluster::start();
    let urls = cluster.urls();
    let client = async_nats::connect(urls.split(',').collect::<Vec<_>>().as_slice())
        .await
        .unwrap();
    let js = jetstream::new(client);
    // The stream, with three replicas, once the cluster has elected its
    // JetStream leader.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut created = loop {
        let config = stream::Config {
            name: "clustered".into(),
            subjects: vec!["eventfold.clustered".into()],
            num_replicas: 3,
            ..Default::default()
        };
        match js.create_stream(config).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "the cluster is ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let leader = loop {
        let info = created.info().await.unwrap().clone();
        match info.cluster.and_then(|c| c.leader) {
            Some(leader) => break leader,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let data = tempfile::tempdir().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = writer(data.path(), n, done.clone());
    let target = Target::new(&urls, "clustered").replicas(3);
    let leader_index = cluster
        .nodes
        .iter()
        .position(|s| s.name == leader)
        .expect("a known leader");
    let chaos = thread::spawn(move || {
        // Kill the stream's leader while replication is under way.
        thread::sleep(Duration::from_millis(700));
        cluster.nodes[leader_index].kill();
        cluster
    });
    let (summary, _) = replicate(data.path(), target, n).await;
    let cluster = chaos.join().unwrap();
    writer.join().unwrap();
    assert_eq!(summary.acked, n);
    assert_eq!(
        summary.republished, 0,
        "replicas 3 lose no acknowledged event"
    );
    let alive: Vec<String> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader_index)
        .map(|(_, s)| s.url())
        .collect();
    assert_stream_is_log(&alive.join(","), "clustered", data.path()).await;
}

/// Notices given by a follower, kept for the test to look at.
fn recorder() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(&str) + Send + Sync + 'static,
) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&notices);
    (notices, move |text: &str| {
        kept.lock().unwrap().push(text.to_owned())
    })
}

/// Waits, up to three minutes, until `done` says so.
async fn until(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the follower finishes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `seq` the snapshot of view `name` in `views` records.
fn snapshot_seq(views: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read(views.join(format!("{name}.snapshot.json"))).ok()?;
    serde_json::from_slice::<serde_json::Value>(&text).ok()?["seq"].as_u64()
}

/// A mirror and a stream view, started before the stream exists, follow a
/// live replication while the server is killed and restarted three
/// times: each failure is told ("trying again") and followed again from
/// where the follower stands, and at the end the mirror holds the log's
/// lines byte for byte and the view the writer's state.
#[tokio::test]
async fn a_mirror_and_a_stream_view_follow_through_server_restarts() {
    let n = 10_000;
    let server = Server::single();
    let url = server.url();
    let data = tempfile::tempdir().unwrap();
    let standby = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = Target::new(&url, "followed");

    // The followers start first: until the replicator creates the stream
    // they are told there is none, and try again.
    let (mirror_notices, notice) = recorder();
    let mut mirror = Mirror::open(standby.path(), target.clone())
        .unwrap()
        .on_notice(notice);
    let mirrored = standby.path().to_owned();
    let mirroring = tokio::spawn(async move {
        let stop = until(move || EventReader::open(&mirrored).unwrap().next_seq().unwrap() >= n);
        mirror.run_until(stop).await.map(|()| mirror.next_seq())
    });
    let (view_notices, notice) = recorder();
    let counts = View::new("counts", common::counts, elsewhere.path()).unwrap();
    let mut view = StreamView::new(counts, target.clone())
        .unwrap()
        .on_notice(notice);
    let views = elsewhere.path().to_owned();
    let viewing = tokio::spawn(async move {
        // The view saves its snapshot once the stream is quiet.
        let stop = until(move || snapshot_seq(&views, "counts") == Some(n));
        view.run_until(stop).await.map(|()| view)
    });
    for notices in [&mirror_notices, &view_notices] {
        until(|| !notices.lock().unwrap().is_empty()).await;
    }

    let done = Arc::new(AtomicBool::new(false));
    let writer = writer(data.path(), n, done.clone());
    let dir = data.path().to_owned();
    let replicating = tokio::spawn(async move { replicate(&dir, target, n).await });
    let chaos = restart_three_times(server);
    let (summary, _) = replicating.await.unwrap();
    let _server = chaos.join().unwrap();
    writer.join().unwrap();
    assert_eq!(summary.acked, n);
    assert_eq!(mirroring.await.unwrap().expect("the mirror follows"), n);
    let view = viewing.await.unwrap().expect("the view follows");

    assert_eq!(
        common::log_lines(standby.path()),
        common::log_lines(data.path())
    );
    let report = EventReader::open(standby.path())
        .unwrap()
        .verify(&mut |_, _| {})
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let mut log = open_log(data.path(), 256 * 1024);
    log.refresh_all().unwrap();
    assert_eq!(
        view.state(),
        log.view::<BTreeMap<String, u64>>("counts").unwrap()
    );
    for (who, notices) in [("mirror", mirror_notices), ("view", view_notices)] {
        let notices = notices.lock().unwrap();
        eprintln!("{who}: {} notices: {notices:?}", notices.len());
        assert!(
            notices[0].contains("there is no such stream"),
            "{who}: {notices:?}"
        );
        assert!(
            notices.iter().all(|n| n.contains("trying again")),
            "{who}: {notices:?}"
        );
    }
}
