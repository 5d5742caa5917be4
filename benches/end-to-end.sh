#!/usr/bin/env bash
# End to end (target 5): requests per second at saturation, on loopback, of the example gateway
# on a zero-delay mock, instrumented against the same gateway with perf's instrumentation
# compiled out (cargo feature `uninstrumented`). Target: at most 2 % fewer requests per second.
#
#   benches/end-to-end.sh                       # 5 rounds of each build, JSON and SSE (~3 min)
#   ROUNDS=9 DURATION_SECS=10 benches/end-to-end.sh
#
# Each run starts one gateway build on 127.0.0.1:$PORT with a zero-delay mock, waits for
# /healthz, runs examples/load.rs against it (warm-up, then the measured window), and stops it.
# Runs alternate between the builds (A B, B A, ...), for each mode in $MODES, so that background
# load on the machine hits both alike. The tables give, per mode and build, the median
# requests/s over the rounds and their spread, the loss (u - i) / u of the medians, the per-round
# losses (each round pairs the two builds run back to back) with a sign-test interval for their
# median, and the gateway's CPU time per request (its utime + stime from /proc over the whole
# run, warm-up included, divided by every request it completed). The verdict is "met" only if
# the whole interval is at or under 2 %, "not met" only if it is all over.
#
# Settings (environment):
#   ROUNDS=5              rounds; each runs both builds once per mode
#   DURATION_SECS=5       measured window of each run
#   WARMUP_SECS=2         load before the window
#   CONCURRENCY=32        clients for JSON requests (one request in flight each)
#   STREAM_CONCURRENCY=256  clients for SSE requests (see BENCHMARKS.md: at 32 the SSE runs
#                         wait on delayed ACKs, not on the CPU)
#   LOAD_THREADS=1        worker threads of the load generator (1: a current-thread runtime)
#   GATEWAY_WORKERS=1     TOKIO_WORKER_THREADS of the gateway (empty: tokio's default, one per
#                         CPU). With 1 and 1, on 2 CPUs, the gateway saturates its one worker
#                         (~0.95 CPUs busy) while the load generator needs ~0.4 of the other CPU:
#                         requests/s is the gateway's, not the load generator's or the scheduler's
#   MODES="json stream"   which modes to run
#   ORDER=abba            abba: the build that runs first alternates from round to round (A B,
#                         B A, A B, ...: cancels an order effect); ab: instrumented first in
#                         every round; ba: uninstrumented first
#   PATH_UNDER_TEST=/v1/chat/completions
#   PORT=18080            loopback port; the script stops if something already listens there
#   SKIP_BUILD=0          1: use the binaries already built
#   INSTRUMENTED=, UNINSTRUMENTED=  other gateway binaries in place of the two builds (with
#                         SKIP_BUILD=1; e.g. the same binary twice, to see the noise alone)
#   MIN_BUSY=0.9          a round is paired only if both gateways kept at least this many CPUs
#                         busy: below it the gateway was not saturated (something else had the
#                         CPU), and its requests/s says nothing about the gateway
#   OUT=target/end-to-end/<date>  where the per-run results and gateway logs go
#
# `benches/end-to-end.sh --summarize DIR` prints the tables again from DIR/results.tsv.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-5}
DURATION_SECS=${DURATION_SECS:-5}
WARMUP_SECS=${WARMUP_SECS:-2}
CONCURRENCY=${CONCURRENCY:-32}
STREAM_CONCURRENCY=${STREAM_CONCURRENCY:-256}
LOAD_THREADS=${LOAD_THREADS:-1}
GATEWAY_WORKERS=${GATEWAY_WORKERS-1}
MODES=${MODES:-json stream}
ORDER=${ORDER:-abba}
MIN_BUSY=${MIN_BUSY:-0.9}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/v1/chat/completions}
PORT=${PORT:-18080}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-target/end-to-end/$(date +%Y%m%d-%H%M%S)}

INSTRUMENTED=${INSTRUMENTED:-$ROOT/target/release/examples/gateway}
UNINSTRUMENTED=${UNINSTRUMENTED:-$ROOT/target/uninstrumented/release/examples/gateway}
LOAD=$ROOT/target/release/examples/load
MOCK_FLAGS=(--mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0)

