#!/usr/bin/env bash
# What the OTLP export costs the API: the example gateway on a zero-delay mock (one tokio worker,
# as in end-to-end.sh and scrapes.sh), /metrics given 250 model names first (about 1,000 series
# to export), loaded by examples/load.rs (JSON chat completions, 32 clients):
#
#   off        no export
#   dead       exporting every second to a closed port (a collector that is down)
#   dead-fast  the same every 100 ms
#   live       exporting every second to tests/python/otlp_receiver.py (when python3 has
#              opentelemetry-proto and opentelemetry-semantic-conventions)
#
#   benches/otlp.sh                         # 3 rounds, settings in turn (~2 min)
#   ROUNDS=5 DURATION_SECS=10 benches/otlp.sh
#   ROUNDS=8 SETTINGS="off dead" SKIP_BUILD=1 benches/otlp.sh
#
# Prints one TSV line per run (requests/s, p99 ms, the gateway's CPUs over warm-up and window,
# failed exports counted in /metrics), then the medians per setting.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION_SECS=${DURATION_SECS:-5}
WARMUP_SECS=${WARMUP_SECS:-2}
CONCURRENCY=${CONCURRENCY:-32}
MODELS=${MODELS:-250}
PORT=${PORT:-18091}
GATEWAY_WORKERS=${GATEWAY_WORKERS-1}
SKIP_BUILD=${SKIP_BUILD:-0}
GATEWAY=${GATEWAY:-target/release/examples/gateway}
LOAD=target/release/examples/load

if [ "$SKIP_BUILD" != 1 ]; then
    cargo build --release --example gateway --example load
fi
# A closed port: bound by the kernel, then let go.
CLOSED=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
settings=${SETTINGS:-off dead dead-fast live}
RECEIVER_PID=
if [[ " $settings " != *" live "* ]]; then
    :
elif ! python3 -c 'import opentelemetry.proto, opentelemetry.semconv' 2>/dev/null; then
    settings=${settings/live/}
else
    exec 4< <(python3 tests/python/otlp_receiver.py)
    RECEIVER_PID=$!
    read -r RECEIVER_PORT <&4
fi
trap '[ -n "$RECEIVER_PID" ] && kill $RECEIVER_PID 2>/dev/null' EXIT

cpu_ticks() { # utime + stime of PID, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

run() { # run SETTING [GATEWAY FLAGS...]: one TSV line
    local setting=$1
    shift
    TOKIO_WORKER_THREADS=$GATEWAY_WORKERS "$GATEWAY" --listen "127.0.0.1:$PORT" \
        --mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0 \
        "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    "$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" --models "$MODELS" \
        --requests "$MODELS" --concurrency 16 --warmup-secs 0 --duration-secs 60 >/dev/null 2>&1
    local ticks_before ticks_after json failures hz
    ticks_before=$(cpu_ticks "$pid")
    json=$("$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
        --concurrency "$CONCURRENCY" --warmup-secs "$WARMUP_SECS" \
        --duration-secs "$DURATION_SECS" 2>/dev/null)
    ticks_after=$(cpu_ticks "$pid")
    failures=$(curl -s "http://127.0.0.1:$PORT/metrics" |
        awk '$1 ~ /^otlp_export_failures_total/ {v += $2} END {print v + 0}')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    hz=$(getconf CLK_TCK)
    echo "$json" | awk -v setting="$setting" -v failures="$failures" \
        -v cpu="$(awk -v a="$ticks_after" -v b="$ticks_before" -v hz="$hz" 'BEGIN {print (a - b) / hz}')" \
        -v secs="$((WARMUP_SECS + DURATION_SECS))" '{
        match($0, /"rps":[0-9.]+/); rps = substr($0, RSTART + 6, RLENGTH - 6)
        match($0, /"p99_ms":[0-9.]+/); p99 = substr($0, RSTART + 9, RLENGTH - 9)
        printf "%s\t%.0f\t%.2f\t%.2f\t%d\n", setting, rps, p99, cpu / secs, failures
    }'
}

out=$(mktemp)
printf 'setting\treq/s\tp99 ms\tgateway CPUs\tfailed exports\n'
for round in $(seq "$ROUNDS"); do
    for setting in $settings; do
        case $setting in
            off) run off ;;
            dead) run dead --otlp-endpoint "http://127.0.0.1:$CLOSED" --otlp-interval-ms 1000 ;;
            dead-fast) run dead-fast --otlp-endpoint "http://127.0.0.1:$CLOSED" --otlp-interval-ms 100 ;;
            live) run live --otlp-endpoint "http://127.0.0.1:$RECEIVER_PORT" --otlp-interval-ms 1000 ;;
        esac
    done
done | tee "$out"
echo
echo "medians over $ROUNDS rounds (req/s, p99 ms, gateway CPUs):"
for setting in $settings; do
    awk -F'\t' -v s="$setting" '$1 == s {print $2 "\t" $3 "\t" $4}' "$out" | sort -n |
        awk -F'\t' -v s="$setting" '{v[NR] = $0} END {
            split(v[int((NR + 1) / 2)], m, "\t")
            printf "  %-10s %6s req/s  p99 %s ms  %s CPUs\n", s, m[1], m[2], m[3]
        }'
done
rm -f "$out"
