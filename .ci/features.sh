#!/usr/bin/env bash
# Checks that each feature of the `pop` facade builds alone, and in the combinations its docs
# (pop::docs::backends, README "Features of the `pop` facade") recommend. `cargo check` only (no
# codegen, no linking): bounded. Usage: bash .ci/features.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in sync with pop/Cargo.toml [features] and pop/src/docs/backends.md.
combinations=(
    ""                   # no backend: the library, in-process handlers, your own store
    "sled"
    "fjall"
    "process"
    "dynamo"
    "k8s"
    "http"
    "sled,process"       # the default: embedded
    "sled,process,http"  # embedded, serving the API
    "fjall,process"      # embedded on the faster store
    "dynamo,process"     # several machines, handlers as local processes
    "dynamo,k8s,http"    # a cluster
)

failed=()
for features in "${combinations[@]}"; do
    start=$(date +%s)
    if cargo check -q -p pop --lib --no-default-features --features "$features"; then
        echo "features.sh: ok   [${features:-none}] ($(( $(date +%s) - start )) s)"
    else
        echo "features.sh: FAIL [${features:-none}]" >&2
        failed+=("${features:-none}")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "features.sh: pop does not build with: ${failed[*]}" >&2
    exit 1
fi
