# SPDX-License-Identifier: Apache-2.0
"""Rate limiting (`middleware.rate_limiting`, route name `rate_limit`; named limits
`middleware."rate_limit:NAME"`, route name `rate_limit:NAME`).

One GCRA bucket per key in shared memory, so a limit is exact whatever the number of workers:
from a full bucket, the admissions in a window of t seconds are burst + rate × t (±1). Covered:
exactness across 2 and 4 workers, the 429 and its fields, the fields of admitted responses
(`headers`, `legacy_headers`) and policy names, default bursts, a sub-request-per-second rate,
several limits on one route, shared and per-route scopes, header and (decoded) query keys in
every spelling, missing keys shared or refused, trusted proxies, a full key table with
`on_full: allow` and `deny` and idle keys giving their slot away, buckets kept across a reload
unless the limit's shape changes, a worker killed with SIGKILL under load, and `photon -t`
errors.

Every photon here has its own pid file (the shared-memory segment names derive from it) and is
stopped with SIGTERM at the end, so its segments are removed and no test sees another's
buckets.
"""

import os
import re
import signal
import threading
import time

from harness import (Conn, IntegrationTest, Raw, accepting_pid, base_config, cmdline,
                     free_port, http_request, pid_alive, run_photon, wait_until, write_config)

WORKER_TITLE = "photon: worker process"
RATELIMIT = re.compile(r'^"(?P<name>[^"]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def limit(**kw):
    """A limit block; keyword arguments replace or add keys. Small key tables keep the
    shared-memory segments small (the default max_keys is a 4 MiB table)."""
    d = {"requests_per_second": 5, "burst": 10, "key": "ip", "max_keys": 64}
    d.update(kw)
    for k in [k for k, v in d.items() if v is None]:
        del d[k]
    return d


def workers_of(p):
    return [w for w in p.worker_pids() if cmdline(w).startswith(WORKER_TITLE)]


class Load:
    """Result of RateLimitBase.hammer(): every request as (sent, answered, status), monotonic
    seconds, and the requests that failed at the socket level."""

    def __init__(self, records, errors):
        self.records = records
        self.errors = errors
        self.ok = sum(1 for r in records if r[2] == 200)
        self.refused = sum(1 for r in records if r[2] == 429)
        self.other = [r[2] for r in records if r[2] not in (200, 429)]

    def bounds(self, rate, burst):
        """(lowest, highest) admissions an exact limit can give for this load, starting from a
        full bucket.

        Upper: every admission was decided between the first request sent and the last admitted
        answer received, so at most burst + rate × (that span) (+1 for rounding).
        Lower: at the moment the last refused request was decided the bucket was empty, so
        everything that had accrued since the first decision had been handed out: at least
        burst + rate × (last refused sent - first answer received) (-1 for rounding)."""
        first_sent = min(r[0] for r in self.records)
        first_answer = min(r[1] for r in self.records)
        last_ok = max(r[1] for r in self.records if r[2] == 200)
        last_refused_sent = max(r[0] for r in self.records if r[2] == 429)
        lo = burst + rate * (last_refused_sent - first_answer) - 1
        hi = burst + rate * (last_ok - first_sent) + 1
        return lo, hi

    def __repr__(self):
        span = (max(r[1] for r in self.records) - min(r[0] for r in self.records)
                if self.records else 0)
        return "<load ok=%d refused=%d other=%r errors=%d span=%.3fs>" % (
            self.ok, self.refused, self.other[:5], len(self.errors), span)


class RateLimitBase(IntegrationTest):
    """photon in front of backend b1: route `api` (/api/**) lists `middleware`, route `other`
    (/other/**) lists `other_mw`, route `open` (/**) nothing. Health checks are off, so the
    backend's request log holds exactly the requests photon forwarded."""

    pid_name = "photon.pid"

    def config(self, limits, middleware=("rate_limit",), other_mw=(), workers=1, server=None,
               routes=None, pid_name=None):
        if not hasattr(self, "b"):
            self.b = self.backend()
        if not hasattr(self, "port"):
            self.port = free_port()
        cfg = base_config(self.port, [self.b])
        cfg["server"]["worker_processes"] = workers
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, pid_name or self.pid_name)
        cfg["server"].update(server or {})
        cfg["health_check"]["enabled"] = False
        cfg["middleware"] = limits
        cfg["routes"] = routes if routes is not None else [
            {"id": "api", "path": "/api/**", "backend": "default",
             "middleware": list(middleware)},
            {"id": "other", "path": "/other/**", "backend": "default",
             "middleware": list(other_mw)},
            {"id": "open", "path": "/**", "backend": "default"},
        ]
        return cfg

    def start(self, limits, fmt="yaml", **kw):
        """Starts photon on config(limits, **kw); stopped with SIGTERM after the test (before
        the harness's SIGKILL teardown) so that its shared-memory segments are removed."""
        # A pid file of its own: a fresh set of shared-memory segments.
        self.pid_name = "photon%d.pid" % len(self._photons)
        self.proxy = self.photon(self.config(limits, **kw), fmt=fmt)
        self.addCleanup(self.stop_quietly, self.proxy)
        return self.proxy

    @staticmethod
    def stop_quietly(p):
        try:
            if p.alive():
                p.stop(timeout=5)
        except Exception:  # noqa: BLE001 - the harness's close() still kills it
            pass

    def get(self, path="/api/x", headers=None, conn=None):
        if conn is not None:
            return conn.request("GET", path, headers=headers)
        return http_request(self.port, "GET", path, headers=headers)

    def status(self, path="/api/x", headers=None):
        return self.get(path, headers).status

    def statuses(self, n, path="/api/x", headers=None):
        with Conn(self.port) as c:
            return [c.request("GET", path, headers=headers).status for _ in range(n)]

    def keyed(self, value, path="/api/x"):
        return self.status(path, [("X-Key", value)])

    def forwarded(self):
        return len(self.b.request_log())

    def wait_workers(self, p, n, old=()):
        """Waits until the master runs `n` workers, none of them in `old`, and every pid in
        `old` has exited; returns the pids."""
        def done():
            now = workers_of(p)
            if len(now) != n or set(now) & set(old) or any(pid_alive(w) for w in old):
                return None
            return now
        return wait_until(done, timeout=10, msg="master never ran %d new worker(s) (old %r, now "
                          "%r)" % (n, list(old), p.worker_pids()))

    def reload(self, p, cfg, workers):
        old = self.wait_workers(p, workers)
        name, fmt = os.path.splitext(os.path.basename(p.config))
        write_config(os.path.dirname(p.config), cfg, fmt[1:], name=name)
        p.signal(signal.SIGHUP)
        return self.wait_workers(p, workers, old)

    def open_conns(self, n, pids, need=(), min_workers=1, limit_conns=64):
        """Opens at least `n` connections, and more (up to `limit_conns`) until they are held by
        at least `min_workers` distinct workers among `pids` and by every pid in `need`.
        Returns (conns, {conn: holder pid})."""
        conns, holder = [], {}

        def satisfied():
            held = set(holder.values())
            return (len(conns) >= n and len(held) >= min_workers
                    and all(x in held for x in need))

        while not satisfied() and len(conns) < limit_conns:
            c = self.conn(self.port)
            conns.append(c)
            holder[c] = wait_until(lambda: accepting_pid(pids, self.port, c), timeout=5,
                                   msg="no worker accepted the connection")
        held = set(holder.values())
        self.assertGreaterEqual(len(held), min_workers,
                                "%d connections all went to %r" % (len(conns), held))
        for x in need:
            self.assertIn(x, held, "worker %d accepted none of %d connections" % (x, len(conns)))
        return conns, holder

    def hammer(self, conns, seconds, path="/api/x", headers=None, at=None, reconnect=False):
        """Requests as fast as possible on every connection of `conns` (one thread each, all
        released at once) for `seconds`. `at=(delay, fn)` calls fn() `delay` s after the
        release. With `reconnect`, a connection that fails is replaced and the failure is
        recorded; without it a failure ends that thread and is recorded. Returns a Load."""
        records, errors = [], []
        lock = threading.Lock()
        go = threading.Barrier(len(conns) + 1)
        stop = [None]

        def run(c):
            mine = []
            try:
                go.wait(10)
                while time.monotonic() < stop[0]:
                    sent = time.monotonic()
                    try:
                        r = c.request("GET", path, headers=headers)
                    except Exception as e:  # noqa: BLE001 - reported by the caller
                        with lock:
                            errors.append(repr(e))
                        c.close()
                        if not reconnect:
                            return
                        c = Conn(self.port)
                        continue
                    mine.append((sent, time.monotonic(), r.status))
                    if not r.keep_alive:
                        c.close()
                        c = Conn(self.port)
            finally:
                with lock:
                    records.extend(mine)
                c.close()

        threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in conns]
        for t in threads:
            t.start()
        stop[0] = time.monotonic() + seconds
        go.wait(10)
        if at is not None:
            time.sleep(at[0])
            at[1]()
        for t in threads:
            t.join(seconds + 15)
        self.assertFalse(any(t.is_alive() for t in threads), "a load thread hung")
        return Load(records, errors)

    def assert_exact(self, load, rate, burst):
        self.assertGreater(load.refused, load.ok, "the load never exceeded the limit: %r" % load)
        lo, hi = load.bounds(rate, burst)
        msg = "admitted %d, an exact limit allows %.2f..%.2f: %r" % (load.ok, lo, hi, load)
        self.assertGreaterEqual(load.ok, lo, msg)
        self.assertLessEqual(load.ok, hi, msg)


