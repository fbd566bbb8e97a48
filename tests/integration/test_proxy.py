# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 proxy data path: streaming, uploads, pipelining, back-pressure, keep-alive on both
sides, retries and failover, client aborts, max_connections, header hygiene, timeouts, routing
basics and the access log. Every test runs the real binary on 127.0.0.1."""

import hashlib
import json
import os
import re
import socket
import struct
import sys
import threading
import time

import harness
from harness import (IntegrationTest, ProtocolError, free_port, http_request,
                     nofile_wrapper, parse_responses, pattern, pattern_sha256, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "proxy"))

from proxy_support import (BulkServer, CannedServer, PathServer, RawClient,  # noqa: E402
                           ResetServer, bulk_sha256, check_error_reply, proxy_config, sample_max,
                           worker_rss_kib)

MiB = 1024 * 1024


def sha(data):
    return hashlib.sha256(data).hexdigest()


def tokens(values):
    return {t.strip().lower() for v in values for t in v.split(",") if t.strip()}


class ProxyTest(IntegrationTest):
    """Base: start photon in front of some upstreams with explicit workers and pid file."""

    def start(self, upstreams, workers=1, route=None, config=None, max_fails=0, binary=None,
              **server):
        self.port = free_port()
        cfg = proxy_config(self.tmpdir, self.port, upstreams, workers, max_fails, **server)
        if route:
            cfg["routes"][0].update(route)
        if config:
            config(cfg)
        self.proxy = self.photon(cfg, **({"binary": binary} if binary else {}))
        return self.proxy

    def stop_server_later(self, server):
        self.addCleanup(server.stop)
        return server

    @staticmethod
    def worker_fd_targets(p):
        """What the worker processes' descriptors point at ("pipe:[...]", "socket:[...]")."""
        out = []
        for pid in p.worker_pids():
            if "worker" not in harness.cmdline(pid):
                continue
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
                except OSError:
                    pass
        return out


# --------------------------------------------------------------------------------------------


