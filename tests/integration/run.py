#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs Photon's integration tests (tests/integration/test_*.py, unittest) with per-test timeouts.

    /usr/bin/python3 tests/integration/run.py [options] [FILTER ...]

A FILTER selects tests whose id (``module.Class.method``) contains it; a path such as
``tests/integration/test_proxy.py`` selects that module. Several filters select the union.

Options:
    --list              print the selected test ids and exit
    --timeout S         per-test timeout in seconds (default $PHOTON_TEST_TIMEOUT or 60); a test
                        method can override it with ``@harness.timeout(S)``
    --require-photon    a missing photon binary fails tests instead of skipping them
    --keep-tmp          keep each test's temporary directory (configs, photon logs)
    --no-buffer         let tests print directly instead of attaching their output to failures
    -q, --quiet         print only failures and the summary
    --dir DIR           discover tests in DIR instead of this directory

A test that exceeds its timeout is interrupted (SIGALRM raises TestTimeout in it, so its
tearDown and cleanups still run) and counted as failed; the run continues. Should a test not
return within 30 s after that, the run kills every photon it started and exits.

The last line printed is always ``N passed, N failed`` (followed by ``, N skipped`` when some
were skipped). The exit status is 0 only if no test failed and at least one test ran.
"""

import sys

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

HARD_GRACE = 30.0


class TestTimeout(BaseException):
    """Raised inside a test that ran past its timeout. A BaseException so that a test's own
    ``except Exception`` does not swallow it; unittest still reports it as an error."""


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def _test_timeout(test, default):
    method = getattr(test, getattr(test, "_testMethodName", ""), None)
    return float(getattr(method, "photon_timeout", default))


class _Watchdog(threading.Thread):
    """Last resort when a test ignores TestTimeout: kill photons, report, exit."""

    def __init__(self, result):
        super().__init__(daemon=True, name="run-watchdog")
        self.result = result
        self.lock = threading.Lock()
        self.current = None
        self.deadline = None

    def begin(self, test, seconds):
        with self.lock:
            self.current, self.deadline = test, time.monotonic() + seconds + HARD_GRACE

    def end(self):
        with self.lock:
            self.current = self.deadline = None

    def run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                if self.deadline is None or time.monotonic() < self.deadline:
                    continue
                test = self.current
            out = self.result.out
            out.write("\nHARD TIMEOUT: %s did not stop after its timeout; aborting the run\n"
                      % test.id())
            try:
                import harness
                harness.kill_all_photons()
            except Exception as e:  # the run is being aborted anyway
                out.write("could not kill photon processes: %r\n" % (e,))
            self.result.outcome[test.id()] = "fail"
            self.result.print_reports()
            self.result.print_summary()
            out.flush()
            os._exit(1)


class _Result(unittest.TestResult):
    def __init__(self, out, default_timeout, quiet, buffer):
        super().__init__()
        self.out = out
        self.default_timeout = default_timeout
        self.quiet = quiet
        self.buffer = buffer
        self.outcome = {}     # test id -> "pass" | "fail" | "skip"
        self.reports = []     # (test id, text)
        self.skip_reason = {}
        self._started = set()
        self.t0 = 0.0
        self.timeout = default_timeout
        self.watchdog = _Watchdog(self)
        self.watchdog.start()
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum, frame):
        raise TestTimeout("test exceeded its %g s timeout" % self.timeout)

    def startTest(self, test):
        super().startTest(test)
        self._started.add(test.id())
        self.outcome[test.id()] = "pass"
        self.timeout = _test_timeout(test, self.default_timeout)
        self.t0 = time.monotonic()
        self.watchdog.begin(test, self.timeout)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.watchdog.end()
        super().stopTest(test)
        tid = test.id()
        state = self.outcome.get(tid, "pass")
        if self.quiet and state != "fail":
            return
        label = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[state]
        extra = ""
        if state == "skip":
            extra = "  (%s)" % self.skip_reason.get(tid, "")
        self.out.write("%s  %s  %.2fs%s\n" % (label, tid, time.monotonic() - self.t0, extra))
        self.out.flush()

    def _fail(self, test, err, kind):
        tid = test.id()
        self.outcome[tid] = "fail"
        text = self._exc_info_to_string(err, test)
        diag = getattr(test, "diagnostics", None)
        if callable(diag):
            try:
                d = diag()
            except Exception as e:
                d = "(diagnostics failed: %r)" % (e,)
            if d:
                text += "\n" + d + "\n"
        self.reports.append((tid, kind, text))
        if tid not in self._started:
            # Class or module fixture errors never pass through startTest/stopTest.
            self.out.write("FAIL  %s\n" % tid)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err, "ERROR")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, "FAIL")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            tid = test.id()
            self.outcome[tid] = "fail"
            self.reports.append((subtest.id(), "FAIL", self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        tid = test.id()
        if self.outcome.get(tid) != "fail":
            self.outcome[tid] = "skip"
        self.skip_reason[tid] = reason
        if tid not in self._started:
            self.out.write("SKIP  %s  (%s)\n" % (tid, reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcome[test.id()] = "fail"
        self.reports.append((test.id(), "UNEXPECTED SUCCESS",
                             "marked expectedFailure but passed\n"))

    def print_reports(self):
        for tid, kind, text in self.reports:
            self.out.write("\n" + "=" * 78 + "\n%s: %s\n" % (kind, tid) + "-" * 78 + "\n")
            self.out.write(text)
        if self.reports:
            self.out.write("\n")

    def print_summary(self):
        values = list(self.outcome.values())
        passed, failed, skipped = (values.count(k) for k in ("pass", "fail", "skip"))
        line = "%d passed, %d failed" % (passed, failed)
        if skipped:
            line += ", %d skipped" % skipped
        self.out.write(line + "\n")
        self.out.flush()
        return failed


def _matches(tid, filters):
    if not filters:
        return True
    failed_import = "unittest.loader._FailedTest."
    if tid.startswith(failed_import):
        # A module that failed to import is reported under its module name.
        tid = tid[len(failed_import):] + "."
    return any(f in tid for f in filters)


def _normalise_filter(f):
    base = os.path.basename(f)
    if base.endswith(".py"):
        return base[:-3] + "."
    return f


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run Photon integration tests.")
    ap.add_argument("filters", nargs="*", help="substring of test ids to select")
    ap.add_argument("--list", action="store_true", help="list selected tests and exit")
    ap.add_argument("--timeout", type=float,
                    default=float(os.environ.get("PHOTON_TEST_TIMEOUT", "60")),
                    help="per-test timeout in seconds (default 60)")
    ap.add_argument("--require-photon", action="store_true",
                    help="fail instead of skip when the photon binary is missing")
    ap.add_argument("--keep-tmp", action="store_true", help="keep temporary directories")
    ap.add_argument("--no-buffer", action="store_true", help="do not capture test output")
    ap.add_argument("-q", "--quiet", action="store_true", help="print failures and summary only")
    ap.add_argument("--dir", default=HERE, help="directory to discover test_*.py in")
    args = ap.parse_args(argv)

    if args.require_photon:
        os.environ["PHOTON_REQUIRE_BIN"] = "1"
    if args.keep_tmp:
        os.environ["PHOTON_KEEP_TMP"] = "1"

    test_dir = os.path.abspath(args.dir)
    if test_dir not in sys.path:
        sys.path.insert(0, test_dir)
    loader = unittest.TestLoader()
    discovered = loader.discover(start_dir=test_dir, pattern="test_*.py", top_level_dir=test_dir)
    filters = [_normalise_filter(f) for f in args.filters]
    selected = [t for t in _flatten(discovered) if _matches(t.id(), filters)]

    if args.list:
        for t in selected:
            print(t.id())
        return 0

    out = sys.stdout
    result = _Result(out, args.timeout, args.quiet, not args.no_buffer)
    if selected:
        suite = unittest.TestSuite(selected)
        try:
            suite.run(result)
        except KeyboardInterrupt:
            out.write("\ninterrupted\n")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            try:
                import harness
                harness.kill_all_photons()
            except Exception:  # nothing to clean up if harness failed to import
                pass
    else:
        sys.stderr.write("no tests selected\n")
    result.print_reports()
    failed = result.print_summary()
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
