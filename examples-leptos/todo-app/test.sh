#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test of the todo app:
# the unit tests of the reducers and the server helpers, then the
# end-to-end tests in headless Chromium against the real server.
#
# Installs when absent: Debian's chromium and chromium-driver (apt-get),
# the wasm32 target and the wasm-bindgen CLI (./build.sh). Safe to run
# again: installed things are skipped. Needs no input (CI=true is fine).
#
# Usage: ./test.sh [--lint | --lint-only]
#   --lint       also check rustfmt and clippy (-D warnings) for both
#                features (ssr and hydrate) first
#   --lint-only  only those checks, no tests
set -euo pipefail
cd "$(dirname "$0")"

lint=false
tests=true
for arg in "$@"; do
    case "$arg" in
        --lint) lint=true ;;
        --lint-only) lint=true; tests=false ;;
        *) echo "usage: $0 [--lint | --lint-only]" >&2; exit 2 ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }

if $tests && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
    step "installing chromium and chromium-driver (Debian packages)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "chromium and chromium-driver are missing: install them as root" >&2
            exit 1
        fi
        sudo="sudo -n"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if $tests; then
    chromedriver --version
fi

./build.sh --site-only

if $lint; then
    step "rustfmt"
    cargo fmt -- --check
    step "clippy (ssr: server, unit and browser tests)"
    cargo clippy --features ssr --all-targets -- -D warnings
    step "clippy (hydrate: browser bundle)"
    cargo clippy --lib --target wasm32-unknown-unknown --features hydrate -- -D warnings
fi

if ! $tests; then
    exit 0
fi

step "unit tests"
cargo test --features ssr --lib

step "browser tests"
cargo test --features ssr --test e2e
