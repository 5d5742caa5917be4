#!/usr/bin/env bash
# Locked read-modify-writes per request (x86's `lock`-prefixed instructions: an atomic add, swap,
# compare-exchange, fetch_or ...), build by build, and where each build makes them: what a
# request's bookkeeping costs in time beyond its instructions (each one a full barrier on x86,
# ~18 cycles uncontended, and the way two threads meet on a shared cache line).
#
#   benches/request-atomics.sh [N] [LETTERS]   # N requests per build (default 2000); letters
#                                              # of the overhead bench's builds (default "b e f h")
#
# How: the overhead bench's binary (feature `bench-internals`, and `axum` for (f)..(k)) under
# callgrind with a count per instruction (`--dump-instr=yes`) during its `requests` function
# only, as benches/request-instructions.sh counts; the addresses of its `lock` instructions from
# objdump; each build's count at those addresses over N. Needs valgrind and binutils.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${1:-2000}
LETTERS=${2:-b e f h}
for tool in valgrind objdump python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

# shellcheck source=benches/callgrind.sh
source benches/callgrind.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
binary=$(overhead_binary --features axum,bench-internals)
objdump -d --no-show-raw-insn "$binary" | awk '$2 == "lock" { sub(":", "", $1); print $1 }' >"$work/locks"

for letter in $LETTERS; do
    callgrind_requests "$binary" "$letter" "$N" "$work/$letter.cg" "${PER_INSTRUCTION[@]}" >/dev/null
done

PYTHONPATH=benches python3 - "$work" "$N" $LETTERS <<'PY'
import collections, sys
from callgrind_costs import self_costs
work, n, letters = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
locks = {int(a, 16) for a in open(f"{work}/locks")}
for letter in letters:
    by_fn, total = collections.Counter(), 0
    for fn, address, cost in self_costs(f"{work}/{letter}.cg"):
        if address in locks:
            total += cost
            by_fn[fn] += cost
    print(f"({letter}) locked read-modify-writes per request: {total / n:.1f}")
    for name, count in by_fn.most_common(8):
        print(f"    {count / n:5.1f}  {name[:100]}")
PY
