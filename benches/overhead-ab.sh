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
#   LAYER=1       builds with perf-runtime's feature `axum` and adds the layer's rows: (f) the
#                 layer alone, (g) the layer and attributes (both revisions must have them), and
#                 the layer's own cost over the same exchange without it, (f) - (h), as `fh`
#   ROWS_A=.. ROWS_B=..
#                 each build's rows, paired by position (default: the rows above for both):
#                 `ROWS_A=b ROWS_B=gh` sets B's layer and attributes over their exchange,
#                 (g) - (h), against A's (b) over (a), e.g. A a revision from before the layer
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
LAYER=${LAYER:-0}
FEATURES=()
ROWS="b d"
if [[ $LAYER == 1 ]]; then
    FEATURES=(axum)
    ROWS="b d f g fh"
fi
ROWS_A=${ROWS_A:-$ROWS}
ROWS_B=${ROWS_B:-$ROWS}
[[ $(wc -w <<<"$ROWS_A") == $(wc -w <<<"$ROWS_B") ]] || { echo "ROWS_A and ROWS_B pair by position" >&2; exit 1; }
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
    # Since the seam of issue 28, the floor's histogram needs `bench-internals`; older
    # revisions have no such feature.
    local features=("${FEATURES[@]}")
    grep -q '^bench-internals' "$dir/perf-runtime/Cargo.toml" && features+=(bench-internals)
    local joined
    joined=$(IFS=,; echo "${features[*]}")
    (cd "$dir" && CARGO_TARGET_DIR=$target cargo bench -p perf-runtime ${joined:+--features "$joined"} --bench overhead --no-run) \
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

# One run of build $1: for each of its rows ($2), its overhead over (a) and ratio to (c)'s, from
# its interleaved table ("fh": (f) - (h), "gh": (g) - (h), and their ratio to (c)'s overhead).
run() {
    (cd "$ROOT/perf-runtime" && "${PIN[@]}" "$OUT/$1" --bench requestX 2>/dev/null) |
        awk -v rows="$2" '
            /^interleaved/ { table = 1 }
            table && /^[a-k]_/ { ns[substr($1, 1, 1)] = $2 }
            END {
                c = ns["c"] - ns["a"]
                n = split(rows, r, " ")
                for (i = 1; i <= n; i++) {
                    x = r[i] ~ /^.h$/ ? ns[substr(r[i], 1, 1)] - ns["h"] : ns[r[i]] - ns["a"]
                    printf "%.1f %.3f ", x, x / c
                }
                print ""
            }'
}

: >"$OUT/runs"
printf '%-4s %-4s' run build
for row in $ROWS_B; do printf ' %10s %7s' "($row) ns" ratio; done
echo
for i in $(seq "$N"); do
    for build in A B; do
        rows=ROWS_$build
        line=$(run "$build" "${!rows}")
        printf '%-4s %-4s' "$i" "$build"
        printf ' %10s %7s' $line
        echo
        echo "$i $build $line" >>"$OUT/runs"
    done
done

# Medians per build, and of the paired differences B - A.
awk -v a="$REV_A" -v b="$REV_B" -v rows_a="$ROWS_A" -v rows_b="$ROWS_B" '
    function median(list, n,    i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && list[j - 1] > list[j]; j--) {
            t = list[j]; list[j] = list[j - 1]; list[j - 1] = t
        }
        return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
    }
    # A row is kept by its position: with ROWS_A and ROWS_B, the pair at k may differ.
    BEGIN { nr = split(rows_a, ra, " "); split(rows_b, rb, " ") }
    {
        for (k = 1; k <= nr; k++) { v[$2, k, $1] = $(1 + 2 * k); v[$2, k "r", $1] = $(2 + 2 * k) }
        n = $1
    }
    END {
        printf "\nmedians over %d runs:\n", n
        for (k = 0; k < 2; k++) {
            build = k ? "B" : "A"
            printf "  %s (%s):", build, k ? b : a
            for (q = 1; q <= nr; q++) {
                for (i = 1; i <= n; i++) { x[i] = v[build, q, i]; y[i] = v[build, q "r", i] }
                printf "%s (%s) %.1f ns, ratio %.3f", (q > 1 ? ";" : ""), k ? rb[q] : ra[q], median(x, n), median(y, n)
            }
            printf "\n"
        }
        # The ratio to (c) of the same run is the steadier: it moves with the machine speed
        # at that moment only as much as (x - a) and (c - a) differ in how they move.
        for (s = 0; s < 2; s++) for (q = 1; q <= nr; q++) {
            key = s ? q "r" : q
            row = rb[q] == ra[q] ? rb[q] : rb[q] ") against (" ra[q]
            lo = 1e18; hi = -1e18
            for (i = 1; i <= n; i++) {
                x[i] = v["B", key, i] - v["A", key, i]
                if (x[i] < lo) lo = x[i]
                if (x[i] > hi) hi = x[i]
            }
            if (s == 0)
                printf "paired B - A, (%s) overhead: median %+.1f ns (%+.1f … %+.1f)\n", row, median(x, n), lo, hi
            else
                printf "paired B - A, (%s) ratio: median %+.3f (%+.3f … %+.3f)\n", row, median(x, n), lo, hi
        }
    }' "$OUT/runs"