summarize() { # summarize RESULTS_TSV: the two tables, in Markdown
    awk -F'\t' -v minbusy="$MIN_BUSY" '
    function sort(list, n,    i, j, t) { # insertion sort of list[1..n], in place
        for (i = 2; i <= n; i++) {
            t = list[i]
            for (j = i - 1; j >= 1 && list[j] > t; j--) list[j + 1] = list[j]
            list[j + 1] = t
        }
    }
    function median(list, n) {
        sort(list, n)
        return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
    }
    # The rank k of a distribution-free interval [x(k), x(n+1-k)] for the median of n values that
    # holds with at least 90 % confidence (sign test): the largest k with 2 P(Bin(n, 1/2) < k) <= 0.1;
    # 1 when n is too small for 90 % (then the interval is min … max, with less confidence).
    function rank90(n,    k, c, term, i) {
        c = 0; term = 0.5 ^ n; k = 1
        for (i = 0; i < n; i++) {
            c += term                           # P(Bin <= i)
            if (2 * c > 0.1) break
            k = i + 1
            term = term * (n - i) / (i + 1)
        }
        return k
    }
    function column(key, field, n, out,    i) { for (i = 1; i <= n; i++) out[i] = val[key, i, field] }
    NR == 1 { next }
    {
        key = $2 SUBSEP $3
        k = ++count[key]
        for (f = 4; f <= NF; f++) val[key, k, f] = $f
        errs[key] += $5
        if (!($2 in seen)) { seen[$2] = 1; modes[++nmodes] = $2 }
        at[$2, $3, $1] = NR
        rps[NR] = $4; cpu[NR] = $8; busy[NR] = $9
        if (!(($2, $1) in inround)) { inround[$2, $1] = 1; rounds[$2, ++nrounds[$2]] = $1 }
    }
    END {
        printf "| mode | build | median req/s | min–max req/s | spread (max−min)/median | median gateway CPU µs/req | median CPUs busy: gateway / load | median p99 ms | errors |\n"
        printf "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            for (b = 1; b <= 2; b++) {
                build = b == 1 ? "instrumented" : "uninstrumented"
                key = mode SUBSEP build
                n = count[key]
                delete x; column(key, 4, n, x); med[mode, build] = median(x, n)
                spread = 100 * (x[n] - x[1]) / med[mode, build]
                delete c; column(key, 8, n, c); cmed[mode, build] = median(c, n)
                delete p; column(key, 7, n, p)
                delete g; column(key, 9, n, g)
                delete l; column(key, 10, n, l)
                printf "| %s | %s | %.0f | %.0f–%.0f | %.1f %% | %.1f | %.2f / %.2f | %.2f | %d |\n", \
                    mode, build, med[mode, build], x[1], x[n], spread, cmed[mode, build], \
                    median(g, n), median(l, n), median(p, n), errs[key]
            }
        }
        printf "\nPer-round figures pair the two builds of the same round, in the rounds where both gateways kept at least %s CPUs busy (saturated). The interval is the sign test'"'"'s for the median (>= 90 %% confidence; min … max below 5 rounds).\n\n", minbusy
        printf "| mode | loss of the medians (u − i) / u | rounds paired | per-round loss: median [interval] (min … max) | gateway CPU per request i / u, per round: median [interval] | target ≤ 2 %% |\n"
        printf "|---|---:|---:|---:|---:|---|\n"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            u = med[mode, "uninstrumented"]; i = med[mode, "instrumented"]
            n = 0; all = 0
            delete pl; delete pc
            for (r = 1; r <= nrounds[mode]; r++) {
                round = rounds[mode, r]
                if (!((mode, "instrumented", round) in at && (mode, "uninstrumented", round) in at)) continue
                ri = at[mode, "instrumented", round]; ru = at[mode, "uninstrumented", round]
                all++
                if (busy[ri] < minbusy || busy[ru] < minbusy) continue
                n++
                pl[n] = 100 * (rps[ru] - rps[ri]) / rps[ru]
                pc[n] = cpu[ru] > 0 ? cpu[ri] / cpu[ru] : 0
            }
            if (n == 0) { printf "| %s | %.1f %% | 0 of %d | — | — | undecided: no round was saturated |\n", mode, 100 * (u - i) / u, all; continue }
            k = rank90(n)
            lmed = median(pl, n); cm = median(pc, n)
            lo = pl[k]; hi = pl[n + 1 - k]
            if (n < 5) verdict = "undecided: fewer than 5 rounds paired"
            else if (hi <= 2) verdict = "met"
            else if (lo > 2) verdict = "not met"
            else verdict = "undecided: the interval spans 2 %"
            printf "| %s | %.1f %% | %d of %d | %.1f %% [%.1f, %.1f] (%.1f … %.1f) | %.3f [%.3f, %.3f] | %s |\n", \
                mode, 100 * (u - i) / u, n, all, lmed, lo, hi, pl[1], pl[n], cm, pc[k], pc[n + 1 - k], verdict
        }
    }' "$1"
}

GW_PID=
LOAD_PID=

stop_gateway() {
    [[ -n $GW_PID ]] || return 0
    # The gateway shuts down on SIGINT (Ctrl-C); one that does not within 5 s is killed.
    kill -INT "$GW_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

cleanup() {
    if [[ -n $LOAD_PID ]]; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=
    fi
    stop_gateway
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${1:-} == --summarize ]]; then
    summarize "${2:?--summarize DIR}/results.tsv"
    exit
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "end-to-end: something already listens on 127.0.0.1:$PORT; set PORT=" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "end-to-end: needs curl" >&2; exit 1; }

if [[ $SKIP_BUILD != 1 ]]; then
    echo "== building (instrumented + load generator, then uninstrumented in target/uninstrumented)"
    cargo build --release --example gateway --example load
    cargo build --release --example gateway --features uninstrumented \
        --target-dir target/uninstrumented
