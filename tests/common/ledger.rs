//! A ledger of typed events, its folds (typed and over `Event`s) and the
//! upcasters that read its version 1 lines (the fixture
//! `tests/fixtures/v0.1-old-shapes/`) in today's shape.

use eventfold::{Event, Upcasters};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Today's events of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Ledger {
    Deposited {
        account: String,
        amount: u64,
        currency: String,
    },
    Withdrawn {
        account: String,
        amount: u64,
    },
    AccountRenamed {
        from: String,
        to: String,
    },
    Frozen,
}

/// The balance of each account, and how many events were folded.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Balances {
    pub accounts: std::collections::BTreeMap<String, i64>,
    pub events: u64,
}

/// The typed fold of the ledger.
pub fn balances(mut state: Balances, event: &Ledger) -> Balances {
    state.events += 1;
    match event {
        Ledger::Deposited {
            account, amount, ..
        } => {
            *state.accounts.entry(account.clone()).or_default() += *amount as i64;
        }
        Ledger::Withdrawn { account, amount } => {
            *state.accounts.entry(account.clone()).or_default() -= *amount as i64;
        }
        Ledger::AccountRenamed { from, to } => {
            let balance = state.accounts.remove(from).unwrap_or_default();
            state.accounts.insert(to.clone(), balance);
        }
        Ledger::Frozen => {}
    }
    state
}

/// The same fold over `Event`s, decoding each by hand.
pub fn balances_of_values(state: Balances, event: &Event) -> Balances {
    let tagged = json!({"type": event.event_type, "data": event.data});
    match serde_json::from_value::<Ledger>(tagged) {
        Ok(typed) => balances(state, &typed),
        Err(_) => state,
    }
}

/// A deposit in euros.
pub fn deposit(account: &str, amount: u64) -> Ledger {
    Ledger::Deposited {
        account: account.into(),
        amount,
        currency: "EUR".into(),
    }
}

/// Version 1 deposits: `deposit` with `acct` and `amt`, no currency.
pub fn deposit_v1(data: Value) -> Value {
    json!({"account": data["acct"], "amount": data["amt"], "currency": "EUR"})
}

pub fn withdrawal_v1(data: Value) -> Value {
    json!({"account": data["acct"], "amount": data["amt"]})
}

pub fn ledger_upcasters() -> Upcasters {
    Upcasters::new()
        .upcast("deposit", 1, "deposited", deposit_v1)
        .upcast("withdrawal", 1, "withdrawn", withdrawal_v1)
}
