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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORKERS=1,2
BODIES=tiny,64k
RUNS=7
DUR=5
EXTRA=()
bench_parse_args --workers=WORKERS --bodies=BODIES --runs=RUNS --duration=DUR --aa=@EXTRA -- "$@"
bench_need_bin
STAMP=$(date +%Y%m%d-%H%M%S)
bench_scratch bench
# photon-bench.yaml puts its pid file in PHOTON_BENCH_DIR and takes PHOTON_WORKERS workers.
export PHOTON_BENCH_DIR=$S
bench_on_exit() { # the gateway runs as a daemon
    kill "$(cat "$S/photon-bench.pid" 2>/dev/null)" 2>/dev/null
}
for n in ${WORKERS//,/ }; do
    export PHOTON_WORKERS=$n
    taskset -c "$(bench_cpus "$n")" "$BIN" -c "$HERE/photon-bench.yaml" -d
    wait_port 19200
    bash "$HERE/peers.sh" --n "$n" --targets nginx,haproxy --target photon=19200 \
        --bodies "$BODIES" --runs "$RUNS" --duration "$DUR" --out "$HERE/results/$STAMP-w$n" "${EXTRA[@]}"
    kill "$(cat "$S/photon-bench.pid")"
    sleep 1
done
echo "summaries: $HERE/results/$STAMP-w*/summary.txt"
