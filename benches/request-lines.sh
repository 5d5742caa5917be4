#!/usr/bin/env bash
# Where a request's instructions go: the overhead bench's builds counted under callgrind, as
# request-instructions.sh counts them, each instruction put to the perf-runtime source file it
# is from. An instruction inlined from elsewhere (std, a crate) into perf's code counts for the
# innermost perf-runtime frame that took it in (`addr2line -i`); an instruction with no
# perf-runtime frame counts as "outside perf" (the handler, the harness, libc's memcpy).
#
#   benches/request-lines.sh [N] [LETTERS]       # default: 2000 requests of "a b e f g h"
#   LINES=1 benches/request-lines.sh 2000 g      # by source line instead of by file
#
# The table has a column per build and a row per file, in instructions per request. Differences
# of builds are read off it: (b) - (e) is the bookkeeping (BENCHMARKS.md, "Bookkeeping"), and
# ((g) - (h)) - ((b) - (a)) what the layer's request adds to the attributes' (its "Layer").
# Built with line tables (CARGO_PROFILE_BENCH_DEBUG=line-tables-only), which leave the code as
# it is: the totals are request-instructions.sh's.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-2000}
read -r -a LETTERS <<<"${2:-a b e f g h}"
for tool in valgrind addr2line python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

# shellcheck source=benches/callgrind.sh
source benches/callgrind.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
binary=$(CARGO_PROFILE_BENCH_DEBUG=line-tables-only overhead_binary --features axum,bench-internals)

for letter in "${LETTERS[@]}"; do
    callgrind_requests "$binary" "$letter" "$N" "$work/$letter.cg" "${PER_INSTRUCTION[@]}" >/dev/null
done

PYTHONPATH=benches python3 - "$binary" "$N" "${LINES:-0}" "$work" "${LETTERS[@]}" <<'PY'
"""Sums each build's self cost by the innermost perf-runtime frame of each instruction."""
import collections
import subprocess
import sys

from callgrind_costs import self_costs

binary, n, by_line, work, letters = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5:]
OUTSIDE = "outside perf"


def by_address(path):
    """Instructions by address."""
    costs = collections.Counter()
    for _function, address, cost in self_costs(path):
        costs[address] += cost
    return costs


costs = {letter: by_address(f"{work}/{letter}.cg") for letter in letters}
addresses = sorted(set().union(*costs.values()))
lines = subprocess.run(["addr2line", "-i", "-a", "-e", binary] + [hex(a) for a in addresses],
                       capture_output=True, text=True, check=True).stdout.splitlines()
where, address = {}, None
for line in lines:
    if line.startswith("0x"):
        address = int(line, 16)
    elif address is not None and address not in where and "perf-runtime/src/" in line:
        place = line.split("perf-runtime/src/")[1].split()[0]
        where[address] = place if by_line else place.split(":")[0]

table = {letter: collections.Counter() for letter in letters}
for letter, by_address in costs.items():
    for address, cost in by_address.items():
        table[letter][where.get(address, OUTSIDE)] += cost / n
rows = sorted(set().union(*table.values()), key=lambda row: -max(t[row] for t in table.values()))
print(f"{'instructions per request':32}" + "".join(f"{'(' + l + ')':>9}" for l in letters))
for row in rows:
    print(f"{row:32}" + "".join(f"{table[l][row]:9.0f}" for l in letters))
print(f"{'total':32}" + "".join(f"{sum(table[l].values()):9.0f}" for l in letters))
PY
