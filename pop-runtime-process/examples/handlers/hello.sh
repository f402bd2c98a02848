#!/bin/sh
# hello.sh — a complete POP handler in POSIX shell.
#
# The handler protocol, all of it:
#   input  (environment): PAYLOAD = the operation's payload JSON (POP_PAYLOAD_TYPE=envVar), or for big
#          payloads POP_PAYLOAD_TYPE=compressedEnvVar and POP_COMPRESSED_PAYLOAD_0..N (concatenate,
#          base64-decode, zlib-inflate); AGENDA_ID, CID, CUSTOMER_ID, OPERATION_NAME, OPERATION_ID;
#          LAST_PROGRESS (only on a re-run: the JSON of the previous attempt's progress).
#   output (stdout, one line each):
#          POP_PROGRESS {"percentComplete": 40, "processingStateMessage": "...", "params": {...}}
#          POP_RESULT {json}        <- the operation's output (the last one wins)
#          anything else, and all of stderr, is the operation's log.
#   exit status 0 = success; anything else fails the operation (its last log lines are kept).
#
# Register it (registry.json beside this file), then run an agenda whose operation has "type": "hello":
#   {"hello": {"process": {"command": "/bin/sh", "args": ["examples/handlers/hello.sh"],
#                          "timeoutMs": 60000, "maxConcurrent": 4}}}
#
# Try it by hand:  PAYLOAD='{"name": "world"}' OPERATION_NAME=op AGENDA_ID=a sh hello.sh
set -eu

# The payload JSON, in either form.
payload() {
    case "${POP_PAYLOAD_TYPE:-envVar}" in
        envVar) printf '%s' "${PAYLOAD:?PAYLOAD is not set: run me as a POP handler}" ;;
        compressedEnvVar)
            i=0
            data=""
            while eval "[ -n \"\${POP_COMPRESSED_PAYLOAD_$i+x}\" ]"; do
                eval "data=\"\$data\${POP_COMPRESSED_PAYLOAD_$i}\""
                i=$((i + 1))
            done
            # zlib (not gzip): inflate with perl's core Compress::Zlib, or python3.
            if command -v perl >/dev/null 2>&1 && perl -MCompress::Zlib -e1 2>/dev/null; then
                printf '%s' "$data" | base64 -d | perl -MCompress::Zlib -e 'undef $/; print uncompress(<STDIN>)'
            else
                printf '%s' "$data" | base64 -d | python3 -c 'import sys, zlib; sys.stdout.write(zlib.decompress(sys.stdin.buffer.read()).decode())'
            fi
            ;;
        *) echo "unknown POP_PAYLOAD_TYPE: $POP_PAYLOAD_TYPE" >&2; exit 2 ;;
    esac
}

progress() { # percent message
    printf 'POP_PROGRESS {"percentComplete": %s, "processingStateMessage": "%s"}\n' "$1" "$2"
}

result() { # json
    printf 'POP_RESULT %s\n' "$1"
}

echo "hello.sh: operation ${OPERATION_NAME:-?} of agenda ${AGENDA_ID:-?}" >&2
if [ -n "${LAST_PROGRESS:-}" ]; then
    echo "hello.sh: re-run, the last attempt reported: $LAST_PROGRESS" >&2
fi

progress 10 "reading the payload"
input=$(payload)

# The real work goes here. To fail the operation: print why (to stderr) and exit non-zero.
if [ "${HELLO_FAIL:-}" = "1" ]; then
    echo "hello.sh: failing as asked" >&2
    exit 3
fi
progress 90 "done working"

# The output: any JSON. The payload is embedded as-is (it is JSON already).
result "{\"greeting\": \"hello\", \"operation\": \"${OPERATION_NAME:-}\", \"payload\": $input}"
