# SPDX-License-Identifier: Apache-2.0
"""Hostile peers (issue: reliability). Upstreams that answer with garbage, send less or more
than their Content-Length, reset, stall before or during a response, or never read: the client
gets a clean 502/504 or a closed connection as HTTP says, and the connection pool is never
poisoned (the requests that follow are answered right, on good connections). Clients that send
their heads a byte at a time (slowloris) get a 408 when header_read_timeout runs out, while the
gateway keeps answering everyone else; uploads that stall are abandoned the same way."""

import os
import socket
import threading
import time

from harness import (Conn, IntegrationTest, base_config, free_port, http_request,
                     nofile_wrapper)
from test_correctness import ScriptedUpstream


def read_to_close(s, timeout):
    """Everything `s` receives until the peer closes (FIN or reset); None if it is still open
    after `timeout` seconds."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        return None


def assert_served_meanwhile(test, port, n=40):
    """`n` requests on fresh connections, each answered within half a second."""
    worst = 0.0
    for _ in range(n):
        t0 = time.monotonic()
        r = http_request(port, "GET", "/name", timeout=5)
        worst = max(worst, time.monotonic() - t0)
        test.assertEqual(r.status, 200)
        time.sleep(0.02)
    test.assertLess(worst, 0.5)


class Hostile:
    """The upstream's behaviour, chosen by the request path."""

    def __call__(self, c, req):
        p = req.path
        if p == "/ok":
            c.reply(200, b"ok:" + p.encode())
            return True
        if p == "/garbage":
            c.send(b"SPDY/9 what\r\n\r\n")
            c.close()
            return False
        if p == "/short":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"s" * 50)
            c.close()
            return False
        if p == "/long":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"L" * 10 +
                   b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nJUNK!")
            return True  # the extra bytes sit on a connection the gateway must not reuse
        if p == "/reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            return False
        if p == "/never":
            c.read_for(5)
            c.close()
            return False
        if p == "/stall-body":
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            c.read_for(5)
            c.close()
            return False
        if p == "/early":
            # Answers before reading the request body, and closes.
            c.reply(413, b"too big", close=True)
            return False
        c.reply(404, b"")
        return True


class HostileUpstreams(IntegrationTest):

    def start(self, upstream_address=None, route=None):
        self.up = ScriptedUpstream(Hostile())
        self.addCleanup(self.up.stop)
        self.port = free_port()
        cfg = base_config(self.port, [upstream_address or self.up.address])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["enabled"] = False
        cfg["routes"][0].update(dict({"timeout": "1s", "retries": 0}, **(route or {})))
        if upstream_address is None:
            # /ok goes to the same upstream, so a poisoned pool would show there.
            pass
        self.proxy = self.photon(cfg)

    def assert_pool_clean(self, n=5):
        """The requests that follow are answered right (on pooled or new connections)."""
        for _ in range(n):
            r = http_request(self.port, "GET", "/ok", timeout=5)
            self.assertEqual((r.status, r.body), (200, b"ok:/ok"))
        with Conn(self.port, timeout=5) as c:
            for _ in range(n):
                r = c.request("GET", "/ok")
                self.assertEqual((r.status, r.body), (200, b"ok:/ok"))

    def test_garbage_is_a_502(self):
        self.start()
        self.assert_pool_clean(1)
        r = http_request(self.port, "GET", "/garbage", timeout=5)
        self.assertEqual(r.status, 502)
        self.assert_pool_clean()

    def test_short_body_closes_the_client_connection(self):
        self.start()
        self.assert_pool_clean(1)
        with Conn(self.port, timeout=5) as c:
            c.send_request("GET", "/short")
            data = c.recv_until_close(timeout=5)
        self.assertIn(b"Content-Length: 100", data)
        body = data.split(b"\r\n\r\n", 1)[1]
        self.assertLess(len(body), 100)  # the close says it is cut short
        self.assert_pool_clean()

    def test_bytes_beyond_content_length_are_dropped_with_the_connection(self):
        self.start()
        with Conn(self.port, timeout=5) as c:
            r = c.request("GET", "/long")
            self.assertEqual((r.status, r.body), (200, b"L" * 10))
            r = c.request("GET", "/ok")
            self.assertEqual((r.status, r.body), (200, b"ok:/ok"))
        self.assert_pool_clean()

    def test_reset_before_the_head_is_a_502(self):
        self.start()
        self.assert_pool_clean(1)
        r = http_request(self.port, "GET", "/reset", timeout=5)
        self.assertEqual(r.status, 502)
        self.assert_pool_clean()

    def test_silence_is_a_504(self):
        self.start()
        t0 = time.monotonic()
        r = http_request(self.port, "GET", "/never", timeout=10)
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 4)
        self.assert_pool_clean()

    def test_stall_mid_body_closes_the_client_connection(self):
        self.start()
        with Conn(self.port, timeout=10) as c:
            c.send_request("GET", "/stall-body")
            t0 = time.monotonic()
            data = c.recv_until_close(timeout=10)
            self.assertLess(time.monotonic() - t0, 5)
        self.assertIn(b"Content-Length: 1000", data)
        self.assertLess(len(data.split(b"\r\n\r\n", 1)[1]), 1000)
        self.assert_pool_clean()

    def test_early_answer_to_an_upload_is_relayed(self):
        self.start()
        with Conn(self.port, timeout=10) as c:
            r = c.request("POST", "/early", body=b"b" * 200000)
            self.assertEqual(r.status, 413)
        self.assert_pool_clean()

    def test_upstream_that_accepts_and_never_reads(self):
        # A listening socket nobody accepts from: the kernel completes the handshake, and the
        # request sits in its queue forever.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        self.addCleanup(ls.close)
        self.start(upstream_address="127.0.0.1:%d" % ls.getsockname()[1])
        t0 = time.monotonic()
        r = http_request(self.port, "GET", "/anything", timeout=10)
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 4)


