#!/usr/bin/env bash
# Builds the todo app the way cargo-leptos would, with plain cargo:
#
#   1. the browser bundle: the library with the `hydrate` feature, compiled
#      to WebAssembly and passed through wasm-bindgen, into target/site/pkg/
#      with the stylesheet beside it;
#   2. the server binary, with the `ssr` feature (skipped with --site-only).
#
# Installs what is missing first: the wasm32 target (rustup) and the
# wasm-bindgen CLI at exactly the version of the wasm-bindgen crate in
# Cargo.lock (the two must match). No wasm-opt: the bundle works without it.
#
# Usage: ./build.sh [--site-only]
set -euo pipefail
cd "$(dirname "$0")"

site_only=false
for arg in "$@"; do
    case "$arg" in
        --site-only) site_only=true ;;
        *) echo "usage: $0 [--site-only]" >&2; exit 2 ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install a Rust toolchain with rustup first" >&2
    exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

wasm_bindgen_version=$(awk '
    $0 == "name = \"wasm-bindgen\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)
if [ -z "$wasm_bindgen_version" ]; then
    echo "no wasm-bindgen version in Cargo.lock" >&2
    exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
    step "installing wasm-bindgen-cli $wasm_bindgen_version (a few minutes, once)"
    # --locked first; its lock file can name a dependency release that the
    # registry no longer serves, so fall back to a fresh resolution.
    cargo install wasm-bindgen-cli --version "$wasm_bindgen_version" --locked ||
        cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi

step "browser bundle (hydrate, wasm32)"
cargo build --lib --release --target wasm32-unknown-unknown --features hydrate
mkdir -p target/site/pkg
wasm-bindgen --target web --no-typescript --out-name todo_app --out-dir target/site/pkg \
    target/wasm32-unknown-unknown/release/todo_app.wasm
cp style/main.css target/site/pkg/todo_app.css
echo "target/site/pkg: $(ls target/site/pkg | tr '\n' ' ')"

if ! $site_only; then
    step "server (ssr)"
    cargo build --release --features ssr --bin todo-app
fi
