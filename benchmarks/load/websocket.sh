#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# WebSocket proxying under load, on 127.0.0.1 only. ws_bench (compiled here from ws_bench.cc
# into the results directory) runs an echo server and a client whose --conns connections each
# keep PIPELINE binary messages of SIZE bytes in flight; the client talks to the echo server
# through nginx (proxy_http_version 1.1, Upgrade/Connection headers) and through Photon (a /ws
# route with `websocket: {enabled: true}`), both with --workers workers on the same CPUs, and to
# the echo server directly for reference, in alternating rounds (direct nginx photon, then
# photon nginx direct, ...). Prints each target's median messages/s, MB/s, p50/p99 latency and
# proxy CPU per message, and photon/nginx as the median over rounds of the ratio measured in
# the same round.
#
#   benchmarks/load/websocket.sh [--workers 1] [--conns 50] [--seconds 5] [--rounds 3]
#                                [--size 1024[,65536]] [--pipelines 1,16] [--warmup 1]
#                                [--pin shared|none] [--client-threads T] [--nginx-buffer 64k]
#
# --pin shared (default, as peers.sh): the proxy's workers and the echo server share the first
# WORKERS cpus, the client gets the others; when WORKERS >= the cpu count nothing is pinned.
# A target whose WebSocket handshake fails (e.g. a Photon without the relay) is reported as
# such and skipped; the script then exits 1. nginx relays an upgraded connection through one
# proxy_buffer_size buffer per direction, one page (4k) by default, which is what large messages
# measure unless --nginx-buffer sets it. Needs nginx, g++, taskset, timeout. Results go to
# benchmarks/load/results/<time>-websocket/ (PHOTON_BIN overrides build/photon).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORKERS=1
CONNS=50
SECS=5
ROUNDS=3
SIZES=1024
PIPELINES=1,16
WARMUP=1
PIN=shared
CTHREADS=
NGINX_BUFFER=
ORIG_ARGS="$*"
bench_parse_args --workers=WORKERS --conns=CONNS "--seconds|--duration=SECS" --rounds=ROUNDS \
    "--size|--sizes=SIZES" "--pipelines|--pipeline=PIPELINES" --warmup=WARMUP --pin=PIN \
    --client-threads=CTHREADS --nginx-buffer=NGINX_BUFFER -- "$@"
for v in WORKERS CONNS SECS ROUNDS WARMUP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "--workers, --conns, --seconds, --rounds and --warmup take whole numbers" >&2; exit 2; }
done
[ "$WORKERS" -ge 1 ] && [ "$WORKERS" -le 64 ] || { echo "--workers must be 1..64" >&2; exit 2; }
[ "$SECS" -ge 1 ] && [ "$SECS" -le 120 ] || { echo "--seconds must be 1..120" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "--rounds must be 1..20" >&2; exit 2; }
[ "$CONNS" -ge 1 ] && [ "$CONNS" -le 10000 ] || { echo "--conns must be 1..10000" >&2; exit 2; }
[[ $SIZES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "--size takes byte counts, comma separated" >&2; exit 2; }
[[ $PIPELINES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "--pipelines takes numbers, comma separated" >&2; exit 2; }
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
IFS=, read -r -a PIPE_LIST <<<"$PIPELINES"
for s in "${SIZE_LIST[@]}"; do
    [ "$s" -le 16777216 ] || { echo "--size at most 16777216 (the route's max_message_size)" >&2; exit 2; }
done
[[ -z $NGINX_BUFFER || $NGINX_BUFFER =~ ^[0-9]+[kKmM]?$ ]] || { echo "--nginx-buffer takes an nginx size (64k)" >&2; exit 2; }
case "$PIN" in shared|none) ;; *) echo "--pin must be shared or none" >&2; exit 2 ;; esac
bench_need_bin "build the gateway first (make), or set PHOTON_BIN"
bench_need nginx g++ taskset timeout ss

PORT_ECHO=19401
PORT_NGINX=19410
PORT_PHOTON=19411
for p in $PORT_ECHO $PORT_NGINX $PORT_PHOTON; do
    if ss -ltnH "sport = :$p" | grep -q .; then echo "port $p is in use" >&2; exit 1; fi
done

NCPU=$(nproc)
if [ "$PIN" = shared ] && [ "$WORKERS" -lt "$NCPU" ]; then
    if [ "$WORKERS" -eq 1 ]; then PCPUS=0; else PCPUS=0-$((WORKERS - 1)); fi
    if [ "$WORKERS" -eq $((NCPU - 1)) ]; then CCPUS=$WORKERS; else CCPUS=$WORKERS-$((NCPU - 1)); fi
    : "${CTHREADS:=$((NCPU - WORKERS))}"
