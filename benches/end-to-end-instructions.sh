#!/usr/bin/env bash
# End to end, counted instead of timed: user-space instructions per request of the example
# gateway, instrumented against uninstrumented, under valgrind (cachegrind, no cache simulation).
# Instruction counts do not depend on what else runs on the machine, so they resolve a
# difference that requests/s on a shared 2-CPU machine cannot (see BENCHMARKS.md, target 5).
# They leave out the kernel's share of the work (loopback TCP, epoll), which the instrumentation
# does not touch: relative to all of the gateway's CPU time the cost is smaller than the ratio.
#
#   benches/end-to-end-instructions.sh          # after benches/end-to-end.sh built the binaries
#
# For each build and mode, the gateway (one tokio worker, zero-delay mock) runs under valgrind
# twice: with $SMALL then $LARGE requests from examples/load.rs (--requests; $CONCURRENCY
# clients for JSON, $STREAM_CONCURRENCY for SSE, which wait on delayed ACKs). Instructions per request = (I refs of the large run - I refs of the small run) /
# (LARGE - SMALL): start-up, shutdown and the first requests' one-time work cancel out.
#
# Settings (environment): SMALL=500 LARGE=4500 CONCURRENCY=4 STREAM_CONCURRENCY=32
# MODES="json stream" PORT=18090, CARGO_TARGET_DIR=target (where benches/end-to-end.sh built),
# INSTRUMENTED= UNINSTRUMENTED= LOAD= (binaries),
# OUT=$CARGO_TARGET_DIR/end-to-end/instructions-<date>.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SMALL=${SMALL:-500}
LARGE=${LARGE:-4500}
CONCURRENCY=${CONCURRENCY:-4}
STREAM_CONCURRENCY=${STREAM_CONCURRENCY:-32}
MODES=${MODES:-json stream}
PORT=${PORT:-18090}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
OUT=${OUT:-$TARGET/end-to-end/instructions-$(date +%Y%m%d-%H%M%S)}
INSTRUMENTED=${INSTRUMENTED:-$TARGET/release/examples/gateway}
UNINSTRUMENTED=${UNINSTRUMENTED:-$TARGET/uninstrumented/release/examples/gateway}
LOAD=${LOAD:-$TARGET/release/examples/load}

command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
for bin in "$INSTRUMENTED" "$UNINSTRUMENTED" "$LOAD"; do
    [[ -x $bin ]] || { echo "$bin is missing: run benches/end-to-end.sh first" >&2; exit 1; }
done
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "something already listens on 127.0.0.1:$PORT; set PORT=" >&2
    exit 1
fi

# shellcheck source=benches/end-to-end/stop.sh
source "$ROOT/benches/end-to-end/stop.sh"
GW_PID=
# valgrind writes its counts on the way out: 30 s for it.
stop_gateway() {
    stop_process "$GW_PID" 300
    GW_PID=
}
trap stop_gateway EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"

# count BUILD BINARY MODE N: prints the gateway's I refs for N requests
count() {
    local build=$1 bin=$2 mode=$3 n=$4 cg
    cg=$OUT/cachegrind-$build-$mode-$n.out
    TOKIO_WORKER_THREADS=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$cg" \
        "$bin" --listen "127.0.0.1:$PORT" --mock-ttfb-ms 0 --mock-chunks 3 \
        --mock-chunk-interval-ms 0 --mock-jitter-ms 0 --mock-requests-per-minute 1000000000 \
        >"$OUT/gateway-$build-$mode-$n.log" 2>&1 &
    GW_PID=$!
    local up=0
    for _ in $(seq 600); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ $up == 1 ]] || { echo "the $build gateway did not come up" >&2; exit 1; }
    local stream=() concurrency=$CONCURRENCY
    if [[ $mode == stream ]]; then
        stream=(--stream)
        concurrency=$STREAM_CONCURRENCY
    fi
    "$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" --concurrency "$concurrency" \
        --requests "$n" --warmup-secs 0 --duration-secs 600 "${stream[@]}" \
        >"$OUT/load-$build-$mode-$n.out" 2>/dev/null
    stop_gateway
    local done_requests
    done_requests=$(sed -E 's/.*"total_requests":([0-9]+).*/\1/' "$OUT/load-$build-$mode-$n.out")
    [[ $done_requests == "$n" ]] || { echo "$build $mode: $done_requests of $n requests done" >&2; exit 1; }
    awk '/^summary:/ { print $2 }' "$cg"
}

# Instructions in perf-runtime's own functions (and the clock crate it reads), as cg_annotate
# attributes them: code inlined into the gateway's functions is not in it.
runtime_share() {
    cg_annotate --threshold=0 "$1" 2>/dev/null |
        awk '/perf_runtime|quanta/ { gsub(",", "", $1); if ($1 ~ /^[0-9]+$/) s += $1 } END { print s + 0 }'
}

echo "== $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(valgrind --version)"
printf '| mode | build | instructions / request | of which in perf_runtime / quanta functions |\n|---|---|---:|---:|\n' >"$OUT/table.md"
declare -A per
for mode in $MODES; do
    for build in instrumented uninstrumented; do
        bin=$INSTRUMENTED
        [[ $build == uninstrumented ]] && bin=$UNINSTRUMENTED
        small=$(count "$build" "$bin" "$mode" "$SMALL")
        large=$(count "$build" "$bin" "$mode" "$LARGE")
        rt_small=$(runtime_share "$OUT/cachegrind-$build-$mode-$SMALL.out")
        rt_large=$(runtime_share "$OUT/cachegrind-$build-$mode-$LARGE.out")
        per[$mode,$build]=$(( (large - small) / (LARGE - SMALL) ))
        rt=$(( (rt_large - rt_small) / (LARGE - SMALL) ))
        echo "  $mode $build: $small I refs for $SMALL requests, $large for $LARGE: ${per[$mode,$build]} per request ($rt in perf_runtime/quanta functions)"
        printf '| %s | %s | %s | %s |\n' "$mode" "$build" "${per[$mode,$build]}" "$rt" >>"$OUT/table.md"
    done
done
printf '\n| mode | instrumented − uninstrumented, per request | ratio i / u |\n|---|---:|---:|\n' >>"$OUT/table.md"
for mode in $MODES; do
    i=${per[$mode,instrumented]}
    u=${per[$mode,uninstrumented]}
    awk -v m="$mode" -v i="$i" -v u="$u" \
        'BEGIN { printf "| %s | %d | %.3f |\n", m, i - u, i / u }' >>"$OUT/table.md"
done
echo
cat "$OUT/table.md"
