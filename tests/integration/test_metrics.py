# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics on the metrics listener (`metrics.metrics_addr`, `metrics_path`).

Counters live in shared memory, so every figure is the sum over all workers and survives a
worker killed with SIGKILL and a reload. Covered: exact counts after a known mix of requests
(hits, 404s, upstream 5xx, connect failures, an upstream timeout, two workers, one of them
killed and respawned in between) in the original's families and the per-route, per-upstream
ones; histogram counts equal to request counts; `promtool check metrics`; a real Prometheus
scraping the endpoint and answering a PromQL rate; the listener's paths (404 elsewhere, /ready,
OpenMetrics on request, nothing on the main listener unless expose_on_main); reload counters
and counters kept across a reload; detailed_metrics off; WebSocket and rate-limit families.

promtool and prometheus come from Debian's `prometheus` package; without them those two tests
are skipped, or fail when $CI is set.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

from harness import (Conn, IntegrationTest, base_config, cmdline, free_port, http_request,
                     timeout, wait_until, write_config)

WORKER_TITLE = "photon: worker process"


def parse_metrics(text):
    """Prometheus text 0.0.4 -> {(name, frozenset(labels.items())): value}, and the TYPE map."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            body, value = rest.rsplit("} ", 1)
            labels = {}
            i = 0
            while i < len(body):
                eq = body.index("=", i)
                key = body[i:eq]
                j = eq + 2
                val = []
                while body[j] != '"':
                    if body[j] == "\\":
                        j += 1
                        val.append({"n": "\n"}.get(body[j], body[j]))
                    else:
                        val.append(body[j])
                    j += 1
                labels[key] = "".join(val)
                i = j + 1
                if i < len(body) and body[i] == ",":
                    i += 1
        else:
            name, value = line.split(" ", 1)
            labels = {}
        value = value.split(" ")[0]
        samples[(name, frozenset(labels.items()))] = float(value)
    return samples, types


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples, self.types = parse_metrics(text)

    def get(self, name, **labels):
        """The sample's value; 0 when absent (counters not yet touched are emitted, but a
        per-route method/class pair only once it happened)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name):
        return any(k[0] == name for k in self.samples)

    def sum(self, name, **labels):
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))


def in_ci():
    return bool(os.environ.get("CI"))


class MetricsBase(IntegrationTest):
    def config(self, port, mport, backends, detailed=True, workers=2):
        cfg = base_config(port, [backends[0]], metrics_port=mport)
        cfg["server"]["worker_processes"] = workers
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["enabled"] = False
        cfg["metrics"]["detailed_metrics"] = detailed
        b = cfg["load_balancing"]["backends"]
        # Upstream 5xx and connect failures must not eject the upstreams mid-test.
        b["default"]["max_fails"] = 0
        b["dead"] = {"upstreams": [{"address": "127.0.0.1:%d" % closed_port()}], "max_fails": 0}
        b["slow"] = {"upstreams": [{"address": backends[0].address, "read_timeout": "300ms"}],
                     "max_fails": 0}
        cfg["routes"] = [
            {"id": "api", "path": "/api/**", "backend": "default", "strip_prefix": "/api"},
            {"id": "dead", "path": "/dead/**", "backend": "dead"},
            {"id": "slow", "path": "/slow/**", "backend": "slow", "strip_prefix": "/slow"},
        ]
        return cfg

    def scrape(self, mport, path="/metrics", headers=None):
        r = http_request(mport, "GET", path, headers=headers)
        self.assertEqual(r.status, 200, r.body[:200])
        return r

    def metrics(self, mport):
        return Metrics(self.scrape(mport).body.decode())

    def workers(self, p):
        return [w for w in p.worker_pids() if cmdline(w).startswith(WORKER_TITLE)]


