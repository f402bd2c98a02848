#!/usr/bin/env bash
# Starts a DynamoDB-compatible server on loopback for pop-store-dynamo's tests and benches: moto's
# server mode (its WSGI app, served one request at a time; see below). Idempotent: installs moto[server] only when missing, reuses a server that already
# answers on the port. Prints only `export POP_DYNAMODB_ENDPOINT=...` on stdout (for `eval`);
# everything else goes to stderr.
#
#   eval "$(bash .ci/dynamo.sh)"
#
# POP_DYNAMODB_PORT picks the port (default 8917). The server runs in the background until the
# machine stops or someone kills the pid written to ${TMPDIR:-/tmp}/pop-moto-PORT.pid.
set -euo pipefail

PORT="${POP_DYNAMODB_PORT:-8917}"
URL="http://127.0.0.1:${PORT}"
STATE="${TMPDIR:-/tmp}"
LOG="${STATE}/pop-moto-${PORT}.log"
PIDFILE="${STATE}/pop-moto-${PORT}.pid"

answers() {
    # Any HTTP answer counts (moto answers GET / with 404 or 200 depending on the version).
    curl -s -o /dev/null -m 2 -w '%{http_code}' "${URL}/" 2>/dev/null | grep -qv '^000$'
}

if ! answers; then
    if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
        echo "dynamo.sh: installing moto[server] (pip, quiet)" >&2
        python3 -m pip install -q --disable-pip-version-check 'moto[server]' >&2
    fi
    # moto's own server (`moto_server -H 127.0.0.1 -p PORT`), but single-threaded: moto_server
    # serves each request on its own thread without locking its tables, so two concurrent
    # conditional writes can both pass their condition (DynamoDB makes each one atomic), and its
    # TransactWriteItems snapshots a table while other threads change it (HTTP 500). One request at
    # a time gives DynamoDB's per-item atomicity; the tests and the bench measure that server.
    CMD=(python3 -c '
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app),
           threaded=False, use_reloader=False)
' 127.0.0.1 "${PORT}")
    echo "dynamo.sh: starting moto server mode, single-threaded, on 127.0.0.1:${PORT} (log ${LOG})" >&2
    # Detached, with no inherited stdout, so `$(bash .ci/dynamo.sh)` returns.
    nohup setsid "${CMD[@]}" >"${LOG}" 2>&1 </dev/null &
    echo $! >"${PIDFILE}"
    for _ in $(seq 1 120); do
        if answers; then
            break
        fi
        sleep 0.5
    done
    if ! answers; then
        echo "dynamo.sh: the moto server did not answer on ${URL} within 60 s; its log:" >&2
        tail -n 40 "${LOG}" >&2 || true
        exit 1
    fi
fi
echo "dynamo.sh: DynamoDB-compatible server (moto, a local emulator) at ${URL}" >&2
echo "export POP_DYNAMODB_ENDPOINT=${URL}"
