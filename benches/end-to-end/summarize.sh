# shellcheck shell=bash
# The summaries of benches/end-to-end.sh, which sources this file: its tables, in Markdown, and
# its VERDICT lines, from a run's results.tsv (phase 1), latency.tsv (phase 2) and
# instructions/table.md. They read MIN_BUSY, GOAL_US and MAX_WAIT, which the script sets.

# Functions shared by the awk programs below and by the script's phase 2 rate: the records of a
# results file by mode, build and round; sort, median, and the rank of the sign test's interval
# for a median.
# shellcheck disable=SC2016 # awk's $2 and $NF, which the shell must leave alone
AWK_LIB='
# Keeps the current record (columns: 1 round, 2 mode, 3 build, then the figures) and returns its
# key (mode, build): val[key, k, field] is that field of the k-th record of key (count[key] of them),
# at[mode, build, round] its record number, modes[1..nmodes] the modes and rounds[mode,
# 1..nrounds[mode]] their rounds, in order of appearance.
function keep(    key, k, f) {
    key = $2 SUBSEP $3
    k = ++count[key]
    for (f = 4; f <= NF; f++) val[key, k, f] = $f
    if (!($2 in seen)) { seen[$2] = 1; modes[++nmodes] = $2 }
    at[$2, $3, $1] = NR
    if (!(($2, $1) in inround)) { inround[$2, $1] = 1; rounds[$2, ++nrounds[$2]] = $1 }
    return key
}
# The field of the n records of key, into out[1..n].
function column(key, field, n, out,    i) { for (i = 1; i <= n; i++) out[i] = val[key, i, field] }
function sort(list, n,    i, j, t) { # insertion sort of list[1..n], in place
    for (i = 2; i <= n; i++) {
        t = list[i]
        for (j = i - 1; j >= 1 && list[j] > t; j--) list[j + 1] = list[j]
        list[j + 1] = t
    }
}
function median(list, n) {
    sort(list, n)
    return n % 2 ? list[(n + 1) / 2] : (list[n / 2] + list[n / 2 + 1]) / 2
}
# The rank k of a distribution-free interval [x(k), x(n+1-k)] for the median of n values that
# holds with at least 90 % confidence (sign test): the largest k with 2 P(Bin(n, 1/2) < k) <= 0.1;
# 1 when n is too small for 90 % (then the interval is min … max, with less confidence).
function rank90(n,    k, c, term, i) {
    c = 0; term = 0.5 ^ n; k = 1
    for (i = 0; i < n; i++) {
        c += term                           # P(Bin <= i)
        if (2 * c > 0.1) break
        k = i + 1
        term = term * (n - i) / (i + 1)
    }
    return k
}
# Prints a Markdown table'"'"'s head: titles (cells between " | ") and the rule below them, whose
# columns align left (l) or right (r) as align says.
function table_head(titles, align,    i, rule) {
    rule = "|"
    for (i = 1; i <= length(align); i++) rule = rule (substr(align, i, 1) == "r" ? "---:|" : "---|")
    printf "| %s |\n%s\n", titles, rule
}
# The tables'"'"' rows: the modes in order of appearance, each by build, instrumented first, into
# rmode[1..n], rbuild[] and rkey[] (the keys of keep()); returns n.
function table_rows(    m, b, n) {
    n = 0
    for (m = 1; m <= nmodes; m++)
        for (b = 1; b <= 2; b++) {
            rmode[++n] = modes[m]
            rbuild[n] = b == 1 ? "instrumented" : "uninstrumented"
            rkey[n] = rmode[n] SUBSEP rbuild[n]
        }
    return n
}
# The rounds of mode with a record of each build, whose record numbers go into pair_i[1..n]
# (instrumented) and pair_u[1..n] (uninstrumented); returns n.
function paired_rounds(mode,    r, round, n) {
    n = 0; delete pair_i; delete pair_u
    for (r = 1; r <= nrounds[mode]; r++) {
        round = rounds[mode, r]
        if (!((mode, "instrumented", round) in at && (mode, "uninstrumented", round) in at)) continue
        pair_i[++n] = at[mode, "instrumented", round]; pair_u[n] = at[mode, "uninstrumented", round]
    }
    return n
}
'

