//! The command line itself: help, and bad arguments (exit code 2).

mod common;

use common::*;
use predicates::str::contains;

#[test]
fn every_command_has_help_with_examples() {
    for command in ["tail", "export", "stats"] {
        eventfold([command, "--help"])
            .assert()
            .success()
            .stdout(contains("Examples:"))
            .stdout(contains(format!("eventfold {command} data")));
    }
    eventfold(["--help"])
        .assert()
        .success()
        .stdout(contains("Exit codes"));
}

#[test]
fn bad_arguments_exit_with_2() {
    let dir = test_dir();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate", d],
        vec!["tail"],
        vec!["tail", d, "-n", "many"],
        vec!["tail", d, "--from", "-1"],
        vec!["export", d, "--format", "xml"],
        vec!["export", d, "--since", "yesterday"],
        vec!["export", d, "--until", "2025-12-01T10:00:00+02:00"],
        vec!["stats", d, "--verbose"],
    ] {
        let assert = eventfold(&args).assert().code(2).stdout("");
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_timestamp_says_what_is_accepted() {
    let dir = test_dir();
    eventfold(["export"])
        .arg(dir.path())
        .args(["--since", "2025-02-30"])
        .assert()
        .code(2)
        .stderr(contains("2025-02 has no day 30"))
        .stderr(contains("Unix seconds"));
}
