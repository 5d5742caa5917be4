#!/usr/bin/env bash
# What /metrics scrapers cost the API: the example gateway on a zero-delay mock (one tokio
# worker, as in end-to-end.sh) with 1,000 model names in /metrics, loaded by examples/load.rs
# (JSON chat completions, 32 clients), beside 20 scrapers run by the same load generator, which
# ask for gzip as Prometheus does (but in loop-shared-plain):
#
#   alone              no scraper
#   paced-shared       20 scrapers, each every 250 ms (80 scrapes/s), renderings shared
#                      (--metrics-max-age-ms 1000, the default)
#   paced-per-scrape   the same, one rendering per scrape (--metrics-max-age-ms 0, one at a
#                      time, on the blocking pool)
#   loop-shared        20 scrapers looping on /metrics, renderings shared
#   loop-shared-plain  the same, the scrapers asking for plain text (not gzip)
#   loop-per-scrape    20 looping scrapers, one rendering per scrape
#   before-paced, before-loop   with OLD_GATEWAY=path: a gateway built before the shared
#                      renderings (every scrape rendered on the API's worker)
#
#   benches/scrapes.sh                 # 3 rounds (~3 min; ~4 with OLD_GATEWAY)
#   ROUNDS=5 DURATION_SECS=10 benches/scrapes.sh
#   OLD_GATEWAY=/path/to/old/gateway SKIP_BUILD=1 benches/scrapes.sh
#
# Each run starts a gateway on 127.0.0.1:$PORT, gives /metrics 1,000 models (1,000 requests,
# one model each), runs the load (warm-up, then the measured window) with the scrapers beside
# it, reads the gateway's renderings (operation_duration_seconds{operation="metrics_render"})
# and its CPU time (utime + stime from /proc, over warm-up and window), and stops it. Prints
# one TSV line per run, then the medians per setting.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION_SECS=${DURATION_SECS:-5}
WARMUP_SECS=${WARMUP_SECS:-2}
CONCURRENCY=${CONCURRENCY:-32}
SCRAPERS=${SCRAPERS:-20}
MODELS=${MODELS:-1000}
PORT=${PORT:-18090}
GATEWAY_WORKERS=${GATEWAY_WORKERS-1}
SKIP_BUILD=${SKIP_BUILD:-0}
GATEWAY=${GATEWAY:-target/release/examples/gateway}
OLD_GATEWAY=${OLD_GATEWAY:-}
INTERVAL_MS=${INTERVAL_MS:-250}
LOAD=target/release/examples/load

if [ "$SKIP_BUILD" != 1 ]; then
    cargo build --release --example gateway --example load
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "something listens on 127.0.0.1:$PORT already" >&2
    exit 1
fi

