# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# What the load scripts share: option parsing, the gateway binary, a scratch directory, the
# processes they start and stop, readiness, the peers.sh backends, Photon's configuration
# head, wrk runs and ratios. Sourced (bash) by each script after `set -euo pipefail`:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It sets HERE (benchmarks/load), ROOT (the repository) and BIN (PHOTON_BIN, else
# build/photon), and PIDS=() and S= for the functions below. Everything stays on 127.0.0.1;
# only processes a script started are stopped, by pid.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${PHOTON_BIN:-$ROOT/build/photon}
PIDS=()                 # started in the background, stopped by bench_cleanup (last first)
S=                      # scratch directory (bench_scratch), removed by bench_cleanup
BENCH_BACKENDS=0        # 1 once bench_backends_up started the peers.sh backends

# The script's header comment (from line 2 to the first line that is not a comment).
bench_usage() {
    awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"
}

# bench_parse_args SPEC... -- "$@"
# Each SPEC is NAMES=VAR: NAMES is one or more options separated by | ("--seconds|--duration");
# the option takes a value, stored in VAR. NAMES=@ARRAY makes a flag without a value that
# appends itself to ARRAY. -h/--help print the header comment and exit 0; an unknown option
# exits 2.
bench_parse_args() {
    local -A var=()
    local name names
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        IFS='|' read -r -a names <<<"${1%%=*}"
        for name in "${names[@]}"; do
            var[$name]=${1#*=}
        done
        shift
    done
    [ $# -gt 0 ] && shift
    while [ $# -gt 0 ]; do
        case "$1" in
            -h|--help) bench_usage; exit 0 ;;
        esac
        if [ -z "${var[$1]+set}" ]; then
            echo "unknown option $1" >&2
            exit 2
        fi
        if [[ ${var[$1]} == @* ]]; then
            local -n _bench_arr=${var[$1]#@}
            _bench_arr+=("$1")
            unset -n _bench_arr
        else
            [ $# -ge 2 ] || { echo "option $1 needs a value" >&2; exit 2; }
            printf -v "${var[$1]}" '%s' "$2"
            shift
        fi
        shift
    done
}

# bench_need_bin [MESSAGE]: exits 1 unless the gateway binary is there.
# shellcheck disable=SC2120  # MESSAGE is optional
bench_need_bin() {
    [ -x "$BIN" ] || { echo "${1:-build the gateway first (make)}" >&2; exit 1; }
}

# bench_need COMMAND...: exits 1 naming the first command that is missing.
bench_need() {
    local need
    for need in "$@"; do
        command -v "$need" >/dev/null ||
            { echo "missing $need (sh contrib/install-deps.sh --bench)" >&2; exit 1; }
    done
}

# bench_out NAME: OUT=benchmarks/load/results/<time>-NAME, created.
bench_out() {
    OUT=$HERE/results/$(date +%Y%m%d-%H%M%S)-$1
    mkdir -p "$OUT"
}

# bench_scratch NAME [DIR...]: S=a new directory ${TMPDIR:-/tmp}/photon-NAME.XXXXXX, with the
# given subdirectories, and traps: bench_cleanup on exit, including after INT or TERM.
bench_scratch() {
    S=$(mktemp -d "${TMPDIR:-/tmp}/photon-$1.XXXXXX")
    shift
    local d
    for d in "$@"; do mkdir -p "$S/$d"; done
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# bench_stop PID: TERM, up to 5 s for it to exit, then KILL.
bench_stop() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

# bench_stop_last: stops the process started last and forgets it.
bench_stop_last() {
    bench_stop "${PIDS[-1]}"
    unset 'PIDS[-1]'
}

# The EXIT trap: stops what the script started (last first), runs the script's bench_on_exit
# if it defines one, stops the peers.sh backends if bench_backends_up started them, and
# removes $S.
bench_cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do bench_stop "${PIDS[$i]}"; done
    if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
    if [ "$BENCH_BACKENDS" = 1 ]; then
        bash "$HERE/peers.sh" backends-down >/dev/null 2>&1 || true
    fi
    sleep 0.5
    [ -z "$S" ] || rm -rf "$S"
}

# bench_backends_up: the two peers.sh backends on 127.0.0.1:19001/19002, stopped on exit.
bench_backends_up() {
    BENCH_BACKENDS=1
    bash "$HERE/peers.sh" backends-up >/dev/null
}

# bench_backends_down: stops them now.
bench_backends_down() {
    bash "$HERE/peers.sh" backends-down >/dev/null 2>&1 || true
    BENCH_BACKENDS=0
}

# wait_port PORT [LOG...]: until something listens on 127.0.0.1:PORT (10 s at most); else
# exits 1, showing the end of the given logs.
wait_port() {
    local port=$1 i
    shift
    for ((i = 0; i < 100; i++)); do
        ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    if [ $# -gt 0 ]; then
        echo "nothing listens on $port; the logs say:" >&2
        tail -n 5 "$@" >&2 || true
    else
        echo "nothing listens on $port" >&2
    fi
    return 1
}

# bench_cpus N: the first N cpus as a taskset list (0, 0-1, ...).
bench_cpus() {
    if [ "$1" -gt 1 ]; then echo "0-$(($1 - 1))"; else echo 0; fi
}

# bench_photon_head NAME PORT WORKERS: the server block and the "bench" backend (the two
# peers.sh backends) of a Photon configuration with its pid file in $S/NAME.pid, no access
# log and warn-level logging; the caller appends the rest (more of the backend, routes...).
bench_photon_head() {
    cat <<YAML
server:
  http_addr: "127.0.0.1:$2"
  worker_processes: $3
  pid_file: "$S/$1.pid"
  max_connections: 100000
  access_log: "off"
  log_level: warn
load_balancing:
  backends:
    bench:
      upstreams:
        - address: "127.0.0.1:19001"
        - address: "127.0.0.1:19002"
YAML
}

# bench_wrk SECONDS [--cpus LIST] WRK-ARGS...: wrk -d SECONDS with the given arguments (pinned
# to the cpus LIST with taskset), bounded by an outer timeout of SECONDS + 10; its output,
# errors included, on stdout.
bench_wrk() {
    local secs=$1 pin=()
    shift
    if [ "${1:-}" = --cpus ]; then
        pin=(taskset -c "$2")
        shift 2
    fi
    timeout $((secs + 10)) "${pin[@]}" wrk -d "${secs}s" "$@" 2>&1
}

# wrk_rate: reads wrk's output, prints its requests per second.
wrk_rate() {
    awk '/Requests\/sec/ {print $2}'
}

# wrk_counts: reads wrk's output, prints "requests non-2xx/3xx seconds".
wrk_counts() {
    awk '/requests in/ {t = $1; s = $4; sub(/s,?$/, "", s)}
         /Non-2xx or 3xx responses/ {x = $5}
         END {printf "%d %d %s\n", t, x + 0, s}'
}

# bench_ratio A B: A / B to three decimals.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'
}

# bench_median VALUE...: the median (the lower middle one of an even count).
bench_median() {
    printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
