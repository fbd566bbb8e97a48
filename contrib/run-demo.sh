#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make run`: starts the two demo backends conf/photon.yaml proxies to (127.0.0.1:9001 and
# 127.0.0.1:9002), then the gateway in the foreground. Ctrl-C stops everything it started.
set -u
BIN=${1:-build/photon}
CONF=${2:-conf/photon.yaml}
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for port in 9001 9002; do
    $PY tests/integration/backend.py --port $port --name "demo-$port" >/dev/null &
    pids="$pids $!"
done
sleep 0.5
echo "demo backends on 127.0.0.1:9001 and 127.0.0.1:9002"
echo "gateway: http://127.0.0.1:8080/   health: http://127.0.0.1:9090/health   (Ctrl-C stops)"
# A pid file under build/ lets `make run` work without root.
PHOTON_PID_FILE=${PHOTON_PID_FILE:-build/photon.pid}
export PHOTON_PID_FILE
"$BIN" -c "$CONF" &
gw=$!
pids="$pids $gw"
wait $gw
