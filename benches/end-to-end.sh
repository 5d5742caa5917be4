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
MOCK_FLAGS=(--mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0)

# Functions shared by the awk programs below: the records of a results file by mode, build and
# round; sort, median, and the rank of the sign test's interval for a median.
# shellcheck disable=SC2016 # awk's $2 and $NF, which the shell must leave alone
AWK_LIB='
# Keeps the current record (columns: 1 round, 2 mode, 3 build, then the figures) and returns its
# key (mode, build): val[key, k, field] is that field of the k-th record of key (count[key] of them),
# at[mode, build, round] its record number, modes[1..nmodes] the modes and rounds[mode,
# 1..nrounds[mode]] their rounds, in order of appearance.
function keep(    key, k, f) {
    key = $2 SUBSEP $3
    k = ++count[key]
    for (f = 4; f <= NF; f++) val[key, k, f] = $f
    if (!($2 in seen)) { seen[$2] = 1; modes[++nmodes] = $2 }
    at[$2, $3, $1] = NR
    if (!(($2, $1) in inround)) { inround[$2, $1] = 1; rounds[$2, ++nrounds[$2]] = $1 }
    return key
}
# The field of the n records of key, into out[1..n].
function column(key, field, n, out,    i) { for (i = 1; i <= n; i++) out[i] = val[key, i, field] }
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
'

summarize() { # summarize RESULTS_TSV: phase 1's two tables, in Markdown, and its verdicts
    awk -F'\t' -v minbusy="$MIN_BUSY" "$AWK_LIB"'
    NR == 1 { next }
    {
        errs[keep()] += $5
        rps[NR] = $4; cpu[NR] = $8; busy[NR] = $9
    }
    END {
        printf "| mode | build | median req/s | min–max req/s | spread (max−min)/median | median gateway CPU µs/req | median CPUs busy: gateway / load | median CPUs waiting: gateway / load | median p99 ms | errors |\n"
        printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
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
                delete gw; column(key, 11, n, gw)
                delete lw; column(key, 12, n, lw)
                # Results from before the waits were recorded have no columns 11 and 12.
                waits = val[key, 1, 11] == "" ? "—" : sprintf("%.3f / %.3f", median(gw, n), median(lw, n))
                printf "| %s | %s | %.0f | %.0f–%.0f | %.1f %% | %.1f | %.2f / %.2f | %s | %.2f | %d |\n", \
                    mode, build, med[mode, build], x[1], x[n], spread, cmed[mode, build], \
                    median(g, n), median(l, n), waits, median(p, n), errs[key]
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
            if (n == 0) {
                verdict[mode] = "undecided: no round was saturated"
                printf "| %s | %.1f %% | 0 of %d | — | — | %s |\n", mode, 100 * (u - i) / u, all, verdict[mode]
                continue
            }
            k = rank90(n)
            lmed = median(pl, n); cm = median(pc, n)
            lo = pl[k]; hi = pl[n + 1 - k]
            if (n < 5) verdict[mode] = "undecided: fewer than 5 rounds paired"
            else if (hi <= 2) verdict[mode] = "met"
            else if (lo > 2) verdict[mode] = "not met"
            else verdict[mode] = "undecided: the interval spans 2 %"
            line[mode] = sprintf("%.1f %% [%.1f, %.1f] over %d paired rounds", lmed, lo, hi, n)
            printf "| %s | %.1f %% | %d of %d | %.1f %% [%.1f, %.1f] (%.1f … %.1f) | %.3f [%.3f, %.3f] | %s |\n", \
                mode, 100 * (u - i) / u, n, all, lmed, lo, hi, pl[1], pl[n], cm, pc[k], pc[n + 1 - k], verdict[mode]
        }
        printf "\n"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            printf "VERDICT requests/s %s: %.0f instrumented, %.0f uninstrumented; loss per round %s; target <= 2 %%: %s\n", \
                mode, med[mode, "instrumented"], med[mode, "uninstrumented"], \
                (mode in line) ? line[mode] : "-", verdict[mode]
        }
    }' "$1"
}

