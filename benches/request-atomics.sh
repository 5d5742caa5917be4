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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo bench -p perf-runtime --features axum,bench-internals --bench overhead --no-run >"$work/build" 2>&1 ||
    { cat "$work/build" >&2; exit 1; }
binary=$(sed -n 's/.*Executable benches\/overhead.rs (\(.*\))$/\1/p' "$work/build" | tail -1)
objdump -d --no-show-raw-insn "$binary" | awk '$2 == "lock" { sub(":", "", $1); print $1 }' >"$work/locks"

for letter in $LETTERS; do
    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
        --collect-atstart=no --toggle-collect='overhead::requests' \
        --callgrind-out-file="$work/$letter.cg" "$binary" --requests "$letter" "$N" >"$work/$letter.log" 2>&1
done

python3 - "$work" "$N" $LETTERS <<'PY'
import collections, sys
work, n, letters = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
locks = {int(a, 16) for a in open(f"{work}/locks")}
for letter in letters:
    by_fn, fn, after_call, total = collections.Counter(), "?", False, 0
    for line in open(f"{work}/{letter}.cg"):
        if line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith("calls="):
            after_call = True  # the next cost line is the call's inclusive cost: not ours
        elif line.startswith("0x"):
            if after_call:
                after_call = False
                continue
            address, _line, cost = line.split()[:3]
            if int(address, 16) in locks:
                total += int(cost)
                by_fn[fn] += int(cost)
    print(f"({letter}) locked read-modify-writes per request: {total / n:.1f}")
    for name, count in by_fn.most_common(8):
        print(f"    {count / n:5.1f}  {name[:100]}")
PY