class StreamingTest(ProxyTest):
    def test_content_length_bodies_arrive_intact(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        for size in (0, 1, 64 * 1024, MiB):
            r = c.request("GET", "/fixed?size=%d" % size)
            self.assertEqual(r.status, 200, size)
            self.assertEqual(r.header("content-length"), str(size))
            self.assertFalse(r.chunked)
            self.assertEqual(len(r.body), size)
            self.assertEqual(sha(r.body), pattern_sha256(size), "body of %d bytes differs" % size)
            self.assertTrue(r.keep_alive, size)
            self.assertEqual(r.header("x-backend"), "b1")

    @harness.timeout(150)
    def test_100_mib_body_streams_intact(self):
        bulk = self.stop_server_later(BulkServer())
        self.start([bulk.address])
        size = 100 * MiB
        cl = RawClient(self.port, timeout=60)
        self.addCleanup(cl.close)
        cl.send(b"GET /bulk?size=%d HTTP/1.1\r\nHost: big\r\n\r\n" % size)
        status, headers = cl.read_head()
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-length"), str(size))
        cl.read_body(size)
        self.assertEqual(cl.received, size)
        self.assertEqual(cl.hash.hexdigest(), bulk_sha256(size), "100 MiB body differs")
        # Nothing beyond the body: the next request on the connection is answered normally.
        cl.send(b"GET /bulk?size=10 HTTP/1.1\r\nHost: big\r\n\r\n")
        status, headers = cl.read_head()
        self.assertEqual((status, headers.get("content-length")), (200, "10"))
        cl.read_body(10)
        self.assertEqual(cl.hash.hexdigest(), bulk_sha256(10))

    def test_chunked_responses_are_forwarded_intact(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        for size, chunk in ((0, 100), (1, 1), (5000, 7), (200000, 65536), (MiB, 16384)):
            r = c.request("GET", "/chunked?size=%d&chunk=%d" % (size, chunk))
            self.assertEqual(r.status, 200)
            self.assertTrue(r.chunked, "framing lost for size %d" % size)
            self.assertIsNone(r.header("content-length"))
            self.assertEqual(r.body, pattern(size), "chunked body %d/%d differs" % (size, chunk))
            self.assertTrue(r.keep_alive)

    def test_read_until_close_response_is_delivered_whole_with_connection_close(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        r = c.request("GET", "/close?size=300000")
        self.assertEqual(r.status, 200)
        self.assertIn("close", tokens(r.headers.get_all("connection")),
                      "a close-delimited body must reach the client with Connection: close")
        self.assertEqual(len(r.body), 300000)
        self.assertEqual(r.body, pattern(300000))
        self.assertTrue(c.wait_closed(5), "connection not closed after a close-delimited body")

    def test_head_keeps_headers_and_sends_no_body(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        r = c.request("HEAD", "/fixed?size=5000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), "5000")
        self.assertEqual(r.header("x-backend"), "b1")
        self.assertEqual(r.header("content-type"), "application/octet-stream")
        r = c.request("HEAD", "/chunked?size=3000&chunk=100")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("x-backend"), "b1")
        # Had a body followed either HEAD, this response would be misread.
        r = c.request("GET", "/fixed?size=123")
        self.assertEqual((r.status, r.body), (200, pattern(123)))
        self.assertEqual(c.buffered, b"")

    def test_204_and_304_carry_no_body(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        for status in (204, 304):
            r = c.request("GET", "/status/%d" % status)
            self.assertEqual(r.status, status)
            self.assertIsNone(r.header("transfer-encoding"), "%d with Transfer-Encoding" % status)
            self.assertIn(r.header("content-length"), (None, "0"))
            self.assertTrue(r.keep_alive)
        r = c.request("GET", "/fixed?size=77")
        self.assertEqual((r.status, r.body), (200, pattern(77)))
        self.assertEqual(c.buffered, b"")

    def test_content_length_uploads_reach_upstream_intact(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        for size in (1, 64 * 1024, 3 * MiB):
            body = pattern(size)
            r = c.request("POST", "/echo", body=body)
            self.assertEqual(r.status, 200, size)
            doc = r.json()
            self.assertEqual(doc["body_length"], size)
            self.assertEqual(doc["body_sha256"], sha(body), "upload of %d bytes differs" % size)
            cls = [v for n, v in doc["headers"] if n.lower() == "content-length"]
            self.assertEqual(cls, [str(size)])
            self.assertFalse(doc["chunked"])

    def test_empty_upload_keeps_content_length_zero(self):
        # Without it an upstream may answer 411 Length Required to a POST or PUT.
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        for method in ("POST", "PUT"):
            r = c.request(method, "/echo", body=b"")
            self.assertEqual(r.status, 200)
            doc = r.json()
            self.assertEqual(doc["body_length"], 0)
            cls = [v for n, v in doc["headers"] if n.lower() == "content-length"]
            self.assertEqual(cls, ["0"], "%s with Content-Length: 0 forwarded as %r"
                             % (method, doc["headers"]))

    def test_chunked_upload_reaches_upstream_intact(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        body = pattern(400000)
        pieces = [body[:1], body[1:4096], body[4096:70000], body[70000:]]
        r = c.request("POST", "/echo", body=pieces, chunked=True)
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["body_length"], len(body))
        self.assertEqual(doc["body_sha256"], sha(body))
        # The connection stays in sync after a chunked upload.
        r = c.request("GET", "/fixed?size=9")
        self.assertEqual(r.body, pattern(9))

    def test_expect_100_continue_upload(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        body = pattern(200000)
        r = c.request("POST", "/echo", headers=[("Expect", "100-continue")], body=body)
        self.assertEqual([i.status for i in r.interim], [100], "no 100 Continue before the body")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_sha256"], sha(body))
        self.assertEqual(r.json()["body_length"], len(body))
        r = c.request("PUT", "/echo", headers=[("Expect", "100-continue")],
                      body=[body[:1000], body[1000:]], chunked=True)
        self.assertEqual([i.status for i in r.interim], [100])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_sha256"], sha(body))

    def test_pipelined_requests_are_answered_in_order(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=15)
        upload = pattern(5000)
        reqs = [
            ("GET", "/fixed?size=10", None),
            ("HEAD", "/fixed?size=20", None),
            ("GET", "/chunked?size=3000&chunk=500", None),
            ("POST", "/echo", upload),
            ("GET", "/status/204", None),
            ("GET", "/fixed?size=70000", None),
            ("GET", "/name", None),
        ]
        raw = b"".join(b"".join(c.build_request(m, p, body=body)) for m, p, body in reqs)
        c.send(raw)
        got = [c.read_response(m) for m, _, _ in reqs]
        self.assertEqual([r.status for r in got], [200, 200, 200, 200, 204, 200, 200])
        self.assertEqual(got[0].body, pattern(10))
        self.assertEqual((got[1].header("content-length"), got[1].body), ("20", b""))
        self.assertEqual(got[2].body, pattern(3000))
        self.assertEqual(got[3].json()["body_sha256"], sha(upload))
        self.assertEqual(got[5].body, pattern(70000))
        self.assertEqual(got[6].body, b"b1")
        ids = [r.header("x-request-id") for r in got]
        self.assertEqual(len(set(ids)), len(ids), "request ids repeat: %r" % ids)
        seen = [r.target for r in b.request_log()]
        self.assertEqual(seen, [p for _, p, _ in reqs], "upstream saw another order")


    def test_http10_client_never_receives_chunked_encoding(self):
        # RFC 9112 6.1: no Transfer-Encoding in a response to an HTTP/1.0 request, even when
        # the upstream chunks (this test upstream chunks whatever the request version).
        b = self.backend()
        self.start([b])
        # Small chunks, chunks spanning reads, a chunk per byte.
        for size, chunk in ((5000, 700), (3 * MiB, 65536), (100000, 1)):
            c = self.conn(self.port, timeout=30)
            c.send(b"GET /chunked?size=%d&chunk=%d HTTP/1.0\r\n\r\n" % (size, chunk))
            data = c.recv_until_close(timeout=30)
            self.assertEqual(c.last_close, "eof")
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1."), head)
            self.assertNotIn(b"\r\ntransfer-encoding:", head.lower() + b"\r\n",
                             "chunked response sent to an HTTP/1.0 client: %r" % head)
            self.assertEqual(len(body), size, "%d/%d" % (size, chunk))
            self.assertEqual(sha(body), pattern_sha256(size), "%d/%d" % (size, chunk))

    def test_http10_keep_alive_with_chunked_upstream_ends_with_close(self):
        # Without chunked coding the only end of such a body is the close, so the connection
        # cannot stay open and the pipelined request behind it must not be answered into it.
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        c.send(b"GET /chunked?size=3000&chunk=100 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
               b"GET /fixed?size=3 HTTP/1.0\r\n\r\n")
        data = c.recv_until_close(timeout=5)
        self.assertEqual(c.last_close, "eof")
        resps = parse_responses(data)
        self.assertEqual(len(resps), 1)
        self.assertIsNone(resps[0].header("transfer-encoding"))
        self.assertFalse(resps[0].keep_alive)
        self.assertEqual(resps[0].body, pattern(3000))


class BackPressureTest(ProxyTest):
    @harness.timeout(120)
    def test_slow_reader_keeps_worker_memory_bounded(self):
        bulk = self.stop_server_later(BulkServer())
        p = self.start([bulk.address])
        size = 64 * MiB
        # Warm up the worker's buffers and pools, then take the baseline.
        warm = RawClient(self.port)
        warm.send(b"GET /bulk?size=%d HTTP/1.1\r\nHost: w\r\n\r\n" % MiB)
        self.assertEqual(warm.read_head()[0], 200)
        warm.read_body(MiB)
        warm.close()
        baseline = worker_rss_kib(p)
        self.assertGreater(baseline, 0, "no worker process found")

        cl = RawClient(self.port, rcvbuf=64 * 1024, timeout=60)
        self.addCleanup(cl.close)
        cl.send(b"GET /bulk?size=%d HTTP/1.1\r\nHost: slow\r\n\r\n" % size)
        status, headers = cl.read_head()
        self.assertEqual((status, headers.get("content-length")), (200, str(size)))
        cl.read_body(MiB)
        # Stall: a proxy without back-pressure would now pull the rest into its memory.
        peak1 = sample_max(lambda: worker_rss_kib(p), 1.5)
        sent1 = bulk.bytes_sent
        cl.read_body(size // 2)
        peak2 = sample_max(lambda: worker_rss_kib(p), 1.5)
        sent2 = bulk.bytes_sent
        growth_kib = max(peak1, peak2) - baseline
        self.assertLess(growth_kib, 16 * 1024,
                        "worker RSS grew by %d KiB while the client stalled (upstream had sent "
                        "%d / %d bytes at the stalls)" % (growth_kib, sent1, sent2))
        cl.read_body(size)
        self.assertEqual(cl.hash.hexdigest(), bulk_sha256(size), "64 MiB body differs")


class IoUringTest(ProxyTest):
    """Each worker carries out the socket reads and writes of a loop iteration with one
    io_uring_enter(2); server.io_uring: false (like a kernel that refuses io_uring) makes it use
    one plain system call each. Both serve the same traffic the same way."""

    def worker_rings(self, p):
        return sum(t == "anon_inode:[io_uring]" for t in self.worker_fd_targets(p))

    def exercise(self):
        c = self.conn(self.port, timeout=30)
        for size in (0, 1, 5000, 70000, 3 * MiB):
            r = c.request("GET", "/fixed?size=%d" % size)
            self.assertEqual(r.status, 200, size)
            self.assertEqual(sha(r.body), pattern_sha256(size), "body of %d bytes differs" % size)
        body = os.urandom(300 * 1024)
        r = c.request("POST", "/echo", body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_sha256"], sha(body))
        # Pipelined requests are answered in order.
        cl = RawClient(self.port, timeout=30)
        self.addCleanup(cl.close)
        cl.send(b"".join(b"GET /fixed?size=%d HTTP/1.1\r\nHost: p\r\n\r\n" % (10 + i)
                         for i in range(20)))
        for i in range(20):
            status, headers = cl.read_head()  # starts a new body count and hash
            self.assertEqual(status, 200)
            self.assertEqual(int(headers["content-length"]), 10 + i)
            cl.read_body(10 + i)
            self.assertEqual(cl.hash.hexdigest(), pattern_sha256(10 + i))

    @harness.timeout(120)
    def test_pipelined_requests_around_failed_attempts(self):
        # The client's next request and the upstream's invalid answer to the current one often
        # arrive in the same loop turn, so their reads run in the same batch: the 502 (and the
        # connection going idle) must not lose or replay the request read alongside it.
        up = self.stop_server_later(PathServer())
        self.start([up.address], workers=2, io_uring=True)
        workers = self.proxy.worker_pids()
        errors = []

        def client(t):
            try:
                for i in range(60):
                    cl = RawClient(self.port, timeout=20)
                    try:
                        cl.send(b"GET /a%d-%d HTTP/1.1\r\nHost: p\r\n\r\n"
                                b"GET /bad HTTP/1.1\r\nHost: p\r\n\r\n" % (t, i))
                        time.sleep(0.0005 * (i % 4))
                        cl.send(b"GET /c%d-%d HTTP/1.1\r\nHost: p\r\n\r\n" % (t, i))
                        for want, path in ((200, "/a%d-%d" % (t, i)), (502, None),
                                           (200, "/c%d-%d" % (t, i))):
                            status, headers = cl.read_head()
                            n = int(headers["content-length"])
                            body = bytes(cl.buf[:n])
                            del cl.buf[:len(body)]
                            while len(body) < n:
                                chunk = cl.sock.recv(n - len(body))
                                if not chunk:
                                    raise ConnectionError("closed mid-body")
                                body += chunk
                            if status != want or (path and body.decode() != path):
                                errors.append((t, i, want, path, status, body[:80]))
                                return
                    finally:
                        cl.close()
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                errors.append((t, "exception", repr(e)))

        threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(100)
        self.assertEqual(errors, [])
        self.assertEqual(self.proxy.worker_pids(), workers, "a worker died and was replaced")

    def test_workers_batch_through_io_uring(self):
        try:
            with open("/proc/sys/kernel/io_uring_disabled") as f:
                if f.read().strip() == "2":
                    self.skipTest("io_uring is disabled on this kernel")
        except FileNotFoundError:
            pass
        b = self.backend()
        p = self.start([b], workers=2, io_uring=True)
        self.exercise()
        self.assertEqual(self.worker_rings(p), 2)

    def test_plain_system_calls_when_turned_off(self):
        b = self.backend()
        p = self.start([b], workers=2, io_uring=False)
        self.exercise()
        self.assertEqual(self.worker_rings(p), 0)


class SpliceTest(ProxyTest):
    """The rest of a large Content-Length body moves upstream → pipe → client with splice(2)
    (the first read of a response takes at most 16 KiB; 8 KiB or more left then goes through a
    pipe). These cover the edges of that switch and what happens to a pipe that still holds
    bytes when a response is abandoned."""

    def worker_fds(self, p):
        total = 0
        for pid in p.worker_pids():
            if "worker" not in harness.cmdline(pid):
                continue
            try:
                total += len(os.listdir("/proc/%d/fd" % pid))
            except FileNotFoundError:
                pass
        return total

    def worker_pipes(self, p):
        return sum(t.startswith("pipe:") for t in self.worker_fd_targets(p))

    def test_large_bodies_do_go_through_a_pipe(self):
        b = self.backend()
        p = self.start([b])
        c = self.conn(self.port, timeout=30)
        self.assertEqual(c.request("GET", "/fixed?size=1000").body, pattern(1000))
        before = self.worker_pipes(p)
        self.assertEqual(c.request("GET", "/fixed?size=300000").body, pattern(300000))
        # The emptied pipe stays cached for the next large body: two more descriptors.
        self.assertEqual(self.worker_pipes(p), before + 2, "no pipe: the body was copied")

    def test_bytes_beyond_content_length_never_reach_the_next_request(self):
        body = pattern(100000)
        junk = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
        up = self.stop_server_later(CannedServer(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body + junk))
        self.start([up.address])
        c = self.conn(self.port, timeout=20)
        # Pipelined: the second request is dispatched the moment the first response ends, before
        # the event loop could notice the junk on an idle pooled connection.
        c.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        resps = []
        while len(resps) < 2:
            chunk = c.sock.recv(1 << 20)
            self.assertTrue(chunk, "closed after %d bytes" % len(data))
            data += chunk
            try:
                resps = parse_responses(data)
            except ProtocolError:
                pass
        self.assertEqual([r.body for r in resps], [body, body],
                         "the upstream's junk was served as the next response")
        self.assertEqual(up.requests, 2, "the connection with junk after the body was reused")

    def test_bodies_around_the_switch_arrive_intact_on_one_connection(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        sizes = (8191, 16000, 16384, 16384 + 8191, 16384 + 8192, 24576, 65535, 65536, 65537,
                 131072 + 3, 1000, 4 * MiB + 1, 0)
        for size in sizes:
            r = c.request("GET", "/fixed?size=%d" % size)
            self.assertEqual(r.status, 200, size)
            self.assertEqual(len(r.body), size)
            self.assertEqual(sha(r.body), pattern_sha256(size), "body of %d bytes differs" % size)
            self.assertTrue(r.keep_alive, size)
        self.assertLessEqual(b.connections_accepted, 2,
                             "%d upstream connections: not reused after splicing"
                             % b.connections_accepted)

    def test_pipelined_large_responses_stay_in_order(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=30)
        sizes = (300000, 20000, 100000, 5, 70000)
        c.send(b"".join(b"GET /fixed?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % n for n in sizes))
        data = b""
        want = sum(sizes)
        while True:
            try:
                resps = parse_responses(data)
                if len(resps) == len(sizes):
                    break
            except ProtocolError:
                pass
            chunk = c.sock.recv(1 << 20)
            self.assertTrue(chunk, "connection closed after %d bytes" % len(data))
            data += chunk
        self.assertEqual([len(r.body) for r in resps], list(sizes))
        for r, n in zip(resps, sizes):
            self.assertEqual(r.body, pattern(n), "pipelined body of %d bytes differs" % n)
        self.assertGreaterEqual(len(data), want)

    def test_trickled_body_is_spliced_as_it_arrives(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=20)
        r = c.request("GET", "/slowbody?size=60000&interval_ms=2&piece=3000")
        self.assertEqual((r.status, len(r.body)), (200, 60000))
        self.assertEqual(r.body, pattern(60000))
        r = c.request("GET", "/fixed?size=10")
        self.assertEqual((r.status, r.body), (200, pattern(10)))

    def test_abandoned_pipes_are_closed_not_leaked(self):
        b = self.backend()
        p = self.start([b])
        warm = http_request(self.port, "GET", "/fixed?size=200000")
        self.assertEqual(warm.body, pattern(200000))
        wait_until(lambda: self.worker_fds(p) > 0)
        baseline = self.worker_fds(p)
        for i in range(6):
            cl = RawClient(self.port, rcvbuf=16 * 1024, timeout=10)
            cl.send(b"GET /fixed?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (8 * MiB))
            self.assertEqual(cl.read_head()[0], 200)
            cl.read_body(100000)
            # Stop reading: the client's socket fills, then the pipe behind it.
            time.sleep(0.3)
            if i % 2:
                cl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cl.close()
            wait_until(lambda: b.open_connections == 0, 5,
                       msg="upstream connection still open after the client left")
        # The client sockets and upstream connections are gone; so must be the pipes that held
        # bytes of the abandoned responses (a cached empty pipe may stay: at most two fds).
        wait_until(lambda: self.worker_fds(p) <= baseline + 2, 5,
                   msg="worker descriptors: %d before, %d after"
                   % (baseline, self.worker_fds(p)))
        r = http_request(self.port, "GET", "/fixed?size=200000")
        self.assertEqual((r.status, r.body), (200, pattern(200000)))


# --------------------------------------------------------------------------------------------


class KeepAliveTest(ProxyTest):
    def test_many_requests_on_one_client_connection(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port, timeout=10)
        for i in range(100):
            size = (i * 997) % 20000
            if i % 3 == 2:
                r = c.request("GET", "/chunked?size=%d&chunk=1000" % size)
            else:
                r = c.request("GET", "/fixed?size=%d" % size)
            self.assertEqual(r.status, 200, i)
            self.assertEqual(r.body, pattern(size), i)
            self.assertTrue(r.keep_alive, "connection not kept alive after request %d" % i)
        self.assertFalse(c.wait_closed(0.2))
        self.assertLessEqual(b.connections_accepted, 2, "upstream connections not reused")

    def test_upstream_connections_are_reused_across_requests(self):
        b = self.backend()
        self.start([b])
        for i in range(50):
            r = http_request(self.port, "GET", "/fixed?size=%d" % (i * 10))
            self.assertEqual((r.status, r.body), (200, pattern(i * 10)), i)
        self.assertEqual(b.requests_served, 50)
        self.assertLessEqual(b.connections_accepted, 2,
                             "%d upstream connections for 50 sequential requests"
                             % b.connections_accepted)


    @harness.timeout(60)
    def test_pooled_connection_closed_by_upstream_after_back_pressure_is_closed(self):
        # A slow client stops the upstream read watcher (back-pressure); once the response is
        # done and its connection pooled, the pool must watch it again, so that the upstream
        # closing it is noticed at once instead of leaving a half-closed socket behind.
        bulk = BulkServer()
        self.addCleanup(bulk.stop)
        self.start([bulk.address])
        size = 8 * MiB
        cl = RawClient(self.port, rcvbuf=16 * 1024, timeout=30)
        self.addCleanup(cl.close)
        cl.send(b"GET /bulk?size=%d HTTP/1.1\r\nHost: slow\r\n\r\n" % size)
        status, _ = cl.read_head()
        self.assertEqual(status, 200)
        time.sleep(0.5)  # not reading: the gateway stops reading the upstream
        cl.read_body(size)
        self.assertEqual(cl.hash.hexdigest(), bulk_sha256(size))

        def half_closed():  # the gateway's end of connections the upstream closed (CLOSE_WAIT)
            n = 0
            for path in ("/proc/net/tcp", "/proc/net/tcp6"):
                try:
                    with open(path) as f:
                        for line in f.readlines()[1:]:
                            fields = line.split()
                            if int(fields[2].split(":")[1], 16) == bulk.port and fields[3] == "08":
                                n += 1
                except FileNotFoundError:
                    pass
            return n

        wait_until(lambda: bulk.open_connections == 1, 5, msg="response connection not pooled")
        bulk.stop()  # closes the pooled connection from the upstream's side
        wait_until(lambda: half_closed() == 0, 5,
                   msg="the gateway kept a pooled connection the upstream had closed")

    def test_connection_close_from_client_is_honoured(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        c.send(b"GET /fixed?size=5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
               b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, pattern(5)))
        self.assertIn("close", tokens(r.headers.get_all("connection")))
        self.assertTrue(c.wait_closed(5), "connection left open after Connection: close")
        self.assertEqual(c.buffered, b"", "answered a request sent after Connection: close")
        self.assertEqual([q.target for q in b.request_log()], ["/fixed?size=5"])

    def test_keepalive_requests_limit_closes_after_the_last_one(self):
        b = self.backend()
        self.start([b], keepalive_requests=3)
        c = self.conn(self.port)
        for i in range(3):
            r = c.request("GET", "/fixed?size=%d" % (i + 1))
            self.assertEqual(r.body, pattern(i + 1))
            self.assertEqual(r.keep_alive, i < 2, "request %d: %r" % (i + 1, r.headers_list))
        self.assertTrue(c.wait_closed(5))

    def test_http10_keep_alive_only_on_request(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        r = c.request("GET", "/fixed?size=5", headers=[("Connection", "keep-alive")],
                      version="HTTP/1.0")
        self.assertEqual((r.status, r.body), (200, pattern(5)))
        self.assertIn("keep-alive", tokens(r.headers.get_all("connection")))
        r = c.request("GET", "/fixed?size=6", version="HTTP/1.0")
        self.assertEqual((r.status, r.body), (200, pattern(6)))
        self.assertTrue(c.wait_closed(5), "HTTP/1.0 connection without keep-alive left open")

    def test_upstream_restart_between_requests_is_invisible(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        self.assertEqual(c.request("GET", "/name").status, 200)
        b.stop()   # closes the pooled upstream connection
        b.start()  # same port
        r = c.request("POST", "/echo", body=b"after restart")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["body_length"], 13)


# --------------------------------------------------------------------------------------------


class RetryTest(ProxyTest):
    def dead_address(self):
        return "127.0.0.1:%d" % free_port()  # below the ephemeral range, nothing listens

    def test_dead_upstream_is_skipped_by_retries(self):
        b = self.backend()
        dead = self.dead_address()
        self.start([dead, b], route={"retries": 1})
        for i in range(20):
            r = http_request(self.port, "GET", "/fixed?size=%d" % (100 + i))
            self.assertEqual(r.status, 200, "GET %d: %r %r" % (i, r, r.body))
            self.assertEqual(r.header("x-backend"), "b1")
            self.assertEqual(r.body, pattern(100 + i))
        self.assertEqual(b.requests_served, 20)
        self.assertIn(dead, self.proxy.stderr_text(), "the dead upstream was never tried")

    def test_uploads_fail_over_after_a_connect_failure(self):
        # Nothing was sent to an upstream that refused the connection, so any request, body
        # included, may go to the next one.
        b = self.backend()
        dead = self.dead_address()
        self.start([dead, b], route={"retries": 1})
        body = pattern(3 * MiB)
        digest = sha(body)
        for i in range(3):
            for kind, kw in (("content-length", {"body": body}),
                             ("chunked", {"body": [body[:100000], body[100000:]],
                                          "chunked": True})):
                r = http_request(self.port, "POST", "/echo", timeout=30, **kw)
                self.assertEqual(r.status, 200, "%s upload %d: %r" % (kind, i, r.body))
                self.assertEqual(r.json()["body_sha256"], digest, kind)
            c = self.conn(self.port, timeout=30)
            r = c.request("PUT", "/echo", headers=[("Expect", "100-continue")], body=body)
            self.assertEqual(r.status, 200, "100-continue upload %d: %r" % (i, r.body))
            self.assertEqual(r.json()["body_sha256"], digest)
        self.assertEqual(b.requests_served, 9)
        self.assertIn(dead, self.proxy.stderr_text(), "the dead upstream was never tried")

    def test_get_reset_before_response_is_retried_on_another_upstream(self):
        rs = self.stop_server_later(ResetServer())
        b = self.backend()
        self.start([rs.address, b], route={"retries": 1})
        for i in range(6):
            r = http_request(self.port, "GET", "/name")
            self.assertEqual((r.status, r.body), (200, b"b1"), "GET %d: %r" % (i, r.body))
        self.assertGreaterEqual(rs.requests, 1, "the resetting upstream was never tried")
        self.assertEqual(b.requests_served, 6)

    def test_get_reset_everywhere_is_retried_then_502(self):
        b1, b2 = self.backend(), self.backend()
        self.start([b1, b2], route={"retries": 1})
        r = http_request(self.port, "GET", "/reset")
        check_error_reply(self, r, 502)
        wait_until(lambda: b1.requests_served + b2.requests_served >= 2, 3,
                   msg="GET /reset was not retried")
        self.assertEqual((b1.requests_served, b2.requests_served), (1, 1))

    def test_post_to_resetting_upstream_is_not_retried(self):
        b1, b2 = self.backend(), self.backend()
        self.start([b1, b2], route={"retries": 2})
        r = http_request(self.port, "POST", "/reset", body=b"x" * 100)
        check_error_reply(self, r, 502)
        self.assertEqual(b1.requests_served + b2.requests_served, 1,
                         "a POST that may have been processed was sent again")

    def test_all_upstreams_dead_gives_502(self):
        self.start([self.dead_address(), self.dead_address()], route={"retries": 1})
        r = http_request(self.port, "GET", "/anything")
        check_error_reply(self, r, 502)
        # The worker is fine afterwards.
        r = http_request(self.port, "GET", "/anything")
        check_error_reply(self, r, 502)

    def test_no_usable_upstream_gives_503_with_retry_after(self):
        b = self.backend()

        def limit(cfg):
            cfg["load_balancing"]["backends"]["default"]["upstreams"][0]["max_connections"] = 1
            # A client's EOF cancels the upstream work at once only with client_abort: cancel
            # (by default a half-closed client still gets its answer).
            cfg["server"]["client_abort"] = "cancel"

        self.start([b], config=limit)
        hog = self.conn(self.port)
        hog.send_request("GET", "/hang")
        wait_until(lambda: b.requests_served == 1, msg="/hang never reached the upstream")
        r = http_request(self.port, "GET", "/name")
        check_error_reply(self, r, 503)
        self.assertIsNotNone(r.header("retry-after"), "503 without Retry-After")
        self.assertTrue(r.header("retry-after").isdigit())
        # Dropping the in-flight request frees the slot again.
        hog.close()
        wait_until(lambda: http_request(self.port, "GET", "/name").status == 200,
                   msg="upstream slot not released after the client left")

    def test_all_upstreams_ejected_gives_503_with_retry_after(self):
        # Passive health: one failed connect ejects the only upstream (max_fails: 1, and
        # max_ejection_percent: 100 lets the last one go, without panic routing); the next
        # request finds no usable upstream at all.
        def rules(cfg):
            b = cfg["load_balancing"]["backends"]["default"]
            b["max_ejection_percent"] = 100
            b["panic_threshold"] = 0

        self.start([self.dead_address()], max_fails=1, config=rules)
        check_error_reply(self, http_request(self.port, "GET", "/name"), 502)
        r = http_request(self.port, "GET", "/name")
        check_error_reply(self, r, 503)
        self.assertIsNotNone(r.header("retry-after"), "503 without Retry-After")

    def test_unresolvable_upstream_gives_503_with_retry_after(self):
        self.start(["upstream.invalid:80"])
        r = http_request(self.port, "GET", "/name")
        check_error_reply(self, r, 503)
        self.assertIsNotNone(r.header("retry-after"), "503 without Retry-After")

    def test_upstream_slower_than_route_timeout_gives_504(self):
        b = self.backend()
        self.start([b], route={"timeout": "1s"})
        r = http_request(self.port, "GET", "/slow?delay_ms=4000", timeout=10)
        check_error_reply(self, r, 504)
        r = http_request(self.port, "GET", "/slow?delay_ms=10&size=5")
        self.assertEqual((r.status, r.body), (200, pattern(5)))


# --------------------------------------------------------------------------------------------


class ClientAbortTest(ProxyTest):
    def test_client_leaving_mid_response_frees_the_upstream(self):
        b = self.backend()
        self.start([b])
        for how in ("close", "reset"):
            c = self.conn(self.port, timeout=10)
            c.send_request("GET", "/slowbody?size=200000&interval_ms=10&piece=100")
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 300:
                chunk = c.sock.recv(4096)
                self.assertTrue(chunk, "response ended early")
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            if how == "reset":
                c.reset()
            else:
                c.close()
            wait_until(lambda: b.open_connections == 0, 5,
                       msg="upstream connection still open after the client %s" % how)
            r = http_request(self.port, "GET", "/fixed?size=1000")
            self.assertEqual((r.status, r.body), (200, pattern(1000)))
            wait_until(lambda: b.open_connections <= 1)



class UpstreamMidResponseFailureTest(ProxyTest):
    def test_upstream_reset_mid_body_closes_client_connection(self):
        b = self.backend()
        self.start([b], route={"retries": 2})
        c = self.conn(self.port)
        with self.assertRaises((ProtocolError, ConnectionResetError)):
            c.request("GET", "/reset-mid?size=100000")  # truncated: must not look complete
        self.assertTrue(c.wait_closed(5))
        self.assertEqual(b.requests_served, 1, "a half-sent response was retried")
        r = http_request(self.port, "GET", "/fixed?size=10")
        self.assertEqual((r.status, r.body), (200, pattern(10)))

    def test_upstream_stalling_mid_body_closes_client_connection(self):
        b = self.backend()
        self.start([b], route={"timeout": "1s"})
        # A small body (copied) and a large one (the rest spliced through a pipe).
        for size, piece in ((1000, 100), (100000, 30000)):
            c = self.conn(self.port, timeout=10)
            c.send_request("GET", "/slowbody?size=%d&interval_ms=5000&piece=%d" % (size, piece))
            data = c.recv_until_close(timeout=8)
            self.assertNotEqual(c.last_close, "timeout", "stalled response left hanging (%d)" % size)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            with self.assertRaises(ProtocolError):
                parse_responses(data)  # the body is incomplete
        r = http_request(self.port, "GET", "/fixed?size=10")
        self.assertEqual((r.status, r.body), (200, pattern(10)))


class MaxConnectionsTest(ProxyTest):
    def hold(self, count):
        held = []
        for i in range(count):
            c = self.conn(self.port)
            r = c.request("GET", "/name")
            self.assertEqual(r.status, 200, "connection %d of %d refused" % (i + 1, count))
            held.append(c)
        return held

    def refused(self, number):
        """Opens one more connection; asserts photon answers 503 or closes it. Returns the raw
        bytes it sent."""
        c = self.conn(self.port)
        data = c.recv_until_close(timeout=3)
        self.assertNotEqual(c.last_close, "timeout",
                            "connection %d beyond max_connections was accepted and kept open"
                            % number)
        if data:
            self.assertTrue(data.startswith(b"HTTP/1.1 503 "), data[:200])
        return data

    def test_refusal_is_a_well_formed_503(self):
        b = self.backend()
        self.start([b], workers=1, max_connections=2)
        self.hold(2)
        data = self.refused(3)
        self.assertTrue(data, "closed without a 503")
        resps = parse_responses(data)  # raises if Content-Length does not match the body
        self.assertEqual(len(resps), 1)
        self.assertIsNotNone(resps[0].header("retry-after"))
        # Like every gateway error: JSON with status and a request id, also in X-Request-ID.
        check_error_reply(self, resps[0], 503)

    def test_limit_holds_across_two_workers(self):
        b = self.backend()
        limit = 4
        self.start([b], workers=2, max_connections=limit)
        held = self.hold(limit)
        for extra in range(6):
            self.refused(limit + 1 + extra)
        # A freed slot is usable again.
        held.pop().close()

        def fresh_ok():
            try:
                return http_request(self.port, "GET", "/name", timeout=2).status == 200
            except (ProtocolError, OSError):
                return False
        wait_until(fresh_ok, msg="no connection accepted after one was closed")


class DescriptorExhaustionTest(ProxyTest):
    """A worker out of file descriptors (EMFILE) pauses accepting instead of spinning on the
    still-readable listener, keeps serving the connections it has, and accepts again once
    descriptors are free."""

    NOFILE = 40

    def cpu_seconds(self, pid):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def test_accept_pauses_on_emfile_and_recovers(self):
        import socket
        b = self.backend()
        self.start([b], workers=1, binary=nofile_wrapper(self.tmpdir, self.NOFILE))
        self.proxy.wait_stderr(r"open-file limit %d is below" % self.NOFILE)
        first = self.conn(self.port)
        self.assertEqual(first.request("GET", "/name").status, 200)
        (worker,) = [p for p in self.proxy.worker_pids()]
        # More connections than the worker has descriptors: the kernel completes them all, the
        # worker accepts until EMFILE.
        flood = []
        for _ in range(self.NOFILE + 20):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            flood.append(s)
        self.addCleanup(lambda: [s.close() for s in flood])
        wait_until(lambda: "pausing accepts" in self.proxy.stderr_text(),
                   msg="no EMFILE back-off logged")
        before = self.cpu_seconds(worker)
        time.sleep(2.0)
        spent = self.cpu_seconds(worker) - before
        self.assertLess(spent, 0.5, "worker used %.2f s of CPU in 2 s while out of descriptors"
                        % spent)
        # The connection it already had is still served.
        self.assertEqual(first.request("GET", "/name").status, 200)
        for s in flood:
            s.close()
        flood.clear()

        def fresh_ok():
            try:
                return http_request(self.port, "GET", "/name", timeout=2).status == 200
            except (ProtocolError, OSError):
                return False
        wait_until(fresh_ok, timeout=15, msg="no new connection served after descriptors freed")
        self.assertEqual(self.proxy.worker_pids(), [worker], "the worker was replaced")


# --------------------------------------------------------------------------------------------


class HeaderHygieneTest(ProxyTest):
    def echo(self, headers, path="/echo", **kw):
        r = http_request(self.port, "GET", path, headers=headers, **kw)
        self.assertEqual(r.status, 200, r.body)
        return r, r.json()

    @staticmethod
    def upstream_headers(doc, name):
        return [v for n, v in doc["headers"] if n.lower() == name.lower()]

    def test_head_that_outgrows_the_buffer_when_forwarded_is_refused_not_truncated(self):
        b = self.backend()
        self.start([b])
        # Within server.max_header_size (16 KiB) as received, but Host is sent on twice (Host
        # and X-Forwarded-Host), which no longer fits the 20 KiB request buffer.
        r = http_request(self.port, "GET", "/echo", headers={"Host": "a" * 10300})
        check_error_reply(self, r, 431)
        self.assertEqual(b.requests_served, 0, "a truncated head reached the upstream")
        r, doc = self.echo({"Host": "h" * 5000})
        self.assertEqual(self.upstream_headers(doc, "host"), ["h" * 5000])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-host"), ["h" * 5000])

    def test_response_head_too_large_to_forward_is_a_502_not_truncated(self):
        up = self.stop_server_later(CannedServer(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 30000 + b"\r\nContent-Length: 2\r\n\r\nok"))
        self.start([up.address])
        r = http_request(self.port, "GET", "/big-head")
        check_error_reply(self, r, 502)
        self.assertEqual(up.requests, 1)

    def test_hop_by_hop_request_headers_are_not_forwarded(self):
        b = self.backend()
        self.start([b])
        r, doc = self.echo([
            ("Connection", "keep-alive, X-Conn-Named"),
            ("X-Conn-Named", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("X-Kept", "yes"),
        ])
        names = {n.lower() for n, _ in doc["headers"]}
        for h in ("x-conn-named", "keep-alive", "te", "trailer", "upgrade",
                  "proxy-authorization", "proxy-connection"):
            self.assertNotIn(h, names, "%s forwarded upstream: %r" % (h, doc["headers"]))
        self.assertNotIn("x-conn-named", tokens(self.upstream_headers(doc, "connection")))
        self.assertEqual(self.upstream_headers(doc, "x-kept"), ["yes"])

    def test_hop_by_hop_response_headers_are_not_forwarded(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        q = "&".join("header=" + h for h in (
            "Connection:X-Up-Secret", "X-Up-Secret:1", "Keep-Alive:timeout%3D9",
            "Proxy-Connection:keep-alive", "Trailer:X-T", "Upgrade:foo",
            "Proxy-Authenticate:Basic", "X-Up-Kept:1"))
        r = c.request("GET", "/name?" + q)
        self.assertEqual((r.status, r.body), (200, b"b1"))
        names = set(r.headers.names())
        for h in ("x-up-secret", "keep-alive", "proxy-connection", "trailer", "upgrade",
                  "proxy-authenticate"):
            self.assertNotIn(h, names, "%s forwarded to the client: %r" % (h, r.headers_list))
        self.assertNotIn("x-up-secret", tokens(r.headers.get_all("connection")))
        self.assertEqual(r.headers.get_all("x-up-kept"), ["1"])
        r = c.request("GET", "/fixed?size=3")
        self.assertEqual(r.body, pattern(3))

    def test_forwarded_headers_are_set_and_appended(self):
        b = self.backend()
        self.start([b])
        host = "127.0.0.1:%d" % self.port
        _, doc = self.echo([("X-Forwarded-For", "203.0.113.7"),
                            ("X-Forwarded-Proto", "https"),
                            ("X-Forwarded-Host", "spoofed.example")])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-for"),
                         ["203.0.113.7, 127.0.0.1"])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-proto"), ["http"])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-host"), [host])
        _, doc = self.echo(None)
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-proto"), ["http"])

    def test_host_is_passed_through(self):
        b = self.backend()
        self.start([b])
        _, doc = self.echo([("Host", "api.example.test:8443")])
        self.assertEqual(self.upstream_headers(doc, "host"), ["api.example.test:8443"])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-host"),
                         ["api.example.test:8443"])

    def test_several_forwarded_for_fields_are_joined_in_order(self):
        b = self.backend()
        self.start([b])
        _, doc = self.echo([("X-Forwarded-For", "198.51.100.1"),
                            ("X-Forwarded-For", "198.51.100.2, 198.51.100.3")])
        self.assertEqual(self.upstream_headers(doc, "x-forwarded-for"),
                         ["198.51.100.1, 198.51.100.2, 198.51.100.3, 127.0.0.1"])

    def test_absolute_form_target_is_forwarded_in_origin_form(self):
        b = self.backend()
        self.start([b])
        c = self.conn(self.port)
        c.send(b"GET http://example.test/echo?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["target"], "/echo?x=1")
        self.assertEqual(self.upstream_headers(doc, "host"), ["example.test"])

    def test_request_id_is_generated_and_returned(self):
        b = self.backend()
        self.start([b])
        ids = set()
        for _ in range(3):
            r, doc = self.echo(None)
            rid = r.header("x-request-id")
            self.assertTrue(rid and rid.startswith("req-"), "generated id %r" % rid)
            self.assertEqual(self.upstream_headers(doc, "x-request-id"), [rid])
            ids.add(rid)
        self.assertEqual(len(ids), 3, "request ids repeat")
        # An upstream's own X-Request-ID does not replace (or duplicate) the gateway's.
        r = http_request(self.port, "GET", "/name?header=X-Request-ID:from-upstream")
        self.assertEqual(len(r.headers.get_all("x-request-id")), 1, r.headers_list)
        self.assertTrue(r.header("x-request-id").startswith("req-"))

    def test_sane_incoming_request_id_is_kept(self):
        b = self.backend()
        self.start([b])
        for rid in ("abc-123_XYZ.789", "k" * 128):
            r, doc = self.echo([("X-Request-ID", rid)])
            self.assertEqual(r.headers.get_all("x-request-id"), [rid])
            self.assertEqual(self.upstream_headers(doc, "x-request-id"), [rid])

    def test_insane_incoming_request_id_is_replaced(self):
        b = self.backend()
        self.start([b])
        for rid in ("x" * 129, "abc\tdef", "abc def"):
            r, doc = self.echo([("X-Request-ID", rid)])
            got = r.header("x-request-id")
            self.assertNotEqual(got, rid)
            self.assertTrue(got.startswith("req-"), "insane id %r not replaced: %r" % (rid, got))
            self.assertEqual(self.upstream_headers(doc, "x-request-id"), [got])


# --------------------------------------------------------------------------------------------


class TimeoutTest(ProxyTest):
    def test_incomplete_head_times_out_with_408(self):
        b = self.backend()
        self.start([b], header_read_timeout="1s")
        c = self.conn(self.port, timeout=10)
        c.send(b"GET /name HTTP/1.1\r\nHost: a\r\nX-Partial: 1")
        data = c.recv_until_close(timeout=8)
        self.assertNotEqual(c.last_close, "timeout", "partial head never timed out")
        resps = parse_responses(data)
        self.assertEqual(len(resps), 1)
        check_error_reply(self, resps[0], 408)
        self.assertEqual(b.requests_served, 0)

    def test_idle_keepalive_connection_is_closed_after_connection_timeout(self):
        b = self.backend()
        self.start([b], connection_timeout="1s")
        c = self.conn(self.port)
        r = c.request("GET", "/name")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.keep_alive)
        self.assertTrue(c.wait_closed(8), "idle connection still open long after 1s")
        self.assertEqual(c.buffered, b"")


# --------------------------------------------------------------------------------------------


class RoutingTest(ProxyTest):
    def start_routes(self, b1, b2, **server):
        def routes(cfg):
            cfg["load_balancing"]["backends"] = {
                "api_be": {"upstreams": [{"address": b1.address}]},
                "admin_be": {"upstreams": [{"address": b2.address}]},
            }
            cfg["routes"] = [
                {"id": "api", "path": "/api/**", "backend": "api_be"},
                {"id": "admin", "path": "/admin/**", "backend": "admin_be",
                 "methods": ["GET", "HEAD"]},
            ]
        return self.start([b1], config=routes, **server)

    def test_unknown_path_is_404_json(self):
        b1, b2 = self.backend(), self.backend()
        self.start_routes(b1, b2)
        c = self.conn(self.port)
        r = c.request("GET", "/nowhere/at/all")
        check_error_reply(self, r, 404)
        # A 404 is no reason to drop the connection.
        r = c.request("GET", "/api/x")
        self.assertEqual((r.status, r.body), (200, b"b1"))
        self.assertEqual(b2.requests_served, 0)

    def test_wrong_method_is_405_with_allow(self):
        b1, b2 = self.backend(), self.backend()
        self.start_routes(b1, b2)
        r = http_request(self.port, "POST", "/admin/x", body=b"{}")
        check_error_reply(self, r, 405)
        allow = tokens(r.headers.get_all("allow"))
        self.assertIn("get", allow, r.headers_list)
        self.assertNotIn("post", allow)
        self.assertEqual(b2.requests_served, 0)

    def test_dot_segments_are_resolved_before_routing(self):
        b1, b2 = self.backend(), self.backend()
        self.start_routes(b1, b2)
        r = http_request(self.port, "GET", "/api/../admin/x?q=1")
        self.assertEqual((r.status, r.header("x-backend")), (200, "b2"),
                         "/api/../admin/x not routed as /admin/x")
        self.assertEqual([q.target for q in b2.request_log()], ["/admin/x?q=1"])
        r = http_request(self.port, "GET", "/api/./v1//items/%7euser")
        self.assertEqual(r.status, 200)
        self.assertEqual(b1.request_log()[-1].target, "/api/v1/items/~user")

    def test_encoded_slash_is_400(self):
        b1, b2 = self.backend(), self.backend()
        self.start_routes(b1, b2)
        r = http_request(self.port, "GET", "/api/a%2Fb")
        check_error_reply(self, r, 400)
        r = http_request(self.port, "GET", "/api/a%2fb")
        check_error_reply(self, r, 400)
        self.assertEqual(b1.requests_served + b2.requests_served, 0)


class AccessLogTest(ProxyTest):
    def test_one_json_line_per_request(self):
        b = self.backend()
        log = os.path.join(self.tmpdir, "access.log")
        self.start([b], access_log=log)
        c = self.conn(self.port)
        sent = [
            ("GET", "/fixed?size=10", None, 200),
            ("POST", "/echo", b"hello", 200),
            ("GET", "/status/418", None, 418),
            ("DELETE", "/name", None, 200),
        ]
        ids = []
        for method, path, body, status in sent:
            r = c.request(method, path, body=body)
            self.assertEqual(r.status, status)
            ids.append(r.header("x-request-id"))

        def lines():
            try:
                with open(log) as f:
                    return [ln for ln in f.read().splitlines() if ln.strip()]
            except OSError:
                return []
        wait_until(lambda: len(lines()) >= len(sent), 5, msg="access log lines missing")
        got = [json.loads(ln) for ln in lines()]
        self.assertEqual(len(got), len(sent), got)
        for entry, (method, path, _, status), rid in zip(got, sent, ids):
            self.assertEqual(entry.get("method"), method, entry)
            self.assertEqual(entry.get("path"), path.split("?")[0], entry)
            self.assertEqual(entry.get("status"), status, entry)
            self.assertEqual(entry.get("request_id"), rid, entry)
            self.assertEqual(entry.get("route"), "all", entry)

    def test_combined_format(self):
        b = self.backend()
        log = os.path.join(self.tmpdir, "access.log")
        self.start([b], access_log=log, access_log_format="combined")
        c = self.conn(self.port)
        self.assertEqual(c.request("GET", "/fixed?size=10&token=secret",
                                   headers={"Referer": "https://app.example/p",
                                            "User-Agent": 'curl/8.0 "quoted"'}).status, 200)
        self.assertEqual(c.request("POST", "/status/404", body=b"x").status, 404)

        def lines():
            try:
                with open(log) as f:
                    return [ln for ln in f.read().splitlines() if ln.strip()]
            except OSError:
                return []
        wait_until(lambda: len(lines()) >= 2, 5, msg="access log lines missing")
        combined = re.compile(r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} '
                              r'\+0000\] "(\S+) (\S+) (HTTP/1\.[01])" (\d{3}) (\d+) "([^"]*)" '
                              r'"([^"]*)"$')
        first, second = lines()
        m = combined.match(first)
        self.assertIsNotNone(m, first)
        self.assertEqual(m.group(1, 2, 3, 4), ("GET", "/fixed", "HTTP/1.1", "200"))
        self.assertGreater(int(m.group(5)), 10)
        self.assertEqual(m.group(6), "https://app.example/p")
        self.assertEqual(m.group(7), r"curl/8.0 \x22quoted\x22")
        self.assertNotIn("secret", first)  # the query string is never logged
        m = combined.match(second)
        self.assertIsNotNone(m, second)
        self.assertEqual(m.group(1, 2, 4, 6, 7), ("POST", "/status/404", "404", "-", "-"))
