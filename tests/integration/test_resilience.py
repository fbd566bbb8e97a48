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
import socket
import time

from harness import IntegrationTest, base_config, free_port, http_request, wait_until

INTERVAL = 0.2


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ResilienceTest(IntegrationTest):
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
