#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Whole-gateway load benchmark: Photon against nginx and HAProxy proxying the same two local
# backends, in one peers.sh run per worker count (alternating rounds, ratios to nginx measured in
# the same round). Everything stays on 127.0.0.1.
#
#   benchmarks/load/run.sh [--workers 1,2] [--bodies tiny,64k] [--runs 7] [--duration 5] [--aa]
#
# Results (raw.csv, summary.txt) go to benchmarks/load/results/<time>-w<N>/.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${PHOTON_BIN:-$ROOT/build/photon}
WORKERS=1,2
BODIES=tiny,64k
RUNS=7
DUR=5
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=$2; shift ;;
        --bodies) BODIES=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --aa) EXTRA+=(--aa) ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BIN" ] || { echo "build the gateway first (make)" >&2; exit 1; }
STAMP=$(date +%Y%m%d-%H%M%S)
export PHOTON_BENCH_DIR=$(mktemp -d)
trap 'kill $(cat "$PHOTON_BENCH_DIR/photon-bench.pid" 2>/dev/null) 2>/dev/null; rm -rf "$PHOTON_BENCH_DIR"' EXIT
for n in ${WORKERS//,/ }; do
    export PHOTON_WORKERS=$n
    cpus=0
    [ "$n" -gt 1 ] && cpus=0-$((n - 1))
    taskset -c "$cpus" "$BIN" -c "$HERE/photon-bench.yaml" -d
    sleep 1
    bash "$HERE/peers.sh" --n "$n" --targets nginx,haproxy --target photon=19200 \
        --bodies "$BODIES" --runs "$RUNS" --duration "$DUR" --out "$HERE/results/$STAMP-w$n" "${EXTRA[@]}"
    kill "$(cat "$PHOTON_BENCH_DIR/photon-bench.pid")"
    sleep 1
done
echo "summaries: $HERE/results/$STAMP-w*/summary.txt"
