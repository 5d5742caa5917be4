#!/usr/bin/env bash
# perf against its peers (issue 27 item 3): one axum 0.8 handler (a front-end stage, a backend
# call, a 5-chunk streamed answer) in one process, driven in-process through its one-route
# Router, in seven variants that differ only in their instrumentation:
#   1 none, 2 perf's PerfLayer, 3 PerfLayer + #[perf_stage]/#[perf_backend]/#[perf_stream],
#   4 axum-prometheus' layer, 5 #[autometrics] (prometheus 0.14), 6 OpenTelemetry's tower
#   middleware (opentelemetry-instrumentation-tower, SDK meter provider, in-memory exporter),
#   7 `metrics` counter! + histogram! by hand into metrics-exporter-prometheus;
# and two bounds: 8 tower's Identity layer (what axum's router charges for any layer), 9 perf's
# floor (the clock readings and histogram observations of 3 alone: no layer, no request).
# The harness is a crate of its own (benches/peers, its own [workspace]): the peers never enter
# perf's workspace or Cargo.lock. It does NOT run in .ci/run: it costs minutes of CI for figures
# that only mean something read side by side.
#
#   benches/peers/run.sh                 # build, 2 timed runs, callgrind counts, one table
#   RUNS=1 ROUNDS=101 N=2000 benches/peers/run.sh
#
# Timed: RUNS runs (default 2) of ROUNDS rounds (default 301) of BATCH requests (default 2000) of
# each variant in turn, median ns/request per variant, in the thread's CPU time (a shared
# 2-vCPU machine preempts many batches: wall time would count other processes' slices; compare
# within a run). Counted, if valgrind is installed: each variant's `peers --requests V N` (100 requests of
# warm-up, then N, default 10000) under callgrind, counting only the function `peers::requests`
# (as benches/request-instructions.sh does): instructions per request, the steady figure.
# Then the issue's goals: perf's layer alone (2 - 1) against the cheapest peer layer (4 or 6),
# goal <= 1/4; perf's full request (3 - 1) against autometrics' (5 - 1), goal <= 1/6, and the
# floor of that ratio: (9 - 1) / (5 - 1), and with a layer ((8 - 1) + (9 - 1)) / (5 - 1).
# CARGO_TARGET_DIR defaults to benches/peers/target (ignored by git; `cargo clean` it after).
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/../lib.sh"
defaults RUNS=2 ROUNDS=301 BATCH=2000 N=10000 CARGO_TARGET_DIR="$PWD/benches/peers/target"
export CARGO_TARGET_DIR

work=$(mktemp -d)
trap 'rm -rf "$work"; stop_leftovers' EXIT
cargo build --release --manifest-path benches/peers/Cargo.toml >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
peers=$CARGO_TARGET_DIR/release/peers

for run in $(seq 1 "$RUNS"); do
    echo "timed run $run of $RUNS (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$peers" --rounds "$ROUNDS" --batch "$BATCH" | tee "$work/timed.$run"
    echo
done

if command -v valgrind >/dev/null; then
    for variant in 1 2 3 4 5 6 7 8 9; do
        valgrind --tool=callgrind --collect-atstart=no --toggle-collect='peers::requests' \
            --callgrind-out-file="$work/cg.out" "$peers" --requests "$variant" "$N" 2>&1 |
            awk -v n="$N" '/^[1-9]_/ { name = $1 } /Collected :/ { total = $NF }
                END { print name, int(total / n) }'
    done >"$work/instructions"
else
    echo "valgrind not found: no instruction counts" >&2
fi

# One table: each timed run's ns/request, the instructions, each over variant 1; then the goals.
echo "one table (ns: median CPU ns per variant of each timed run; instructions: callgrind, $N requests):"
awk -v runs="$RUNS" '
    FNR == 1 { file++ }
    /^[1-9]_/ {
        i = substr($1, 1, 1)
        name[i] = $1
        if (file <= runs) ns[file, i] = $2; else ins[i] = $2
    }
    function over(x, base) { return x - base }
    END {
        printf "%-26s", "variant"
        for (r = 1; r <= runs; r++) printf " %10s %8s", "ns run " r, "over 1"
        printf " %12s %8s\n", "instructions", "over 1"
        for (i = 1; i <= 9; i++) {
            printf "%-26s", name[i]
            for (r = 1; r <= runs; r++) printf " %10.1f %8.1f", ns[r, i], ns[r, i] - ns[r, 1]
            if (i in ins) printf " %12d %8d", ins[i], ins[i] - ins[1]
            printf "\n"
        }
        for (r = 1; r <= runs + 1; r++) {
            if (r <= runs) { for (i = 1; i <= 9; i++) x[i] = ns[r, i]; what = "ns run " r }
            else if (1 in ins) { for (i = 1; i <= 9; i++) x[i] = ins[i]; what = "instructions" }
            else break
            cheapest = (x[4] <= x[6]) ? 4 : 6
            layer = (x[2] - x[1]) / (x[cheapest] - x[1])
            full = (x[3] - x[1]) / (x[5] - x[1])
            floor = (x[9] - x[1]) / (x[5] - x[1])
            layered = (x[8] - x[1] + x[9] - x[1]) / (x[5] - x[1])
            printf "%-13s perf layer / cheapest peer layer (%s): %.3f (goal <= 0.25: %s); perf full / autometrics: %.3f (goal <= 0.167: %s; its floor %.3f, with a layer %.3f)\n", \
                what ":", name[cheapest], layer, layer <= 0.25 ? "met" : "NOT met", \
                full, full <= 1 / 6 ? "met" : "NOT met", floor, layered
        }
    }' $(for r in $(seq 1 "$RUNS"); do echo "$work/timed.$r"; done) \
    $([[ -s $work/instructions ]] && echo "$work/instructions")
echo
echo "what each variant records:"
"$peers" --legend
