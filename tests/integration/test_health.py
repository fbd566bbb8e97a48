# SPDX-License-Identifier: Apache-2.0
"""Active health checks: the helper process checks every upstream (tcp, http, https) on a
jittered schedule, /health on metrics_addr shows the result, unhealthy upstreams leave the
rotation and come back, and every transition is logged once."""

import http.server
import os
import ssl
import subprocess
import threading

from harness import IntegrationTest, base_config, free_port, http_request, wait_until

INTERVAL = 0.2          # health_check.interval, seconds
FAILURE_THRESHOLD = 2
SUCCESS_THRESHOLD = 2
# Room for start-up, scheduling jitter (±10 %) and a loaded machine on top of the nominal
# detection time; a bound on the wait, not a measurement.
SLACK = 4.0
USER_AGENT = "photon-health-check"


def detection_bound(checks):
    return checks * INTERVAL * 1.1 + SLACK


def health_block(**kw):
    block = {"check_type": "http", "path": "/health", "expected_status": 200}
    block.update(kw)
    return block


class HealthTest(IntegrationTest):

    def gateway(self, upstreams, backends=None, retries=1):
        """Starts photon with backend "default" over ``upstreams`` (passive ejection off, so
        /health reflects active checks alone), a catch-all route with ``retries``, fast global
        health checks, metrics_addr for /health and ``backends`` (name -> backend dict) added."""
        self.port = free_port()
        self.metrics_port = free_port()
        cfg = base_config(self.port, upstreams, metrics_port=self.metrics_port)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["worker_processes"] = 2
        cfg["health_check"] = {
            "interval": "%dms" % int(INTERVAL * 1000), "timeout": "%dms" % int(INTERVAL * 1000),
            "failure_threshold": FAILURE_THRESHOLD, "success_threshold": SUCCESS_THRESHOLD,
        }
        default = cfg["load_balancing"]["backends"]["default"]
        default["max_fails"] = 0
        default["health_check"] = health_block()
        for name, b in (backends or {}).items():
            b.setdefault("max_fails", 0)
            cfg["load_balancing"]["backends"][name] = b
        cfg["routes"][0]["retries"] = retries
        self.cfg = cfg
        self.p = self.photon(cfg)
        return self.p

    def health(self):
        """The /health JSON from the metrics listener (200 when every backend has a healthy
        upstream, 503 otherwise)."""
        r = http_request(self.metrics_port, "GET", "/health")
        self.assertIn(r.status, (200, 503), r.text)
        return r.json()

    def upstream(self, backend, address):
        for u in self.health()["backends"][backend]["upstreams"]:
            if u["address"] == address:
                return u
        self.fail("upstream %s of backend %s not in /health" % (address, backend))

    def wait_state(self, backend, address, state, timeout, checked=True):
        """Waits until the upstream shows ``state`` (after at least one check when
        ``checked``); returns its /health entry."""
        def ok():
            u = self.upstream(backend, address)
            if u["state"] == state and (not checked or u["last_check_ms_ago"] >= 0):
                return u
            return None
        return wait_until(ok, timeout=timeout,
                          msg="upstream %s of backend %s never became %s: %r"
                          % (address, backend, state, self.health()["backends"][backend]))

    def check_requests(self, backend):
        return [r for r in backend.request_log()
                if r.path == "/health" and r.header("user-agent") == USER_AGENT]

    def wait_checked(self, backend, more=1, timeout=None):
        """Waits until ``backend`` received ``more`` further health checks."""
        start = len(self.check_requests(backend))
        wait_until(lambda: len(self.check_requests(backend)) >= start + more,
                   timeout=timeout or detection_bound(more),
                   msg="%s got no health checks" % backend.name)

    def test_dead_upstream_leaves_rotation_and_returns(self):
        b1, b2 = self.backend(), self.backend()
        p = self.gateway([b1, b2])
        self.wait_state("default", b1.address, "healthy", detection_bound(1))
        self.wait_state("default", b2.address, "healthy", detection_bound(1))

        # The check request as specified: method, path, Host = the address, User-Agent, close.
        req = self.check_requests(b1)[0]
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.header("host"), b1.address)
        self.assertEqual(req.header("connection"), "close")

        failures, done = [], threading.Event()

        def client():
            while not done.is_set():
                try:
                    r = http_request(self.port, "GET", "/name")
                    if r.status != 200:
                        failures.append(r.status)
                except Exception as e:  # noqa: BLE001 - any client error is a failure here
                    failures.append(repr(e))

        t = threading.Thread(target=client, daemon=True)
        t.start()
        try:
            b2.stop()
            u = self.wait_state("default", b2.address, "unhealthy",
                                detection_bound(FAILURE_THRESHOLD))
            self.assertEqual(u["last_error"], "connect_refused")
            # Only b1 serves now.
            for _ in range(6):
                self.assertEqual(http_request(self.port, "GET", "/name").text, "b1")
            # A few more failed checks of b2 (b1 is checked at the same pace) ...
            self.wait_checked(b1, more=3)
        finally:
            done.set()
            t.join(10)
        self.assertEqual(failures, [], "client requests failed while an upstream was down")
        self.assertEqual(self.health()["backends"]["default"]["healthy"], 1)
        # ... and still one log line for the transition.
        down = "upstream %s of backend default is now unhealthy" % b2.address
        self.assertEqual(p.stderr_text().count(down), 1, p.stderr_text())

        b2.start()  # same port
        self.wait_state("default", b2.address, "healthy", detection_bound(SUCCESS_THRESHOLD))
        wait_until(lambda: http_request(self.port, "GET", "/name").text == "b2", timeout=5,
                   msg="b2 never served again")
        back = "upstream %s of backend default is healthy again" % b2.address
        self.assertEqual(p.stderr_text().count(back), 1, p.stderr_text())

    def test_http_check_with_unexpected_status_marks_upstream_unhealthy(self):
        b1, b2 = self.backend(), self.backend()
        self.gateway([b1, b2])
        self.wait_state("default", b1.address, "healthy", detection_bound(1))
        self.wait_state("default", b2.address, "healthy", detection_bound(1))

        b1.set_health_status(503)
        u = self.wait_state("default", b1.address, "unhealthy",
                            detection_bound(FAILURE_THRESHOLD))
        self.assertEqual(u["last_error"], "bad_status")
        self.assertEqual(self.upstream("default", b2.address)["state"], "healthy")
        for _ in range(6):
            self.assertEqual(http_request(self.port, "GET", "/name").text, "b2")

        b1.set_health_status(200)
        self.wait_state("default", b1.address, "healthy", detection_bound(SUCCESS_THRESHOLD))

    def test_check_settings_are_taken_per_backend(self):
        b1, b2, b3 = self.backend(), self.backend(), self.backend()
        self.gateway([b1], backends={
            # Custom method, path, Host and expected status.
            "custom": {"upstreams": [{"address": b2.address}],
                       "health_check": health_block(method="HEAD", path="/status/204",
                                                    expected_status=204,
                                                    host="status.internal")},
            # Checks disabled: never checked, stays healthy whatever happens.
            "quiet": {"upstreams": [{"address": b3.address}],
                      "health_check": health_block(enabled=False)},
        })
        self.wait_state("custom", b2.address, "healthy", detection_bound(1))
        reqs = [r for r in b2.request_log() if r.header("user-agent") == USER_AGENT]
        self.assertTrue(reqs)
        self.assertEqual(reqs[0].method, "HEAD")
        self.assertEqual(reqs[0].target, "/status/204")
        self.assertEqual(reqs[0].header("host"), "status.internal")

        b3.set_health_status(503)
        self.wait_checked(b1, more=3)
        u = self.upstream("quiet", b3.address)
        self.assertEqual(u["state"], "healthy")
        self.assertEqual(u["last_check_ms_ago"], -1)
        self.assertEqual([r for r in b3.request_log() if r.header("user-agent") == USER_AGENT],
                         [])

    def test_tcp_check(self):
        b1, b2 = self.backend(), self.backend()
        self.gateway([b1], backends={
            "raw": {"upstreams": [{"address": b2.address}],
                    "health_check": {"check_type": "tcp"}},
        })
        self.wait_state("raw", b2.address, "healthy", detection_bound(1))
        # A tcp check sends nothing.
        self.assertEqual(b2.request_log(), [])
        b2.stop()
        u = self.wait_state("raw", b2.address, "unhealthy", detection_bound(FAILURE_THRESHOLD))
        self.assertEqual(u["last_error"], "connect_refused")

    def test_https_check_against_a_tls_server(self):
        cert, key = self.self_signed()
        tls = TlsHealthServer(cert, key)
        self.addCleanup(tls.stop)
        b1 = self.backend()
        upstream = {"address": tls.address, "sni_hostname": "health.test"}
        self.gateway([b1], backends={
            "secure": {"upstreams": [dict(upstream)],
                       "health_check": health_block(check_type="https", tls_verify=False)},
            # Same server with verification on: the self-signed certificate is refused.
            "strict": {"upstreams": [dict(upstream)],
                       "health_check": health_block(check_type="https", tls_verify=True)},
        })
        self.wait_state("secure", tls.address, "healthy", detection_bound(1))
        wait_until(lambda: len(tls.requests) >= 2, timeout=detection_bound(2),
                   msg="the TLS server got no health checks")
        path, host, agent = tls.requests[0]
        self.assertEqual((path, host, agent), ("/health", tls.address, USER_AGENT))
        self.assertIn("health.test", tls.server_names)
        u = self.wait_state("strict", tls.address, "unhealthy",
                            detection_bound(FAILURE_THRESHOLD))
        self.assertEqual(u["last_error"], "tls_handshake")

    def self_signed(self):
        cert = os.path.join(self.tmpdir, "cert.pem")
        key = os.path.join(self.tmpdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=health.test"],
                       check=True, capture_output=True, timeout=30)
        return cert, key


class TlsHealthServer:
    """HTTPS server on 127.0.0.1 answering GET /health with 200; records each request
    (path, Host, User-Agent) and the SNI names offered."""

    def __init__(self, cert, key):
        self.requests = []
        self.server_names = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        def on_sni(sock, name, context):
            self.server_names.append(name)
            return None  # continue the handshake

        ctx.sni_callback = on_sni
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host"),
                                       self.headers.get("User-Agent")))
                body = b"ok"
                self.send_response(200 if self.path == "/health" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request, client_address):
                pass  # failed handshakes (the verifying checker aborts them) are expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