summarize() { # summarize RESULTS_TSV: phase 1's two tables, in Markdown, and its verdicts
    awk -F'\t' -v minbusy="$MIN_BUSY" "$AWK_LIB"'
    NR == 1 { next }
    {
        errs[keep()] += $5
        rps[NR] = $4; cpu[NR] = $8; busy[NR] = $9
    }
    END {
        table_head("mode | build | median req/s | min–max req/s | spread (max−min)/median | median gateway CPU µs/req | median CPUs busy: gateway / load | median CPUs waiting: gateway / load | median p99 ms | errors", "llrrrrrrrr")
        nrows = table_rows()
        for (j = 1; j <= nrows; j++) {
            mode = rmode[j]; build = rbuild[j]; key = rkey[j]; n = count[key]
            delete x; column(key, 4, n, x); med[mode, build] = median(x, n)
            spread = 100 * (x[n] - x[1]) / med[mode, build]
            delete c; column(key, 8, n, c); cmed[mode, build] = median(c, n)
            delete p; column(key, 7, n, p)
            delete g; column(key, 9, n, g)
            delete l; column(key, 10, n, l)
            delete gw; column(key, 11, n, gw)
            delete lw; column(key, 12, n, lw)
            # Results from before the waits were recorded have no columns 11 and 12.
            waits = val[key, 1, 11] == "" ? "—" : sprintf("%.3f / %.3f", median(gw, n), median(lw, n))
            printf "| %s | %s | %.0f | %.0f–%.0f | %.1f %% | %.1f | %.2f / %.2f | %s | %.2f | %d |\n", \
                mode, build, med[mode, build], x[1], x[n], spread, cmed[mode, build], \
                median(g, n), median(l, n), waits, median(p, n), errs[key]
        }
        printf "\nPer-round figures pair the two builds of the same round, in the rounds where both gateways kept at least %s CPUs busy (saturated). The interval is the sign test'"'"'s for the median (>= 90 %% confidence; min … max below 5 rounds).\n\n", minbusy
        table_head("mode | loss of the medians (u − i) / u | rounds paired | per-round loss: median [interval] (min … max) | gateway CPU per request i / u, per round: median [interval] | target ≤ 2 %", "lrrrrl")
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            u = med[mode, "uninstrumented"]; i = med[mode, "instrumented"]
            n = 0; all = paired_rounds(mode)
            delete pl; delete pc
            for (r = 1; r <= all; r++) {
                ri = pair_i[r]; ru = pair_u[r]
                if (busy[ri] < minbusy || busy[ru] < minbusy) continue
                n++
                pl[n] = 100 * (rps[ru] - rps[ri]) / rps[ru]
                pc[n] = cpu[ru] > 0 ? cpu[ri] / cpu[ru] : 0
            }
            if (n == 0) {
                verdict[mode] = "undecided: no round was saturated"
                printf "| %s | %.1f %% | 0 of %d | — | — | %s |\n", mode, 100 * (u - i) / u, all, verdict[mode]
                continue
            }
            k = rank90(n)
            lmed = median(pl, n); cm = median(pc, n)
            lo = pl[k]; hi = pl[n + 1 - k]
            if (n < 5) verdict[mode] = "undecided: fewer than 5 rounds paired"
            else if (hi <= 2) verdict[mode] = "met"
            else if (lo > 2) verdict[mode] = "not met"
            else verdict[mode] = "undecided: the interval spans 2 %"
            line[mode] = sprintf("%.1f %% [%.1f, %.1f] over %d paired rounds", lmed, lo, hi, n)
            printf "| %s | %.1f %% | %d of %d | %.1f %% [%.1f, %.1f] (%.1f … %.1f) | %.3f [%.3f, %.3f] | %s |\n", \
                mode, 100 * (u - i) / u, n, all, lmed, lo, hi, pl[1], pl[n], cm, pc[k], pc[n + 1 - k], verdict[mode]
        }
        printf "\n"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            printf "VERDICT requests/s %s: %.0f instrumented, %.0f uninstrumented; loss per round %s; target <= 2 %%: %s\n", \
                mode, med[mode, "instrumented"], med[mode, "uninstrumented"], \
                (mode in line) ? line[mode] : "-", verdict[mode]
        }
    }' "$1"
}

