# SPDX-License-Identifier: Apache-2.0
"""Resilience defaults: a backend is never taken out by its own application errors.

Passive ejection counts connect failures, resets and timeouts, and 5xx answers only with
`count_5xx: true`; at most `max_ejection_percent` of a backend's upstreams are ejected at once
and never the last usable one; an upstream ejected again soon after its last ejection stays
out longer each time (capped by `max_ejection_time`); below `panic_threshold` healthy
upstreams, load is spread over all of them; an HTTP check answered 404 by every upstream is
reported at start.
"""

import os
import signal
import socket
import sys
import time

from harness import IntegrationTest, base_config, cmdline, free_port, http_request, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                                "balancing"))
from balancing_support import WorkBackend  # noqa: E402

INTERVAL = 0.2


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ResilienceBase(IntegrationTest):
    def gateway(self, upstreams, workers=2, health=None, **backend):
        self.port, self.mport = free_port(), free_port()
        cfg = base_config(self.port, upstreams, metrics_port=self.mport)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["worker_processes"] = workers
        cfg["health_check"] = {"enabled": health is not None,
                               "interval": "%dms" % int(INTERVAL * 1000),
                               "timeout": "%dms" % int(INTERVAL * 1000),
                               "failure_threshold": 1, "success_threshold": 1}
        b = cfg["load_balancing"]["backends"]["default"]
        if health is not None:
            b["health_check"] = health
        b.update(backend)
        self.p = self.photon(cfg)
        return self.p

    def backend_health(self):
        r = http_request(self.mport, "GET", "/health")
        return r.json()["backends"]["default"]

    def upstream(self, address):
        for u in self.backend_health()["upstreams"]:
            if u["address"] == address:
                return u
        self.fail("no upstream %s in /health" % address)


class ResilienceTest(ResilienceBase):
    def test_application_5xx_never_ejects_by_default(self):
        b1 = self.backend()
        self.gateway([b1])
        for _ in range(10):
            self.assertEqual(http_request(self.port, "GET", "/status/500").status, 500)
        # Every other endpoint of the application still works.
        self.assertEqual(http_request(self.port, "GET", "/name").text, "b1")
        u = self.upstream(b1.address)
        self.assertEqual((u["state"], u["ejections"]), ("healthy", 0))

    def test_count_5xx_ejects_when_asked(self):
        b1, b2 = self.backend(), self.backend()
        self.gateway([b1, b2], workers=1, count_5xx=True, max_fails=2)
        # 5xx from both: one of them is ejected (never both: the last usable one stays).
        for _ in range(8):
            http_request(self.port, "GET", "/status/503")
        states = sorted(u["state"] for u in self.backend_health()["upstreams"])
        self.assertEqual(states, ["ejected", "healthy"])

    def test_single_upstream_connect_failures_never_eject_it(self):
        dead = "127.0.0.1:%d" % closed_port()
        self.gateway([dead], max_fails=1)
        for _ in range(5):
            self.assertEqual(http_request(self.port, "GET", "/x").status, 502)
        u = self.upstream(dead)
        self.assertEqual((u["state"], u["ejections"]), ("healthy", 0))

    def test_one_bad_upstream_of_three_is_ejected_and_no_more_than_half(self):
        b1 = self.backend()
        dead1, dead2 = "127.0.0.1:%d" % closed_port(), "127.0.0.1:%d" % closed_port()
        self.gateway([b1, dead1, dead2], workers=1, max_fails=1, fail_timeout="30s",
                     panic_threshold=0)
        for _ in range(12):
            http_request(self.port, "GET", "/name")
        h = self.backend_health()
        self.assertEqual(h["ejected"], 1, h)  # 2 of 3 would be more than max_ejection_percent
        self.assertEqual(self.upstream(b1.address)["state"], "healthy")

    def test_max_ejection_percent_100_ejects_every_bad_one(self):
        b1 = self.backend()
        dead1, dead2 = "127.0.0.1:%d" % closed_port(), "127.0.0.1:%d" % closed_port()
        self.gateway([b1, dead1, dead2], workers=1, max_fails=1, fail_timeout="30s",
                     max_ejection_percent=100, panic_threshold=0)
        for _ in range(12):
            http_request(self.port, "GET", "/name")
        self.assertEqual(self.backend_health()["ejected"], 2)
        self.assertEqual(self.upstream(b1.address)["state"], "healthy")
        for _ in range(6):
            self.assertEqual(http_request(self.port, "GET", "/name").text, "b1")

    def test_a_flapping_upstream_stays_out_longer_each_time(self):
        b1 = self.backend()
        dead = "127.0.0.1:%d" % closed_port()
        self.gateway([b1, dead], workers=1, max_fails=1, fail_timeout="1s",
                     max_ejection_time="10s")

        def eject():
            wait_until(lambda: http_request(self.port, "GET", "/name") is not None and
                       self.upstream(dead)["state"] == "ejected", timeout=10,
                       msg="never ejected")
            return self.upstream(dead)

        first = eject()
        self.assertEqual(first["ejections"], 1)
        self.assertLessEqual(first["ejected_ms_left"], 1000)
        wait_until(lambda: self.upstream(dead)["state"] != "ejected", timeout=5)
        second = eject()
        self.assertEqual(second["ejections"], 2)
        self.assertGreater(second["ejected_ms_left"], 1000)  # 2 × fail_timeout
        self.assertLessEqual(second["ejected_ms_left"], 2000)

    def panic_gateway(self, threshold):
        b1, b2, b3 = self.backend(), self.backend(), self.backend()
        self.gateway([b1, b2, b3], workers=1,
                     health={"check_type": "http", "path": "/health", "expected_status": 200},
                     max_fails=0, panic_threshold=threshold)
        for b in (b2, b3):
            b.set_health_status(503)
        wait_until(lambda: self.backend_health()["healthy"] == 1, timeout=10,
                   msg="checks never marked b2 and b3 unhealthy")
        time.sleep(0.2)  # past the worker's panic re-evaluation interval (100 ms)
        return b1, b2, b3

    def test_panic_spreads_load_over_all_upstreams(self):
        self.panic_gateway(50)  # 1 of 3 healthy: 33 % < 50 %
        names = {http_request(self.port, "GET", "/name").text for _ in range(12)}
        self.assertEqual(names, {"b1", "b2", "b3"})
        self.assertTrue(self.backend_health()["panic"])
        m = http_request(self.mport, "GET", "/metrics").text
        self.assertIn('gateway_backend_panic{backend="default"} 1', m)
        wait_until(lambda: "panic_threshold; spreading load" in self.p.stderr_text(), timeout=5)

    def test_without_panic_only_the_healthy_upstream_serves(self):
        self.panic_gateway(0)
        names = {http_request(self.port, "GET", "/name").text for _ in range(12)}
        self.assertEqual(names, {"b1"})
        self.assertFalse(self.backend_health()["panic"])

    def test_check_path_every_upstream_404s_is_reported(self):
        b1, b2 = self.backend(), self.backend()
        self.gateway([b1, b2], health={"check_type": "http", "path": "/status/404",
                                       "expected_status": 200})
        wait_until(lambda: "does not serve /status/404" in self.p.stderr_text(), timeout=10,
                   msg="no warning about the check path")
        self.assertEqual(self.p.stderr_text().count("does not serve /status/404"), 1)


