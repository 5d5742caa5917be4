#!/usr/bin/env bash
# Copies the dashboard, the alert and recording rules and their promtool unit tests with perf's
# family names prefixed, for an application that installs perf's metrics with
# `Metrics::builder().prefix(PREFIX)`:
#
#   scripts/prefix-metrics.sh llm_ out/
#   promtool check rules out/prometheus-alerts.yml out/prometheus-recording-rules.yml
#   promtool test rules out/tests/prometheus/*.yml
#
# OUTDIR gets the same layout as the repository (dashboards/, tests/prometheus/), so the unit
# tests still find their rule files. Only whole family names are rewritten (with their _bucket,
# _sum, _count suffixes); labels, label values and the recorded series' own names stay.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PREFIX OUTDIR" >&2
    exit 2
fi
prefix=$1
out=$2
# The prefix check of MetricsBuilder::prefix: ASCII letters, digits, `_` and `:`, no leading digit.
if ! [[ $prefix =~ ^[A-Za-z_:][A-Za-z0-9_:]*$ ]]; then
    echo "$0: '$prefix' cannot start a metric name" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
families='backend_ttfb_seconds|streaming_duration_seconds|frontend_processing_seconds|request_stage_duration_seconds|stage_percentage|operation_duration_seconds|requests_total|requests_in_flight|backend_in_flight|backend_errors_total|backend_ttft_seconds|backend_chunk_gap_seconds|backend_tokens_total|request_duration_seconds|gateway_overhead_seconds|backend_cost_usd_total|backend_unpriced_tokens_total|tenant_requests_total|tenant_tokens_total|tenant_cost_usd_total|backend_ratelimit_remaining|backend_ratelimit_limit|backend_ratelimit_reset_seconds'

mkdir -p "$out/dashboards" "$out/tests/prometheus"
for file in dashboards/performance-monitoring.json prometheus-alerts.yml \
    prometheus-recording-rules.yml prometheus-slo-rules.yml tests/prometheus/*.yml; do
    # \b: a family name that starts a word (not `request_stage_percentage`, not `my_requests_total`).
    sed -E "s/\\b($families)/${prefix}\\1/g" "$root/$file" >"$out/$file"
done
