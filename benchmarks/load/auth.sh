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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=5
DUR=4
WORKERS=1
bench_parse_args --runs=RUNS --duration=DUR --workers=WORKERS -- "$@"
bench_need_bin
bench_scratch auth
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
    {
        bench_photon_head "$1" "$2" "$WORKERS"
        cat <<YAML
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
    } >"$S/$1.yaml"
}
conf plain 19330 "[]"
conf jwt 19331 "[auth]"
cpus=$(bench_cpus "$WORKERS")
taskset -c "$cpus" "$BIN" -c "$S/plain.yaml" & PIDS+=($!)
taskset -c "$cpus" "$BIN" -c "$S/jwt.yaml" & PIDS+=($!)
wait_port 19330
wait_port 19331
bench_backends_up
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" http://127.0.0.1:19331/)
[ "$code" = 200 ] || { echo "the JWT route answered $code, not 200" >&2; exit 1; }
bash "$HERE/peers.sh" --n "$WORKERS" --targets nginx --target plain=19330 --target jwt=19331 \
    --header "Authorization: Bearer $TOKEN" --bodies tiny --runs "$RUNS" --duration "$DUR" \
    --out "$HERE/results/$(date +%Y%m%d-%H%M%S)-auth"
bench_backends_down
