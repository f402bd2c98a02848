#!/usr/bin/env bash
# The web console in headless Chromium: installs what it needs (Debian's chromium when
# /usr/bin/chromium is missing, playwright-core with `npm ci`), builds `pop`, and runs
# console-tests/console.test.mjs against a real `pop serve`, bounded to 3 minutes.
#
#   bash .ci/console.sh
#
# POP_COMPAT_FIXTURES must name the original POP's corpus (the test reads its 65-operation sample);
# CARGO_TARGET_DIR is honoured. Screenshots of the main pages land in console-tests/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

export POP_COMPAT_FIXTURES="${POP_COMPAT_FIXTURES:-$(cd .. && pwd)/shared/fixtures/pop-original}"
if [ ! -d "$POP_COMPAT_FIXTURES" ]; then
    echo "console.sh: the compatibility corpus is missing at $POP_COMPAT_FIXTURES" >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
    echo "console.sh: installing chromium (apt)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "console.sh: node and npm are needed (apt-get install nodejs npm)" >&2
    exit 1
fi

echo "== npm ci (console-tests: playwright-core, no browser download)"
(cd console-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

echo "== cargo build -p pop-cli"
cargo build -p pop-cli
TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac

echo "== the console in headless Chromium"
cd console-tests
POP_BIN="$TARGET/debug/pop" CHROMIUM=/usr/bin/chromium timeout --kill-after=10 180 node console.test.mjs
