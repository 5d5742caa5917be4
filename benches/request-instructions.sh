#!/usr/bin/env bash
# The overhead bench's five builds (a)..(e), counted instead of timed: instructions per request
# under valgrind's callgrind, which a loaded machine does not move. The timed ratio
# (`cargo bench -p perf-runtime --bench overhead`) moves ±10 % with where code and data lie on a
# shared 2-vCPU VM; these counts move by a handful of instructions.
#
#   benches/request-instructions.sh [N]      # N requests per build (default 10000)
#
# Each build runs `overhead --requests LETTER N`: 100 requests that warm it up (the clock's
# calibration, the first series), then N in the bench's `requests` function, the only part
# callgrind counts.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-10000}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log" "$log".cg' EXIT
cargo bench -p perf-runtime --bench overhead --no-run >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
binary=$(sed -n 's/.*Executable benches\/overhead.rs (\(.*\))$/\1/p' "$log" | tail -1)

# A build's line: its name and instructions per request.
count() {
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='overhead::requests' \
        --callgrind-out-file="$log".cg "$binary" --requests "$1" "$N" 2>&1 |
        awk -v n="$N" '/^[a-e]_/ { name = $1 } /Collected :/ { total = $NF } END { print name, int(total / n) }'
}

# In letter order: (a) is the first line, (c) the third.
for letter in a b c d e; do count "$letter"; done |
    awk '{ name[NR] = $1; x[NR] = $2 }
    END {
        printf "%-28s %14s %12s %14s\n", "build", "instr/request", "over (a)", "(x-a)/(c-a)"
        for (i = 1; i <= NR; i++)
            printf "%-28s %14d %12d %14.3f\n", name[i], x[i], x[i] - x[1], (x[i] - x[1]) / (x[3] - x[1])
    }'
