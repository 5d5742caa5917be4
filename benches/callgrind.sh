# shellcheck shell=bash
# What the scripts that count the overhead bench under callgrind share (request-instructions.sh,
# request-atomics.sh, request-lines.sh), sourced by them: the bench built and its binary found,
# and one build's requests counted. Their Python reads the counts with benches/callgrind_costs.py.

# Their Python imports callgrind_costs.py from benches/: no __pycache__ left there.
export PYTHONDONTWRITEBYTECODE=1

# Options for a count per instruction (`--dump-instr=yes`), in a file callgrind_costs.py reads:
# absolute addresses, names written out.
PER_INSTRUCTION=(--dump-instr=yes --compress-pos=no --compress-strings=no)

# overhead_binary [CARGO ARGS...]: builds the overhead bench (its output shown only if the build
# fails) and prints its binary's path, which cargo names on its `Executable
# benches/overhead.rs (PATH)` line.
overhead_binary() {
    local log
    log=$(cargo bench -p perf-runtime "$@" --bench overhead --no-run 2>&1) ||
        { printf '%s\n' "$log" >&2; return 1; }
    sed -n 's/.*Executable benches\/overhead.rs (\(.*\))$/\1/p' <<<"$log" | tail -1
}

# callgrind_requests BINARY LETTER N OUT [VALGRIND OPTIONS...]: build LETTER's `--requests`
# run (100 requests of warm-up, then N) under callgrind, counting only the bench's `requests`
# function, into OUT; valgrind's output on stdout.
callgrind_requests() {
    local binary=$1 letter=$2 n=$3 out=$4
    shift 4
    valgrind --tool=callgrind "$@" --collect-atstart=no --toggle-collect='overhead::requests' \
        --callgrind-out-file="$out" "$binary" --requests "$letter" "$n" 2>&1
}
