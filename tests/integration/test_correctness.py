# SPDX-License-Identifier: Apache-2.0
"""Correctness of the proxy around connection edges, each against a scripted upstream:

- a request that is not idempotent is never sent twice (a POST on a pooled connection the
  upstream closes after reading it is answered 502, executed once), while an idempotent one is
  replayed on a new connection; the route options retry_non_idempotent and fresh_connection_for_unsafe; idle pooled
  upstream connections closed after server.upstream_keepalive_timeout;
- an early response (the upstream's or the gateway's own) reaches a client that is still
  uploading whole, followed by a clean EOF (lingering close); Expect: 100-continue relayed,
  answered by a final status (no body forwarded), or supplied by the gateway after a second;
- a client that half-closes after its request still gets the answer (server.client_abort:
  continue, the default), and gets none with client_abort: cancel.

Every upstream here is a small threaded server scripted per path, which records each request
with the connection it came on, so a replay or a connection choice shows up exactly.
"""

import hashlib
import os
import socket
import sys
import threading
import time

from harness import IntegrationTest, free_port, parse_responses, pattern, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "proxy"))

from proxy_support import check_error_reply, proxy_config  # noqa: E402

MiB = 1024 * 1024
SOCK_TIMEOUT = 30.0  # bounds every blocking read or write of the scripted upstream


# --------------------------------------------------------------------------------------------
# Scripted upstream


class UpRequest:
    """One request head as the scripted upstream received it."""

    def __init__(self, conn, method, target, version, headers):
        self.conn = conn
        self.conn_id = conn.id
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.version = version
        self.headers = headers  # [(name, value)] in received order
        self.body = b""

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    @property
    def content_length(self):
        v = self.header("content-length")
        return int(v) if v is not None else 0

    def __repr__(self):
        return "UpRequest(%s %s on conn %d)" % (self.method, self.target, self.conn_id)


class UpConn:
    """The upstream's side of one connection from the gateway."""

    def __init__(self, up, sock, cid):
        self.up = up
        self.sock = sock
        self.id = cid
        self.peer_port = sock.getpeername()[1]
        self.buf = bytearray()
        self.peer_closed = threading.Event()  # the gateway closed (EOF) or reset it
        self.closed = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_head(self):
        """The next request head, or None when the gateway closed between requests."""
        while b"\r\n\r\n" not in self.buf:
            try:
                self._fill()
            except EOFError:
                if not self.buf:
                    return None
                raise
        end = self.buf.index(b"\r\n\r\n")
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            n, _, v = line.partition(":")
            headers.append((n.strip(), v.strip()))
        return UpRequest(self, method, target, version, headers)

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_body(self, req):
        """Reads the request's Content-Length body (no chunked bodies in these tests)."""
        req.body = self.read_exact(req.content_length)
        return req.body

    def read_for(self, seconds):
        """Everything that arrives within ``seconds`` or until the gateway closes."""
        out = bytearray(self.buf)
        self.buf.clear()
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.peer_closed.set()
                break
            finally:
                self.sock.settimeout(SOCK_TIMEOUT)
            if not data:
                self.peer_closed.set()
                break
            out += data
        return bytes(out)

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, status, body=b"", headers=(), close=False, reason="Whatever"):
        head = ["HTTP/1.1 %d %s" % (status, reason), "Content-Length: %d" % len(body)]
        head += ["%s: %s" % h for h in headers]
        if close:
            head.append("Connection: close")
        self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def close(self):
        """Closes without a word (FIN: everything sent to us was read)."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def graceful_close(self, drain=5.0):
        """shutdown(SHUT_WR), then read and discard for at most ``drain`` s (until the
        gateway closes), then close: unread input would turn our close into a reset that could
        destroy the response still on its way. Returns the bytes drained."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        got = self.read_for(drain)
        self.close()
        return got


