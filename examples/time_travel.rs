//! Time travel: the state at any point in the past is the fold of the
//! events up to that point.
//!
//! The log keeps every event, so "what did the account look like after the
//! 10th transaction?" or "when did it first go negative?" are answered by
//! replaying the history with `read_full()` (or `state_at(reducer, seq)`)
//! and the same reducer the view uses, stopping wherever you like. That is the debugging superpower of
//! event sourcing: no state is ever overwritten.
//!
//! ```text
//! $ cargo run --example time_travel
//! data directory: /tmp/eventfold-example-time_travel
//! #1  deposited 100  balance 100
//! #2  withdrawn  20  balance  80
//! #3  withdrawn  35  balance  45
//! #4  deposited  50  balance  95
//! #5  withdrawn  10  balance  85
//! #6  withdrawn  60  balance  25
//! #7  deposited  25  balance  50
//! #8  withdrawn  40  balance  10
//! #9  deposited  15  balance  25
//! #10 deposited  30  balance  55
//! after event 10: balance 55, 10 transactions
//! now:            balance 95, 20 transactions
//! first overdrawn at event 13 (withdrawn 50)
//! ```

use std::error::Error;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::process::ExitCode;

use eventfold::{Event, EventLog};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Default, Clone, Serialize, Deserialize)]
struct Account {
    balance: i64,
    transactions: u64,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (balance, n) = (self.balance, self.transactions);
        write!(f, "balance {balance}, {n} transactions")
    }
}

fn account(mut state: Account, event: &Event) -> Account {
    let amount = event.data["amount"].as_i64().unwrap_or(0);
    match event.event_type.as_str() {
        "deposited" => state.balance += amount,
        "withdrawn" => state.balance -= amount,
        _ => return state,
    }
    state.transactions += 1;
    state
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time_travel: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // A fresh directory on every run, so the output is always the same.
    let dir = std::env::temp_dir().join("eventfold-example-time_travel");
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    println!("data directory: {}", dir.display());

    let mut log = EventLog::builder(&dir)
        .view::<Account>("account", account)
        .open()?;

    // Twenty transactions: positive amounts are deposits, negative ones
    // withdrawals. After the 12th, the log is rotated, so the history
    // spans the archive and the active log; read_full reads both.
    let amounts: [i64; 20] = [
        100, -20, -35, 50, -10, -60, 25, -40, 15, 30, //
        -45, 20, -50, 80, -25, 10, -5, 40, -15, 30,
    ];
    for (i, amount) in amounts.into_iter().enumerate() {
        let kind = if amount >= 0 {
            "deposited"
        } else {
            "withdrawn"
        };
        let data = json!({ "amount": amount.abs() });
        log.append(&Event::with_ts(kind, data, 1_700_000_000 + i as u64))?;
        if i + 1 == 12 {
            log.rotate()?;
        }
    }

    // Replay the history one event at a time, folding it ourselves with
    // the view's reducer, and stop after the 10th event.
    let mut past = Account::default();
    for (n, item) in (1..=10).zip(log.read_full()?) {
        let (event, _hash) = item?;
        past = account(past, &event);
        let amount = event.data["amount"].as_i64().unwrap_or(0);
        println!(
            "#{n:<2} {:<9} {amount:>3}  balance {:>3}",
            event.event_type, past.balance
        );
    }
    // `state_at` does the same fold, up to and including a sequence
    // number: the 10th event is number 9 (the first is 0).
    let at_ten = log.state_at(account, 9)?;
    assert_eq!(at_ten.balance, past.balance);
    println!("after event 10: {at_ten}");

    // The view holds the present: all twenty events.
    log.refresh_all()?;
    let now = log.view::<Account>("account")?;
    println!("now:            {now}");

    // The same replay answers questions about the past, for example
    // which event first took the account below zero.
    let mut state = Account::default();
    for (n, item) in (1..).zip(log.read_full()?) {
        let (event, _hash) = item?;
        state = account(state, &event);
        if state.balance < 0 {
            let amount = &event.data["amount"];
            println!(
                "first overdrawn at event {n} ({} {amount})",
                event.event_type
            );
            break;
        }
    }
    Ok(())
}
