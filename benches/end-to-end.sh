#!/usr/bin/env bash
# End to end (target 5): the example gateway on a zero-delay mock, on loopback, instrumented
# against the same gateway with perf's instrumentation compiled out (cargo feature
# `uninstrumented`), in two phases:
#
#   1. saturation: requests per second of each build at saturation (closed loop). Target: at
#      most 2 % fewer requests per second.
#   2. latency: both builds at one fixed rate below saturation (open loop, examples/load.rs
#      --rate: each request timed from its scheduled send time, so no coordinated omission);
#      the latency the instrumentation adds per request, at p50 and p99. Goal: p99 added
#      <= 50 µs.
#
# then, if valgrind is installed, the instructions per request of both builds
# (benches/end-to-end-instructions.sh: counts that other work on the machine does not move).
# The last lines, VERDICT ..., give each phase's verdict.
#
#   benches/end-to-end.sh                       # all of it, JSON and SSE (~5 min + builds)
#   PHASES=latency RATE=4000 benches/end-to-end.sh
#   ROUNDS=9 DURATION_SECS=10 PHASES=saturation benches/end-to-end.sh
#
# The gateway (one tokio worker) is pinned to one CPU and the load generator to another
# (`taskset -c`), so that they do not take turns on the same core; without taskset, or with
# fewer than 2 CPUs allowed, the script says so and runs unpinned. Each run starts one gateway
# build on 127.0.0.1:$PORT with a zero-delay mock, waits for /healthz, runs examples/load.rs
# against it (warm-up, then the measured window), and stops it. Runs alternate between the
# builds (A B, B A, ...), for each mode in $MODES, so that background load on the machine hits
# both alike; each round pairs the two builds run back to back.
#
# Phase 1's tables give, per mode and build, the median requests/s over the rounds and their
# spread, the loss (u - i) / u of the medians, the per-round losses with a sign-test interval
# for their median, and the gateway's CPU time per request (its utime + stime from /proc over
# the whole run, warm-up included, divided by every request it completed). Its verdict is "met"
# only if the whole interval is at or under 2 %, "not met" only if it is all over.
#
# Phase 2 runs at $RATE requests/s, by default $RATE_FRACTION of the median requests/s that the
# uninstrumented build reached in phase 1, per mode. Its tables give, per mode and build, the
# medians over the rounds of p50, p90, p99, p99.9; then, per mode, the added latency of each
# round (instrumented - uninstrumented, at p50 and at p99) with the median over the rounds and
# its sign-test interval. The VERDICT line for the goal is "met" if the p99 interval is all at
# or under $GOAL_US µs, "not met" if it is all over, "inconclusive (noise)" if it spans it or
# fewer than 5 rounds could be paired. Rounds with an error or a request not answered, or
# where the gateway waited for a CPU (MAX_WAIT), are left out.
#
# Settings (environment):
#   PHASES="saturation latency"  which phases to run
#   MODES="json stream"   which modes to run (both phases)
#   ROUNDS=5              phase 1: rounds; each runs both builds once per mode
#   DURATION_SECS=3       phase 1: measured window of each run
#   WARMUP_SECS=1         phase 1: load before the window
#   CONCURRENCY=32        phase 1: clients for JSON requests (one request in flight each)
#   STREAM_CONCURRENCY=32 phase 1: clients for SSE requests
#   MIN_BUSY=0.9          phase 1: a round is paired only if both gateways kept at least this
#                         many CPUs busy: below it the gateway was not saturated (something
#                         else had the CPU), and its requests/s says nothing about the gateway
#   LATENCY_ROUNDS=6      phase 2: rounds
#   LATENCY_SECS=4        phase 2: measured window of each run
#   LATENCY_WARMUP_SECS=1 phase 2: load at the rate before the window
#   RATE=                 phase 2: requests/s, every mode (empty: RATE_FRACTION of phase 1's)
#   RATE_FRACTION=0.5     phase 2: the rate as a fraction of the uninstrumented build's median
#                         requests/s at saturation in phase 1, per mode
#   LATENCY_CONCURRENCY=32  phase 2: the most requests in flight (a request due while all are
#                         taken waits, and its wait counts in its latency)
#   GOAL_US=50            phase 2: the goal for the p99 added latency, in µs
#   MAX_WAIT=0.1          phase 2: a round is paired only if neither build's gateway waited for
#                         a CPU (runnable, not running: /proc/PID/task/*/schedstat) more than
#                         this fraction of the run: above it, something else ran on its core,
#                         and the latencies say more about that than about the gateway. (The load
#                         generator's own wait is shown, not used: its scheduling thread and its
#                         runtime share one core and wait for each other, ~0.1 at 4,000 req/s.)
#   LOAD_THREADS=1        worker threads of the load generator (1: a current-thread runtime;
#                         with --rate it also has a thread that keeps the schedule)
#   GATEWAY_WORKERS=1     TOKIO_WORKER_THREADS of the gateway (empty: tokio's default, one per
#                         CPU it may run on). With 1 and 1, on 2 CPUs, the gateway saturates its
#                         core while the load generator needs ~0.5 of the other: requests/s is
#                         the gateway's, not the load generator's or the scheduler's
#   PIN=1                 0: no taskset, gateway and load generator wherever the OS puts them
#   GATEWAY_CPU=, LOAD_CPU=  the CPUs to pin to (default: the first two this script may use)
#   ORDER=abba            abba: the build that runs first alternates from round to round (A B,
#                         B A, A B, ...: cancels an order effect); ab: instrumented first in
#                         every round; ba: uninstrumented first
#   INSTRUCTIONS=auto     1: then count instructions per request with
#                         benches/end-to-end-instructions.sh (valgrind, ~1.5 min); auto: if
#                         valgrind is installed; 0: not
#   PATH_UNDER_TEST=/v1/chat/completions
#   PORT=18080            loopback port; the script stops if something already listens there
#   SKIP_BUILD=0          1: use the binaries already built
#   INSTRUMENTED=, UNINSTRUMENTED=  other gateway binaries in place of the two builds (with
#                         SKIP_BUILD=1; e.g. the same binary twice, to see the noise alone)
#   CARGO_TARGET_DIR=target  where cargo builds (the uninstrumented build in its
#                         uninstrumented/ subdirectory)
#   OUT=$CARGO_TARGET_DIR/end-to-end/<date>  where the per-run results and gateway logs go
#
# `benches/end-to-end.sh --summarize DIR` prints the tables and verdicts again from
# DIR/results.tsv (phase 1) and DIR/latency.tsv (phase 2).
#
# The tables and verdicts are in benches/end-to-end/summarize.sh, the runs (a gateway started and
# stopped, the load generator, the rounds) in benches/end-to-end/runs.sh: this script sources both.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