class ScriptedUpstream:
    """Threaded HTTP/1.1 upstream on 127.0.0.1. Each request head goes to ``handler(conn,
    req)``, which reads the body itself if it wants it, answers (or not) and returns True to
    keep reading requests on that connection. Records every request (with its connection)."""

    def __init__(self, handler):
        self.handler = handler
        self.lock = threading.Lock()
        self.conns = []       # every UpConn, in accept order (conn.id = index + 1)
        self.requests = []    # every UpRequest, in arrival order
        self.counts = {}      # free-form counters the handlers keep (see count())
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept_loop, daemon=True, name="scripted-accept").start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def connections(self):
        with self.lock:
            return len(self.conns)

    def conn(self, cid):
        with self.lock:
            return self.conns[cid - 1]

    def count(self, key):
        """Increments counter ``key``; returns its new value."""
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    def counter(self, key):
        with self.lock:
            return self.counts.get(key, 0)

    def requests_for(self, method, path):
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def _accept_loop(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            s.settimeout(SOCK_TIMEOUT)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.stopped:
                    s.close()
                    return
                c = UpConn(self, s, len(self.conns) + 1)
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True,
                             name="scripted-conn%d" % c.id).start()

    def _serve(self, c):
        try:
            while not c.closed:
                req = c.read_head()
                if req is None:
                    c.peer_closed.set()
                    return
                with self.lock:
                    self.requests.append(req)
                if not self.handler(c, req):
                    return
        except (EOFError, ConnectionResetError, BrokenPipeError):
            c.peer_closed.set()
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        with self.lock:
            self.stopped = True
            conns = list(self.conns)
        try:
            self.ls.close()
        except OSError:
            pass
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --------------------------------------------------------------------------------------------
# Shared pieces


WARM = 4  # pooled upstream connections made before the interesting request


class PoolHandler:
    """The upstream of the retry tests. GET /warm: 200 keep-alive; the first WARM of them are
    held until WARM are in flight at once, so the gateway must open WARM upstream connections
    (which it then pools). POST /pay: read whole, counted, connection closed without an answer.
    /flaky-N (any method): closed without an answer the first N times, then 200. Anything
    else: body read, 200 naming the method and path."""

    def __init__(self):
        self.gate = threading.Event()
        self.in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, c, req):
        up = c.up
        c.read_body(req)
        if req.path == "/warm":
            with self.lock:
                self.in_flight += 1
                if self.in_flight >= WARM:
                    self.gate.set()
            self.gate.wait(5)  # bounded: a gateway that serialises them fails the count check
            c.reply(200, b"warm", [("Content-Type", "text/plain")])
            return True
        if req.path == "/pay":
            up.count("pay")
            c.close()
            return False
        if req.path.startswith("/flaky-"):
            closes = int(req.path.rsplit("-", 1)[1])
            n = up.count((req.method, req.path))
            if n <= closes:
                c.close()
                return False
            c.reply(200, b"flaky ok after %d" % n, [("Content-Type", "text/plain")])
            return True
        up.count((req.method, req.path))
        c.reply(200, ("%s %s" % (req.method, req.path)).encode(),
                [("Content-Type", "text/plain")])
        return True


def read_all(sock, deadline):
    """Reads until EOF, reset or ``deadline``: (bytes, how) with how "eof", "reset", "timeout"."""
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), "timeout"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return bytes(out), "timeout"
        except ConnectionResetError:
            return bytes(out), "reset"
        if not data:
            return bytes(out), "eof"
        out += data


