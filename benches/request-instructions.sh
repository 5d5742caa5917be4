#!/usr/bin/env bash
# The overhead bench's builds (a)..(e), and with perf-runtime's feature `axum` the layer's
# (f)..(k), counted instead of timed: instructions per request under valgrind's callgrind, which
# a loaded machine does not move. The timed ratio (`cargo bench -p perf-runtime --bench
# overhead`) moves ±10 % with where code and data lie on a shared 2-vCPU VM; these counts move by
# a handful of instructions.
#
#   benches/request-instructions.sh [N]      # N requests per build (default 10000)
#   LAYER=0 benches/request-instructions.sh  # (a)..(e) only, built without feature `axum`
#
# With the layer's builds, three lines follow the table: the layer's own count (f) - (h) (its
# target, 150 ns, is timed: read it beside the timed bench) with (f) - (a), (g) - (h) against
# (b) - (a), and the router's.
# Each build runs `overhead --requests LETTER N`: 100 requests that warm it up (the clock's
# calibration, the first series), then N in the bench's `requests` function, the only part
# callgrind counts.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-10000}
LAYER=${LAYER:-1}
FEATURES=(--features bench-internals)
LETTERS=(a b c d e)
if [[ $LAYER == 1 ]]; then
    FEATURES=(--features axum,bench-internals)
    LETTERS+=(f g h i j k)
fi
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

# shellcheck source=benches/callgrind.sh
source benches/callgrind.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
binary=$(overhead_binary "${FEATURES[@]}")

# A build's line: its name and instructions per request.
count() {
    callgrind_requests "$binary" "$1" "$N" "$out" |
        awk -v n="$N" '/^[a-k]_/ { name = $1 } /Collected :/ { total = $NF } END { print name, int(total / n) }'
}

# In letter order: (a) is the first line, (b) the second, (c) the third; (f), (g), (h) the 6th
# to 8th, (i), (j) and (k) the 9th to 11th.
for letter in "${LETTERS[@]}"; do count "$letter"; done |
    awk '{ name[NR] = $1; x[NR] = $2 }
    END {
        printf "%-28s %14s %12s %14s\n", "build", "instr/request", "over (a)", "(x-a)/(c-a)"
        for (i = 1; i <= NR; i++)
            printf "%-28s %14d %12d %14.3f\n", name[i], x[i], x[i] - x[1], (x[i] - x[1]) / (x[3] - x[1])
        if (NR >= 11) {
            printf "layer alone: (f) - (h) %d; (f) - (a) %d, of which the exchange without a layer (h) - (a) %d\n", x[6] - x[8], x[6] - x[1], x[8] - x[1]
            printf "layer and attributes: (g) %d against (b) %d (%+d); over each one'"'"'s bare build, (g) - (h) %d against (b) - (a) %d\n", x[7], x[2], x[7] - x[2], x[7] - x[8], x[2] - x[1]
            printf "in a one-route axum::Router: (i) - (j) %d, of which axum'"'"'s for any layer (k) - (j) %d and PerfLayer'"'"'s (i) - (k) %d\n", x[9] - x[10], x[11] - x[10], x[9] - x[11]
        }
    }'