fi
for bin in "$INSTRUMENTED" "$UNINSTRUMENTED" "$LOAD"; do
    [[ -x $bin ]] || { echo "end-to-end: $bin is missing (SKIP_BUILD=0 builds it)" >&2; exit 1; }
done

mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'round\tmode\tbuild\trps\terrors\tp50_ms\tp99_ms\tgateway_cpu_us_per_req\tgateway_cpus\tload_cpus\n' >"$RESULTS"
TICK=$(getconf CLK_TCK)

# The gateway's utime + stime so far, in clock ticks.
gateway_ticks() {
    awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"
}

json_field() { # json_field NAME LINE: a number or string field of the load generator's line
    sed -E "s/.*\"$1\":\"?([^,\"}]*).*/\1/" <<<"$2"
}

# run ROUND MODE BUILD BINARY
run() {
    local round=$1 mode=$2 build=$3 bin=$4 log
    log=$OUT/gateway-$build-$mode-$round.log
    if [[ -n $GATEWAY_WORKERS ]]; then
        TOKIO_WORKER_THREADS=$GATEWAY_WORKERS "$bin" --listen "127.0.0.1:$PORT" "${MOCK_FLAGS[@]}" \
            >"$log" 2>&1 &
    else
        "$bin" --listen "127.0.0.1:$PORT" "${MOCK_FLAGS[@]}" >"$log" 2>&1 &
    fi
    GW_PID=$!
    local up=0
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $up != 1 ]]; then
        echo "end-to-end: the $build gateway did not come up; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    local concurrency=$CONCURRENCY stream=()
    if [[ $mode == stream ]]; then
        concurrency=$STREAM_CONCURRENCY
        stream=(--stream)
    fi
    local before after line t0 t1
    before=$(gateway_ticks)
    t0=$(date +%s.%N)
    "$LOAD" --url "http://127.0.0.1:$PORT$PATH_UNDER_TEST" --key demo-key \
        --concurrency "$concurrency" --threads "$LOAD_THREADS" \
        --duration-secs "$DURATION_SECS" --warmup-secs "$WARMUP_SECS" "${stream[@]}" \
        >"$OUT/load-$build-$mode-$round.out" 2>"$OUT/load-$build-$mode-$round.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || { cat "$OUT/load-$build-$mode-$round.err" >&2; exit 1; }
    LOAD_PID=
    after=$(gateway_ticks)
    t1=$(date +%s.%N)
    stop_gateway
    line=$(grep '^{' "$OUT/load-$build-$mode-$round.out")
    local rps errors p50 p99 total cpu busy load_cpus
    rps=$(json_field rps "$line")
    errors=$(json_field errors "$line")
    p50=$(json_field p50_ms "$line")
    p99=$(json_field p99_ms "$line")
    total=$(json_field total_requests "$line")
    load_cpus=$(json_field load_cpus "$line")
    cpu=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$total" \
        'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    # CPUs' worth of time the gateway used while loaded (1.00 = one core busy all along).
    busy=$(awk -v t=$((after - before)) -v hz="$TICK" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.2f", t / hz / (b - a) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$build" \
        "$rps" "$errors" "$p50" "$p99" "$cpu" "$busy" "$load_cpus" >>"$RESULTS"
    printf '  round %s %-6s %-14s %6.0f req/s  errors %s  p50 %6.2f ms  p99 %6.2f ms  gateway %5s us CPU/req, %s CPUs; load %s CPUs\n' \
        "$round" "$mode" "$build" "$rps" "$errors" "$p50" "$p99" "$cpu" "$busy" "$load_cpus"
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    # GIT_OPTIONAL_LOCKS=0: only read, never refresh the index.
    watched=(perf-runtime perf-macros src examples/gateway.rs Cargo.toml Cargo.lock)
    dirty=$(GIT_OPTIONAL_LOCKS=0 git status --porcelain -- "${watched[@]}" | wc -l)
    echo "== tree: $(git rev-parse --short HEAD), $dirty files changed in ${watched[*]}"
fi
echo "== $ROUNDS rounds x {$MODES} x {instrumented, uninstrumented}: ${WARMUP_SECS} s warm-up + ${DURATION_SECS} s measured;" \
    "JSON $CONCURRENCY clients, SSE $STREAM_CONCURRENCY clients, load generator $LOAD_THREADS thread(s)," \
    "gateway workers ${GATEWAY_WORKERS:-default}; results in $OUT"

for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        first=instrumented
        case $ORDER in
            ab) ;;
            ba) first=uninstrumented ;;
            abba) ((round % 2)) || first=uninstrumented ;;
            *) echo "end-to-end: ORDER must be ab, ba or abba" >&2; exit 1 ;;
        esac
        if [[ $first == instrumented ]]; then
            run "$round" "$mode" instrumented "$INSTRUMENTED"
            run "$round" "$mode" uninstrumented "$UNINSTRUMENTED"
        else
            run "$round" "$mode" uninstrumented "$UNINSTRUMENTED"
            run "$round" "$mode" instrumented "$INSTRUMENTED"
        fi
    done
done

echo "== load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo
summarize "$RESULTS" | tee "$OUT/table.md"