class CorrectnessTest(IntegrationTest):
    def start(self, upstreams, route=None, **server):
        """photon with one worker, no health checks, no passive ejection, in front of
        ``upstreams`` (ScriptedUpstream or "host:port"); ``route`` updates the catch-all route,
        keyword arguments are server keys."""
        addrs = [u.address if isinstance(u, ScriptedUpstream) else u for u in upstreams]
        self.port = free_port()
        cfg = proxy_config(self.tmpdir, self.port, addrs, workers=1, **server)
        if route:
            cfg["routes"][0].update(route)
        self.proxy = self.photon(cfg)
        return self.proxy

    def scripted(self, handler):
        up = ScriptedUpstream(handler)
        self.addCleanup(up.stop)
        return up

    def warm_pool(self, up):
        """Makes WARM pooled upstream connections: WARM clients send GET /warm at once and the
        upstream holds them until all are in flight. Returns the ids of those connections."""
        clients = [self.conn(self.port, timeout=10) for _ in range(WARM)]
        for c in clients:
            c.send_request("GET", "/warm")
        for c in clients:
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"warm"))
        ids = {r.conn_id for r in up.requests_for("GET", "/warm")}
        self.assertEqual(len(ids), WARM, "warm-up did not open %d upstream connections" % WARM)
        self.assertEqual(up.connections, WARM)
        return ids

    def warm_then_post(self, up, path="/pay", body=b"amount=100&to=alice"):
        """Warms the pool, then on ONE keep-alive client connection: three GET /warm (served
        by pooled connections), then POST ``path``. Returns (warm ids, GET ids, response)."""
        warm_ids = self.warm_pool(up)
        c = self.conn(self.port, timeout=15)
        before = len(up.requests_for("GET", "/warm"))
        for _ in range(3):
            r = c.request("GET", "/warm")
            self.assertEqual((r.status, r.body), (200, b"warm"))
        get_ids = [r.conn_id for r in up.requests_for("GET", "/warm")[before:]]
        self.assertTrue(set(get_ids) <= warm_ids,
                        "GETs after the warm-up did not use pooled connections: %r / %r"
                        % (get_ids, warm_ids))
        r = c.request("POST", path, headers=[("Content-Type", "application/x-www-form-urlencoded")],
                      body=body)
        return warm_ids, get_ids, r


# --------------------------------------------------------------------------------------------
# 1. A request that is not idempotent is never sent twice


