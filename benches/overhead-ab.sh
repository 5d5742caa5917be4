#!/usr/bin/env bash
# Two builds of the overhead bench side by side: the way to tell whether a change to the hot path
# pays, on a shared machine whose load moves a single run by ±10 %.
#
# Each build's bench binary runs only its interleaved table (`--bench requestX` matches no
# criterion benchmark, and keeps the table), pinned to one CPU, and the two binaries alternate
# N times (A B A B ...), so that a burst of load on the machine hits both alike. Prints each
# run's (b) and (d) overhead over (a) and ratio to (c), then per build the medians, and the
# medians of the paired differences B - A (overhead and ratio) with their ranges.
#
#   benches/overhead-ab.sh REV_A [REV_B] [N]
#
#   REV_A, REV_B  git revisions; `.` is the working tree as it is (REV_B's default)
#   N             alternations (default 6)
#   CPU=1         the CPU the binaries are pinned to (needs taskset; unpinned without it)
#
# A revision is built in a worktree of its own under target/overhead-ab/ (removed once built),
# with one target directory shared by both revisions; the working tree is built where it is. On the 2-vCPU VM of
# BENCHMARKS.md, paired differences under about 10 ns are noise: look at their range.
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET == /* ]] || TARGET=$ROOT/$TARGET
OUT=$TARGET/overhead-ab
REV_A=${1:?usage: benches/overhead-ab.sh REV_A [REV_B] [N]}
REV_B=${2:-.}
N=${3:-6}
CPU=${CPU:-1}
mkdir -p "$OUT"

# build REV NAME: the overhead bench of REV, copied to $OUT/NAME
build() {
    local rev=$1 name=$2 dir target log binary
    if [[ $rev == . ]]; then
        dir=$ROOT
        target=$TARGET
    else
        dir=$OUT/worktree-$name
        target=$OUT/target
        git -C "$ROOT" worktree remove --force "$dir" 2>/dev/null || true
        git -C "$ROOT" worktree add --quiet --detach "$dir" "$rev"
    fi
    log=$OUT/build-$name.log
    (cd "$dir" && CARGO_TARGET_DIR=$target cargo bench -p perf-runtime --bench overhead --no-run) \
        >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    # cargo names the binary on its `Executable benches/overhead.rs (PATH)` line.
    binary=$(sed -n 's/.*Executable benches\/overhead.rs (\(.*\))$/\1/p' "$log" | tail -1)
    [[ $binary == /* ]] || binary=$dir/$binary
    cp "$binary" "$OUT/$name"
    [[ $rev == . ]] || git -C "$ROOT" worktree remove --force "$dir"
    echo "built $rev as $OUT/$name" >&2
}

build "$REV_A" A
build "$REV_B" B

PIN=()
if command -v taskset >/dev/null && taskset -c "$CPU" true 2>/dev/null; then
    PIN=(taskset -c "$CPU")
else
    echo "unpinned: taskset -c $CPU is not available" >&2
fi

# One run of a binary: "b_overhead b_ratio d_overhead d_ratio" from its interleaved table.
run() {
    (cd "$ROOT/perf-runtime" && "${PIN[@]}" "$OUT/$1" --bench requestX 2>/dev/null) |
        awk '/^interleaved/ { table = 1 } table && /^[bd]_/ { printf "%s %s ", $3, $4 } END { print "" }'
}

: >"$OUT/runs"
printf '%-4s %-4s %12s %8s %12s %8s\n' run build "(b) ns" ratio "(d) ns" ratio
for i in $(seq "$N"); do
    for build in A B; do
        read -r b b_ratio d d_ratio <<<"$(run "$build")"
        printf '%-4s %-4s %12s %8s %12s %8s\n' "$i" "$build" "$b" "$b_ratio" "$d" "$d_ratio"
        echo "$i $build $b $b_ratio $d $d_ratio" >>"$OUT/runs"
    done
done

# Medians per build, and of the paired differences B - A.
awk -v a="$REV_A" -v b="$REV_B" '
    function median(list, n,    i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && list[j - 1] > list[j]; j--) {
            t = list[j]; list[j] = list[j - 1]; list[j - 1] = t
        }
        return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
    }
    { v[$2, "b", $1] = $3; v[$2, "br", $1] = $4; v[$2, "d", $1] = $5; v[$2, "dr", $1] = $6; n = $1 }
    END {
        printf "\nmedians over %d runs:\n", n
        for (k = 0; k < 2; k++) {
            build = k ? "B" : "A"
            for (i = 1; i <= n; i++) { x[i] = v[build, "b", i]; y[i] = v[build, "br", i] }
            mb = median(x, n); mbr = median(y, n)
            for (i = 1; i <= n; i++) { x[i] = v[build, "d", i]; y[i] = v[build, "dr", i] }
            md = median(x, n); mdr = median(y, n)
            printf "  %s (%s): (b) %.1f ns, ratio %.3f; (d) %.1f ns, ratio %.3f\n", build, k ? b : a, mb, mbr, md, mdr
        }
        # The ratio to (c) of the same run is the steadier: it moves with the machine speed
        # at that moment only as much as (x - a) and (c - a) differ in how they move.
        for (s = 0; s < 4; s++) {
            key = s == 0 ? "b" : s == 1 ? "d" : s == 2 ? "br" : "dr"
            lo = 1e18; hi = -1e18
            for (i = 1; i <= n; i++) {
                x[i] = v["B", key, i] - v["A", key, i]
                if (x[i] < lo) lo = x[i]
                if (x[i] > hi) hi = x[i]
            }
            if (s < 2)
                printf "paired B - A, (%s) overhead: median %+.1f ns (%+.1f … %+.1f)\n", key, median(x, n), lo, hi
            else
                printf "paired B - A, (%s) ratio: median %+.3f (%+.3f … %+.3f)\n", substr(key, 1, 1), median(x, n), lo, hi
        }
    }' "$OUT/runs"
