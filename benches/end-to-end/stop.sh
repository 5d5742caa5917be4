# shellcheck shell=bash
# Stopping a gateway the benches started, sourced by benches/end-to-end/runs.sh and
# benches/end-to-end-instructions.sh.

# stop_process PID TENTHS: SIGINT (the gateway shuts down on it, as on Ctrl-C), up to TENTHS
# tenths of a second for it to exit, then SIGKILL; reaped either way. Nothing for an empty PID.
stop_process() {
    local pid=$1 tenths=$2
    [[ -n $pid ]] || return 0
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
