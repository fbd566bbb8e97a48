#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs every test suite (unit, integration, fuzz smoke) and ends with one line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
B=build
passed=0
failed=0
log=$B/test-logs
mkdir -p $log

# Unit tests (GoogleTest): count from its own summary.
echo "== unit tests"
$B/unit_tests --gtest_brief=1 > $log/unit.txt 2>&1
rc=$?
tail -n 25 $log/unit.txt
total=$(sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' $log/unit.txt | tail -n 1)
ok=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' $log/unit.txt | tail -n 1)
[ -n "$total" ] || total=0
[ -n "$ok" ] || ok=0
fails=$((total - ok))
if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then fails=1; fi   # crashed before its summary
passed=$((passed + total - fails))
failed=$((failed + fails))

# Integration tests: the real binary against real backends on 127.0.0.1.
integration() {  # log-name [run.py arguments]: adds the run's counts to the totals
    out=$log/$1.txt
    shift
    /usr/bin/python3 tests/integration/run.py "$@" > "$out" 2>&1
    rc=$?
    tail -n 40 "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    ip=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    if_=$(echo "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p')
    [ -n "$ip" ] || ip=0
    [ -n "$if_" ] || if_=1
    if [ "$rc" -ne 0 ] && [ "$if_" -eq 0 ]; then if_=1; fi
    passed=$((passed + ip))
    failed=$((failed + if_))
}
echo "== integration tests"
stamp=$B/test-logs/.shm-stamp
touch "$stamp"
integration integration
# The data path again with plain system calls instead of io_uring batches (server.io_uring off,
# also what a kernel without io_uring gets).
echo "== integration tests: data path without io_uring"
export PHOTON_TEST_IO_URING=0
integration integration-plain test_proxy test_smuggling
unset PHOTON_TEST_IO_URING
# Masters killed with SIGKILL by the tests cannot remove their shared-memory segments.
find /dev/shm -maxdepth 1 -name 'photon.*' -newer "$stamp" -delete 2>/dev/null

# Fuzz smoke: a short run of every fuzz target over its seed corpus.
for f in $B/fuzz/*_fuzz; do
    [ -f "$f" ] && [ -x "$f" ] || continue  # the fuzzer binaries, not corpus directories
    n=${f##*/}
    echo "== fuzz smoke: $n"
    corpus=$B/fuzz/$n.smoke-corpus
    mkdir -p "$corpus"
    if "$f" -max_total_time="${FUZZ_SMOKE_SECONDS:-10}" "$corpus" "tests/fuzz/corpus/${n%_fuzz}" > $log/$n.txt 2>&1; then
        passed=$((passed + 1)); tail -n 1 $log/$n.txt
    else
        failed=$((failed + 1)); tail -n 30 $log/$n.txt
    fi
done

# Manual pages: mandoc's lint, every level (style included), must have nothing to say.
for m in man/photon.8 man/photon.conf.5; do
    echo "== mandoc -Tlint $m"
    if ! command -v mandoc >/dev/null 2>&1; then
        echo "mandoc is not installed (contrib/install-deps.sh installs it)"
        failed=$((failed + 1))
    elif out=$(mandoc -Tlint "$m" 2>&1) && [ -z "$out" ]; then
        passed=$((passed + 1))
    else
        printf '%s\n' "$out" | head -n 20
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
