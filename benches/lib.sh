# shellcheck shell=bash
# What the bench scripts share, sourced by them: strict mode, the repository's root as the working
# directory, settings from the environment, and the runs of the example gateway over a zero-delay
# mock loaded by examples/load.rs (otlp.sh, scrapes.sh), so that their figures stay comparable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

defaults() { # defaults NAME=VALUE...: each NAME from the environment, VALUE where unset or empty
    local pair name
    for pair in "$@"; do
        name=${pair%%=*}
        [ -n "${!name:-}" ] || printf -v "$name" '%s' "${pair#*=}"
    done
}

# The gateway a run started and has not stopped, where the script's own EXIT trap finds it: a run
# is a subshell (`for ... done | tee`), which `set -e` may end anywhere, and bash runs no EXIT
# trap set inside it then. A script with an EXIT trap of its own calls `stop_leftovers`.
GATEWAY_PIDS=$(mktemp)
stop_leftovers() {
    xargs -r kill <"$GATEWAY_PIDS" 2>/dev/null || true
    rm -f "$GATEWAY_PIDS"
}
trap stop_leftovers EXIT

# The gateway's tokio workers: one, as in end-to-end.sh; empty for tokio's default.
GATEWAY_WORKERS=${GATEWAY_WORKERS-1}
LOAD=target/release/examples/load

build_gateway() { # unless SKIP_BUILD=1; and the gateway's port must be free
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        cargo build --release --example gateway --example load
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "something listens on 127.0.0.1:$PORT already" >&2
        exit 1
    fi
}

# start_gateway GATEWAY [FLAGS...]: GATEWAY on 127.0.0.1:$PORT, its mock answering at once with 3
# chunks, once it answers and /metrics holds $MODELS model names (one request each); its pid in
# gateway_pid (and in GATEWAY_PIDS, for the script's EXIT trap), its output where the call's goes.
start_gateway() {
    local gateway=$1
    shift
    TOKIO_WORKER_THREADS=$GATEWAY_WORKERS "$gateway" --listen "127.0.0.1:$PORT" \
        --mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0 \
        --mock-requests-per-minute 1000000000 \
        "$@" >/dev/null &
    gateway_pid=$!
    # Whatever happens next, the gateway does not outlive the script.
    echo "$gateway_pid" >"$GATEWAY_PIDS"
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    "$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" --models "$MODELS" \
        --requests "$MODELS" --concurrency 16 --warmup-secs 0 --duration-secs 60 >/dev/null 2>&1
}

stop_gateway() { # fails (and so ends the script) if the gateway died during the run
    kill "$gateway_pid"
    wait "$gateway_pid" 2>/dev/null || true
    : >"$GATEWAY_PIDS"
}

# measure [LOAD FLAGS...]: CONCURRENCY clients against the gateway for WARMUP_SECS, then
# DURATION_SECS measured: the load's JSON in `json`, the CPUs the gateway used over both in `cpus`
# (utime + stime from /proc).
measure() {
    local before after
    before=$(awk '{print $14 + $15}' "/proc/$gateway_pid/stat")
    json=$("$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
        --concurrency "$CONCURRENCY" --warmup-secs "$WARMUP_SECS" \
        --duration-secs "$DURATION_SECS" "$@" 2>/dev/null)
    after=$(awk '{print $14 + $15}' "/proc/$gateway_pid/stat")
    cpus=$(awk -v a="$after" -v b="$before" -v hz="$(getconf CLK_TCK)" \
        -v secs="$((WARMUP_SECS + DURATION_SECS))" 'BEGIN {print (a - b) / hz / secs}')
}

# medians TSV FORMAT C1 C2 C3: for each of $settings, the row of TSV (the setting in column 1)
# with the median of column C1 over the rounds (the lower of two), printed with FORMAT from the
# setting and the row's C1, C2 and C3.
medians() {
    local tsv=$1 format=$2 setting
    shift 2
    for setting in $settings; do
        awk -F'\t' -v s="$setting" -v a="$1" -v b="$2" -v c="$3" \
            '$1 == s {print $a "\t" $b "\t" $c}' "$tsv" | sort -n |
            awk -F'\t' -v s="$setting" -v format="$format" '{v[NR] = $0} END {
                split(v[int((NR + 1) / 2)], m, "\t")
                printf format, s, m[1], m[2], m[3]
            }'
    done
}