PHASES=${PHASES:-saturation latency}
MODES=${MODES:-json stream}
ROUNDS=${ROUNDS:-5}
DURATION_SECS=${DURATION_SECS:-3}
WARMUP_SECS=${WARMUP_SECS:-1}
CONCURRENCY=${CONCURRENCY:-32}
STREAM_CONCURRENCY=${STREAM_CONCURRENCY:-32}
MIN_BUSY=${MIN_BUSY:-0.9}
LATENCY_ROUNDS=${LATENCY_ROUNDS:-6}
LATENCY_SECS=${LATENCY_SECS:-4}
LATENCY_WARMUP_SECS=${LATENCY_WARMUP_SECS:-1}
RATE=${RATE:-}
RATE_FRACTION=${RATE_FRACTION:-0.5}
LATENCY_CONCURRENCY=${LATENCY_CONCURRENCY:-32}
GOAL_US=${GOAL_US:-50}
MAX_WAIT=${MAX_WAIT:-0.1}
LOAD_THREADS=${LOAD_THREADS:-1}
GATEWAY_WORKERS=${GATEWAY_WORKERS-1}
PIN=${PIN:-1}
GATEWAY_CPU=${GATEWAY_CPU:-}
LOAD_CPU=${LOAD_CPU:-}
ORDER=${ORDER:-abba}
INSTRUCTIONS=${INSTRUCTIONS:-auto}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/v1/chat/completions}
PORT=${PORT:-18080}
SKIP_BUILD=${SKIP_BUILD:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
OUT=${OUT:-$TARGET/end-to-end/$(date +%Y%m%d-%H%M%S)}

INSTRUMENTED=${INSTRUMENTED:-$TARGET/release/examples/gateway}
UNINSTRUMENTED=${UNINSTRUMENTED:-$TARGET/uninstrumented/release/examples/gateway}
LOAD=$TARGET/release/examples/load
MOCK_FLAGS=(--mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0
    --mock-requests-per-minute 1000000000)

# shellcheck source=benches/end-to-end/summarize.sh
source "$ROOT/benches/end-to-end/summarize.sh"
# shellcheck source=benches/end-to-end/runs.sh
source "$ROOT/benches/end-to-end/runs.sh"

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${1:-} == --summarize ]]; then
    summarize_all "${2:?--summarize DIR}"
    exit
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "end-to-end: something already listens on 127.0.0.1:$PORT; set PORT=" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "end-to-end: needs curl" >&2; exit 1; }
for phase in $PHASES; do
    case $phase in
        saturation | latency) ;;
        *) echo "end-to-end: PHASES takes saturation and latency, not $phase" >&2; exit 1 ;;
    esac
done
case $ORDER in
    ab | ba | abba) ;;
    *) echo "end-to-end: ORDER must be ab, ba or abba" >&2; exit 1 ;;
esac
if [[ " $PHASES " == *" latency "* && " $PHASES " != *" saturation "* && -z $RATE ]]; then
    echo "end-to-end: PHASES=latency alone needs RATE= (requests/s)" >&2
    exit 1
fi

