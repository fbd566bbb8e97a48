#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A JWT-protected route under load, on 127.0.0.1 only: Photon verifying an HS256 bearer token
# on every request (the first per worker verifies, the rest hit the verified cache) against
# the same Photon route without authentication and nginx proxying the same requests without
# authentication (nginx OSS has no JWT), in one peers.sh run with alternating rounds. wrk sends
# the same Authorization header to every target.
#
#   benchmarks/load/auth.sh [--runs 5] [--duration 4] [--workers 1]
#
# Results go to benchmarks/load/results/<time>-auth/.
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
S=$(mktemp -d /tmp/photon-auth.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$S"' EXIT
SECRET=bench-secret-0123456789abcdef-0123456789
# A typical token: HS256, about 300 bytes.
TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
p = b(json.dumps({"iss": "https://auth.example.com/", "sub": "user-1234567890", "aud": "api",
                  "exp": 4102444800, "iat": 1700000000, "scope": "read write",
                  "tenant": "acme"}, separators=(",", ":")).encode())
s = b(hmac.new(sys.argv[1].encode(), h + b"." + p, hashlib.sha256).digest())
print((h + b"." + p + b"." + s).decode())
PY
)
conf() { # NAME PORT MIDDLEWARE
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
    middleware: $3
middleware:
  authentication:
    auth_type: jwt
    jwt:
      algorithm: HS256
      secret: "$SECRET"
      issuer: "https://auth.example.com/"
      audience: "api"
health_check:
  enabled: false
metrics:
  prometheus: false
YAML
}
conf plain 19330 "[]"
conf jwt 19331 "[auth]"
cpus=0
[ "$WORKERS" -gt 1 ] && cpus=0-$((WORKERS - 1))
taskset -c "$cpus" "$BIN" -c "$S/plain.yaml" & PIDS+=($!)
taskset -c "$cpus" "$BIN" -c "$S/jwt.yaml" & PIDS+=($!)
sleep 1
bash "$HERE/peers.sh" backends-up >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" http://127.0.0.1:19331/)
[ "$code" = 200 ] || { echo "the JWT route answered $code, not 200" >&2; exit 1; }
bash "$HERE/peers.sh" --n "$WORKERS" --targets nginx --target plain=19330 --target jwt=19331 \
    --header "Authorization: Bearer $TOKEN" --bodies tiny --runs "$RUNS" --duration "$DUR" \
    --out "$HERE/results/$(date +%Y%m%d-%H%M%S)-auth"
bash "$HERE/peers.sh" backends-down >/dev/null 2>&1 || true
