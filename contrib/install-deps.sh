#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages Photon needs. A no-op when they are all present.
#   contrib/install-deps.sh            build + test dependencies
#   contrib/install-deps.sh --bench    also the load-benchmark peers (wrk, nginx, HAProxy, ab, valgrind)
#   contrib/install-deps.sh --list     print the package list and exit
#   contrib/install-deps.sh --list-build   print the build dependencies only (debian/control's
#                                          Build-Depends, contrib/Dockerfile's build stage)
set -eu

BUILD="g++ make pkg-config libev-dev libssl-dev libyaml-cpp-dev libcjson-dev libtomlplusplus-dev \
libboost-dev libpcre2-dev libxxhash-dev prometheus-cpp-dev liburing-dev libcrypt-dev libhiredis-dev"
TEST="libgtest-dev libgmock-dev libbenchmark-dev python3 python3-jwt python3-cryptography apache2-utils openssl clang libclang-rt-14-dev procps prometheus chromium mandoc \
build-essential dpkg-dev debhelper lintian systemd testssl.sh redis-server redis-tools"
BENCH="wrk nginx haproxy apache2-utils valgrind"

pkgs="$BUILD $TEST"
case "${1:-}" in
    --bench) pkgs="$pkgs $BENCH" ;;
    --list) echo $pkgs $BENCH; exit 0 ;;
    --list-build) echo $BUILD; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--bench|--list|--list-build]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "photon: installing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "photon: need root to install:$missing" >&2; exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