# --------------------------------------------------------------------------------------------


class ExactnessTest(RateLimitBase):
    """The limit is the gateway's, not each worker's: with several workers deciding on the same
    key, admissions follow burst + rate × t."""

    RATE, BURST = 20, 10   # interval 50 ms, exact in microseconds

    def exact_across(self, workers):
        p = self.start({"rate_limiting": limit(requests_per_second=self.RATE,
                                               burst=self.BURST)}, workers=workers)
        pids = self.wait_workers(p, workers)
        conns, holder = self.open_conns(3 * workers, pids, min_workers=2)
        load = self.hammer(conns, 1.6)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assert_exact(load, self.RATE, self.BURST)
        # A per-worker bucket would admit about `workers` times as many.
        self.assertLess(load.ok, 2 * (self.BURST + self.RATE * 1.6), load)
        # Refused requests never reached the backend.
        self.assertEqual(self.forwarded(), load.ok)
        return load

    def test_two_workers(self):
        self.exact_across(2)

    def test_four_workers(self):
        self.exact_across(4)


class FieldsTest(RateLimitBase):
    """The 429 and the RateLimit fields."""

    def test_refusal_is_429_json_with_retry_after_and_ratelimit_fields(self):
        self.start({"rate_limiting": limit(requests_per_second=2, burst=3)})
        c = self.conn(self.port)
        for i in range(3):
            r = c.request("GET", "/api/x")
            self.assertEqual(r.status, 200, i)
            # Without `headers` admitted responses carry no rate-limit fields.
            for name in ("ratelimit-policy", "ratelimit", "x-ratelimit-limit", "retry-after"):
                self.assertNotIn(name, r.headers, (i, r.headers.pairs))
        r = c.request("GET", "/api/x")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("content-type"), "application/json")
        body = r.json()
        self.assertEqual(body, {"error": "rate limit exceeded", "status": 429,
                                "request_id": r.header("x-request-id")})
        # The next token is at most 0.5 s away: whole seconds, rounded up, at least 1.
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(r.headers.get_all("ratelimit-policy"), ['"default";q=2;w=1'])
        m = RATELIMIT.match(r.header("ratelimit"))
        self.assertIsNotNone(m, r.header("ratelimit"))
        self.assertEqual((m["name"], m["r"]), ("default", "0"))
        self.assertIn(int(m["t"]), (1, 2))   # 3 tokens at 2/s: at most 1.5 s until full
        # Without legacy_headers no X-RateLimit-* fields, even on a refusal.
        self.assertNotIn("x-ratelimit-limit", r.headers)
        self.assertNotIn("x-ratelimit-remaining", r.headers)
        # The connection stays open after a 429, and routes without the limit are not limited.
        self.assertEqual(c.request("GET", "/open").status, 200)
        self.assertEqual(c.request("GET", "/api/x").status, 429)
        self.assertEqual(self.forwarded(), 4)

    def test_headers_and_legacy_headers_on_admitted_responses(self):
        self.start({"rate_limiting": limit(requests_per_minute=30, requests_per_second=None,
                                           burst=3, headers=True, legacy_headers=True)})
        c = self.conn(self.port)
        # The upstream's own RateLimit fields are kept beside the gateway's; its X-RateLimit-*
        # fields are replaced.
        r = c.request("GET", "/api/x?header=RateLimit-Policy:%22up%22;q%3D5;w%3D1"
                             "&header=X-RateLimit-Limit:999&header=X-RateLimit-Remaining:77")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get_all("ratelimit-policy"),
                         ['"up";q=5;w=1', '"default";q=30;w=60'])
        self.assertEqual(r.headers.get_all("x-ratelimit-limit"), ["3"])
        self.assertEqual(r.headers.get_all("x-ratelimit-remaining"), ["2"])
        seen = [(r.header("ratelimit"), r.header("x-ratelimit-remaining"),
                 r.header("x-ratelimit-reset"))]
        for _ in range(2):
            r = c.request("GET", "/api/x")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get_all("ratelimit-policy"), ['"default";q=30;w=60'])
            self.assertEqual(r.header("x-ratelimit-limit"), "3")
            seen.append((r.header("ratelimit"), r.header("x-ratelimit-remaining"),
                         r.header("x-ratelimit-reset")))
        for i, (rl, remaining, reset) in enumerate(seen):
            m = RATELIMIT.match(rl)
            self.assertIsNotNone(m, rl)
            self.assertEqual(m["name"], "default")
            self.assertEqual(int(m["r"]), 2 - i, seen)           # requests left after this one
            self.assertEqual(remaining, m["r"], seen)
            # Seconds until full: one token per 2 s, (i + 1) tokens used.
            self.assertTrue(2 * (i + 1) - 1 <= int(m["t"]) <= 2 * (i + 1), seen)
            self.assertEqual(reset, m["t"], seen)
        r = c.request("GET", "/api/x")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("retry-after"), "2")
        self.assertEqual(r.header("ratelimit-policy"), '"default";q=30;w=60')
        self.assertEqual(r.header("x-ratelimit-limit"), "3")
        self.assertEqual(r.header("x-ratelimit-remaining"), "0")

    def test_policy_names_units_and_default_bursts(self):
        limits = {
            "rate_limit:login": {"requests_per_minute": 30, "key": "ip", "max_keys": 16},
            "rate_limit:ps": {"requests_per_second": 5, "key": "ip", "max_keys": 16},
            "rate_limit:ceil": {"requests_per_second": 1.2, "key": "ip", "max_keys": 16},
            "rate_limit:half": {"requests_per_second": 0.5, "key": "ip", "max_keys": 16},
            "rate_limit:hourly": {"requests_per_hour": 7, "key": "ip", "max_keys": 16},
        }
        routes = [{"id": name, "path": "/%s/**" % name, "backend": "default",
                   "middleware": ["rate_limit:" + name]}
                  for name in ("login", "ps", "ceil", "half", "hourly")]
        for l in limits.values():
            l.update(headers=True, legacy_headers=True)
        self.start(limits, routes=routes)
        want = {  # name: (policy, burst)
            "login": ('"login";q=30;w=60', "30"),       # per minute: the count as written
            "ps": ('"ps";q=5;w=1', "10"),               # per second: 2 × rate
            "ceil": (None, "3"),                        # ceil(2 × 1.2) (policy: see below)
            "half": ('"half";q=1;w=2', "1"),            # 0.5/s shows as 1 per 2 s
            "hourly": ('"hourly";q=7;w=3600', "7"),
        }
        for name, (policy, burst) in want.items():
            with self.subTest(limit=name):
                r = self.get("/%s/x" % name)
                self.assertEqual(r.status, 200)
                if policy is not None:
                    self.assertEqual(r.header("ratelimit-policy"), policy)
                self.assertEqual(r.header("x-ratelimit-limit"), burst)
                self.assertEqual(r.header("x-ratelimit-remaining"), str(int(burst) - 1))
                self.assertTrue(r.header("ratelimit").startswith('"%s";r=%d;'
                                                                  % (name, int(burst) - 1)),
                                r.header("ratelimit"))

    def test_fractional_rates_are_advertised_as_configured(self):
        # RateLimit-Policy is "the rate as configured": q requests per w seconds. A fractional
        # rate needs a q and w of the same ratio (2.5/s is q=5;w=2, not one per second).
        rates = {"a": ("requests_per_second", 2.5, 2.5),
                 "b": ("requests_per_second", 1.2, 1.2),
                 "c": ("requests_per_second", 0.4, 0.4),
                 "d": ("requests_per_minute", 90.5, 90.5 / 60)}
        limits = {"rate_limit:" + n: {unit: v, "key": "ip", "max_keys": 16, "headers": True}
                  for n, (unit, v, _) in rates.items()}
        routes = [{"id": n, "path": "/%s/**" % n, "backend": "default",
                   "middleware": ["rate_limit:" + n]} for n in rates]
        self.start(limits, routes=routes)
        wrong = {}
        for n, (unit, v, per_second) in rates.items():
            r = self.get("/%s/x" % n)
            self.assertEqual(r.status, 200)
            policy = r.header("ratelimit-policy")
            m = re.match(r'^"%s";q=(\d+);w=(\d+)$' % n, policy or "")
            self.assertIsNotNone(m, (n, r.status, policy))
            advertised = int(m[1]) / int(m[2])
            if abs(advertised - per_second) > 0.01 * per_second:
                wrong["%s: %s" % (unit, v)] = "%s (%.3f/s)" % (policy, advertised)
        self.assertEqual(wrong, {}, "RateLimit-Policy misstates fractional rates")

    def test_half_a_request_per_second(self):
        self.start({"rate_limiting": {"requests_per_second": 0.5, "key": "ip", "max_keys": 16}})
        c = self.conn(self.port)
        first_sent = time.monotonic()
        self.assertEqual(c.request("GET", "/api/x").status, 200)   # burst: ceil(2 × 0.5) = 1
        r = c.request("GET", "/api/x")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("retry-after"), "2")
        self.assertEqual(r.header("ratelimit-policy"), '"default";q=1;w=2')
        self.assertRegex(r.header("ratelimit"), r'^"default";r=0;t=2$')
        # Polling does not push the next admission back: it comes 2 s after the first.
        admitted = wait_until(lambda: c.request("GET", "/api/x").status == 200 and time.monotonic(),
                              timeout=6, interval=0.1, msg="never admitted again")
        self.assertGreaterEqual(admitted - first_sent, 1.99)
        self.assertEqual(c.request("GET", "/api/x").status, 429)
        self.assertEqual(self.forwarded(), 2)