class NonIdempotentTest(CorrectnessTest):
    def _post_closed_once(self, retries):
        up = self.scripted(PoolHandler())
        self.start([up], route={"retries": retries})
        warm_ids, _, r = self.warm_then_post(up)
        check_error_reply(self, r, 502)
        pays = up.requests_for("POST", "/pay")
        self.assertEqual(up.counter("pay"), 1,
                         "POST /pay executed %d times (retries: %d): %r"
                         % (up.counter("pay"), retries, pays))
        self.assertEqual(len(pays), 1)
        self.assertEqual(pays[0].body, b"amount=100&to=alice")
        # The scenario is the keep-alive race: the POST went out on a pooled connection.
        self.assertIn(pays[0].conn_id, warm_ids, "the POST did not take a pooled connection")
        # A late replay would show as a second execution; none comes.
        time.sleep(0.5)
        self.assertEqual(up.counter("pay"), 1, "POST /pay sent again after the 502")
        self.assertEqual(len(up.requests_for("POST", "/pay")), 1)

    def test_post_on_closed_pooled_connection_is_executed_once_retries_0(self):
        self._post_closed_once(0)

    def test_post_on_closed_pooled_connection_is_executed_once_retries_2(self):
        self._post_closed_once(2)

    def test_idempotent_request_is_replayed_after_pooled_connection_closes(self):
        up = self.scripted(PoolHandler())
        self.start([up], route={"retries": 0})
        self.warm_pool(up)
        c = self.conn(self.port, timeout=15)
        for method, body in (("GET", None), ("PUT", b"state=on")):
            with self.subTest(method=method):
                path = "/flaky-%s-1" % method.lower()  # closed once, then answered
                with up.lock:
                    used = {q.conn_id for q in up.requests}  # connections now pooled or gone
                r = c.request(method, path, body=body)
                self.assertEqual(r.status, 200, "%s %s: %r %r" % (method, path, r, r.body))
                self.assertEqual(r.body, b"flaky ok after 2")
                attempts = up.requests_for(method, path)
                self.assertEqual(len(attempts), 2, "attempts: %r" % attempts)
                self.assertIn(attempts[0].conn_id, used,
                              "first attempt not on a pooled connection")
                self.assertNotEqual(attempts[0].conn_id, attempts[1].conn_id,
                                    "replayed on the connection that was closed")
                # photon.conf(5), Retries: a stale pooled connection is retried on a newly
                # opened connection, never another pooled one.
                self.assertNotIn(attempts[1].conn_id, used,
                                 "replay took another pooled connection (conn %d), not a new one"
                                 % attempts[1].conn_id)
                if body is not None:
                    self.assertEqual([a.body for a in attempts], [body, body])

    def test_retry_non_idempotent_sends_post_again(self):
        up = self.scripted(PoolHandler())
        self.start([up], route={"retries": 1, "retry_non_idempotent": True})
        warm_ids, _, r = self.warm_then_post(up)
        # The upstream closes every POST /pay: the route's opt-in lets it go out again.
        check_error_reply(self, r, 502)
        self.assertGreater(up.counter("pay"), 1,
                           "retry_non_idempotent: POST /pay was not sent again")
        self.assertIn(up.requests_for("POST", "/pay")[0].conn_id, warm_ids)
        # An upstream that answers the second attempt: the client gets that answer.
        c = self.conn(self.port, timeout=15)
        r = c.request("POST", "/flaky-pay-1", body=b"amount=5")
        self.assertEqual((r.status, r.body), (200, b"flaky ok after 2"),
                         "retry_non_idempotent: %r %r" % (r, r.body))
        attempts = up.requests_for("POST", "/flaky-pay-1")
        self.assertEqual([a.body for a in attempts], [b"amount=5", b"amount=5"])

    def test_fresh_connection_for_unsafe_posts_on_a_new_connection(self):
        up = self.scripted(PoolHandler())
        self.start([up], route={"retries": 0, "fresh_connection_for_unsafe": True})
        warm_ids, get_ids, r = self.warm_then_post(up, path="/order")
        self.assertEqual((r.status, r.body), (200, b"POST /order"))
        post = up.requests_for("POST", "/order")
        self.assertEqual(len(post), 1)
        self.assertNotIn(post[0].conn_id, warm_ids,
                         "POST sent on a pooled connection despite fresh_connection_for_unsafe")
        self.assertEqual(up.connections, WARM + 1)
        # Idempotent requests still use the pool.
        c = self.conn(self.port, timeout=15)
        before = up.connections
        r = c.request("GET", "/after")
        self.assertEqual(r.status, 200)
        self.assertEqual(up.connections, before, "a GET opened a new upstream connection")
        # A POST the upstream closes is still executed once and answered 502.
        r = c.request("POST", "/pay", body=b"amount=1")
        check_error_reply(self, r, 502)
        self.assertEqual(up.counter("pay"), 1)
        self.assertNotIn(up.requests_for("POST", "/pay")[0].conn_id,
                         warm_ids | {post[0].conn_id},
                         "POST /pay not sent on a new connection")

    def test_idle_pooled_connection_closed_after_upstream_keepalive_timeout(self):
        up = self.scripted(PoolHandler())
        self.start([up], upstream_keepalive_timeout="1s")
        r = self.conn(self.port).request("GET", "/one")
        self.assertEqual(r.status, 200)
        first = up.conn(up.requests_for("GET", "/one")[0].conn_id)
        self.assertTrue(first.peer_closed.wait(5),
                        "idle pooled upstream connection still open 5 s after the request "
                        "(upstream_keepalive_timeout: 1s)")
        # The next request is served on a new connection.
        r = self.conn(self.port).request("GET", "/two")
        self.assertEqual(r.status, 200)
        self.assertNotEqual(up.requests_for("GET", "/two")[0].conn_id, first.id)

    def test_idle_pooled_connection_kept_with_default_keepalive_timeout(self):
        up = self.scripted(PoolHandler())
        self.start([up])
        r = self.conn(self.port).request("GET", "/one")
        self.assertEqual(r.status, 200)
        first = up.conn(up.requests_for("GET", "/one")[0].conn_id)
        self.assertFalse(first.peer_closed.wait(1.5),
                         "pooled upstream connection closed within 1.5 s with the 4s default")
        r = self.conn(self.port).request("GET", "/two")
        self.assertEqual(r.status, 200)
        self.assertEqual(up.requests_for("GET", "/two")[0].conn_id, first.id,
                         "the idle connection was not reused")


# --------------------------------------------------------------------------------------------
# 2. An early response arrives whole; Expect: 100-continue


UPLOAD = 4 * MiB
PIECE = 16 * 1024
EARLY_BODY = 300000


