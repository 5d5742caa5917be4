# shellcheck shell=bash
# The runs of benches/end-to-end.sh, which sources this file: a gateway build started and
# stopped, the load generator against it, one run of each phase and the rounds of runs. They
# read the script's settings, GATEWAY_PIN and LOAD_PIN, TICK and OUT; cleanup, which the
# script traps on exit, stops whatever of theirs still runs.

GW_PID=
LOAD_PID=

# shellcheck source=benches/end-to-end/stop.sh
source "$ROOT/benches/end-to-end/stop.sh"

# A gateway that does not shut down within 5 s is killed.
stop_gateway() {
    stop_process "$GW_PID" 50
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