summarize_latency() { # summarize_latency LATENCY_TSV: phase 2's tables, in Markdown, and verdicts
    awk -F'\t' -v goal="$GOAL_US" -v maxwait="$MAX_WAIT" "$AWK_LIB"'
    # columns: 1 round, 2 mode, 3 build, 4 rate, 5 rps, 6 errors, 7 p50_us, 8 p90_us, 9 p99_us,
    # 10 p999_us, 11 max_us, 12 lag_p99_us, 13 gateway_cpus, 14 load_cpus, 15 gateway_wait,
    # 16 load_wait
    NR == 1 { next }
    {
        errs[keep()] += $6
        p50[NR] = $7; p99[NR] = $9; failed[NR] = $6 > 0; waited[NR] = $15 > maxwait
    }
    END {
        printf "| mode | build | rate req/s | median p50 µs | median p90 µs | median p99 µs | median p99.9 µs | max µs (all rounds) | median send lag p99 µs | median CPUs busy: gateway / load | median CPUs waiting: gateway / load | errors |\n"
        printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            for (b = 1; b <= 2; b++) {
                build = b == 1 ? "instrumented" : "uninstrumented"
                key = mode SUBSEP build
                n = count[key]
                if (n == 0) continue
                delete a; column(key, 7, n, a); q50 = median(a, n)
                delete a; column(key, 8, n, a); q90 = median(a, n)
                delete a; column(key, 9, n, a); q99 = median(a, n)
                delete a; column(key, 10, n, a); q999 = median(a, n)
                delete a; column(key, 11, n, a); sort(a, n); qmax = a[n]
                delete a; column(key, 12, n, a); lag = median(a, n)
                delete a; column(key, 13, n, a); gw = median(a, n)
                delete a; column(key, 14, n, a); ld = median(a, n)
                delete a; column(key, 15, n, a); gww = median(a, n)
                delete a; column(key, 16, n, a); ldw = median(a, n)
                printf "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f / %.2f | %.3f / %.3f | %d |\n", \
                    mode, build, val[key, 1, 4], q50, q90, q99, q999, qmax, lag, gw, ld, gww, ldw, errs[key]
            }
        }
        printf "\nAdded latency per request = instrumented − uninstrumented, per round (the two builds run back to back), then the median over the rounds with the sign test'"'"'s interval for it (>= 90 %% confidence; min … max, >= 93 %%, at 5 to 7 rounds). Rounds with errors, or where a gateway waited for a CPU more than %s of the time (something else ran on its core), are left out; fewer than 5 rounds left give no verdict.\n\n", maxwait
        printf "| mode | rounds paired (left out: errors, waited) | p50 added µs: median [interval] (min … max) | p99 added µs: median [interval] (min … max) | goal: p99 added ≤ %s µs |\n", goal
        printf "|---|---:|---:|---:|---|\n"
        overall = "met"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            n = 0; all = 0; nfailed = 0; nwaited = 0
            delete d50; delete d99
            for (r = 1; r <= nrounds[mode]; r++) {
                round = rounds[mode, r]
                if (!((mode, "instrumented", round) in at && (mode, "uninstrumented", round) in at)) continue
                ri = at[mode, "instrumented", round]; ru = at[mode, "uninstrumented", round]
                all++
                if (failed[ri] || failed[ru]) { nfailed++; continue }
                if (waited[ri] || waited[ru]) { nwaited++; continue }
                n++
                d50[n] = p50[ri] - p50[ru]
                d99[n] = p99[ri] - p99[ru]
            }
            paired = sprintf("%d of %d (%d, %d)", n, all, nfailed, nwaited)
            if (n == 0) {
                v = "inconclusive (noise)"
                printf "| %s | %s | — | — | %s |\n", mode, paired, v
                verdicts[mode] = sprintf("VERDICT latency %s: no round paired (%d with errors, %d waited for a CPU); goal p99 added <= %s us: %s", \
                    mode, nfailed, nwaited, goal, v)
                if (overall != "not met") overall = v
                continue
            }
            k = rank90(n)
            m50 = median(d50, n); m99 = median(d99, n)
            lo = d99[k]; hi = d99[n + 1 - k]
            if (n < 5) v = "inconclusive (noise)"
            else if (hi <= goal) v = "met"
            else if (lo > goal) v = "not met"
            else v = "inconclusive (noise)"
            if (v == "not met") overall = v
            else if (v != "met" && overall == "met") overall = v
            printf "| %s | %s | %+.1f [%+.1f, %+.1f] (%+.1f … %+.1f) | %+.1f [%+.1f, %+.1f] (%+.1f … %+.1f) | %s |\n", \
                mode, paired, m50, d50[k], d50[n + 1 - k], d50[1], d50[n], m99, lo, hi, d99[1], d99[n], v
            verdicts[mode] = sprintf("VERDICT latency %s: p50 added %+.1f us [%+.1f, %+.1f], p99 added %+.1f us [%+.1f, %+.1f] over %d paired rounds of %d; goal p99 added <= %s us: %s", \
                mode, m50, d50[k], d50[n + 1 - k], m99, lo, hi, n, all, goal, v)
        }
        printf "\n"
        for (m = 1; m <= nmodes; m++) print verdicts[modes[m]]
        printf "VERDICT latency: goal p99 added <= %s us per request (every mode): %s\n", goal, overall
    }' "$1"
}

