#!/usr/bin/env bash
# POP against its peers, in one invocation on one machine: bash benches/peers/run.sh
#
# Installs what it needs itself (idempotent): the Rust side (`pop-peers`, its own cargo workspace with
# dagrs) is built; dask and Celery go into a virtualenv ($POP_PEERS_HOME/venv, default
# ~/.cache/pop-peers); redis-server comes from Debian (apt-get) when missing. A peer that cannot be
# installed is skipped, and the report says so. Writes $POP_PEERS_OUT/report.md (default
# /tmp/pop-peers) and prints it. Not part of `cargo test` or .ci/run.
#
#   POP_PEERS_SIZES="1000 10000 100000"   sizes of the layered DAG
#   POP_PEERS_ONLY="dag"                  only the DAG part ("e2e" for only the end-to-end part)
set -uo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
HOME_DIR=${POP_PEERS_HOME:-$HOME/.cache/pop-peers}
OUT=${POP_PEERS_OUT:-/tmp/pop-peers}
SIZES=${POP_PEERS_SIZES:-1000 10000 100000}
ONLY=${POP_PEERS_ONLY:-all}
mkdir -p "$HOME_DIR" "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
note() { echo "$*" >&2; echo "{\"note\": \"$*\"}" >> "$RESULTS"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB\", \"load_start\": \"$(load)\"}" >> "$RESULTS"

# --- POP and dagrs (Rust) ------------------------------------------------------------------------
export CARGO_INCREMENTAL=0
[ -f Cargo.lock ] || cp ../../Cargo.lock Cargo.lock   # start from the project's versions
echo "== building pop-peers (release)" >&2
if ! cargo build --release --quiet; then
    echo "pop-peers does not build: nothing to compare against" >&2
    exit 1
fi
BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/pop-peers"

# --- Python peers in a virtualenv ------------------------------------------------------------------
VENV="$HOME_DIR/venv"
PY=""
if [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2; then
    PY="$VENV/bin/python"
else
    note "no python3 venv: dask and Celery skipped"
fi
have_dask=0 have_celery=0
if [ -n "$PY" ]; then
    if "$PY" -c 'import dask' 2>/dev/null || "$PY" -m pip install -q dask >&2; then have_dask=1; else note "dask could not be installed: skipped"; fi
    if "$PY" -c 'import celery, redis' 2>/dev/null || "$PY" -m pip install -q 'celery[redis]' >&2; then have_celery=1; else note "celery could not be installed: skipped"; fi
fi
REDIS_SERVER=$(command -v redis-server || true)
if [ -z "$REDIS_SERVER" ] && [ "$ONLY" != dag ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get install -y -qq redis-server || (apt-get update -qq && apt-get install -y -qq redis-server)) >&2
    fi
    REDIS_SERVER=$(command -v redis-server || true)
fi
[ -n "$REDIS_SERVER" ] || { [ "$ONLY" = dag ] || note "redis-server could not be installed: Celery skipped"; have_celery=0; }

run_json() { # a measuring command; its JSON lines go to the results
    if ! timeout 900 "$@" >> "$RESULTS"; then note "failed or timed out: $*"; fi
}

# --- the layered DAG ---------------------------------------------------------------------------------
if [ "$ONLY" != e2e ]; then
    for n in $SIZES; do
        echo "== layered DAG, $n operations (load $(load))" >&2
        run_json "$BIN" dag pop "$n"
        run_json "$BIN" dag dagrs "$n"
        if [ $have_dask = 1 ]; then
            run_json "$PY" dask_dag.py threaded "$n"
            run_json "$PY" dask_dag.py sync "$n"
        fi
    done
    [ $have_dask = 1 ] || note "dask skipped"
fi

# --- end to end: POP embedded vs Celery + Redis ------------------------------------------------------
if [ "$ONLY" != dag ]; then
    echo "== POP embedded end to end, sled (load $(load))" >&2
    run_json "$BIN" e2e sled
    echo "== POP embedded end to end, fjall (load $(load))" >&2
    run_json "$BIN" e2e fjall
    if [ $have_celery = 1 ]; then
        echo "== Celery + Redis end to end (load $(load))" >&2
        RDIR="$OUT/redis"; rm -rf "$RDIR"; mkdir -p "$RDIR"
        # Redis with its append-only file fsynced every second (the usual durable setting).
        "$REDIS_SERVER" --port 6390 --bind 127.0.0.1 --dir "$RDIR" --appendonly yes --appendfsync everysec \
            --save '' --daemonize no > "$OUT/redis.log" 2>&1 &
        REDIS_PID=$!
        export POP_PEERS_REDIS=redis://127.0.0.1:6390/0
        sleep 1
        "$VENV/bin/celery" -A celery_peer worker --pool=prefork --concurrency=2 --loglevel=WARNING \
            > "$OUT/celery.log" 2>&1 &
        CELERY_PID=$!
        run_json "$PY" celery_peer.py
        kill -TERM "$CELERY_PID" 2>/dev/null; wait "$CELERY_PID" 2>/dev/null
        kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
    fi
fi

echo "{\"load_end\": \"$(load)\"}" >> "$RESULTS"
python3 report.py "$RESULTS" > "$OUT/report.md"
cat "$OUT/report.md"
echo "(written to $OUT/report.md; raw results in $RESULTS)" >&2
