//! What each command says about the directory it is given, and that it
//! never writes there.

mod common;

use std::fs;

use common::*;
use predicates::str::contains;

/// Every command, with arguments that read the whole directory.
const COMMANDS: [&[&str]; 5] = [
    &["tail"],
    &["tail", "--from", "0"],
    &["export"],
    &["export", "--format", "csv"],
    &["stats"],
];

#[test]
fn a_missing_directory_is_named() {
    let dir = test_dir();
    let missing = dir.path().join("no-such-data");
    for args in COMMANDS {
        eventfold(args)
            .arg(&missing)
            .assert()
            .code(1)
            .stdout("")
            .stderr(format!(
                "eventfold: no such directory: {}\n",
                missing.display()
            ));
    }
    assert!(!missing.exists(), "nothing is created");
}

#[test]
fn a_file_is_not_a_directory() {
    let dir = rotated_history(10);
    let file = dir.path().join("app.jsonl");
    for args in COMMANDS {
        eventfold(args)
            .arg(&file)
            .assert()
            .code(1)
            .stderr(contains(format!(
                "eventfold: not a directory: {}",
                file.display()
            )))
            .stderr(contains(format!(
                "give the data directory that holds it: {}",
                dir.path().display()
            )));
    }
}

#[test]
fn a_directory_of_other_files_is_not_eventfolds() {
    let dir = test_dir();
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    for args in COMMANDS {
        eventfold(args)
            .arg(dir.path())
            .assert()
            .code(1)
            .stderr(contains(format!(
                "eventfold: not an eventfold data directory: {}",
                dir.path().display()
            )));
    }
}

#[test]
fn a_directory_that_cannot_be_read_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = rotated_history(10);
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o000)).unwrap();
    let readable = fs::read_dir(dir.path()).is_ok();
    if !readable {
        for args in COMMANDS {
            eventfold(args)
                .arg(dir.path())
                .assert()
                .code(1)
                .stderr(contains("eventfold: permission denied"))
                .stderr(contains(dir.path().display().to_string()));
        }
    }
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    if readable {
        eprintln!("skipped: this user (root?) reads a directory with mode 000");
    }
}

#[test]
fn no_command_writes_into_the_directory() {
    let dir = rotated_history(700);
    let before = tree(dir.path());
    for args in COMMANDS {
        eventfold(args).arg(dir.path()).assert().success();
    }
    eventfold(["tail", "--type", "note", "-n", "3"])
        .arg(dir.path())
        .assert()
        .success();
    eventfold(["stats", "--json"])
        .arg(dir.path())
        .assert()
        .success();
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn commands_read_beside_an_open_writer() {
    let dir = test_dir();
    let mut log = open_rotating(dir.path());
    append_rotating(&mut log, 0..320);
    // The writer holds the directory's lock: readers need none.
    eventfold(["stats", "--json"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(contains("\"total\": 320"));
    eventfold(["tail", "-n", "1", "--json"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(contains("{\"seq\":319,"));
    drop(log);
}