class StackingTest(RateLimitBase):

    def test_two_limits_on_one_route_both_apply_in_list_order(self):
        self.start({"rate_limiting": limit(requests_per_hour=1, requests_per_second=None,
                                           burst=1),
                    "rate_limit:wide": limit(requests_per_hour=3, requests_per_second=None,
                                             burst=3)},
                   middleware=["rate_limit:wide", "rate_limit"], other_mw=["rate_limit:wide"])
        c = self.conn(self.port)
        got = []
        for _ in range(4):
            r = c.request("GET", "/api/x")
            got.append((r.status, r.header("ratelimit-policy")))
        # 1: both admit. 2, 3: the strict default refuses, but `wide` (listed first) has counted
        # them. 4: `wide` is empty and answers itself.
        self.assertEqual(got, [(200, None),
                               (429, '"default";q=1;w=3600'),
                               (429, '"default";q=1;w=3600'),
                               (429, '"wide";q=3;w=3600')])
        # A route listing only the generous limit shares its (now empty) bucket.
        self.assertEqual(self.status("/other/x"), 429)
        self.assertEqual(self.status("/open/x"), 200)
        # Only the admitted request and the open one reached the backend.
        self.assertEqual([q.path for q in self.b.request_log()], ["/api/x", "/open/x"])

    def test_limit_runs_before_auth_and_the_upstream(self):
        limits = {"rate_limiting": limit(requests_per_hour=2, requests_per_second=None,
                                         burst=2),
                  "authentication": {"auth_type": "api_key",
                                     "api_key": {"keys": ["s3cret"], "header": "X-API-Key"}}}
        self.start(limits, middleware=["auth", "rate_limit"])   # list order does not matter
        no_key = self.get("/api/x")
        self.assertEqual(no_key.status, 401)          # the limit admitted it, auth refused it
        self.assertEqual(self.status(headers=[("X-API-Key", "s3cret")]), 200)
        # The bucket is empty now: the limit answers before auth looks at the credentials.
        self.assertEqual(self.status(), 429)
        self.assertEqual(self.status(headers=[("X-API-Key", "s3cret")]), 429)
        self.assertEqual(self.status(headers=[("X-API-Key", "wrong")]), 429)
        self.assertEqual(self.forwarded(), 1)

    def test_fields_report_the_limit_with_fewest_requests_left(self):
        self.start({"rate_limiting": limit(requests_per_hour=2, requests_per_second=None,
                                           burst=2, headers=True),
                    "rate_limit:wide": limit(requests_per_minute=100, requests_per_second=None,
                                             burst=100, headers=True)},
                   middleware=["rate_limit:wide", "rate_limit"])
        r = self.get()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get_all("ratelimit-policy"), ['"default";q=2;w=3600'])
        self.assertRegex(r.header("ratelimit"), r'^"default";r=1;t=\d+$')


