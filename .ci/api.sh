#!/usr/bin/env bash
# The public API of every library crate, listed from rustdoc JSON (.ci/api_listing.py) and compared
# with the listing committed under api/. A difference fails with the diff: if the change is meant,
# regenerate and commit it (and say so in CHANGELOG.md):
#
#   bash .ci/api.sh --update
#
# rustdoc's JSON output is unstable: RUSTC_BOOTSTRAP=1 enables it on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(pop-core pop-sched pop-exec pop-store-kv pop-store-sled pop-store-fjall pop-store-dynamo pop-handler-protocol
        pop-runtime-process pop-runtime-k8s pop-engine pop-http pop)
update=0
[ "${1:-}" = "--update" ] && update=1

target="${CARGO_TARGET_DIR:-target}"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
for c in "${crates[@]}"; do
    RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p "$c" --lib --all-features -- -Z unstable-options --output-format json
    python3 .ci/api_listing.py "$target/doc/${c//-/_}.json" > "$fresh/$c.txt"
done

if [ "$update" = 1 ]; then
    mkdir -p api
    rm -f api/*.txt
    cp "$fresh"/*.txt api/
    echo "api.sh: api/ updated; review \`git diff api/\` and commit it with a CHANGELOG entry"
    exit 0
fi
if ! diff -ru api "$fresh" --exclude=README.md; then
    echo "api.sh: the public API differs from the listing in api/ (above: - committed, + now)." >&2
    echo "api.sh: if the change is meant, run \`bash .ci/api.sh --update\`, commit api/ and note it in CHANGELOG.md." >&2
    exit 1
fi
echo "api.sh: the public API matches api/ (${#crates[@]} crates)"
