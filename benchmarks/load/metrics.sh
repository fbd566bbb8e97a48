#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cost of metrics under load, on 127.0.0.1 only: the same Photon route with metrics off (no
# Prometheus endpoint, no metrics listener: nothing is counted) and on (detailed_metrics: true,
# a metrics listener), next to nginx proxying the same requests, in one peers.sh run with
# alternating rounds. A scraper polls the metrics endpoint every second during the run, as
# Prometheus would. Then the time of one scrape of a configuration with 1 000 routes.
#
#   benchmarks/load/metrics.sh [--runs 5] [--duration 4] [--workers 1]
#
# Results go to benchmarks/load/results/<time>-metrics/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=5
DUR=4
WORKERS=1
bench_parse_args --runs=RUNS --duration=DUR --workers=WORKERS -- "$@"
bench_need_bin
bench_scratch metrics
conf() { # NAME PORT METRICS-BLOCK [EXTRA-ROUTES]
    {
        bench_photon_head "$1" "$2" "$WORKERS"
        cat <<YAML
routes:
  - id: all
    path: "/**"
    backend: bench
${4:-}
health_check:
  enabled: false
$3
YAML
    } >"$S/$1.yaml"
}
conf off 19340 $'metrics:\n  prometheus: false'
conf on 19341 $'metrics:\n  prometheus: true\n  detailed_metrics: true\n  metrics_addr: "127.0.0.1:19342"'
routes=""
for i in $(seq 1 999); do
    routes+=$'  - id: "r'$i$'"\n    path: "/r'$i$'/**"\n    backend: bench\n'
done
conf many 19343 $'metrics:\n  prometheus: true\n  detailed_metrics: true\n  metrics_addr: "127.0.0.1:19344"' "$routes"
cpus=$(bench_cpus "$WORKERS")
for n in off on many; do
    taskset -c "$cpus" "$BIN" -c "$S/$n.yaml" & PIDS+=($!)
done
for p in 19340 19341 19342 19343 19344; do wait_port "$p"; done
bench_backends_up
curl -sf -o /dev/null http://127.0.0.1:19342/metrics || { echo "no metrics endpoint" >&2; exit 1; }
( while sleep 1; do curl -s -o /dev/null http://127.0.0.1:19342/metrics; done ) & PIDS+=($!)
bench_out metrics
bash "$HERE/peers.sh" --n "$WORKERS" --targets nginx --target metrics-off=19340 \
    --target metrics-on=19341 --bodies tiny --runs "$RUNS" --duration "$DUR" --out "$OUT"
# One scrape of 1 000 routes (each with its two histograms), after some traffic on each route.
for i in $(seq 1 999); do curl -s -o /dev/null "http://127.0.0.1:19343/r$i/x"; done
for k in 1 2 3 4 5; do
    curl -s -o /dev/null -w 'scrape of 1000 routes: %{time_total} s, %{size_download} bytes\n' \
        http://127.0.0.1:19344/metrics
done | tee -a "$OUT/summary.txt"
bench_backends_down