summarize_latency() { # summarize_latency LATENCY_TSV: phase 2's tables, in Markdown, and verdicts
    awk -F'\t' -v goal="$GOAL_US" -v maxwait="$MAX_WAIT" "$AWK_LIB"'
    # columns: 1 round, 2 mode, 3 build, 4 rate, 5 rps, 6 errors, 7 p50_us, 8 p90_us, 9 p99_us,
    # 10 p999_us, 11 max_us, 12 lag_p99_us, 13 gateway_cpus, 14 load_cpus, 15 gateway_wait,
    # 16 load_wait
    NR == 1 { next }
    {
        errs[keep()] += $6
        p50[NR] = $7; p99[NR] = $9; failed[NR] = $6 > 0; waited[NR] = $15 > maxwait
    }
    END {
        table_head("mode | build | rate req/s | median p50 µs | median p90 µs | median p99 µs | median p99.9 µs | max µs (all rounds) | median send lag p99 µs | median CPUs busy: gateway / load | median CPUs waiting: gateway / load | errors", "llrrrrrrrrrr")
        nrows = table_rows()
        for (j = 1; j <= nrows; j++) {
            mode = rmode[j]; build = rbuild[j]; key = rkey[j]; n = count[key]
            if (n == 0) continue
            delete a; column(key, 7, n, a); q50 = median(a, n)
            delete a; column(key, 8, n, a); q90 = median(a, n)
            delete a; column(key, 9, n, a); q99 = median(a, n)
            delete a; column(key, 10, n, a); q999 = median(a, n)
            delete a; column(key, 11, n, a); sort(a, n); qmax = a[n]
            delete a; column(key, 12, n, a); lag = median(a, n)
            delete a; column(key, 13, n, a); gw = median(a, n)
            delete a; column(key, 14, n, a); ld = median(a, n)
            delete a; column(key, 15, n, a); gww = median(a, n)
            delete a; column(key, 16, n, a); ldw = median(a, n)
            printf "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f / %.2f | %.3f / %.3f | %d |\n", \
                mode, build, val[key, 1, 4], q50, q90, q99, q999, qmax, lag, gw, ld, gww, ldw, errs[key]
        }
        printf "\nAdded latency per request = instrumented − uninstrumented, per round (the two builds run back to back), then the median over the rounds with the sign test'"'"'s interval for it (>= 90 %% confidence; min … max, >= 93 %%, at 5 to 7 rounds). Rounds with errors, or where a gateway waited for a CPU more than %s of the time (something else ran on its core), are left out; fewer than 5 rounds left give no verdict.\n\n", maxwait
        table_head("mode | rounds paired (left out: errors, waited) | p50 added µs: median [interval] (min … max) | p99 added µs: median [interval] (min … max) | goal: p99 added ≤ " goal " µs", "lrrrl")
        overall = "met"
        for (m = 1; m <= nmodes; m++) {
            mode = modes[m]
            n = 0; all = paired_rounds(mode); nfailed = 0; nwaited = 0
            delete d50; delete d99
            for (r = 1; r <= all; r++) {
                ri = pair_i[r]; ru = pair_u[r]
                if (failed[ri] || failed[ru]) { nfailed++; continue }
                if (waited[ri] || waited[ru]) { nwaited++; continue }
                n++
                d50[n] = p50[ri] - p50[ru]
                d99[n] = p99[ri] - p99[ru]
            }
            paired = sprintf("%d of %d (%d, %d)", n, all, nfailed, nwaited)
            if (n == 0) {
                v = "inconclusive (noise)"
                printf "| %s | %s | — | — | %s |\n", mode, paired, v
                verdicts[mode] = sprintf("VERDICT latency %s: no round paired (%d with errors, %d waited for a CPU); goal p99 added <= %s us: %s", \
                    mode, nfailed, nwaited, goal, v)
                if (overall != "not met") overall = v
                continue
            }
            k = rank90(n)
            m50 = median(d50, n); m99 = median(d99, n)
            lo = d99[k]; hi = d99[n + 1 - k]
            if (n < 5) v = "inconclusive (noise)"
            else if (hi <= goal) v = "met"
            else if (lo > goal) v = "not met"
            else v = "inconclusive (noise)"
            if (v == "not met") overall = v
            else if (v != "met" && overall == "met") overall = v
            printf "| %s | %s | %+.1f [%+.1f, %+.1f] (%+.1f … %+.1f) | %+.1f [%+.1f, %+.1f] (%+.1f … %+.1f) | %s |\n", \
                mode, paired, m50, d50[k], d50[n + 1 - k], d50[1], d50[n], m99, lo, hi, d99[1], d99[n], v
            verdicts[mode] = sprintf("VERDICT latency %s: p50 added %+.1f us [%+.1f, %+.1f], p99 added %+.1f us [%+.1f, %+.1f] over %d paired rounds of %d; goal p99 added <= %s us: %s", \
                mode, m50, d50[k], d50[n + 1 - k], m99, lo, hi, n, all, goal, v)
        }
        printf "\n"
        for (m = 1; m <= nmodes; m++) print verdicts[modes[m]]
        printf "VERDICT latency: goal p99 added <= %s us per request (every mode): %s\n", goal, overall
    }' "$1"
}

summarize_all() { # summarize_all DIR: whatever phases DIR holds
    if [[ -f $1/results.tsv ]]; then
        echo "### Phase 1: requests/s at saturation"
        echo
        summarize "$1/results.tsv"
        echo
    fi
    if [[ -f $1/latency.tsv ]]; then
        echo "### Phase 2: added latency at a fixed rate"
        echo
        summarize_latency "$1/latency.tsv"
        echo
    fi
    if [[ -f $1/instructions/table.md ]]; then
        echo "### Instructions per request (valgrind)"
        echo
        cat "$1/instructions/table.md"
    fi
}
