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
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${PHOTON_BIN:-$ROOT/build/photon}
RUNS=5
DUR=4
WORKERS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BIN" ] || { echo "build the gateway first (make)" >&2; exit 1; }
S=$(mktemp -d /tmp/photon-metrics.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$S"' EXIT
conf() { # NAME PORT METRICS-BLOCK [EXTRA-ROUTES]
    cat >"$S/$1.yaml" <<YAML
server:
  http_addr: "127.0.0.1:$2"
  worker_processes: $WORKERS
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
routes:
  - id: all
    path: "/**"
    backend: bench
${4:-}
health_check:
  enabled: false
$3
YAML
}
conf off 19340 $'metrics:\n  prometheus: false'
conf on 19341 $'metrics:\n  prometheus: true\n  detailed_metrics: true\n  metrics_addr: "127.0.0.1:19342"'
routes=""
for i in $(seq 1 999); do
    routes+=$'  - id: "r'$i$'"\n    path: "/r'$i$'/**"\n    backend: bench\n'
done
conf many 19343 $'metrics:\n  prometheus: true\n  detailed_metrics: true\n  metrics_addr: "127.0.0.1:19344"' "$routes"
cpus=0
[ "$WORKERS" -gt 1 ] && cpus=0-$((WORKERS - 1))
for n in off on many; do
    taskset -c "$cpus" "$BIN" -c "$S/$n.yaml" & PIDS+=($!)
done
sleep 1
bash "$HERE/peers.sh" backends-up >/dev/null
curl -sf -o /dev/null http://127.0.0.1:19342/metrics || { echo "no metrics endpoint" >&2; exit 1; }
( while sleep 1; do curl -s -o /dev/null http://127.0.0.1:19342/metrics; done ) & PIDS+=($!)
OUT="$HERE/results/$(date +%Y%m%d-%H%M%S)-metrics"
bash "$HERE/peers.sh" --n "$WORKERS" --targets nginx --target metrics-off=19340 \
    --target metrics-on=19341 --bodies tiny --runs "$RUNS" --duration "$DUR" --out "$OUT"
# One scrape of 1 000 routes (each with its two histograms), after some traffic on each route.
for i in $(seq 1 999); do curl -s -o /dev/null "http://127.0.0.1:19343/r$i/x"; done
for k in 1 2 3 4 5; do
    curl -s -o /dev/null -w 'scrape of 1000 routes: %{time_total} s, %{size_download} bytes\n' \
        http://127.0.0.1:19344/metrics
done | tee -a "$OUT/summary.txt"
bash "$HERE/peers.sh" backends-down >/dev/null 2>&1 || true