else
    PIN=none
    PCPUS=0-$((NCPU - 1))
    CCPUS=$PCPUS
    : "${CTHREADS:=$WORKERS}"
fi
[[ $CTHREADS =~ ^[1-9][0-9]*$ ]] || { echo "--client-threads must be a positive number" >&2; exit 2; }

bench_out websocket
bench_scratch ws logs tmp
bench_on_exit() { # the logs are kept with the results
    cp "$S"/logs/* "$OUT/" 2>/dev/null || true
}
tree_pids() { # a pid and its children (master + workers)
    [ -d "/proc/$1" ] || return 0
    { echo "$1"; ps --ppid "$1" -o pid= 2>/dev/null | tr -d ' ' || true; } | sort -un | tr '\n' ' '
}
cpu_ticks() { # utime + stime of the given pids, in clock ticks
    local p s t=0
    for p in "$@"; do
        s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        s=${s##*) }
        # shellcheck disable=SC2086
        set -- $s
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

# ----- ws_bench
WSB=$OUT/ws_bench
g++ -O2 -std=c++20 -Wall -Wextra -o "$WSB" "$HERE/ws_bench.cc"
"$WSB" selftest >/dev/null || { echo "ws_bench selftest failed" >&2; exit 1; }

# ----- configurations
cat >"$S/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $S/nginx.pid;
error_log $S/logs/nginx.error.log error;
events { worker_connections 16384; }
http {
    access_log off;
    tcp_nodelay on;
    client_body_temp_path $S/tmp/body;
    proxy_temp_path $S/tmp/proxy;
    fastcgi_temp_path $S/tmp/fastcgi;
    uwsgi_temp_path $S/tmp/uwsgi;
    scgi_temp_path $S/tmp/scgi;
    upstream echo {
        server 127.0.0.1:$PORT_ECHO;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX reuseport backlog=4096;
        location /ws {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$host;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
$([ -n "$NGINX_BUFFER" ] && printf '            %s\n' "proxy_buffer_size $NGINX_BUFFER;" \
    "proxy_buffers 4 $NGINX_BUFFER;" "proxy_busy_buffers_size $NGINX_BUFFER;")
        }
    }
}
EOF
cat >"$S/photon.yaml" <<EOF
server:
  http_addr: "127.0.0.1:$PORT_PHOTON"
  worker_processes: $WORKERS
  pid_file: "$S/photon.pid"
  max_connections: 100000
  access_log: "off"
  log_level: warn
load_balancing:
  backends:
    echo:
      upstreams:
        - address: "127.0.0.1:$PORT_ECHO"
routes:
  - id: ws
    path: "/ws"
    backend: echo
    websocket:
      enabled: true
      max_message_size: 16777216
health_check:
  enabled: false
metrics:
  prometheus: false
EOF
cp "$S/nginx.conf" "$OUT/nginx.conf"
nginx -t -q -p "$S/" -c "$S/nginx.conf" -e stderr 2>"$S/logs/nginx-test.log" ||
    { cat "$S/logs/nginx-test.log" >&2; echo "nginx refused the configuration" >&2; exit 1; }
cp "$S/photon.yaml" "$OUT/photon.yaml"
"$BIN" -t -c "$S/photon.yaml" >"$S/logs/photon-test.log" 2>&1 ||
    { cat "$S/logs/photon-test.log" >&2; echo "photon refused the configuration" >&2; exit 1; }

# ----- processes
taskset -c "$PCPUS" "$WSB" server "$PORT_ECHO" --threads "$WORKERS" 2>"$S/logs/echo.log" & PIDS+=($!)
ECHO_PID=$!
taskset -c "$PCPUS" nginx -p "$S/" -c "$S/nginx.conf" -e "$S/logs/nginx.error.log" & PIDS+=($!)
NGINX_PID=$!
taskset -c "$PCPUS" "$BIN" -c "$S/photon.yaml" 2>>"$S/logs/photon.log" & PIDS+=($!)
PHOTON_PID=$!
wait_port $PORT_ECHO "$S"/logs/*.log
wait_port $PORT_NGINX "$S"/logs/*.log
wait_port $PORT_PHOTON "$S"/logs/*.log
sleep 0.5

declare -A PORT=([direct]=$PORT_ECHO [nginx]=$PORT_NGINX [photon]=$PORT_PHOTON)
declare -A MASTER=([direct]=$ECHO_PID [nginx]=$NGINX_PID [photon]=$PHOTON_PID)
declare -A FAILED=()

{
    echo "date: $(date -Is)"
    echo "host: $NCPU cpus, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
    echo "versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $("$BIN" -V 2>&1 | head -1), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
    echo "load: ws_bench client, $CONNS connections, ${SECS}s after ${WARMUP}s warm-up, $ROUNDS rounds, sizes $SIZES, pipelines $PIPELINES, $CTHREADS client thread(s)"
    echo "nginx proxy_buffer_size: ${NGINX_BUFFER:-default (one page)}"
    echo "workers: $WORKERS (nginx worker_processes, photon worker_processes, echo server threads)"
    echo "pinning: $PIN (proxies + echo server cpus $PCPUS, client cpus $CCPUS)"
    echo "cmd: $0 $ORIG_ARGS"
} | tee "$OUT/meta.txt"

# ----- handshake probes: a target that cannot upgrade is reported and skipped
for t in direct nginx photon; do
    if out=$(timeout -k 2 15 "$WSB" client "127.0.0.1:${PORT[$t]}" --path /ws --conns 1 --seconds 0.3 \
        --warmup 0 --size 64 --handshake-timeout 3 2>&1); then
        echo "handshake through $t: ok"
    else
        why=$(printf '%s\n' "$out" | awk '/^ws_bench: / {sub(/^ws_bench: (handshake failed: )?/, ""); print; exit}')
        [ -n "$why" ] || why="client exited without a result (timeout?)"
        FAILED[$t]=$why
        echo "HANDSHAKE FAILED through $t (127.0.0.1:${PORT[$t]}/ws): $why" | tee -a "$OUT/failures.txt" >&2
    fi
done
[ -z "${FAILED[nginx]:-}" ] || echo "nginx cannot proxy the WebSocket: no ratios" >&2
[ -z "${FAILED[direct]:-}" ] || { echo "the echo server itself fails; giving up" >&2; exit 1; }

RAW=$OUT/raw.csv
echo "size,pipeline,round,target,msgs_per_s,mbytes_per_s,p50_us,p99_us,total_msgs,cpu_us_per_msg,cpu_pct,errors,status,idle_conns,close_timeouts,first_error" >"$RAW"
run_one() { # size pipeline round target
    local size=$1 pipe=$2 round=$3 t=$4 pids c0 c1 out rc=0 line status err
    local mps mbs p50 p99 total errs idle unclosed cpu_us cpu_pct
    # shellcheck disable=SC2207
    pids=($(tree_pids "${MASTER[$t]}"))
    c0=$(cpu_ticks "${pids[@]}")
    out=$(timeout -k 5 $((SECS + WARMUP + 20)) taskset -c "$CCPUS" "$WSB" client "127.0.0.1:${PORT[$t]}" \
        --path /ws --conns "$CONNS" --seconds "$SECS" --warmup "$WARMUP" --size "$size" \
        --pipeline "$pipe" --threads "$CTHREADS" 2>&1) || rc=$?
    c1=$(cpu_ticks "${pids[@]}")
    printf '### size=%s pipeline=%s round=%s target=%s rc=%s\n%s\n' "$size" "$pipe" "$round" "$t" "$rc" "$out" >>"$OUT/client.log"
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1 || true)
    val() { printf '%s\n' "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2; exit}'; }
    status=ok
    err=$(printf '%s\n' "$line" | sed -n 's/.* error="\(.*\)"$/\1/p; s/^RESULT error=handshake.* reason="\([^"]*\)".*/handshake: \1/p' | tr -d ',' | head -1)
    if [ -z "$line" ]; then
        status="no-result(rc=$rc)"
        line="RESULT"
    elif [[ $line == *" error="* || $line == "RESULT error="* ]]; then
        status="error(rc=$rc)"
    fi
    mps=$(val msgs_per_s); mbs=$(val mbytes_per_s); p50=$(val p50_us); p99=$(val p99_us)
    total=$(val total_msgs); errs=$(val errors); idle=$(val idle_conns); unclosed=$(val close_timeouts)
    read -r cpu_us cpu_pct < <(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${total:-0}" -v s=$((SECS + WARMUP)) \
        'BEGIN { printf "%s %.0f\n", (n > 0 ? sprintf("%.2f", 1e6 * d / hz / n) : "nan"), 100 * d / hz / s }')
    echo "$size,$pipe,$round,$t,${mps:-0},${mbs:-0},${p50:-nan},${p99:-nan},${total:-0},$cpu_us,$cpu_pct,${errs:-0},$status,${idle:-0},${unclosed:-0},$err" >>"$RAW"
    printf '[%s] size=%-6s pipeline=%-3s round %s %-7s %9s msgs/s %8s MB/s  p50 %7s us  p99 %8s us  %s cpu %s us/msg  %s\n' \
        "$(date +%H:%M:%S)" "$size" "$pipe" "$round" "$t" "${mps:-0}" "${mbs:-0}" "${p50:--}" "${p99:--}" \
        "$([ "$t" = direct ] && echo echo-server || echo proxy)" "$cpu_us" "$status$([ "${errs:-0}" != 0 ] && echo " errors=$errs")$([ "${idle:-0}" != 0 ] && echo " idle-connections=$idle")$([ "${unclosed:-0}" != 0 ] && echo " close-handshakes-unfinished=$unclosed")${err:+ ($err)}" >&2
}

for size in "${SIZE_LIST[@]}"; do
    for pipe in "${PIPE_LIST[@]}"; do
        for r in $(seq "$ROUNDS"); do
            if [ $((r % 2)) = 1 ]; then order="direct nginx photon"; else order="photon nginx direct"; fi
            for t in $order; do
                [ -z "${FAILED[$t]:-}" ] || continue
                run_one "$size" "$pipe" "$r" "$t"
            done
        done
    done
done

# ----- summary
{
    echo
    echo "columns: msgs/s, MB/s (echoed payload, one direction, 10^6 B), p50/p99 (queued to echoed) = medians over the"
    echo "  rounds; cpu us/msg = CPU of the proxy's processes (direct: the echo server's) per echoed message;"
    echo "  vs nginx = median over rounds of msgs/s / nginx msgs/s in the same round; runs = runs without errors;"
    echo "  idle = connections that got no echo in a run, unclosed = close handshakes unanswered after 2 s (sums over runs)"
    awk -F, -v conns="$CONNS" -v workers="$WORKERS" -v secs="$SECS" '
    function median(s,   a, n, i, j, x) { n = split(s, a, " ")
        for (i = 2; i <= n; i++) { x = a[i] + 0; j = i - 1
            while (j > 0 && a[j] + 0 > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
        if (n == 0) return "nan"
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    NR == 1 { next }
    { b = $1 SUBSEP $2; if (!(b in seen)) { seen[b] = 1; blocks[++nb] = b }
      k = b SUBSEP $4; n[k]++
      idle[k] += $14; uncl[k] += $15
      if ($13 != "ok") { bad[k]++; if (!(k in why)) why[k] = $16; next }
      ok[k]++; mps[k] = mps[k] " " $5; mbs[k] = mbs[k] " " $6; p50[k] = p50[k] " " $7; p99[k] = p99[k] " " $8
      if ($10 != "nan") cpu[k] = cpu[k] " " $10
      rr[b SUBSEP $3 SUBSEP $4] = $5 }
    END {
      for (i = 1; i <= nb; i++) {
        split(blocks[i], bx, SUBSEP)
        printf "\nsize=%s B  pipeline=%s  conns=%s  workers=%s  (%s s per run)\n", bx[1], bx[2], conns, workers, secs
        printf "%-8s %10s %9s %9s %9s %11s %9s %6s  %s\n", "target", "msgs/s", "MB/s", "p50 us", "p99 us", "cpu us/msg", "vs nginx", "runs", "notes"
        split("direct nginx photon", ts, " ")
        for (j = 1; j <= 3; j++) {
          k = blocks[i] SUBSEP ts[j]
          if (!(k in n)) continue
          if (!(k in ok)) { printf "%-8s %10s   all %d runs failed: %s (see client.log)\n", ts[j], "-", n[k], why[k]; continue }
          rl = ""
          for (r = 1; r <= 100; r++) {
            a = blocks[i] SUBSEP r SUBSEP ts[j]; c = blocks[i] SUBSEP r SUBSEP "nginx"
            if ((a in rr) && (c in rr) && rr[c] > 0) rl = rl " " rr[a] / rr[c]
          }
          printf "%-8s %10.0f %9.1f %9.1f %9.1f %11s %9s %6s  %s\n", ts[j], median(mps[k]), median(mbs[k]),
            median(p50[k]), median(p99[k]), (cpu[k] == "" ? "-" : sprintf("%.2f", median(cpu[k]))),
            (rl == "" ? "-" : sprintf("%.2fx", median(rl))), ok[k] "/" n[k], (idle[k] ? "idle=" idle[k] " " : "") (uncl[k] ? "unclosed=" uncl[k] " " : "") ((k in why) ? "failed: " why[k] : "")
        }
      }
    }' "$RAW"
    for t in "${!FAILED[@]}"; do
        echo
        echo "$t: not measured, the WebSocket handshake failed: ${FAILED[$t]}"
    done
} | tee "$OUT/summary.txt"
echo "results: $OUT"
if [ ${#FAILED[@]} -gt 0 ] || awk -F, 'NR > 1 && $13 != "ok" {bad = 1} END {exit !bad}' "$RAW"; then
    exit 1
fi
