//! The replicator, as a real process, killed with SIGKILL at random
//! moments while a writer process keeps appending and rotating: the
//! stream ends up exactly the log, no duplicates, no gaps.
//!
//! 50 kills (`EVENTFOLD_NATS_KILLS=500` for more); the seed is printed,
//! and `EVENTFOLD_NATS_SEED` repeats a run.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, Rng, Server, assert_stream_is_log};

const TEST: &str = "the_replicator_killed_at_random_moments_loses_and_repeats_nothing";
const WRITER_ENV: &str = "EVENTFOLD_NATS_WRITER_DIR";

/// The writer's role, in a child process: appends batches of 1 to 40
/// events every few milliseconds, rotating every 64 KiB, until the file
/// `stop` appears in its directory's parent.
fn writer(dir: &Path) {
    let mut log = common::open_log(dir, 64 * 1024);
    let stop = dir.with_extension("stop");
    let mut rng = Rng::new(log.next_seq() + 7);
    let mut i = log.next_seq();
    while !stop.exists() {
        let n = rng.range(1, 40);
        common::append(&mut log, i, i + n, n);
        i += n;
        std::thread::sleep(Duration::from_millis(rng.range(1, 6)));
    }
}

#[test]
fn the_replicator_killed_at_random_moments_loses_and_repeats_nothing() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        writer(Path::new(&dir));
        return;
    }
    let kills: u32 = std::env::var("EVENTFOLD_NATS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(50);
    let mut rng = Rng::seeded(TEST);
    let server = Server::single();
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let cursor = scratch.path().join("kill.cursor");
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &data)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the writer starts");
    let url = server.url();
    let args = [
        "replicate",
        data.to_str().unwrap(),
        "--server",
        &url,
        "--stream",
        "kill",
        "--cursor",
        cursor.to_str().unwrap(),
        "--in-flight",
        "64",
    ];
    for _ in 0..kills {
        let replicator = Proc::spawn(&args);
        // Kill it at any moment: while it starts, checks the stream, or
        // publishes with acknowledgements in flight.
        let wait = if rng.range(0, 4) == 0 {
            rng.range(0, 30)
        } else {
            rng.range(30, 400)
        };
        std::thread::sleep(Duration::from_millis(wait));
        replicator.signal("KILL");
        let (status, stderr) = replicator.wait();
        assert!(!status.success(), "it was killed");
        assert!(!stderr.contains("diverged"), "{stderr}");
    }
    std::fs::write(data.with_extension("stop"), b"").unwrap();
    assert!(
        writer.wait().unwrap().success(),
        "the writer ran to the end"
    );
    let events = common::log_lines(&data).len() as u64;
    assert!(
        std::fs::metadata(data.join("archive.jsonl.zst"))
            .unwrap()
            .len()
            > 0,
        "rotated"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = rt.block_on(common::stream_len(&url, "kill"));
    assert!(before > 0, "the killed replicators published");

    // Once more to the end, then stopped with SIGTERM: it exits cleanly.
    let replicator = Proc::spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(120);
    while rt.block_on(common::stream_len(&url, "kill")) < events {
        assert!(Instant::now() < deadline, "the replicator catches up");
        std::thread::sleep(Duration::from_millis(50));
    }
    replicator.signal("TERM");
    let (status, stderr) = replicator.wait();
    assert!(status.success(), "a clean exit on SIGTERM: {stderr}");
    assert!(
        stderr.contains(&format!("the stream holds {events} events")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("lost"),
        "a server syncing every message loses nothing: {stderr}"
    );
    eprintln!("{kills} kills, {events} events");
    rt.block_on(assert_stream_is_log(&url, "kill", &data));
}