class BudgetAndBreakerTest(ResilienceBase):
    def attempts(self, b):
        return sum(1 for q in b.request_log() if q.path == "/reset")

    def test_retry_budget_bounds_a_retry_storm(self):
        # Every attempt is reset by the upstream; the route may retry 3 times.
        for budget, expect_attempts in ((0, 4), (20, 1)):
            with self.subTest(retry_budget=budget):
                b1 = self.backend()
                self.port, self.mport = free_port(), free_port()
                cfg = base_config(self.port, [b1, b1.address, b1.address, b1.address],
                                  metrics_port=self.mport)
                cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "p%d.pid" % budget)
                cfg["health_check"]["enabled"] = False
                cfg["routes"][0]["retries"] = 3
                b = cfg["load_balancing"]["backends"]["default"]
                b.update(max_fails=0, panic_threshold=0, retry_budget=budget,
                         min_retry_concurrency=0)
                p = self.photon(cfg, name="photon%d" % budget)
                for _ in range(10):
                    self.assertEqual(http_request(self.port, "GET", "/reset").status, 502)
                self.assertEqual(self.attempts(b1), 10 * expect_attempts)
                m = http_request(self.mport, "GET", "/metrics").text
                denied = 10 if budget else 0
                self.assertIn("gateway_retries_denied_total %d\n" % denied, m)
                self.assertIn("gateway_retries_total %d\n" % (10 * (expect_attempts - 1)), m)
                p.stop()

    def hold(self, n, path="/hang"):
        """Opens n connections each with a request the upstream holds (never answers, by
        default)."""
        conns = []
        for _ in range(n):
            c = self.conn(self.port)
            c.send_request("GET", path)
            conns.append(c)
        return conns

    def test_max_requests_holds_across_workers(self):
        b1 = self.backend()
        self.gateway([b1], workers=2, max_requests=2, max_fails=0)
        held = self.hold(2, "/slow?delay_ms=2000")
        wait_until(lambda: b1.requests_served >= 2 or len(b1.request_log()) >= 2, timeout=5)
        for _ in range(3):
            r = http_request(self.port, "GET", "/name")
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.header("retry-after"), "1")
        m = http_request(self.mport, "GET", "/metrics").text
        self.assertIn("gateway_circuit_breaker_rejections_total 3\n", m)
        h = self.backend_health()
        self.assertEqual((h["inflight"], h["max_requests"], h["retrying"]), (2, 2, 0))
        for c in held:
            c.close()
        wait_until(lambda: http_request(self.port, "GET", "/name").status == 200, timeout=10,
                   msg="the limit never freed up after the held requests ended")

    def test_killed_worker_leaves_no_count_stuck(self):
        b1 = self.backend()
        p = self.gateway([b1], workers=2, max_requests=2, max_fails=0)
        held = self.hold(2)
        wait_until(lambda: len(b1.request_log()) >= 2, timeout=5)
        self.assertEqual(http_request(self.port, "GET", "/name").status, 503)
        for w in [w for w in p.worker_pids() if cmdline(w).startswith("photon: worker")]:
            os.kill(w, signal.SIGKILL)
        for c in held:
            c.close()
        # The dead workers' in-flight counts are reclaimed with their slots.
        wait_until(lambda: http_request(self.port, "GET", "/name").status == 200, timeout=10,
                   msg="a dead worker's requests still count against max_requests")


