#!/bin/sh
# Fails on its first attempt for an agenda, succeeds after: shows operation-level retries.
set -eu
marker="${POP_QUICKSTART_STATE:-/tmp}/flaky-$AGENDA_ID"
if [ ! -e "$marker" ]; then
  touch "$marker"
  echo "upload failed: connection reset (simulated)" >&2
  exit 3
fi
echo 'POP_RESULT {"uploaded": true}'
