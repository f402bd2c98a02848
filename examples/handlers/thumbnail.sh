#!/bin/sh
# The `thumbnail` handler as a local process (the `handlers` example): reads $PAYLOAD, prints its
# result on a `POP_RESULT` line; any other line is the operation's log.
set -eu
input=$(printf '%s' "$PAYLOAD" | sed -n 's/.*"in" *: *"\([^"]*\)".*/\1/p')
echo "making a thumbnail of $input in process $$"
echo 'POP_PROGRESS {"percentComplete": 50}'
echo "POP_RESULT {\"runtime\": \"process\", \"file\": \"${input%.*}.png\"}"