def closed_port():
    """A 127.0.0.1 port nothing listens on (connects are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class MetricsCountTest(MetricsBase):
    def send_mix(self, port, n_ok, n_post, n_404, n_503, n_dead, n_slow):
        for _ in range(n_ok):
            self.assertEqual(http_request(port, "GET", "/api/fixed?size=100").status, 200)
        for _ in range(n_post):
            r = http_request(port, "POST", "/api/echo", body=b"x" * 1000)
            self.assertEqual(r.status, 200)
        for _ in range(n_404):
            self.assertEqual(http_request(port, "GET", "/nothing/here").status, 404)
        for _ in range(n_503):
            self.assertEqual(http_request(port, "GET", "/api/status/503").status, 503)
        for _ in range(n_dead):
            self.assertEqual(http_request(port, "GET", "/dead/x").status, 502)
        for _ in range(n_slow):
            self.assertEqual(http_request(port, "GET", "/slow/slow?delay_ms=3000").status, 504)

    @timeout(90)
    def test_counts_are_exact_across_workers_and_a_killed_worker(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        p = self.photon(self.config(port, mport, [b1]))
        wait_until(lambda: len(self.workers(p)) == 2, timeout=10)
        self.send_mix(port, n_ok=12, n_post=2, n_404=3, n_503=2, n_dead=1, n_slow=1)
        # A worker dies at once; the master starts another. Nothing counted so far is lost.
        victim = self.workers(p)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in self.workers(p) and len(self.workers(p)) == 2,
                   timeout=10)
        self.send_mix(port, n_ok=8, n_post=1, n_404=2, n_503=2, n_dead=1, n_slow=0)
        m = self.metrics(mport)

        ok, post, nf, s503, dead, slow = 20, 3, 5, 4, 2, 1
        total = ok + post + nf + s503 + dead + slow
        self.assertEqual(m.get("gateway_requests_total"), total, m.text[:2000])
        self.assertEqual(m.get("gateway_request_duration_seconds_count"), total)
        self.assertEqual(m.get("gateway_request_duration_seconds_bucket", le="+Inf"), total)
        self.assertEqual(m.get("gateway_response_status_total", **{"class": "2xx"}), ok + post)
        self.assertEqual(m.get("gateway_response_status_total", **{"class": "4xx"}), nf)
        self.assertEqual(m.get("gateway_response_status_total", **{"class": "5xx"}),
                         s503 + dead + slow)
        self.assertEqual(m.get("gateway_requests_in_flight"), 1)  # the scrape itself
        # Gateway-made 5xx: the 502s and the 504 (the upstream's own 503s are not ours).
        self.assertEqual(m.get("gateway_errors_total"), dead + slow)
        self.assertEqual(m.get("gateway_worker_restarts_total"), 1)
        self.assertEqual(m.get("gateway_workers"), 2)

        # Upstream side: every proxied request is one attempt (no retries configured).
        proxied = ok + post + s503 + dead + slow
        self.assertEqual(m.get("gateway_upstream_requests_total"), proxied)
        self.assertEqual(m.get("gateway_upstream_errors_total"), s503 + dead + slow)
        self.assertEqual(m.get("gateway_upstream_duration_seconds_count"), proxied)
        up = b1.address
        self.assertEqual(m.get("gateway_backend_upstream_requests_total", backend="default",
                               upstream=up), ok + post + s503)
        self.assertEqual(m.get("gateway_backend_upstream_errors_total", backend="default",
                               upstream=up, kind="5xx"), s503)
        self.assertEqual(m.sum("gateway_backend_upstream_errors_total", backend="dead",
                               kind="connect"), dead)
        self.assertEqual(m.get("gateway_backend_upstream_errors_total", backend="slow",
                               upstream=up, kind="timeout"), slow)

        # Per route, method and status class.
        rq = "gateway_route_requests_total"
        self.assertEqual(m.get(rq, route="api", method="GET", **{"class": "2xx"}), ok)
        self.assertEqual(m.get(rq, route="api", method="POST", **{"class": "2xx"}), post)
        self.assertEqual(m.get(rq, route="api", method="GET", **{"class": "5xx"}), s503)
        self.assertEqual(m.get(rq, route="dead", method="GET", **{"class": "5xx"}), dead)
        self.assertEqual(m.get(rq, route="slow", method="GET", **{"class": "5xx"}), slow)
        self.assertEqual(m.sum(rq), total - nf)  # the 404s took no route: totals only
        for route, n in (("api", ok + post + s503), ("dead", dead), ("slow", slow)):
            self.assertEqual(m.get("gateway_route_request_duration_seconds_count", route=route),
                             n, route)
            self.assertEqual(m.get("gateway_route_upstream_duration_seconds_count", route=route),
                             n, route)
        self.assertEqual(m.get("gateway_route_errors_total", route="dead"), dead)
        self.assertEqual(m.get("gateway_route_errors_total", route="api"), 0)
        # The 504 waited for the 300 ms read timeout: never in a bucket below it (and well
        # under the 3 s the upstream would have taken).
        self.assertEqual(m.get("gateway_route_request_duration_seconds_bucket", route="slow",
                               le="0.25"), 0)
        self.assertEqual(m.get("gateway_route_request_duration_seconds_bucket", route="slow",
                               le="2.5"), 1)
        self.assertEqual(m.get("gateway_route_bytes_received_total", route="api"), post * 1000)
        # Cumulative buckets never decrease.
        prev = 0
        for le in ("0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
                   "2.5", "5", "10", "+Inf"):
            v = m.get("gateway_request_duration_seconds_bucket", le=le)
            self.assertGreaterEqual(v, prev, le)
            prev = v

        # Health and state per upstream, bounded by the configuration.
        self.assertEqual(m.get("gateway_healthy_upstreams"), 3)
        self.assertEqual(m.get("gateway_unhealthy_upstreams"), 0)
        self.assertEqual(m.get("gateway_upstream_up", backend="default", upstream=up), 1)
        self.assertEqual(m.get("gateway_upstream_state", backend="default", upstream=up,
                               state="healthy"), 1)
        info = [dict(k[1]) for k in m.samples if k[0] == "gateway_build_info"]
        self.assertEqual(len(info), 1)
        self.assertRegex(info[0]["version"], r"^\d+\.\d+\.\d+")

    def test_scrapes_are_not_counted_and_gauges_follow_connections(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        self.photon(self.config(port, mport, [b1], workers=1))
        for _ in range(3):
            self.metrics(mport)
        http_request(mport, "GET", "/health")
        http_request(mport, "GET", "/dashboard/api")
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_requests_total"), 0)
        with Conn(port) as c1, Conn(port) as c2:
            self.assertEqual(c1.request("GET", "/api/fixed?size=10").status, 200)
            self.assertEqual(c2.request("GET", "/api/fixed?size=10").status, 200)
            m = self.metrics(mport)
            # Two idle keep-alive client connections, plus the scrape's own (in flight).
            self.assertEqual(m.get("gateway_active_connections"), 3)
            self.assertEqual(m.get("gateway_requests_in_flight"), 1)
            self.assertEqual(m.get("gateway_requests_total"), 2)
            self.assertEqual(m.get("gateway_idle_connections"), 2)

    def test_counters_continue_across_reload_and_reloads_are_counted(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1])
        p = self.photon(cfg)
        for _ in range(5):
            http_request(port, "GET", "/api/x")
        cfg["routes"].append({"id": "extra", "path": "/extra/**", "backend": "default"})
        write_config(self.tmpdir, cfg)
        p.signal(signal.SIGHUP)
        wait_until(lambda: self.metrics(mport).get("gateway_config_generation") == 2,
                   timeout=10)
        wait_until(lambda: http_request(port, "GET", "/extra/x").status == 200, timeout=10)
        for _ in range(2):
            http_request(port, "GET", "/api/x")
        # A request is counted right after its last byte is written: on a loaded machine the
        # scrape (on another connection, maybe another worker) can come first.
        wait_until(lambda: self.metrics(mport).get("gateway_route_requests_total", route="api",
                                                   method="GET", **{"class": "2xx"}) == 7,
                   timeout=5)
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_reloads_total", result="ok"), 1)
        self.assertEqual(m.get("gateway_reloads_total", result="failed"), 0)
        self.assertEqual(m.get("gateway_config_last_reload_successful"), 1)
        self.assertEqual(m.get("gateway_route_requests_total", route="api", method="GET",
                               **{"class": "2xx"}), 7)
        self.assertGreaterEqual(m.get("gateway_route_requests_total", route="extra",
                                      method="GET", **{"class": "2xx"}), 1)
        # A configuration that does not load: counted, and the running one stays.
        with open(p.config, "w") as f:
            f.write("server: [\n")
        p.signal(signal.SIGHUP)
        wait_until(lambda: self.metrics(mport).get("gateway_reloads_total", result="failed")
                   == 1, timeout=10)
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_config_last_reload_successful"), 0)
        self.assertEqual(m.get("gateway_config_generation"), 2)
        self.assertEqual(http_request(port, "GET", "/api/x").status, 200)

    def test_detailed_metrics_off_keeps_the_cheap_families(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        self.photon(self.config(port, mport, [b1], detailed=False, workers=1))
        http_request(port, "GET", "/api/x")
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_requests_total"), 1)
        self.assertEqual(m.get("gateway_response_status_total", **{"class": "2xx"}), 1)
        for name in ("gateway_route_requests_total", "gateway_route_request_duration_seconds_count",
                     "gateway_backend_upstream_requests_total"):
            self.assertFalse(m.has(name), name)
        self.assertTrue(m.has("gateway_upstream_up"))


class MetricsListenerTest(MetricsBase):
    def test_paths_content_types_and_openmetrics(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        self.photon(self.config(port, mport, [b1], workers=1))
        http_request(port, "GET", "/api/x")
        r = self.scrape(mport)
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn(b"# TYPE gateway_requests_total counter", r.body)
        self.assertEqual(int(r.header("content-length")), len(r.body))
        self.assertEqual(http_request(mport, "GET", "/other").status, 404)
        self.assertEqual(http_request(mport, "GET", "/metrics/x").status, 404)
        h = http_request(mport, "HEAD", "/metrics")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.body, b"")
        r = http_request(mport, "GET", "/ready")
        self.assertEqual((r.status, r.body), (200, b"ready\n"))
        # Not on the main listener: the path is routed like any other (no route here: 404).
        self.assertEqual(http_request(port, "GET", "/metrics").status, 404)
        om = self.scrape(mport, headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
        self.assertTrue(om.header("content-type").startswith("application/openmetrics-text"))
        text = om.body.decode()
        self.assertTrue(text.endswith("# EOF\n"))
        self.assertIn("# TYPE gateway_requests counter\n", text)
        # /api/x and the main listener's /metrics (404) so far.
        self.assertIn("\ngateway_requests_total 2\n", text)
        self.assertIn('gateway_request_duration_seconds_bucket{le="+Inf"} 2\n', text)
        self.assertIn('gateway_request_duration_seconds_bucket{le="0.001"}', text)

    def test_ready_answers_503_while_the_gateway_stops(self):
        # With upgrade_sock set, a graceful stop first offers the sockets for up to 5 s while
        # the workers go on serving: load balancers asking /ready are told to go elsewhere.
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=1)
        cfg["server"]["upgrade_sock"] = os.path.join(self.tmpdir, "upgrade.sock")
        p = self.photon(cfg)
        self.assertEqual(http_request(mport, "GET", "/ready").status, 200)
        p.signal(signal.SIGQUIT)
        r = wait_until(lambda: (lambda r: r.status == 503 and r)(
            http_request(mport, "GET", "/ready")), timeout=4, msg="/ready never said 503")
        self.assertEqual(r.body, b"draining\n")
        self.assertEqual(p.wait(20), 0)

    def test_large_scrape_on_keepalive_connection(self):
        """A body far larger than a connection buffer (many routes) arrives whole, and the
        connection stays usable."""
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=1)
        for i in range(400):
            cfg["routes"].append({"id": "r%03d" % i, "path": "/r%03d/**" % i,
                                  "backend": "default"})
        self.photon(cfg)
        with Conn(mport) as c:
            r1 = c.request("GET", "/metrics")
            r2 = c.request("GET", "/metrics")
        self.assertEqual(r1.status, 200)
        self.assertGreater(len(r1.body), 200_000)
        self.assertEqual(len(r1.body), int(r1.header("content-length")))
        self.assertEqual(Metrics(r2.body.decode()).get(
            "gateway_route_request_duration_seconds_count", route="r399"), 0)
        self.assertIn('route="r399"', r2.body.decode())

    def test_expose_on_main(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=1)
        cfg["metrics"]["expose_on_main"] = True
        cfg["routes"].append({"id": "all", "path": "/**", "backend": "default"})
        self.photon(cfg)
        r = http_request(port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn(b"gateway_requests_total", r.body)
        self.assertIsNone(r.header("x-backend"))  # answered by the gateway, not routed
        self.assertEqual(http_request(port, "GET", "/other").header("x-backend"), "b1")


class MetricsFamiliesTest(MetricsBase):
    def test_rate_limit_and_auth_refusals(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=2)
        cfg["middleware"] = {
            "rate_limiting": {"requests_per_minute": 1, "burst": 2, "key": "ip", "max_keys": 16},
            "authentication": {"auth_type": "api_key", "api_key": {"keys": ["k" * 32]}},
        }
        cfg["routes"][0]["middleware"] = ["rate_limit"]
        cfg["routes"].append({"id": "secure", "path": "/secure/**", "backend": "default",
                              "middleware": ["auth"]})
        log = os.path.join(self.tmpdir, "access.log")
        cfg["server"]["access_log"] = log
        self.photon(cfg)
        codes = [http_request(port, "GET", "/api/x").status for _ in range(5)]
        self.assertEqual(codes, [200, 200, 429, 429, 429])
        self.assertEqual(http_request(port, "GET", "/secure/x").status, 401)
        self.assertEqual(http_request(port, "GET", "/secure/x",
                                      headers={"X-API-Key": "k" * 32}).status, 200)
        self.assertEqual(http_request(port, "GET", "/secure/x",
                                      headers={"X-API-Key": "w" * 32}).status, 401)
        # A request is counted right after its last byte is written: on a loaded machine the
        # scrape (on another connection, maybe another worker) can come first.
        wait_until(lambda: self.metrics(mport).get("gateway_route_refusals_total", route="secure",
                                                   middleware="auth", status="401") == 2,
                   timeout=5)
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_rate_limit_rejections_total", limit="default"), 3)
        self.assertEqual(m.get("gateway_route_refusals_total", route="api",
                               middleware="rate_limit", status="429"), 3)
        self.assertEqual(m.get("gateway_route_refusals_total", route="secure",
                               middleware="auth", status="401"), 2)
        self.assertEqual(m.get("gateway_auth_rejections_total", reason="missing_credentials"), 1)
        self.assertEqual(m.get("gateway_auth_rejections_total", reason="invalid_api_key"), 1)
        self.assertEqual(m.sum("gateway_auth_rejections_total"), 2)
        # A refusal is answered in place: no upstream attempt.
        self.assertEqual(m.get("gateway_upstream_requests_total"), 3)
        # The access log says which module answered.

        def entries():
            if not os.path.exists(log):
                return []
            with open(log) as f:
                return [e for e in (json.loads(x) for x in f if x.strip())
                        if e["path"] != "/metrics"]  # the scrape is logged too
        wait_until(lambda: len(entries()) == 8, timeout=10)
        by = [(e["status"], e["refused_by"]) for e in entries()]
        self.assertEqual(sorted(by), sorted([(200, ""), (200, ""), (429, "rate_limit"),
                                             (429, "rate_limit"), (429, "rate_limit"),
                                             (401, "auth"), (200, ""), (401, "auth")]))

    def test_websocket_families(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=1)
        cfg["routes"].append({"id": "ws", "path": "/ws", "backend": "default",
                              "websocket": {"enabled": True}})
        self.photon(cfg)
        with Conn(port) as c:
            self.assertEqual(c.ws_upgrade("/ws").status, 101)
            for i in range(3):
                c.ws_send(b"hello %d" % i)
                self.assertEqual(c.ws_recv()[2], b"hello %d" % i)
            m = self.metrics(mport)
            # The upgrade request ended at the 101; the tunnel is neither in flight nor idle.
            self.assertEqual(m.get("gateway_route_requests_total", route="ws", method="GET",
                                   **{"class": "1xx"}), 1)
            self.assertEqual(m.get("gateway_requests_in_flight"), 1)  # the scrape
            self.assertEqual(m.get("gateway_active_connections"), 2)
            self.assertEqual(m.get("gateway_idle_connections"), 0)
            self.assertEqual(m.get("gateway_route_request_duration_seconds_count", route="ws"),
                             1)
            self.assertEqual(m.get("gateway_websocket_connections_active"), 1)
            self.assertEqual(m.get("gateway_websocket_upgrades_total"), 1)
            self.assertEqual(m.get("gateway_websocket_upgrade_results_total",
                                   result="upgraded"), 1)
            self.assertEqual(m.get("gateway_websocket_messages_total"), 6)
        wait_until(lambda: self.metrics(mport).get("gateway_websocket_connections_active") == 0,
                   timeout=10)
        m = self.metrics(mport)
        self.assertEqual(m.get("gateway_websocket_connection_duration_seconds_count"), 1)
        self.assertEqual(m.get("gateway_route_requests_total", route="ws", method="GET",
                               **{"class": "1xx"}), 1)


class PrometheusToolsTest(MetricsBase):
    def need(self, tool):
        path = shutil.which(tool)
        if path is None:
            msg = "%s not installed (Debian package prometheus)" % tool
            if in_ci():
                self.fail(msg)
            self.skipTest(msg)
        return path

    def busy_photon(self):
        b1 = self.b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = self.config(port, mport, [b1], workers=2)
        cfg["routes"].append({"id": 'quote"back\\slash', "path": "/q/**", "backend": "default"})
        # The same address twice in one backend (a warning): two series, never one label set.
        cfg["load_balancing"]["backends"]["twice"] = {
            "upstreams": [{"address": b1.address}, {"address": b1.address}], "max_fails": 0}
        self.photon(cfg)
        for path in ("/api/x", "/nothing", "/api/status/503", "/dead/x", "/q/x"):
            http_request(port, "GET", path)
        return port, mport

    def test_promtool_check_metrics(self):
        promtool = self.need("promtool")
        _, mport = self.busy_photon()
        # promtool reads the Prometheus text format (not OpenMetrics, whose counter metadata
        # names drop `_total`); it exits 1 for lint findings too, and prints each.
        body = self.scrape(mport).body
        r = subprocess.run([promtool, "check", "metrics"], input=body,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode()[:2000])
        self.assertEqual((r.stdout + r.stderr).strip(), b"")
        self.assertIn(b'route="quote\\"back\\\\slash"', body)
        self.assertIn(('gateway_upstream_up{backend="twice",upstream="%s#2"} 1'
                       % self.b1.address).encode(), body)

    @timeout(120)
    def test_real_prometheus_scrapes_and_answers_a_rate(self):
        prometheus = self.need("prometheus")
        port, mport = self.busy_photon()
        pport = free_port()
        conf = os.path.join(self.tmpdir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: photon\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % mport)
        log = open(os.path.join(self.tmpdir, "prometheus.log"), "wb")
        proc = subprocess.Popen(
            [prometheus, "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.tmpdir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % pport],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(lambda: (proc.kill(), proc.wait(timeout=10), log.close()))

        def query(q):
            url = "/api/v1/query?query=" + urllib.parse.quote(q)
            try:
                r = http_request(pport, "GET", url, timeout=5)
            except OSError:
                return None
            if r.status != 200:
                return None
            res = json.loads(r.body)["data"]["result"]
            return res

        wait_until(lambda: query("up{job='photon'}") and
                   query("up{job='photon'}")[0]["value"][1] == "1", timeout=60,
                   msg="prometheus never scraped photon successfully")
        # Traffic at a known pace while Prometheus scrapes every second.
        t_end = time.monotonic() + 6
        while time.monotonic() < t_end:
            http_request(port, "GET", "/api/x")
            time.sleep(0.02)
        expected = self.metrics(mport).get("gateway_requests_total")

        def total():
            res = query("gateway_requests_total")
            return float(res[0]["value"][1]) if res else -1

        wait_until(lambda: total() == expected, timeout=20,
                   msg="prometheus never saw gateway_requests_total == %d" % expected)
        res = query("sum(rate(gateway_requests_total[5s]))")
        self.assertTrue(res, "no rate")
        self.assertGreaterEqual(float(res[0]["value"][1]), 0)
        res = query('sum(increase(gateway_route_requests_total{route="api",class="2xx"}[1m]))')
        self.assertTrue(res)
        self.assertGreater(float(res[0]["value"][1]), 0)