# Pinning: GATEWAY_PIN and LOAD_PIN prefix the two commands (empty: unpinned).
GATEWAY_PIN=()
LOAD_PIN=()
PINNING="unpinned (PIN=0)"
if [[ $PIN == 1 ]]; then
    # The CPUs this script may run on (its affinity), e.g. "0-1" or "0,2-3", one per line.
    mapfile -t cpus < <(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | tr ',' '\n' |
        awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }')
    GATEWAY_CPU=${GATEWAY_CPU:-${cpus[0]:-}}
    LOAD_CPU=${LOAD_CPU:-${cpus[1]:-}}
    if ! command -v taskset >/dev/null; then
        PINNING="unpinned: taskset is missing (util-linux)"
    elif [[ -z $GATEWAY_CPU || -z $LOAD_CPU || $GATEWAY_CPU == "$LOAD_CPU" ]]; then
        PINNING="unpinned: fewer than 2 CPUs to pin to (${#cpus[@]} allowed)"
    else
        GATEWAY_PIN=(taskset -c "$GATEWAY_CPU")
        LOAD_PIN=(taskset -c "$LOAD_CPU")
        PINNING="gateway on CPU $GATEWAY_CPU, load generator on CPU $LOAD_CPU (taskset)"
    fi
    [[ -n ${GATEWAY_PIN[*]} ]] || echo "end-to-end: $PINNING" >&2
fi

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (instrumented + load generator, then uninstrumented in $TARGET/uninstrumented)"
    cargo build --release --example gateway --example load --target-dir "$TARGET"
    cargo build --release --example gateway --features uninstrumented \
        --target-dir "$TARGET/uninstrumented"
fi
for bin in "$INSTRUMENTED" "$UNINSTRUMENTED" "$LOAD"; do
    [[ -x $bin ]] || { echo "end-to-end: $bin is missing (SKIP_BUILD=0 builds it)" >&2; exit 1; }
done

mkdir -p "$OUT"
TICK=$(getconf CLK_TCK)

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    # GIT_OPTIONAL_LOCKS=0: only read, never refresh the index.
    watched=(perf-runtime perf-macros src examples/gateway.rs Cargo.toml Cargo.lock)
    dirty=$(GIT_OPTIONAL_LOCKS=0 git status --porcelain -- "${watched[@]}" | wc -l)
    echo "== tree: $(git rev-parse --short HEAD), $dirty files changed in ${watched[*]}"
fi
echo "== $PINNING; gateway workers ${GATEWAY_WORKERS:-default}, load generator $LOAD_THREADS thread(s); results in $OUT"
started=$SECONDS

if [[ " $PHASES " == *" saturation "* ]]; then
    echo "== phase 1, requests/s at saturation: $ROUNDS rounds x {$MODES} x {instrumented, uninstrumented}," \
        "${WARMUP_SECS} s warm-up + ${DURATION_SECS} s measured; JSON $CONCURRENCY clients, SSE $STREAM_CONCURRENCY clients"
    printf 'round\tmode\tbuild\trps\terrors\tp50_ms\tp99_ms\tgateway_cpu_us_per_req\tgateway_cpus\tload_cpus\tgateway_wait\tload_wait\n' \
        >"$OUT/results.tsv"
    rounds "$ROUNDS" saturation
fi

if [[ " $PHASES " == *" latency "* ]]; then
    rates=
    for mode in $MODES; do
        if [[ -n $RATE ]]; then
            RATE_OF[$mode]=$RATE
        else
            RATE_OF[$mode]=$(awk -F'\t' -v m="$mode" -v f="$RATE_FRACTION" "$AWK_LIB"'
                $2 == m && $3 == "uninstrumented" { x[++n] = $4 }
                END { if (n) printf "%.0f", f * median(x, n) }' "$OUT/results.tsv")
            [[ -n ${RATE_OF[$mode]} && ${RATE_OF[$mode]} != 0 ]] ||
                { echo "end-to-end: no saturation figure for $mode to take the rate from; set RATE=" >&2; exit 1; }
        fi
        rates+="$mode ${RATE_OF[$mode]}/s, "
    done
    echo "== phase 2, added latency at a fixed rate (${rates%, }): $LATENCY_ROUNDS rounds x {$MODES} x" \
        "{instrumented, uninstrumented}, ${LATENCY_WARMUP_SECS} s warm-up + ${LATENCY_SECS} s measured, at most $LATENCY_CONCURRENCY in flight"
    printf 'round\tmode\tbuild\trate\trps\terrors\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tlag_p99_us\tgateway_cpus\tload_cpus\tgateway_wait\tload_wait\n' \
        >"$OUT/latency.tsv"
    rounds "$LATENCY_ROUNDS" latency
fi

if [[ $INSTRUCTIONS == auto ]]; then
    INSTRUCTIONS=0
    command -v valgrind >/dev/null && INSTRUCTIONS=1
fi
if [[ $INSTRUCTIONS == 1 ]]; then
    echo "== instructions per request under valgrind (benches/end-to-end-instructions.sh)"
    INSTRUMENTED=$INSTRUMENTED UNINSTRUMENTED=$UNINSTRUMENTED LOAD=$LOAD MODES=$MODES \
        OUT=$OUT/instructions PORT=$PORT benches/end-to-end-instructions.sh >"$OUT/instructions.log" 2>&1 ||
        { echo "end-to-end: the instruction count failed; see $OUT/instructions.log" >&2; }
fi

echo "== load average now $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - started)) s of runs"
echo
summarize_all "$OUT" | tee "$OUT/table.md"