class RetryConditionsTest(ResilienceBase):
    def two(self, bad_status, **route):
        """Upstream "bad" answers /work with `bad_status`, "good" with 200; round robin starts
        with bad."""
        bad = WorkBackend("bad", status=bad_status).start()
        good = WorkBackend("good").start()
        self.addCleanup(bad.stop)
        self.addCleanup(good.stop)
        self.port, self.mport = free_port(), free_port()
        cfg = base_config(self.port, [bad, good], metrics_port=self.mport)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["worker_processes"] = 1
        cfg["health_check"]["enabled"] = False
        cfg["load_balancing"]["backends"]["default"].update(max_fails=0, panic_threshold=0)
        cfg["routes"][0].update(route)
        self.p = self.photon(cfg)
        return bad, good

    def test_503_is_retried_when_the_route_says_so(self):
        bad, good = self.two(503, retries=1, retry_on=["connect_failure", "503"])
        for _ in range(6):
            r = http_request(self.port, "GET", "/work")
            self.assertEqual((r.status, r.text), (200, "good"))
        # Round robin (the retry takes the next turn): every request met bad first, then good.
        self.assertEqual((bad.work_served, good.work_served), (6, 6))
        # POST is not idempotent: its 503 goes to the client.
        statuses = {http_request(self.port, "POST", "/work", body=b"x").status
                    for _ in range(4)}
        self.assertEqual(statuses, {200, 503})

    def test_503_is_relayed_by_default(self):
        bad, good = self.two(503, retries=1)
        statuses = [http_request(self.port, "GET", "/work").status for _ in range(4)]
        self.assertEqual(sorted(statuses), [200, 200, 503, 503])

    def test_per_try_timeout_and_retry_on_timeout(self):
        slow = WorkBackend("slow", delay_ms=3000).start()
        good = WorkBackend("good").start()
        self.addCleanup(slow.stop)
        self.addCleanup(good.stop)
        self.port, self.mport = free_port(), free_port()
        cfg = base_config(self.port, [slow, good], metrics_port=self.mport)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["worker_processes"] = 1
        cfg["health_check"]["enabled"] = False
        cfg["load_balancing"]["backends"]["default"].update(max_fails=0, panic_threshold=0)
        cfg["routes"][0].update(retries=1, per_try_timeout="300ms",
                                retry_on=["connect_failure", "reset", "timeout"],
                                retry_backoff="10ms")
        self.photon(cfg)
        for _ in range(4):
            t0 = time.monotonic()
            r = http_request(self.port, "GET", "/work", timeout=10)
            self.assertEqual((r.status, r.text), (200, "good"))
            self.assertLess(time.monotonic() - t0, 2.5)  # never the slow one's 3 s
        # Each request met slow first (the retry takes the next turn) and gave up on it at the
        # per-try timeout.
        self.assertEqual((slow.work_served, good.work_served), (4, 4))

    def test_unknown_retry_on_is_a_config_error(self):
        from harness import run_photon, write_config
        cfg = base_config(free_port(), ["127.0.0.1:1"])
        cfg["routes"][0]["retry_on"] = ["connect_failure", "5xx"]
        path = write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown retry_on condition '5xx'", err + out)
