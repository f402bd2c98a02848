#!/bin/sh
# A POP handler in plain shell: reads $PAYLOAD, reports progress, prints the result.
# Protocol: lines `POP_PROGRESS {json}` and `POP_RESULT {json}` on stdout; exit 0 = success.
set -eu
input=$(printf '%s' "$PAYLOAD" | sed -n 's/.*"input" *: *"\([^"]*\)".*/\1/p')
height=$(printf '%s' "$PAYLOAD" | sed -n 's/.*"height" *: *\([0-9]*\).*/\1/p')
echo "encoding $input to ${height}p for agenda $AGENDA_ID"
echo 'POP_PROGRESS {"percentComplete": 50}'
sleep 0.1
echo "POP_RESULT {\"rendition\": \"${input%.*}_${height}p.mp4\"}"
