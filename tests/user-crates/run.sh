#!/usr/bin/env bash
# Builds and tests the user crates: applications outside the workspace that depend on perf the
# way users do, one build per feature set of prometheus (none, default, process, push) with
# perf-runtime's `axum` feature on and off. Each scenario is a test binary of its own (perf's
# metrics and the logger are global to a process); any failure exits non-zero. app-defaults also
# serves a chat gateway (common/llm.rs) behind `PerfLayer` (test `layer`) and with
# `#[perf_endpoint]` alone (test `endpoint_alone`), over real HTTP.
#
#   tests/user-crates/run.sh                 # every combination
#   CARGO_TARGET_DIR=/tmp/t tests/user-crates/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# One target dir for every combination, so that what they share builds once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/user-crates}"

# crate | crate features | what it builds
combinations=(
    "app-defaults||prometheus default features (protobuf), perf-runtime axum on, PerfLayer"
    "app-minimal||prometheus no features, perf-runtime axum off"
    "app-minimal|axum|prometheus no features, perf-runtime axum on"
    "app-minimal|process|prometheus process, perf-runtime axum off"
    "app-minimal|process,axum|prometheus process, perf-runtime axum on"
    "app-minimal|push|prometheus push (and protobuf), perf-runtime axum off"
    "app-minimal|push,axum|prometheus push (and protobuf), perf-runtime axum on"
)

for crate in app-defaults app-minimal; do
    cargo fmt --manifest-path "$here/$crate/Cargo.toml" -- --check
done

start=$SECONDS
for combination in "${combinations[@]}"; do
    IFS='|' read -r crate features what <<<"$combination"
    echo "=== user crate $crate, features [${features}]: $what"
    step=$SECONDS
    cargo test --manifest-path "$here/$crate/Cargo.toml" --features "$features" --no-fail-fast
    echo "=== user crate $crate [${features}] passed in $((SECONDS - step)) s"
done
echo "=== user crates: ${#combinations[@]} combinations passed in $((SECONDS - start)) s"