class Slowloris(IntegrationTest):

    def test_slow_heads_get_408_while_others_are_served(self):
        b = self.backend()
        port = free_port()
        cfg = base_config(port, [b])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["header_read_timeout"] = "1s"
        cfg["health_check"]["enabled"] = False
        self.photon(cfg)
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
        socks = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
        stop = threading.Event()
        results = {}

        def drip():
            # One byte per socket every 100 ms: never a complete head.
            i = 0
            while not stop.is_set() and i < len(head):
                for s in socks:
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        pass
                i += 1
                time.sleep(0.1)

        t = threading.Thread(target=drip)
        t.start()
        try:
            assert_served_meanwhile(self, port)  # everyone else is served at once meanwhile
            # Every slow connection got a 408 and was closed, about 1 s after its first byte.
            for s in socks:
                data = read_to_close(s, 5) or b""
                results.setdefault(data.split(b"\r\n", 1)[0], 0)
                results[data.split(b"\r\n", 1)[0]] += 1
        finally:
            stop.set()
            t.join(10)
            for s in socks:
                s.close()
        self.assertEqual(results, {b"HTTP/1.1 408 Request Timeout": 200}, results)

    def test_stalled_bodies_are_abandoned_while_others_are_served(self):
        """100 uploads that send their head and part of the body, then a byte now and then
        (or nothing): each is abandoned once its body makes no progress for
        header_read_timeout, its upstream connection is not reused (the backend saw a short
        body), and everyone else is served meanwhile."""
        b = self.backend()
        port = free_port()
        cfg = base_config(port, [b])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"]["header_read_timeout"] = "1s"
        cfg["health_check"]["enabled"] = False
        self.photon(cfg)
        socks = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
                      b"b" * 1000)
            socks.append(s)
        stop = threading.Event()

        def drip():
            # Half of them send a byte every 1.5 s: progress, but slower than the timeout.
            while not stop.wait(1.5):
                for s in socks[::2]:
                    try:
                        s.send(b"b")
                    except OSError:
                        pass

        t = threading.Thread(target=drip)
        t.start()
        started = time.monotonic()
        try:
            assert_served_meanwhile(self, port)
            # Each stalled upload is closed by the gateway (with a 408 at most), within a
            # few timeouts.
            for s in socks:
                data = read_to_close(s, 8)
                self.assertIsNotNone(data, "a stalled upload was kept open")
                self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:80])
            self.assertLess(time.monotonic() - started, 8)
        finally:
            stop.set()
            t.join(10)
            for s in socks:
                s.close()
        # No upload reached the backend whole, and the gateway still works.
        self.assertFalse([q for q in b.request_log() if q.path == "/echo"
                          and len(q.body) == 100000])
        r = http_request(port, "POST", "/echo", body=b"x" * 5000)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_length"], 5000)


class Exhaustion(IntegrationTest):

    def photon_with(self, server, wrapper=None):
        b = self.backend()
        port = free_port()
        cfg = base_config(port, [b])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"].update(server)
        cfg["health_check"]["enabled"] = False
        kw = {}
        if wrapper is not None:
            kw["binary"] = wrapper
        return self.photon(cfg, **kw), port

    def test_full_disk_for_the_access_log_loses_lines_not_requests(self):
        p, port = self.photon_with({"access_log": "/dev/full"})
        with Conn(port, timeout=5) as c:
            for _ in range(200):
                self.assertEqual(c.request("GET", "/name").status, 200)
        time.sleep(1.5)  # the log is flushed on a timer: the writes fail meanwhile
        for _ in range(20):
            self.assertEqual(http_request(port, "GET", "/name").status, 200)
        self.assertTrue(p.alive())
        log = p.stderr_text()
        self.assertIn("access log /dev/full: No space left on device; log lines are being lost",
                      log)
        self.assertLessEqual(log.count("log lines are being lost"), 2)  # bounded

    def test_descriptor_exhaustion_refuses_then_recovers(self):
        # The worker may hold 64 descriptors: connections beyond that wait in the listen queue
        # (accept fails with EMFILE and backs off) and are served once others close.
        p, port = self.photon_with({}, wrapper=nofile_wrapper(self.tmpdir, 64))
        hogs = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            hogs.append(s)
        time.sleep(0.5)
        self.assertTrue(p.alive())
        for s in hogs:
            s.close()
        # Served again once descriptors are free, with no restart.
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                ok = http_request(port, "GET", "/name", timeout=2).status == 200
            except Exception:  # noqa: BLE001 - still draining the queue
                time.sleep(0.2)
        self.assertTrue(ok)
        self.assertTrue(p.alive())
        for _ in range(20):
            self.assertEqual(http_request(port, "GET", "/name", timeout=5).status, 200)