cpu_ticks() { # utime + stime of PID, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

metric() { # metric NAME_AND_LABELS: its value in the gateway's /metrics, 0 if absent
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'
}

run() { # run SETTING GATEWAY SCRAPERS INTERVAL_MS ENCODING [GATEWAY FLAGS...]: one TSV line
    local setting=$1 gateway=$2 scrapers=$3 interval=$4 encoding=$5
    shift 5
    local identity=()
    if [ "$encoding" = identity ]; then
        identity=(--scrape-identity)
    fi
    TOKIO_WORKER_THREADS=$GATEWAY_WORKERS "$gateway" --listen "127.0.0.1:$PORT" \
        --mock-ttfb-ms 0 --mock-chunks 3 --mock-chunk-interval-ms 0 --mock-jitter-ms 0 \
        "$@" >/dev/null &
    local pid=$!
    # Whatever happens next, the gateway does not outlive the script.
    trap "kill $pid 2>/dev/null" EXIT
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
        sleep 0.1
    done
    "$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" --models "$MODELS" \
        --requests "$MODELS" --concurrency 16 --warmup-secs 0 --duration-secs 60 >/dev/null 2>&1
    local renders_before sum_before ticks_before
    renders_before=$(metric 'operation_duration_seconds_count{operation="metrics_render"}')
    sum_before=$(metric 'operation_duration_seconds_sum{operation="metrics_render"}')
    ticks_before=$(cpu_ticks "$pid")
    local json
    json=$("$LOAD" --url "http://127.0.0.1:$PORT/v1/chat/completions" \
        --concurrency "$CONCURRENCY" --warmup-secs "$WARMUP_SECS" \
        --duration-secs "$DURATION_SECS" --scrapers "$scrapers" \
        --scrape-interval-ms "$interval" "${identity[@]}" 2>/dev/null)
    local ticks_after renders sum
    ticks_after=$(cpu_ticks "$pid")
    renders=$(metric 'operation_duration_seconds_count{operation="metrics_render"}')
    sum=$(metric 'operation_duration_seconds_sum{operation="metrics_render"}')
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local hz
    hz=$(getconf CLK_TCK)
    echo "$json" | awk -v setting="$setting" -v renders="$((renders - renders_before))" \
        -v render_secs="$(awk -v a="$sum" -v b="$sum_before" 'BEGIN {print a - b}')" \
        -v cpu="$(awk -v a="$ticks_after" -v b="$ticks_before" -v hz="$hz" 'BEGIN {print (a - b) / hz}')" \
        -v secs="$((WARMUP_SECS + DURATION_SECS))" '{
        match($0, /"rps":[0-9.]+/); rps = substr($0, RSTART + 6, RLENGTH - 6)
        match($0, /"scrapes":[0-9]+/); scrapes = substr($0, RSTART + 10, RLENGTH - 10)
        match($0, /"scrape_bytes":[0-9]+/); bytes = substr($0, RSTART + 15, RLENGTH - 15)
        match($0, /"duration_secs":[0-9.]+/); window = substr($0, RSTART + 16, RLENGTH - 16)
        printf "%s\t%.0f\t%.1f\t%.2f\t%d\t%.2f\t%.2f\n", setting, rps, scrapes / window,
            (scrapes > 0 ? bytes / scrapes / 1e6 : 0), renders,
            (renders > 0 ? 1000 * render_secs / renders : 0), cpu / secs
    }'
}

settings="alone paced-shared paced-per-scrape loop-shared loop-shared-plain loop-per-scrape"
if [ -n "$OLD_GATEWAY" ]; then
    settings="$settings before-paced before-loop"
fi
out=$(mktemp)
printf 'setting\treq/s\tscrapes/s\tMB/scrape\trenders\tms/render\tgateway CPUs\n'
for round in $(seq "$ROUNDS"); do
    for setting in $settings; do
        case $setting in
            alone) run alone "$GATEWAY" 0 0 gzip ;;
            paced-shared) run "$setting" "$GATEWAY" "$SCRAPERS" "$INTERVAL_MS" gzip ;;
            paced-per-scrape)
                run "$setting" "$GATEWAY" "$SCRAPERS" "$INTERVAL_MS" gzip --metrics-max-age-ms 0 ;;
            loop-shared) run "$setting" "$GATEWAY" "$SCRAPERS" 0 gzip ;;
            loop-shared-plain) run "$setting" "$GATEWAY" "$SCRAPERS" 0 identity ;;
            loop-per-scrape) run "$setting" "$GATEWAY" "$SCRAPERS" 0 gzip --metrics-max-age-ms 0 ;;
            before-paced) run "$setting" "$OLD_GATEWAY" "$SCRAPERS" "$INTERVAL_MS" gzip ;;
            before-loop) run "$setting" "$OLD_GATEWAY" "$SCRAPERS" 0 gzip ;;
        esac
    done
done | tee "$out"
echo
echo "medians over $ROUNDS rounds (req/s, scrapes/s, gateway CPUs):"
for setting in $settings; do
    awk -F'\t' -v s="$setting" '$1 == s {print $2 "\t" $3 "\t" $7}' "$out" | sort -n |
        awk -F'\t' -v s="$setting" '{v[NR] = $0} END {
            split(v[int((NR + 1) / 2)], m, "\t")
            printf "  %-17s %6s req/s  %7s scrapes/s  %s CPUs\n", s, m[1], m[2], m[3]
        }'
done
rm -f "$out"
