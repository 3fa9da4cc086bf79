#!/usr/bin/env bash
# Every test of the project: the library's (unit, integration, examples,
# doctests), then the web app's (reducer unit tests and end-to-end tests in
# headless Chromium against the real server). Installs what the web app's
# tests need when it is missing (Chromium and its driver, the wasm32
# target, the wasm-bindgen CLI); safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

printf '\n== library: cargo test\n'
cargo test

printf '\n== web app: examples-leptos/todo-app/test.sh\n'
examples-leptos/todo-app/test.sh