class KeysTest(RateLimitBase):

    def test_scope_shared_and_route(self):
        slow = limit(requests_per_hour=2, requests_per_second=None, burst=2)
        self.start({"rate_limiting": slow}, middleware=["rate_limit"], other_mw=["rate_limit"])
        # scope shared (the default): both routes drain one bucket per client.
        self.assertEqual([self.status("/api/a"), self.status("/other/b"), self.status("/api/c"),
                          self.status("/other/d")], [200, 200, 429, 429])
        self.proxy.stop()
        self.start({"rate_limiting": dict(slow, scope="route")},
                   middleware=["rate_limit"], other_mw=["rate_limit"])
        self.assertEqual(self.statuses(3, "/api/a"), [200, 200, 429])
        self.assertEqual(self.statuses(3, "/other/b"), [200, 200, 429])
        self.proxy.stop()
        # Another limit of the same shape has buckets of its own.
        self.start({"rate_limiting": slow, "rate_limit:twin": dict(slow)},
                   middleware=["rate_limit"], other_mw=["rate_limit:twin"])
        self.assertEqual(self.statuses(3, "/api/a"), [200, 200, 429])
        self.assertEqual(self.statuses(3, "/other/b"), [200, 200, 429])

    def test_key_route_is_one_bucket_per_route(self):
        self.start({"rate_limiting": limit(requests_per_hour=1, requests_per_second=None,
                                           burst=1, key="route")},
                   middleware=["rate_limit"], other_mw=["rate_limit"])
        self.assertEqual(self.status("/api/a", [("X-Forwarded-For", "203.0.113.1")]), 200)
        self.assertEqual(self.status("/api/b", [("X-Forwarded-For", "203.0.113.2")]), 429)
        self.assertEqual(self.status("/other/a"), 200)
        self.assertEqual(self.status("/other/a"), 429)

    def check_header_key(self):
        self.assertEqual(self.keyed("alice"), 200)
        self.assertEqual(self.keyed("alice"), 429)
        self.assertEqual(self.status(headers=[("x-KEY", "alice")]), 429)  # name: any case
        self.assertEqual(self.keyed("bob"), 200)
        self.assertEqual(self.keyed("Alice"), 200)                         # values: exact
        self.assertEqual(self.keyed("bob"), 429)

    def test_header_key_in_every_spelling(self):
        for spelling, fmt in (("header:X-Key", "yaml"), (Raw("!header X-Key"), "yaml"),
                              ({"header": "X-Key"}, "json"), ({"header": "X-Key"}, "toml")):
            with self.subTest(key=spelling, fmt=fmt):
                p = self.start({"rate_limiting": limit(requests_per_hour=1,
                                                       requests_per_second=None, burst=1,
                                                       key=spelling)}, fmt=fmt)
                self.check_header_key()
                p.stop()

    def test_header_key_first_field_and_missing_key_shared(self):
        self.start({"rate_limiting": limit(requests_per_hour=1, requests_per_second=None,
                                           burst=1, key="header:X-Key")})
        # The first field of the name is the key.
        self.assertEqual(self.status(headers=[("X-Key", "a"), ("X-Key", "b")]), 200)
        self.assertEqual(self.status(headers=[("X-Key", "a"), ("X-Key", "c")]), 429)
        self.assertEqual(self.keyed("b"), 200)
        # missing_key: share — requests without the header (or with an empty one) share one
        # bucket, apart from every keyed bucket.
        self.assertEqual(self.status(), 200)
        self.assertEqual(self.status(), 429)
        self.assertEqual(self.keyed(""), 429)
        self.assertEqual(self.keyed("c"), 200)
        self.assertEqual(self.forwarded(), 4)

    def test_missing_key_reject(self):
        self.start({"rate_limiting": limit(requests_per_hour=5, requests_per_second=None,
                                           key="header:X-Key", missing_key="reject")})
        c = self.conn(self.port)
        for headers in (None, [("X-Key", "")], [("X-Other", "a")]):
            r = c.request("GET", "/api/x", headers=headers)
            self.assertEqual(r.status, 400, headers)
            self.assertEqual(r.json(), {"error": "missing rate-limit key: header X-Key",
                                        "status": 400, "request_id": r.header("x-request-id")})
        # The connection stays open; a keyed request is served.
        self.assertEqual(c.request("GET", "/api/x", headers=[("X-Key", "a")]).status, 200)
        self.assertEqual(self.forwarded(), 1)

    def test_missing_query_key_reject(self):
        self.start({"rate_limiting": limit(requests_per_hour=5, requests_per_second=None,
                                           key="query_param:k", missing_key="reject")})
        for target in ("/api/x", "/api/x?k=", "/api/x?j=1"):
            r = self.get(target)
            self.assertEqual(r.status, 400, target)
            self.assertEqual(r.json()["error"], "missing rate-limit key: query parameter k")
        self.assertEqual(self.status("/api/x?k=1"), 200)
        self.assertEqual(self.forwarded(), 1)

    def test_query_key_is_compared_decoded(self):
        self.start({"rate_limiting": limit(requests_per_hour=1, requests_per_second=None,
                                           burst=1, key="query_param:api_key")})
        self.assertEqual(self.status("/api/x?api_key=abc"), 200)
        for target in ("/api/x?api_key=a%62c", "/api/x?api%5Fkey=abc", "/api/y?z=1&api_key=abc",
                       "/api/x?api_key=abc&api_key=zzz", "/api/x?api_key=%61%62%63"):
            self.assertEqual(self.status(target), 429, target)
        self.assertEqual(self.status("/api/x?api_key=abd"), 200)
        self.assertEqual(self.status("/api/x?api_key=zzz"), 200)   # only the first counts
        # form-urlencoded: "+" is a space.
        self.assertEqual(self.status("/api/x?api_key=a+b"), 200)
        self.assertEqual(self.status("/api/x?api_key=a%20b"), 429)
        # No parameter: the shared missing-key bucket.
        self.assertEqual(self.status("/api/x"), 200)
        self.assertEqual(self.status("/api/x?other=abc"), 429)

    def test_query_key_in_every_spelling(self):
        for spelling, fmt in ((Raw("!query_param k"), "yaml"), ({"query_param": "k"}, "json"),
                              ({"query_param": "k"}, "toml")):
            with self.subTest(key=spelling, fmt=fmt):
                p = self.start({"rate_limiting": limit(requests_per_hour=1,
                                                       requests_per_second=None, burst=1,
                                                       key=spelling)}, fmt=fmt)
                self.assertEqual([self.status("/api/x?k=a"), self.status("/api/x?k=%61"),
                                  self.status("/api/x?k=b"), self.status("/api/x?k=b")],
                                 [200, 429, 200, 429])
                p.stop()


