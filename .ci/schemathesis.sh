#!/usr/bin/env bash
# Property-based tests of the HTTP API with schemathesis, against /openapi.json of a real `pop serve`
# (sled in a temporary directory, a static superuser token): every operation of the document gets a
# bounded number of generated requests (valid and invalid), and the run fails on any server error
# (5xx), on an answer whose status or body the document does not describe, and on a server that does
# not stop cleanly on SIGTERM.
#
#   bash .ci/schemathesis.sh            # about 1-2 minutes on 2 cores once pop is built
#
# POP_SCHEMATHESIS_EXAMPLES (default 20) bounds the examples per operation; POP_SCHEMATHESIS_CHECKS
# and POP_SCHEMATHESIS_PHASES override the checks and phases; POP_SCHEMATHESIS_VENV (default
# /tmp/pop-schemathesis-venv) is where schemathesis is installed (pip, once).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${POP_SCHEMATHESIS_VENV:-/tmp/pop-schemathesis-venv}"
EXAMPLES="${POP_SCHEMATHESIS_EXAMPLES:-20}"
CHECKS="${POP_SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,ignored_auth}"
PHASES="${POP_SCHEMATHESIS_PHASES:-examples,coverage,fuzzing}"
if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "schemathesis.sh: installing schemathesis into $VENV (pip, quiet)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4.3,<5'
fi

export CARGO_INCREMENTAL=0
cargo build -q -p pop-cli
BIN="${CARGO_TARGET_DIR:-target}/debug/pop"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

TOKEN="schemathesis-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
cat > "$WORK/auth.toml" <<EOF
anonymous = "deny"
[[tokens]]
token = "$TOKEN"
user = "schemathesis"
superuser = true
EOF

"$BIN" serve --data "$WORK/data" --auth "$WORK/auth.toml" --listen 127.0.0.1:0 --no-timed \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
    URL="$(sed -n 's|^pop serve ready: \(http://[0-9.:]*\).*|\1|p' "$WORK/serve.out" | head -1)"
    [ -n "$URL" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "schemathesis.sh: pop serve exited before it was ready:" >&2
        cat "$WORK/serve.err" >&2
        exit 1
    fi
    sleep 0.2
done
if [ -z "$URL" ]; then
    echo "schemathesis.sh: pop serve did not get ready in 60 s" >&2
    exit 1
fi
echo "schemathesis.sh: pop serve at $URL"

# A customer in a pool with an insight, so that generated submissions can also succeed.
post() {
    curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$2" "$URL$1"
}
post /pop/resourcepool '{"id": "pool", "customerId": "acme", "title": "pool"}'
post /pop/insight '{"id": "main", "customerId": "acme", "title": "main", "resourcePoolId": "pool", "isGlobal": true, "mappers": {"operationType": ["step"]}}'
post /pop/customer '{"id": "acme", "customerId": "acme", "title": "acme", "resourcePoolId": "pool"}'

STATUS=0
# (run from the temporary directory: schemathesis keeps its caches in the working directory)
(cd "$WORK" && timeout 240 "$VENV/bin/schemathesis" run "$URL/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks "$CHECKS" \
    --phases "$PHASES" \
    --max-examples "$EXAMPLES" \
    --seed 1 \
    --generation-database none \
    --workers 2 \
    --request-timeout 20 \
    --suppress-health-check all \
    --warnings off \
    --no-color) || STATUS=$?

# The server stops cleanly on SIGTERM (graceful shutdown), and nothing panicked meanwhile.
kill -TERM "$SERVER_PID"
SERVE_STATUS=0
wait "$SERVER_PID" || SERVE_STATUS=$?
SERVER_PID=""
if [ "$SERVE_STATUS" -ne 0 ]; then
    echo "schemathesis.sh: pop serve exited with $SERVE_STATUS on SIGTERM" >&2
    STATUS=1
fi
if grep -q "panicked" "$WORK/serve.err"; then
    echo "schemathesis.sh: pop serve logged a panic:" >&2
    grep -B2 -A5 "panicked" "$WORK/serve.err" >&2
    STATUS=1
fi
if [ "$STATUS" -ne 0 ]; then
    echo "schemathesis.sh: FAILED (status $STATUS)" >&2
fi
exit "$STATUS"
