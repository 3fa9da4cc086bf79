//! The command-line binary: help with examples, a mirror run once, the
//! exit code of a divergence, a clean stop on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Proc, Server, open_log};

#[test]
fn help_shows_examples() {
    for sub in ["replicate", "mirror"] {
        let out = Command::new(common::binary())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("Examples:") && text.contains("--server"),
            "{text}"
        );
    }
    let out = Command::new(common::binary())
        .arg("replicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad usage");
}

#[test]
fn replicate_then_mirror_once_and_a_divergence_exits_3() {
    let server = Server::single();
    let url = server.url();
    let data = tempfile::tempdir().unwrap();
    common::append(&mut open_log(data.path(), 1 << 20), 0, 500, 50);
    let dir = data.path().to_str().unwrap();
    let replicator = Proc::spawn(&["replicate", dir, "--server", &url, "--stream", "c"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    while rt.block_on(common::stream_len(&url, "c")) < 500 {
        std::thread::sleep(Duration::from_millis(20));
    }
    replicator.signal("INT");
    let (status, stderr) = replicator.wait();
    assert!(status.success(), "{stderr}");

    let standby = tempfile::tempdir().unwrap();
    let dest = standby.path().to_str().unwrap();
    let out = Command::new(common::binary())
        .args(["mirror", "--server", &url, "--stream", "c", dest, "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the standby holds 500 events"), "{stderr}");
    assert_eq!(
        common::log_lines(standby.path()),
        common::log_lines(data.path())
    );

    // Another log into the same stream: refused, exit code 3.
    let other = tempfile::tempdir().unwrap();
    let mut log = eventfold::EventLog::open(other.path()).unwrap();
    log.append(&eventfold::Event::new("x", serde_json::json!(1)))
        .unwrap();
    let out = Command::new(common::binary())
        .args([
            "replicate",
            other.path().to_str().unwrap(),
            "--server",
            &url,
            "--stream",
            "c",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("diverged") && stderr.contains("another log"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_a_following_mirror_cleanly() {
    let server = Server::single();
    let url = server.url();
    let data = tempfile::tempdir().unwrap();
    common::append(&mut open_log(data.path(), 1 << 20), 0, 100, 50);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(common::replicate_until(data.path(), &url, "f", 100));
    let standby = tempfile::tempdir().unwrap();
    let mirror = Proc::spawn(&[
        "mirror",
        "--server",
        &url,
        "--stream",
        "f",
        standby.path().to_str().unwrap(),
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while common::log_lines(standby.path()).len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror catches up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    mirror.signal("TERM");
    let (status, stderr) = mirror.wait();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("the standby holds 100 events"), "{stderr}");
}
