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
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
defaults ROUNDS=3 DURATION_SECS=5 WARMUP_SECS=2 CONCURRENCY=32 MODELS=250 PORT=18091 \
    GATEWAY=target/release/examples/gateway

build_gateway
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
trap '[ -n "$RECEIVER_PID" ] && kill $RECEIVER_PID 2>/dev/null; stop_leftovers' EXIT

run() { # run SETTING [GATEWAY FLAGS...]: one TSV line
    local setting=$1
    shift
    start_gateway "$GATEWAY" "$@" 2>/dev/null
    local json cpus failures
    measure
    failures=$(curl -s "http://127.0.0.1:$PORT/metrics" |
        awk '$1 ~ /^otlp_export_failures_total/ {v += $2} END {print v + 0}')
    stop_gateway
    echo "$json" | awk -v setting="$setting" -v failures="$failures" -v cpus="$cpus" '{
        match($0, /"rps":[0-9.]+/); rps = substr($0, RSTART + 6, RLENGTH - 6)
        match($0, /"p99_ms":[0-9.]+/); p99 = substr($0, RSTART + 9, RLENGTH - 9)
        printf "%s\t%.0f\t%.2f\t%.2f\t%d\n", setting, rps, p99, cpus, failures
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
medians "$out" '  %-10s %6s req/s  p99 %s ms  %s CPUs\n' 2 3 4
rm -f "$out"