summarize_all() { # summarize_all DIR: whatever phases DIR holds
    if [[ -f $1/results.tsv ]]; then
        echo "### Phase 1: requests/s at saturation"
        echo
        summarize "$1/results.tsv"
        echo
    fi
    if [[ -f $1/latency.tsv ]]; then
        echo "### Phase 2: added latency at a fixed rate"
        echo
        summarize_latency "$1/latency.tsv"
        echo
    fi
    if [[ -f $1/instructions/table.md ]]; then
        echo "### Instructions per request (valgrind)"
        echo
        cat "$1/instructions/table.md"
    fi
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

# The gateway's utime + stime so far, in clock ticks.
gateway_ticks() {
    awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"
}

# How long the gateway's threads have waited for a CPU so far (runnable, not running), in ns.
gateway_wait_ns() {
    cat /proc/"$GW_PID"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f", s }'
}

json_field() { # json_field NAME LINE: a number or string field of the load generator's line
    sed -E "s/.*\"$1\":\"?([^,\"}]*).*/\1/" <<<"$2"
}

# start_gateway BUILD BINARY LOG: starts it (pinned) and waits until /healthz answers.
start_gateway() {
    local build=$1 bin=$2 log=$3
    if [[ -n $GATEWAY_WORKERS ]]; then
        TOKIO_WORKER_THREADS=$GATEWAY_WORKERS "${GATEWAY_PIN[@]}" "$bin" --listen "127.0.0.1:$PORT" \
            "${MOCK_FLAGS[@]}" >"$log" 2>&1 &
    else
        "${GATEWAY_PIN[@]}" "$bin" --listen "127.0.0.1:$PORT" "${MOCK_FLAGS[@]}" >"$log" 2>&1 &
    fi
    GW_PID=$! # taskset execs the gateway: the same process
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null; then
            return 0
        fi
        kill -0 "$GW_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "end-to-end: the $build gateway did not come up; its log:" >&2
    cat "$log" >&2
    exit 1
}

# load NAME MODE ARGS...: runs the load generator (pinned) against the gateway, with ARGS and
# the mode's flags; its JSON line goes to $OUT/NAME.out, its stderr to $OUT/NAME.err. Sets
# LINE (the JSON line), BUSY (CPUs' worth of time the gateway used while loaded: 1.00 = one
# core busy all along), GW_WAIT (CPUs' worth of time its threads waited for a CPU: what else
# on the machine took from it) and GW_CPU_US (the gateway's CPU µs per request it completed).
load() {
    local name=$1 mode=$2
    shift 2
    local stream=()
    [[ $mode == stream ]] && stream=(--stream)
    local before after t0 t1 total wait0 wait1
    before=$(gateway_ticks)
    wait0=$(gateway_wait_ns)
    t0=$(date +%s.%N)
    "${LOAD_PIN[@]}" "$LOAD" --url "http://127.0.0.1:$PORT$PATH_UNDER_TEST" --key demo-key \
        --threads "$LOAD_THREADS" "${stream[@]}" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || { cat "$OUT/$name.err" >&2; exit 1; }
    LOAD_PID=
    after=$(gateway_ticks)
    wait1=$(gateway_wait_ns)
    t1=$(date +%s.%N)
    LINE=$(grep '^{' "$OUT/$name.out")
    total=$(json_field total_requests "$LINE")
    GW_CPU_US=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$total" \
        'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    BUSY=$(awk -v t=$((after - before)) -v hz="$TICK" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.2f", t / hz / (b - a) }')
    GW_WAIT=$(awk -v w=$((wait1 - wait0)) -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.3f", w / 1e9 / (b - a) }')
}

# Phase 1, one run: saturation ROUND MODE BUILD BINARY
saturation() {
    local round=$1 mode=$2 build=$3 bin=$4
    local name=load-$build-$mode-$round concurrency=$CONCURRENCY
    [[ $mode == stream ]] && concurrency=$STREAM_CONCURRENCY
    start_gateway "$build" "$bin" "$OUT/gateway-$build-$mode-$round.log"
    load "$name" "$mode" --concurrency "$concurrency" \
        --duration-secs "$DURATION_SECS" --warmup-secs "$WARMUP_SECS"
    stop_gateway
    local rps errors p50 p99 load_cpus load_wait
    rps=$(json_field rps "$LINE")
    errors=$(json_field errors "$LINE")
    p50=$(json_field p50_ms "$LINE")
    p99=$(json_field p99_ms "$LINE")
    load_cpus=$(json_field load_cpus "$LINE")
    load_wait=$(json_field load_wait "$LINE")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$build" "$rps" \
        "$errors" "$p50" "$p99" "$GW_CPU_US" "$BUSY" "$load_cpus" "$GW_WAIT" "$load_wait" >>"$OUT/results.tsv"
    printf '  round %s %-6s %-14s %6.0f req/s  errors %s  p50 %6.2f ms  p99 %6.2f ms  gateway %5s us CPU/req; CPUs busy / waiting: gateway %s / %s, load %s / %s\n' \
        "$round" "$mode" "$build" "$rps" "$errors" "$p50" "$p99" "$GW_CPU_US" "$BUSY" "$GW_WAIT" "$load_cpus" "$load_wait"
}

declare -A RATE_OF # phase 2's rate per mode

# Phase 2, one run: latency ROUND MODE BUILD BINARY
latency() {
    local round=$1 mode=$2 build=$3 bin=$4
    local name=latency-$build-$mode-$round rate=${RATE_OF[$mode]}
    start_gateway "$build" "$bin" "$OUT/gateway-latency-$build-$mode-$round.log"
    load "$name" "$mode" --rate "$rate" --concurrency "$LATENCY_CONCURRENCY" \
        --duration-secs "$LATENCY_SECS" --warmup-secs "$LATENCY_WARMUP_SECS" --drain-secs 2
    stop_gateway
    local f values=()
    for f in rps errors p50_us p90_us p99_us p999_us max_us lag_p99_us; do
        values+=("$(json_field "$f" "$LINE")")
    done
    local load_cpus load_wait
    load_cpus=$(json_field load_cpus "$LINE")
    load_wait=$(json_field load_wait "$LINE")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$build" \
        "$rate" "${values[@]}" "$BUSY" "$load_cpus" "$GW_WAIT" "$load_wait" >>"$OUT/latency.tsv"
    printf '  round %s %-6s %-14s %5s/s due, %6.0f/s answered  errors %s  p50 %7.1f µs  p90 %7.1f  p99 %7.1f  p99.9 %7.1f  max %8.1f  (sent late p99 %s µs; CPUs busy / waiting: gateway %s / %s, load %s / %s)\n' \
        "$round" "$mode" "$build" "$rate" "${values[@]}" "$BUSY" "$GW_WAIT" "$load_cpus" "$load_wait"
}

# rounds N RUN: N rounds of RUN ROUND MODE BUILD BINARY, both builds back to back per mode, the
# first of the two as $ORDER says.
rounds() {
    local n=$1 run=$2 round mode
    for round in $(seq "$n"); do
        for mode in $MODES; do
            local first=instrumented
            case $ORDER in
                ba) first=uninstrumented ;;
                abba) ((round % 2)) || first=uninstrumented ;;
            esac
            if [[ $first == instrumented ]]; then
                "$run" "$round" "$mode" instrumented "$INSTRUMENTED"
                "$run" "$round" "$mode" uninstrumented "$UNINSTRUMENTED"
            else
                "$run" "$round" "$mode" uninstrumented "$UNINSTRUMENTED"
                "$run" "$round" "$mode" instrumented "$INSTRUMENTED"
            fi
        done
    done
}

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
