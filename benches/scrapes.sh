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
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
defaults ROUNDS=3 DURATION_SECS=5 WARMUP_SECS=2 CONCURRENCY=32 SCRAPERS=20 MODELS=1000 \
    PORT=18090 GATEWAY=target/release/examples/gateway INTERVAL_MS=250
OLD_GATEWAY=${OLD_GATEWAY:-}

build_gateway

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
    start_gateway "$gateway" "$@"
    local renders_before sum_before
    renders_before=$(metric 'operation_duration_seconds_count{operation="metrics_render"}')
    sum_before=$(metric 'operation_duration_seconds_sum{operation="metrics_render"}')
    local json cpus
    measure --scrapers "$scrapers" --scrape-interval-ms "$interval" "${identity[@]}"
    local renders sum
    renders=$(metric 'operation_duration_seconds_count{operation="metrics_render"}')
    sum=$(metric 'operation_duration_seconds_sum{operation="metrics_render"}')
    stop_gateway
    echo "$json" | awk -v setting="$setting" -v renders="$((renders - renders_before))" \
        -v render_secs="$(awk -v a="$sum" -v b="$sum_before" 'BEGIN {print a - b}')" \
        -v cpus="$cpus" '{
        match($0, /"rps":[0-9.]+/); rps = substr($0, RSTART + 6, RLENGTH - 6)
        match($0, /"scrapes":[0-9]+/); scrapes = substr($0, RSTART + 10, RLENGTH - 10)
        match($0, /"scrape_bytes":[0-9]+/); bytes = substr($0, RSTART + 15, RLENGTH - 15)
        match($0, /"duration_secs":[0-9.]+/); window = substr($0, RSTART + 16, RLENGTH - 16)
        printf "%s\t%.0f\t%.1f\t%.2f\t%d\t%.2f\t%.2f\n", setting, rps, scrapes / window,
            (scrapes > 0 ? bytes / scrapes / 1e6 : 0), renders,
            (renders > 0 ? 1000 * render_secs / renders : 0), cpus
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
medians "$out" '  %-17s %6s req/s  %7s scrapes/s  %s CPUs\n' 2 3 7
rm -f "$out"
