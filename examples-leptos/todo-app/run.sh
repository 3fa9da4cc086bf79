#!/usr/bin/env bash
# One command to build and start the todo app on a fresh machine.
#
# Installs what is missing (the wasm32 target, the wasm-bindgen CLI), builds
# the browser bundle and the server in release mode (./build.sh), then
# starts the server and prints its URL. Ctrl-C stops it cleanly.
#
# Settings (environment): TODO_DATA_DIR (default ./data, next to this
# script), PORT (default 3000) or LEPTOS_SITE_ADDR (default 127.0.0.1:3000),
# TODO_MAX_LOG_SIZE (default 1000000 bytes before rotation).
set -euo pipefail
cd "$(dirname "$0")"

./build.sh

export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-target/site}"
printf '\n== starting: open the URL below in a browser; Ctrl-C stops the server\n'
exec ./target/release/todo-app
