//! Runs the example programs and checks that they do what their comments
//! promise.
//!
//! The module docs of every example hold a transcript in a ```text block:
//! each `$ cargo run --example NAME [-- ARGS]` line is a command, and the
//! lines after it are exactly what it prints. The tests replay each
//! transcript through `cargo run`, one process per command, with the
//! examples' data in a fresh temporary directory (`TMPDIR` for the demos,
//! `TODO_DIR` and `NOTES_DIR` for the CLIs), and compare the output line
//! for line. The CLIs are also given bad arguments.

use std::fs;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// What one run of an example did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cargo run --example NAME -- ARGS` with its data under `tmp`.
///
/// The temporary directory's path is replaced by `/tmp` in the output, so
/// that the demos' "data directory: ..." lines match their docs.
fn run(name: &str, args: &[&str], tmp: &Path) -> Run {
    let output = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name, "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp)
        .env("TODO_DIR", tmp.join("todo-data"))
        .env("NOTES_DIR", tmp.join("notes-data"))
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{name} {args:?} panicked:\n{stderr}"
    );
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).replace(&*tmp.to_string_lossy(), "/tmp"),
        stderr,
    }
}

/// One command of a transcript: its arguments and the lines it prints.
struct Step {
    args: Vec<String>,
    output: Vec<String>,
}

/// Reads the transcript from the module docs of `examples/NAME.rs`.
fn transcript(name: &str) -> Vec<Step> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let source = std::fs::read_to_string(&path).expect("read the example's source");
    let docs: Vec<&str> = source
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    let prompt = format!("$ cargo run --example {name}");
    let start = docs
        .windows(2)
        .position(|w| w[0] == "```text" && w[1].starts_with(&prompt))
        .unwrap_or_else(|| panic!("no transcript in {}", path.display()));

    let mut steps: Vec<Step> = Vec::new();
    for line in docs[start + 1..].iter().take_while(|l| **l != "```") {
        match line.strip_prefix(&prompt) {
            Some(rest) => steps.push(Step {
                args: split_args(rest.strip_prefix(" --").unwrap_or(rest)),
                output: Vec::new(),
            }),
            None => steps
                .last_mut()
                .expect("the transcript starts with a command")
                .output
                .push(line.to_string()),
        }
    }
    steps
}

/// Splits a command line at spaces, keeping "double-quoted" words whole.
fn split_args(line: &str) -> Vec<String> {
    let (mut args, mut word, mut quoted) = (Vec::new(), None::<String>, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_default();
            }
            ' ' if !quoted => args.extend(word.take()),
            c => word.get_or_insert_default().push(c),
        }
    }
    args.extend(word);
    args
}

/// Replays an example's transcript in `tmp`, checking every command's
/// exit status and output.
fn replay(name: &str, tmp: &Path) {
    for step in transcript(name) {
        let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
        let run = run(name, &args, tmp);
        assert_eq!(run.code, Some(0), "{name} {args:?} failed:\n{}", run.stderr);
        let printed: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(printed, step.output, "output of {name} {args:?}");
    }
}

fn tmp() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Each demo prints the same on every run: it starts from a fresh
/// directory even if an earlier run left one behind.
fn check_demo(name: &str) {
    let tmp = tmp();
    replay(name, tmp.path());
    assert!(
        tmp.path()
            .join(format!("eventfold-example-{name}"))
            .is_dir()
    );
    replay(name, tmp.path());
}

#[test]
fn multi_view_prints_what_its_docs_promise() {
    check_demo("multi_view");
}

#[test]
fn rebuild_prints_what_its_docs_promise() {
    check_demo("rebuild");
}

#[test]
fn rotation_prints_what_its_docs_promise() {
    check_demo("rotation");
}

#[test]
fn time_travel_prints_what_its_docs_promise() {
    check_demo("time_travel");
}

/// Each command of the transcript is its own process, so this also checks
/// that the list survives between runs.
#[test]
fn todo_cli_session_from_its_docs() {
    let tmp = tmp();
    replay("todo_cli", tmp.path());
    assert!(tmp.path().join("todo-data/app.jsonl").is_file());
}

#[test]
fn notes_cli_session_from_its_docs() {
    let tmp = tmp();
    replay("notes_cli", tmp.path());
    assert!(
        tmp.path()
            .join("notes-data/views/tags.snapshot.json")
            .is_file()
    );
}

/// Runs `name` with each set of bad arguments: usage on stderr, nothing on
/// stdout, status 1, and no data directory created.
fn check_rejects(name: &str, data_dir: &str, bad: &[&[&str]]) {
    let tmp = tmp();
    for args in bad {
        let run = run(name, args, tmp.path());
        assert_eq!(run.code, Some(1), "{name} {args:?}");
        assert!(
            run.stderr.contains("usage:"),
            "{name} {args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{name} {args:?}");
    }
    assert!(!tmp.path().join(data_dir).exists());
}

#[test]
fn todo_cli_rejects_bad_arguments() {
    check_rejects(
        "todo_cli",
        "todo-data",
        &[
            &[],
            &["bogus"],
            &["add"],
            &["add", " "],
            &["add", "two", "words"],
            &["done"],
            &["done", "first"],
            &["done", "-1"],
            &["list", "all"],
        ],
    );
}

#[test]
fn notes_cli_rejects_bad_arguments() {
    check_rejects(
        "notes_cli",
        "notes-data",
        &[
            &[],
            &["bogus"],
            &["add"],
            &["add", "--tag", "home"],
            &["add", "milk", "--tag"],
            &["add", "milk", "--tag", "--tag"],
            &["add", "milk", "--colour", "red"],
            &["tag", "1"],
            &["tag", "one", "home"],
            &["delete"],
            &["delete", "x"],
            &["list", "--tag"],
            &["list", "home"],
            &["tags", "home"],
        ],
    );
}

#[test]
fn clis_report_unknown_ids() {
    let tmp = tmp();
    let run1 = run("todo_cli", &["done", "7"], tmp.path());
    assert_eq!(run1.code, Some(1));
    assert!(run1.stderr.contains("no todo #7"), "{}", run1.stderr);

    for args in [&["delete", "9"][..], &["tag", "9", "home"]] {
        let run = run("notes_cli", args, tmp.path());
        assert_eq!(run.code, Some(1), "notes_cli {args:?}");
        assert!(run.stderr.contains("no note #9"), "{}", run.stderr);
    }
}

#[test]
fn help_goes_to_stdout() {
    for name in ["notes_cli", "todo_cli"] {
        for flag in ["--help", "-h", "help"] {
            let tmp = tmp();
            let run = run(name, &[flag], tmp.path());
            assert_eq!(run.code, Some(0), "{name} {flag}");
            assert!(
                run.stdout.starts_with(&format!("usage: {name}")),
                "{}",
                run.stdout
            );
            assert_eq!(
                fs::read_dir(tmp.path()).unwrap().count(),
                0,
                "{name} {flag} wrote"
            );
        }
    }
}