class EarlyResponseTest(CorrectnessTest):
    def upload_and_read(self, path):
        """Sends a POST head with Content-Length 4 MiB, streams the body in 16 KiB pieces from
        a writer thread and reads the answer meanwhile. Returns (bytes read, how the read
        ended, the writer's outcome)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        self.addCleanup(s.close)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(("POST %s HTTP/1.1\r\nHost: upload.test\r\nContent-Type: "
                   "application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                   % (path, UPLOAD)).encode())
        body = pattern(UPLOAD)
        outcome = {"sent": 0, "error": None}

        def writer():
            try:
                for off in range(0, UPLOAD, PIECE):
                    s.sendall(body[off:off + PIECE])
                    outcome["sent"] = off + PIECE
            except OSError as e:  # EPIPE / ECONNRESET after the response is fine
                outcome["error"] = e

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        data, how = read_all(s, time.monotonic() + 20)
        t.join(25)
        self.assertFalse(t.is_alive(), "writer thread stuck")
        return data, how, outcome

    def test_upstream_early_413_arrives_whole_with_clean_eof(self):
        drained = {}

        def handler(c, req):
            # Only the head was read: answer at once, then close cleanly.
            c.reply(413, pattern(EARLY_BODY), [("Content-Type", "application/octet-stream")],
                    close=True, reason="Content Too Large")
            drained["bytes"] = len(c.graceful_close(drain=10))
            return False

        up = self.scripted(handler)
        self.start([up], lingering_time="3s", lingering_timeout="1s")
        data, how, outcome = self.upload_and_read("/upload")
        self.assertTrue(data.startswith(b"HTTP/1.1 413"), data[:200])
        head_end = data.find(b"\r\n\r\n") + 4
        got_body = len(data) - head_end
        self.assertEqual(how, "eof", "response ended with %s after %d of %d body bytes"
                         % (how, got_body, EARLY_BODY))
        resps = parse_responses(data, ["POST"])
        self.assertEqual(len(resps), 1, [r.status for r in resps])
        self.assertEqual(resps[0].status, 413)
        self.assertEqual(resps[0].header("content-length"), str(EARLY_BODY))
        self.assertEqual(len(resps[0].body), EARLY_BODY)
        self.assertEqual(resps[0].body, pattern(EARLY_BODY))
        self.assertEqual(len(up.requests), 1)

    def test_gateway_413_for_oversized_upload_arrives_whole_with_clean_eof(self):
        up = self.scripted(PoolHandler())
        self.start([up], max_body_size=MiB, lingering_time="3s", lingering_timeout="1s")
        data, how, outcome = self.upload_and_read("/upload")
        self.assertEqual(how, "eof", "connection ended with %s after %d bytes: %r"
                         % (how, len(data), data[:300]))
        resps = parse_responses(data, ["POST"])
        self.assertEqual(len(resps), 1, [r.status for r in resps])
        check_error_reply(self, resps[0], 413)
        self.assertEqual(up.connections, 0, "the oversized upload reached the upstream")

    # ---- Expect: 100-continue ------------------------------------------------------------

    def test_upstream_100_continue_is_relayed(self):
        def handler(c, req):
            c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = c.read_body(req)
            c.reply(200, hashlib.sha256(body).hexdigest().encode())
            return True

        up = self.scripted(handler)
        self.start([up])
        c = self.conn(self.port, timeout=10)
        body = pattern(100000)
        # Conn.request sends the head only and waits for the 100 before the body.
        r = c.request("POST", "/up", headers=[("Expect", "100-continue")], body=body)
        self.assertEqual([i.status for i in r.interim], [100], "100 Continue not relayed once")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, hashlib.sha256(body).hexdigest().encode())
        reqs = up.requests_for("POST", "/up")
        self.assertEqual(len(reqs), 1)
        self.assertEqual((reqs[0].header("expect") or "").lower(), "100-continue",
                         "Expect not forwarded: %r" % reqs[0].headers)
        self.assertEqual(len(reqs[0].body), 100000)
        self.assertEqual(reqs[0].body, body)

    def test_final_status_instead_of_100_forwards_no_body(self):
        seen = {}
        done = threading.Event()

        def handler(c, req):
            seen["expect"] = req.header("expect")
            c.reply(401, b"authenticate first", [("Content-Type", "text/plain"),
                                                 ("WWW-Authenticate", "Basic realm=x")])
            seen["after"] = c.read_for(1.5)  # what the gateway sends after our final answer
            done.set()
            return False

        up = self.scripted(handler)
        self.start([up])
        c = self.conn(self.port, timeout=10)
        body = pattern(100000)
        r = c.request("POST", "/up", headers=[("Expect", "100-continue")], body=body)
        self.assertEqual(r.status, 401, "expected the upstream's 401 first, got %r" % r)
        self.assertEqual(r.interim, [])
        self.assertEqual(r.body, b"authenticate first")
        # A client that sends the body anyway (its Expect timer fired): still not forwarded.
        try:
            c.sock.settimeout(5)
            c.sock.sendall(body)
        except OSError:
            pass
        self.assertTrue(done.wait(10), "upstream handler did not finish")
        self.assertEqual((seen["expect"] or "").lower(), "100-continue")
        self.assertEqual(seen["after"], b"",
                         "the upstream received %d bytes after its final answer: %r"
                         % (len(seen["after"]), seen["after"][:100]))

    def test_gateway_sends_100_when_upstream_ignores_expect(self):
        def handler(c, req):
            body = c.read_body(req)  # no 100: waits for the body
            c.reply(200, hashlib.sha256(body).hexdigest().encode())
            return True

        up = self.scripted(handler)
        self.start([up])
        c = self.conn(self.port, timeout=10)
        body = pattern(100000)
        head, _ = c.build_request("POST", "/up", headers=[("Expect", "100-continue")], body=body)
        c.send(head)
        first = c.read_response("POST", stop_at_interim=True, timeout=5)
        self.assertEqual(first.status, 100, "expected 100 Continue from the gateway, got %r"
                         % first)
        c.send(body)
        r = c.read_response("POST", timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, hashlib.sha256(body).hexdigest().encode())
        reqs = up.requests_for("POST", "/up")
        self.assertEqual(len(reqs), 1)
        self.assertEqual((reqs[0].header("expect") or "").lower(), "100-continue")
        self.assertEqual(reqs[0].body, body)


# --------------------------------------------------------------------------------------------
# 3. A client that half-closes after its request


class HalfCloseTest(CorrectnessTest):
    def slow_upstream(self, wait_for_close=False):
        """Answers /slow after 0.3 s; with ``wait_for_close`` only after 3 s, and not at all
        if the gateway closes the connection first (so a slow cancellation cannot race)."""
        def handler(c, req):
            if wait_for_close:
                c.read_for(3.0)
                if c.peer_closed.is_set():
                    return False
            else:
                time.sleep(0.3)
            try:
                c.reply(200, pattern(50000), [("Content-Type", "application/octet-stream")])
            except OSError:
                c.peer_closed.set()
                return False
            return True

        return self.scripted(handler)

    def send_and_half_close(self):
        c = self.conn(self.port, timeout=10)
        c.send(b"GET /slow HTTP/1.1\r\nHost: half.test\r\nConnection: close\r\n\r\n")
        c.shutdown_write()
        return c

    def test_half_closed_client_gets_the_answer(self):
        up = self.slow_upstream()
        self.start([up])
        c = self.send_and_half_close()
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, pattern(50000))
        self.assertTrue(c.wait_closed(5), "connection not closed after the answer")
        self.assertEqual(c.buffered, b"")
        self.assertEqual(len(up.requests), 1)

    def test_half_close_with_client_abort_cancel_gets_no_answer(self):
        up = self.slow_upstream(wait_for_close=True)
        self.start([up], client_abort="cancel")
        c = self.send_and_half_close()
        data = c.recv_until_close(timeout=5)
        self.assertNotEqual(c.last_close, "timeout", "connection left open")
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), "client_abort: cancel, yet answered")
        self.assertEqual(data, b"")
        wait_until(lambda: len(up.requests) == 1, 5, msg="request never reached the upstream")
        self.assertTrue(up.conn(up.requests[0].conn_id).peer_closed.wait(5),
                        "the gateway kept the upstream connection of a cancelled request")