class TrustedProxiesTest(RateLimitBase):

    SLOW = {"rate_limiting": limit(requests_per_hour=1, requests_per_second=None, burst=1)}

    def xff(self, value):
        return self.status(headers=[("X-Forwarded-For", value)])

    def test_trusted_peer_uses_rightmost_untrusted_forwarded_address(self):
        self.start(self.SLOW, server={"trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]})
        for client in ("203.0.113.1", "203.0.113.2"):
            self.assertEqual(self.xff(client), 200, client)
            self.assertEqual(self.xff(client), 429, client)
        # Left entries are not the client: a spoofed first hop does not give a new bucket.
        self.assertEqual(self.xff("198.51.100.7, 203.0.113.1"), 429)
        self.assertEqual(self.xff("203.0.113.3, 198.51.100.7"), 200)
        self.assertEqual(self.xff("198.51.100.7"), 429)
        # Trusted hops on the right are skipped.
        self.assertEqual(self.xff("203.0.113.4, 10.1.2.3"), 200)
        self.assertEqual(self.xff("203.0.113.4"), 429)
        # Several fields are one list.
        self.assertEqual(self.status(headers=[("X-Forwarded-For", "203.0.113.9"),
                                              ("X-Forwarded-For", "203.0.113.5")]), 200)
        self.assertEqual(self.xff("203.0.113.5"), 429)
        self.assertEqual(self.xff("203.0.113.9"), 200)

    def test_untrusted_peer_ignores_forwarded_for(self):
        self.start(self.SLOW)
        self.assertEqual(self.xff("203.0.113.1"), 200)
        self.assertEqual(self.xff("203.0.113.2"), 429)   # same peer 127.0.0.1: same bucket
        self.assertEqual(self.status(), 429)


class TableFullTest(RateLimitBase):
    """max_keys: 1 gives the minimum table of 16 slots; keys limited to one request an hour
    stay busy for the whole test, so the 17th key finds no slot."""

    def fill(self, on_full):
        p = self.start({"rate_limiting": {"requests_per_hour": 1, "burst": 1, "max_keys": 1,
                                          "key": "header:X-Key", "on_full": on_full}},
                       workers=2)
        for i in range(16):
            self.assertEqual(self.keyed("k%d" % i), 200, i)
        return p

    def test_on_full_deny(self):
        p = self.fill("deny")
        before = self.forwarded()
        for i in range(3):
            r = self.get(headers=[("X-Key", "new-%d" % i)])
            self.assertEqual(r.status, 429, i)
            self.assertEqual(r.json()["error"], "rate limit exceeded")
            self.assertGreaterEqual(int(r.header("retry-after")), 1)
        self.assertEqual(self.forwarded(), before)
        # Keys in the table are limited as usual.
        self.assertEqual(self.keyed("k3"), 429)
        p.wait_stderr(r"\[warn\].*key table full, 16 slots.*on_full: deny")

    def test_on_full_allow(self):
        p = self.fill("allow")
        # New keys are admitted, unlimited (the same new key twice).
        self.assertEqual([self.keyed("new"), self.keyed("new"), self.keyed("new-2")],
                         [200, 200, 200])
        self.assertEqual(self.keyed("k0"), 429)
        self.assertEqual(self.keyed("k15"), 429)
        p.wait_stderr(r"\[warn\].*key table full, 16 slots.*on_full: allow")

    def test_table_size_follows_max_keys(self):
        sizes = {"a": 1, "b": 8, "c": 9, "d": 100}   # slots: 16 at least, 2 × max_keys rounded
        limits = {"rate_limit:" + n: limit(max_keys=k) for n, k in sizes.items()}
        routes = [{"id": n, "path": "/%s/**" % n, "backend": "default",
                   "middleware": ["rate_limit:" + n]} for n in sizes]
        p = self.start(limits, routes=routes)
        slots = sorted(int(x) for x in re.findall(r"rate_limit(?::[\w-]+)?: (\d+) key slots",
                                                  p.stderr_text()))
        self.assertEqual(slots, [16, 16, 32, 256], p.stderr_text()[-2000:])

    def test_idle_keys_give_their_slots_to_new_keys(self):
        # One request per 2 s: a key's bucket is full again (the key idle) 2 s after its use.
        self.start({"rate_limiting": {"requests_per_second": 0.5, "burst": 1, "max_keys": 1,
                                      "key": "header:X-Key", "on_full": "deny"}})
        c = self.conn(self.port)
        filled = time.monotonic()
        for i in range(16):
            self.assertEqual(c.request("GET", "/api/x", headers=[("X-Key", "k%d" % i)]).status,
                             200, i)
        last = time.monotonic()
        busy = c.request("GET", "/api/x", headers=[("X-Key", "n0")]).status
        if time.monotonic() - filled < 1.8:   # all 16 keys are surely still busy
            self.assertEqual(busy, 429)
        time.sleep(max(0.0, last + 2.1 - time.monotonic()))
        # Every old key is idle now: 16 new keys take their slots, the 17th finds none.
        got = [c.request("GET", "/api/x", headers=[("X-Key", "n%d" % i)]).status
               for i in range(1, 18)]
        self.assertEqual(got, [200] * 16 + [429])


class StateTest(RateLimitBase):

    def test_reload_keeps_buckets_unless_the_shape_changes(self):
        shape = dict(requests_per_minute=1, requests_per_second=None, burst=2,
                     key="header:X-Key")
        p = self.start({"rate_limiting": limit(**shape)}, workers=2)
        self.assertEqual([self.keyed("a"), self.keyed("a"), self.keyed("a")], [200, 200, 429])
        self.assertEqual(self.keyed("b"), 200)
        # Same shape, other settings changed: the buckets stay.
        cfg = self.config({"rate_limiting": limit(headers=True, missing_key="reject",
                                                  on_full="deny", **shape)},
                          workers=2)
        cfg["routes"].insert(0, {"id": "extra", "path": "/extra", "backend": "default"})
        self.reload(p, cfg, 2)
        self.assertEqual(self.keyed("a"), 429)
        r = self.get(headers=[("X-Key", "b")])
        self.assertEqual(r.status, 200)                    # b had one request left
        self.assertRegex(r.header("ratelimit"), r'^"default";r=0;t=\d+$')   # new settings
        self.assertEqual(self.status(), 400)               # missing_key: reject now
        self.assertEqual(self.keyed("b"), 429)
        # Another rate: a new shape starts with full buckets.
        shape["requests_per_minute"] = 2
        self.reload(p, self.config({"rate_limiting": limit(**shape)}, workers=2), 2)
        self.assertEqual([self.keyed("a"), self.keyed("a"), self.keyed("a")], [200, 200, 429])
        self.assertEqual([self.keyed("b"), self.keyed("b"), self.keyed("b")], [200, 200, 429])

    def test_killed_worker_leaves_the_limit_exact(self):
        rate, burst = 20, 10
        p = self.start({"rate_limiting": limit(requests_per_second=rate, burst=burst)},
                       workers=2)
        pids = self.wait_workers(p, 2)
        victim = pids[0]
        conns, holder = self.open_conns(6, pids, need=[victim])
        killed = []

        def kill():
            os.kill(victim, signal.SIGKILL)
            killed.append(time.monotonic())

        load = self.hammer(conns, 1.2, at=(0.5, kill), reconnect=True)
        self.assertTrue(killed)
        # The victim's connections broke mid-load...
        self.assertTrue(load.errors, "no request failed: was the worker killed under load?")
        self.assertEqual(load.other, [])
        # ... and even then no more than the limit was admitted.
        lo, hi = load.bounds(rate, burst)
        self.assertLessEqual(load.ok, hi, (lo, hi, load))
        # The master starts a new worker.
        now = self.wait_workers(p, 2, old=[victim])
        fresh = [w for w in now if w not in pids]
        self.assertEqual(len(fresh), 1, (pids, now))
        # Once the bucket is full again the limit is exact, with the new worker deciding too.
        self.b.reset_stats()
        time.sleep(burst / rate + 0.2)
        conns, holder = self.open_conns(6, now, need=fresh, min_workers=2)
        load = self.hammer(conns, 1.2)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assert_exact(load, rate, burst)
        self.assertEqual(self.forwarded(), load.ok)


class CheckTest(RateLimitBase):

    def check(self, limits, middleware=("rate_limit",)):
        self.require_photon()
        path = write_config(self.tmpdir, self.config(limits, middleware=middleware),
                            name="check")
        return run_photon(["-t", "-c", path])

    def test_invalid_limits_are_config_errors(self):
        P = "middleware.rate_limiting."
        for bad, where, what in (
                (limit(requests_per_minute=60), P + "requests_per_minute", "one rate only"),
                (limit(requests_per_second=None), P + "requests_per_second", "missing"),
                (limit(on_full="maybe"), P + "on_full", "maybe"),
                (limit(requests_per_second=-1), P + "requests_per_second", "non-negative"),
                (limit(requests_per_second="fast"), P + "requests_per_second", "fast"),
                (limit(requests_per_second=1e-7), P + "requests_per_second", "too small"),
                (limit(max_keys=0), P + "max_keys", "out of range"),
                (limit(max_keys=16777217), P + "max_keys", "out of range"),
                (limit(burst=-1), P + "burst", "out of range"),
                (limit(burst=1.5), P + "burst", "integer"),
                (limit(scope="global"), P + "scope", "global"),
                (limit(missing_key="drop"), P + "missing_key", "drop"),
                (limit(key="cookie:sid"), P + "key", "cookie:sid"),
                (limit(key=None), P + "key", "missing")):
            with self.subTest(where=where, what=what):
                rc, out, err = self.check({"rate_limiting": bad})
                self.assertEqual(rc, 1, err)
                self.assertRegex(err, r"\[error\] [^\n]*:\d+:\d+: %s: [^\n]*%s"
                                 % (re.escape(where), re.escape(what)))
        rc, out, err = self.check({"rate_limit:login": limit(on_full="never")},
                                  middleware=["rate_limit:login"])
        self.assertEqual(rc, 1, err)
        self.assertIn('middleware.rate_limit:login.on_full', err)
        rc, out, err = self.check({"rate_limiting": limit()}, middleware=["rate_limit:nope"])
        self.assertEqual(rc, 1, err)
        self.assertIn("rate_limit:nope", err)
        rc, out, err = self.check({"rate_limiting": limit(requests_per_minute=10,
                                                          requests_per_second=None)})
        self.assertEqual(rc, 0, err)
