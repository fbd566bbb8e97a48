# SPDX-License-Identifier: Apache-2.0
"""Upstream host names: resolved by the master at load and every server.resolve_interval, off
the workers' event loops. A test-only getaddrinfo() shim (build/fake_resolver.so, preloaded)
makes a name resolve, stop resolving or move while the gateway runs."""

import os
import signal
import sys
import time

import harness
from harness import IntegrationTest, free_port, http_request, wait_until
from backend import Backend

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "proxy"))

from proxy_support import proxy_config  # noqa: E402

SHIM = os.path.join(harness.REPO_ROOT, "build", "fake_resolver.so")


class ResolveTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(SHIM), "%s missing: build it with make" % SHIM)
        self.hosts = os.path.join(str(self.tmpdir), "hosts")
        self.set_hosts("")

    def set_hosts(self, text):
        tmp = self.hosts + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.hosts)  # the shim never sees a half-written file

    def start_gateway(self, upstream, interval="1s"):
        self.port = free_port()
        cfg = proxy_config(self.tmpdir, self.port, [upstream], workers=2,
                           resolve_interval=interval)
        env = dict(os.environ, LD_PRELOAD=SHIM, PHOTON_FAKE_HOSTS=self.hosts)
        # A sanitizer build wants its runtime first among preloaded libraries; the shim only
        # wraps getaddrinfo(), so the order does not matter here.
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (os.environ.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0") if x)
        return self.photon(cfg, env=env)

    def served_by(self):
        r = http_request(self.port, "GET", "/name", headers={"Connection": "close"})
        return r.status, r.body.decode(errors="replace")

    def two_addresses(self):
        """Backends "first" on 127.0.0.1 and "second" on 127.0.0.2, on the same port."""
        b1 = Backend(name="first", host="127.0.0.1").start()
        self.addCleanup(b1.stop)
        b2 = Backend(name="second", host="127.0.0.2", port=b1.port).start()
        self.addCleanup(b2.stop)
        return b1, b2

    @harness.timeout(60)
    def test_name_that_appears_and_moves_is_followed(self):
        b1, b2 = self.two_addresses()
        p = self.start_gateway("upstream.test:%d" % b1.port)
        self.assertIn("does not resolve yet", p.stderr_text())
        # Unresolvable at load: the upstream is out of rotation, and the answer says so.
        status, _ = self.served_by()
        self.assertEqual(status, 503)
        # The name appears: within a resolve interval (and no request ever waits for a lookup).
        self.set_hosts("upstream.test 127.0.0.1\n")
        wait_until(lambda: self.served_by() == (200, "first"), 10,
                   msg="traffic did not start once the name resolved")
        # The name moves: new connections go to the new address.
        self.set_hosts("upstream.test 127.0.0.2\n")
        wait_until(lambda: self.served_by() == (200, "second"), 10,
                   msg="traffic did not follow the name to its new address")
        self.assertGreater(b2.requests_served, 0)

    @harness.timeout(60)
    def test_lookups_follow_the_configured_interval(self):
        b1, b2 = self.two_addresses()
        self.set_hosts("upstream.test 127.0.0.1\n")
        self.start_gateway("upstream.test:%d" % b1.port, interval="1h")
        self.assertEqual(self.served_by(), (200, "first"))
        # With an hour between lookups, a moved name is not seen for the next seconds.
        self.set_hosts("upstream.test 127.0.0.2\n")
        for _ in range(15):
            self.assertEqual(self.served_by(), (200, "first"))
            time.sleep(0.2)

    @harness.timeout(60)
    def test_reload_that_shortens_the_interval_applies_at_once(self):
        b1, b2 = self.two_addresses()
        self.set_hosts("upstream.test 127.0.0.1\n")
        p = self.start_gateway("upstream.test:%d" % b1.port, interval="1h")
        self.assertEqual(self.served_by(), (200, "first"))
        harness.write_config(self.tmpdir, proxy_config(
            self.tmpdir, self.port, ["upstream.test:%d" % b1.port], workers=2,
            resolve_interval="1s"))
        p.signal(signal.SIGHUP)
        wait_until(lambda: "reload" in p.stderr_text().lower() and
                   self.served_by() == (200, "first"), 10, msg="reload did not complete")
        # The hour-long wait that was running must not delay the next lookup.
        self.set_hosts("upstream.test 127.0.0.2\n")
        wait_until(lambda: self.served_by() == (200, "second"), 10,
                   msg="after the reload, the moved name was not looked up within seconds")
