# SPDX-License-Identifier: Apache-2.0
"""Scriptable HTTP/1.1 test backend for Photon integration tests.

The backend speaks HTTP/1.1 over raw sockets, one thread per connection, so framing is exact:
keep-alive, pipelining, chunked request bodies, ``Expect: 100-continue`` and deliberate protocol
misbehaviour (hangs, resets, slow or close-delimited bodies) are all under the test's control.
It listens on 127.0.0.1 only.

In-process use::

    from backend import Backend, pattern
    with Backend(name="b1") as b:          # started; port chosen by the kernel
        ...  b.port, b.address ("127.0.0.1:PORT"), b.requests_served ...

As a script (serves until SIGTERM/SIGINT)::

    /usr/bin/python3 tests/integration/backend.py --port 0 --name b1
    # prints "ready <port>" once listening

Endpoints (path + query select the behaviour; every response carries ``X-Backend: <name>``)::

    /fixed?size=N                   200, N pattern bytes, Content-Length       (default N=1024)
    /chunked?size=N&chunk=M         200, N pattern bytes in chunks of M bytes  (1024, 100)
    /close?size=N                   200, no length, no chunking; body then close   (1024)
    /slow?delay_ms=D&size=N         wait D ms before the headers, then like /fixed  (1000, 1024)
    /slowbody?size=N&interval_ms=I&piece=P
                                    headers at once, then P bytes every I ms   (1024, 10, 1)
    /status/NNN                     status NNN, JSON {"status": NNN, "backend": name}
                                    (no body for 204 and 304)
    /hang                           read the request, never answer; ends when the peer closes
    /reset                          read the request, then RST (SO_LINGER 0) without answering
    /reset-mid?size=N               headers (Content-Length N) + N//2 body bytes, then RST (1024)
    /echo                           any method; 200 JSON: method, path, target, query, version,
                                    headers ([[name, value], ...] in received order),
                                    body_length, body_sha256, trailers, backend
    /name                           200 text/plain, body = backend name
    /health                         200 (or set_health_status(code)), JSON status
    /ws                             WebSocket echo (RFC 6455): echoes data frames, answers ping
                                    with pong and close with close; ?protocol=P selects P
    /__stats                        JSON counters (not itself counted in requests_served)
    anything else                   200 text/plain, body = backend name

Options accepted by every endpoint that answers:
    close=1                 answer with ``Connection: close`` and close afterwards
    header=Name:Value       add a response header (repeatable)

Response bodies are the deterministic pattern returned by :func:`pattern`, derived from the
byte position, so a client can compare bytes or hashes without a copy of what was sent and a
reordered, duplicated or dropped range is detected.

Request bodies are accepted with Content-Length or chunked transfer coding (decoded; trailers
kept) on every path. ``Expect: 100-continue`` is answered with ``100 Continue`` before the body
is read. Malformed requests get 400 and the connection is closed.
"""

import argparse
import base64
import fcntl
import hashlib
import http
import json
import signal
import socket
import struct
import sys
import termios
import threading
import time
import urllib.parse
from collections import deque

__all__ = ["Backend", "Request", "pattern", "pattern_sha256", "WS_GUID"]

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 64 * 1024
_MAX_LOG = 10000
_RECV = 65536

# --------------------------------------------------------------------------------------------
# Deterministic body pattern

_pattern_lock = threading.Lock()
_pattern_buf = b""


def pattern(size, offset=0):
    """Returns ``size`` bytes of the body pattern starting at byte ``offset``.

    The pattern is a sequence of 16-byte lines, each the 15-digit hex offset of its first byte
    followed by a newline (``000000000000000\\n000000000000010\\n...``), so every range of it is
    unique and readable in a diff.
    """
    global _pattern_buf
    end = offset + size
    buf = _pattern_buf
    if len(buf) < end:
        with _pattern_lock:
            buf = _pattern_buf
            if len(buf) < end:
                want = max(end, 2 * len(buf), 65536)
                lines = (want + 15) // 16
                buf = b"".join(b"%015x\n" % (i * 16) for i in range(lines))
                _pattern_buf = buf
    return buf[offset:end]


def pattern_sha256(size, offset=0):
    """Hex SHA-256 of ``pattern(size, offset)``."""
    return hashlib.sha256(pattern(size, offset)).hexdigest()


# --------------------------------------------------------------------------------------------
# Request model


class Request:
    """One parsed request as the backend received it (also kept in ``Backend.request_log()``).

    Attributes: method, target (raw request-target), path, query (dict name -> list of values),
    version ("HTTP/1.1"), headers (list of (name, value) in received order, names as sent),
    body (bytes, decoded if chunked), trailers (list of pairs), chunked (bool), conn_id (int,
    the backend's sequence number of the connection it came on).
    """

    __slots__ = ("method", "target", "path", "query", "version", "headers", "body",
                 "trailers", "chunked", "conn_id")

    def __init__(self):
        self.method = ""
        self.target = ""
        self.path = ""
        self.query = {}
        self.version = ""
        self.headers = []
        self.body = b""
        self.trailers = []
        self.chunked = False
        self.conn_id = 0

    def header(self, name, default=None):
        """First value of header ``name`` (case-insensitive), or ``default``."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return default

    def header_all(self, name):
        """All values of header ``name`` (case-insensitive), in received order."""
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def qint(self, name, default):
        """Integer query parameter ``name`` or ``default``."""
        vals = self.query.get(name)
        if not vals:
            return default
        return int(vals[0])

    def __repr__(self):
        return "Request(%s %s %s)" % (self.method, self.target, self.version)


class _BadRequest(Exception):
    pass


class _PeerGone(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Backend


class Backend:
    """A threaded HTTP/1.1 test backend on 127.0.0.1.

    ``Backend(name, port=0)`` creates it; ``start()`` listens (port 0: the kernel chooses, kept
    for later restarts) and returns self; ``stop()`` closes the listener and every connection;
    ``start()`` again listens on the same port. Usable as a context manager (starts on enter
    unless already running, stops on exit). All methods are thread-safe.

    ``tls`` (an ssl.SSLContext for the server side) makes it an HTTPS backend: each connection
    is handshaken in its own thread; ``tls_handshakes`` and ``tls_resumed`` count the completed
    handshakes and the resumed ones, ``tls_failures`` the failed ones.
    """

    def __init__(self, name="backend", port=0, host="127.0.0.1", tls=None):
        self.name = name
        self.host = host
        self.port = port
        self.tls = tls
        self.tls_handshakes = 0
        self.tls_resumed = 0
        self.tls_failures = 0
        self._lock = threading.Lock()
        self._listener = None
        self._accept_thread = None
        self._stop_event = threading.Event()
        self._conns = {}          # socket -> thread
        self._threads = []
        self._health_status = 200
        self._connections_accepted = 0
        self._requests_served = 0
        self._conn_seq = 0
        self._log = deque(maxlen=_MAX_LOG)
        self._running = False

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self):
        """Starts listening (same port as before after a stop()). Returns self."""
        with self._lock:
            if self._running:
                return self
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                ls.bind((self.host, self.port))
                ls.listen(512)
            except OSError:
                ls.close()
                raise
            self.port = ls.getsockname()[1]
            self._listener = ls
            self._stop_event = threading.Event()
            self._running = True
            t = threading.Thread(target=self._accept_loop, args=(ls, self._stop_event),
                                 name="backend-%s-accept" % self.name, daemon=True)
            self._accept_thread = t
            t.start()
        return self

    def stop(self, timeout=5.0):
        """Closes the listener and every open connection; waits (bounded) for the threads."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            self._stop_event.set()
            ls, self._listener = self._listener, None
            conns = list(self._conns)
            threads = list(self._threads) + [self._accept_thread]
            self._threads = []
        _shutdown(ls)
        ls.close()
        for s in conns:
            _shutdown(s)
        deadline = time.monotonic() + timeout
        for t in threads:
            if t is not None and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self):
        """True while listening."""
        return self._running

    @property
    def address(self):
        """``"127.0.0.1:PORT"``, as written in an upstream list."""
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "Backend(%r, %s)" % (self.name, self.address)

    # ---- controls and counters -----------------------------------------------------------

    def set_health_status(self, code):
        """Status that ``/health`` answers from now on (200 initially)."""
        self._health_status = int(code)

    @property
    def health_status(self):
        return self._health_status

    @property
    def connections_accepted(self):
        """Connections accepted since creation (or the last reset_stats())."""
        return self._connections_accepted

    @property
    def requests_served(self):
        """Complete requests received and dispatched, ``/__stats`` excluded. Requests to
        ``/hang`` and ``/reset`` count although they are never answered."""
        return self._requests_served

    @property
    def open_connections(self):
        """Connections currently open."""
        with self._lock:
            return len(self._conns)

    def stats(self):
        """Dict with name, port, connections_accepted, requests_served, open_connections."""
        with self._lock:
            return {
                "name": self.name,
                "port": self.port,
                "connections_accepted": self._connections_accepted,
                "requests_served": self._requests_served,
                "open_connections": len(self._conns),
            }

    def reset_stats(self):
        """Zeroes connections_accepted and requests_served and empties the request log."""
        with self._lock:
            self._connections_accepted = 0
            self._requests_served = 0
            self._log.clear()

    def request_log(self):
        """Copy of the requests received (most recent last, at most 10000), ``/__stats``
        excluded; each a :class:`Request`."""
        with self._lock:
            return list(self._log)

    # ---- internals -----------------------------------------------------------------------

    def _accept_loop(self, ls, stop_event):
        while not stop_event.is_set():
            try:
                s, _ = ls.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if stop_event.is_set():
                    s.close()
                    return
                self._connections_accepted += 1
                self._conn_seq += 1
                conn_id = self._conn_seq
                t = threading.Thread(target=self._serve, args=(s, conn_id, stop_event),
                                     name="backend-%s-conn%d" % (self.name, conn_id),
                                     daemon=True)
                self._conns[s] = t
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
                # Started under the lock: stop() never sees a listed thread it cannot join.
                t.start()

    # The per-connection handler; a subclass may extend it (see WorkBackend in the balancing
    # fixtures).
    conn_class = None  # _Conn, set below once it is defined

    def _serve(self, s, conn_id, stop_event):
        raw = s
        if self.tls is not None:
            try:
                s.settimeout(10)
                s = self.tls.wrap_socket(s, server_side=True)
                s.settimeout(None)
            except (OSError, ValueError):
                with self._lock:
                    self.tls_failures += 1
                    self._conns.pop(raw, None)
                raw.close()
                return
            with self._lock:
                self.tls_handshakes += 1
                self.tls_resumed += 1 if s.session_reused else 0
        c = self.conn_class(self, s, conn_id, stop_event)
        try:
            c.run()
        except (_PeerGone, OSError):
            pass
        finally:
            with self._lock:
                self._conns.pop(raw, None)
            if not c.closed:
                try:
                    s.close()
                except OSError:
                    pass

    def _count_request(self, req):
        if req.path == "/__stats":
            return
        with self._lock:
            self._requests_served += 1
            self._log.append(req)


def _shutdown(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status %d" % status


class _Conn:
    """One server-side connection: parses requests in order and dispatches them."""

    def __init__(self, backend, sock, conn_id, stop_event):
        self.b = backend
        self.s = sock
        self.conn_id = conn_id
        self.stop = stop_event
        self.buf = bytearray()
        self.closed = False

    # ---- input ---------------------------------------------------------------------------

    def _fill(self):
        data = self.s.recv(_RECV)
        if not data:
            raise _PeerGone()
        self.buf += data

    def _read_line(self, limit=_MAX_HEAD):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise _BadRequest("line too long")
            self._fill()

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_request(self):
        """Returns a Request, or None when the peer closed cleanly between requests."""
        # Skip empty lines before a request line (RFC 9112 §2.2).
        while True:
            while b"\r\n" not in self.buf:
                if len(self.buf) > _MAX_HEAD:
                    raise _BadRequest("request line too long")
                try:
                    self._fill()
                except _PeerGone:
                    if not self.buf:
                        return None
                    raise
            if self.buf.startswith(b"\r\n"):
                del self.buf[:2]
                continue
            break
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > _MAX_HEAD:
                raise _BadRequest("header section too long")
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise _BadRequest("bad request line")
        req = Request()
        req.conn_id = self.conn_id
        try:
            req.method = parts[0].decode("ascii")
            req.target = parts[1].decode("latin-1")
            req.version = parts[2].decode("ascii")
        except UnicodeDecodeError:
            raise _BadRequest("bad request line")
        if req.version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest("bad version")
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                raise _BadRequest("obsolete line folding")
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise _BadRequest("bad header line")
            req.headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        split = urllib.parse.urlsplit(req.target)
        req.path = split.path if not req.target.startswith("*") else req.target
        req.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)

        te = req.header_all("transfer-encoding")
        cl = req.header_all("content-length")
        expect = (req.header("expect") or "").lower() == "100-continue"
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if not codings or codings[-1] != "chunked":
                raise _BadRequest("transfer-encoding without final chunked")
            req.chunked = True
            if expect and req.version == "HTTP/1.1":
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.body, req.trailers = self._read_chunked()
        elif cl:
            vals = {v.strip() for v in ",".join(cl).split(",")}
            if len(vals) != 1:
                raise _BadRequest("conflicting content-length")
            v = vals.pop()
            if not v.isdigit():
                raise _BadRequest("bad content-length")
            n = int(v)
            if n and expect and req.version == "HTTP/1.1":
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.body = self._read_exact(n)
        return req

    def _read_chunked(self):
        chunks = []
        while True:
            line = self._read_line(4096)
            size_txt = line.split(b";", 1)[0].strip(b" \t")
            try:
                if not size_txt or any(c not in b"0123456789abcdefABCDEF" for c in size_txt):
                    raise ValueError
                size = int(size_txt, 16)
            except ValueError:
                raise _BadRequest("bad chunk size")
            if size == 0:
                break
            chunks.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise _BadRequest("chunk not followed by CRLF")
        trailers = []
        while True:
            line = self._read_line()
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep:
                raise _BadRequest("bad trailer")
            trailers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return b"".join(chunks), trailers

    # ---- output --------------------------------------------------------------------------

    def _send(self, data):
        self.s.sendall(data)

    def _head(self, status, headers, req, close):
        out = ["HTTP/1.1 %d %s" % (status, _reason(status))]
        for n, v in headers:
            out.append("%s: %s" % (n, v))
        out.append("X-Backend: %s" % self.b.name)
        for extra in req.query.get("header", []):
            n, _, v = extra.partition(":")
            out.append("%s: %s" % (n.strip(), v.strip()))
        if close:
            out.append("Connection: close")
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def _respond(self, req, status, body=b"", ctype="text/plain", close=False, headers=()):
        """Sends a Content-Length framed response (no body for HEAD/204/304)."""
        hdrs = list(headers)
        if ctype and status not in (204, 304):
            hdrs.append(("Content-Type", ctype))
        if status not in (204, 304):
            hdrs.append(("Content-Length", str(len(body))))
        else:
            body = b""
        data = self._head(status, hdrs, req, close)
        if req.method != "HEAD":
            data += body
        self._send(data)
        return not close

    def graceful_close(self):
        """FIN, then drain what the peer still sends (bounded) so that unread input does not
        turn the close into a reset that could destroy the response in flight."""
        self.closed = True
        try:
            self.s.shutdown(socket.SHUT_WR)
            self.s.settimeout(0.2)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    if not self.s.recv(_RECV):
                        break
                except socket.timeout:
                    continue
        except OSError:
            pass
        finally:
            self.s.close()

    def reset(self):
        """Aborts the connection with RST once everything already written was acknowledged."""
        self.closed = True
        try:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                outq = struct.unpack("i", fcntl.ioctl(self.s.fileno(), termios.TIOCOUTQ,
                                                      b"\0\0\0\0"))[0]
                if outq == 0:
                    break
                time.sleep(0.001)
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            self.s.close()

    # ---- main loop -----------------------------------------------------------------------

    def run(self):
        while not self.stop.is_set():
            try:
                req = self._read_request()
            except _BadRequest as e:
                body = ("bad request: %s\n" % e).encode()
                try:
                    self._send(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                "Content-Length: %d\r\nX-Backend: %s\r\nConnection: close"
                                "\r\n\r\n" % (len(body), self.b.name)).encode() + body)
                except OSError:
                    pass
                self.graceful_close()
                return
            if req is None:
                return
            self.b._count_request(req)
            wants_close = self._client_wants_close(req)
            if req.query.get("close", ["0"])[0] not in ("", "0"):
                wants_close = True
            try:
                keep = self._dispatch(req, wants_close)
            except (ValueError, KeyError) as e:
                keep = self._respond(req, 400, ("bad parameter: %s\n" % e).encode(), close=True)
            if self.closed:
                return
            if not keep:
                self.graceful_close()
                return

    @staticmethod
    def _client_wants_close(req):
        tokens = {t.strip().lower() for v in req.header_all("connection") for t in v.split(",")}
        if req.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens

    def _dispatch(self, req, close):
        """Runs the endpoint; returns True to keep the connection open."""
        p = req.path
        if p == "/fixed":
            n = req.qint("size", 1024)
            return self._respond(req, 200, pattern(n), "application/octet-stream", close)
        if p == "/chunked":
            return self._chunked(req, close)
        if p == "/close":
            n = req.qint("size", 1024)
            data = self._head(200, [("Content-Type", "application/octet-stream")], req, True)
            if req.method != "HEAD":
                data += pattern(n)
            self._send(data)
            return False
        if p == "/slow":
            if self.stop.wait(req.qint("delay_ms", 1000) / 1000.0):
                return False
            n = req.qint("size", 1024)
            return self._respond(req, 200, pattern(n), "application/octet-stream", close)
        if p == "/slowbody":
            return self._slowbody(req, close)
        if p.startswith("/status/"):
            status = int(p[len("/status/"):])
            if not 200 <= status <= 999:
                raise ValueError("status must be 200..999")
            body = json.dumps({"status": status, "backend": self.b.name}).encode()
            return self._respond(req, status, body, "application/json", close)
        if p == "/hang":
            self._hang()
            return False
        if p == "/reset":
            self.reset()
            return False
        if p == "/reset-mid":
            n = req.qint("size", 1024)
            hdrs = [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
            self._send(self._head(200, hdrs, req, close) + pattern(n // 2))
            self.reset()
            return False
        if p == "/echo":
            doc = {
                "method": req.method,
                "path": req.path,
                "target": req.target,
                "query": req.query,
                "version": req.version,
                "headers": [[n, v] for n, v in req.headers],
                "body_length": len(req.body),
                "body_sha256": hashlib.sha256(req.body).hexdigest(),
                "chunked": req.chunked,
                "trailers": [[n, v] for n, v in req.trailers],
                "backend": self.b.name,
            }
            return self._respond(req, 200, json.dumps(doc).encode(), "application/json", close)
        if p == "/name":
            return self._respond(req, 200, self.b.name.encode(), "text/plain", close)
        if p == "/health":
            status = self.b.health_status
            body = json.dumps({"status": "ok" if status < 400 else "unhealthy",
                               "backend": self.b.name}).encode()
            return self._respond(req, status, body, "application/json", close)
        if p == "/__stats":
            return self._respond(req, 200, json.dumps(self.b.stats()).encode(),
                                 "application/json", close)
        if p == "/ws":
            return self._websocket(req)
        if p.startswith("/__cache/"):
            return self._cacheable(req, close)
        return self._respond(req, 200, self.b.name.encode(), "text/plain", close)

    def _cacheable(self, req, close):
        """A response for cache tests, shaped by the request's X-Reply-* fields: each
        ``X-Reply-<Name>: value`` becomes the response field ``<Name>: value``, except
        ``X-Reply-Status`` (the status, default 200), ``X-Reply-Size`` (pad the body to this
        many bytes), ``X-Reply-Chunked: 1`` (chunked framing) and ``X-Reply-Delay-Ms`` (wait
        first). The body starts with ``<backend>:<path>:<n>`` where n counts this backend's
        requests for the path (so a test tells a stored answer from a fresh one). A request
        whose If-None-Match (or, without it, If-Modified-Since) equals the reply's ETag (or
        Last-Modified) gets a 304 with the reply's fields."""
        status, size, chunked, delay = 200, 0, False, 0
        hdrs = []
        for n, v in req.headers:
            ln = n.lower()
            if not ln.startswith("x-reply-"):
                continue
            name = n[len("x-reply-"):]
            if ln == "x-reply-status":
                status = int(v)
            elif ln == "x-reply-size":
                size = int(v)
            elif ln == "x-reply-chunked":
                chunked = v == "1"
            elif ln == "x-reply-delay-ms":
                delay = int(v)
            else:
                hdrs.append((name, v))
        if delay and self.stop.wait(delay / 1000.0):
            return False
        # A conditional request whose validator matches the one this reply would carry: 304.
        reply = {n.lower(): v for n, v in hdrs}
        inm, ims = req.header("If-None-Match"), req.header("If-Modified-Since")
        if status == 200 and ((inm is not None and inm == reply.get("etag")) or
                              (inm is None and ims is not None and
                               ims == reply.get("last-modified"))):
            status = 304
        with self.b._lock:
            counts = self.b.__dict__.setdefault("_path_counts", {})
            counts[req.path] = counts.get(req.path, 0) + 1
            seq = counts[req.path]
        body = ("%s:%s:%d\n" % (self.b.name, req.path, seq)).encode()
        if size > len(body):
            body += pattern(size - len(body))
        if not chunked or status in (204, 304):
            return self._respond(req, status, body, "text/plain", close, headers=hdrs)
        hdrs += [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
        out = [self._head(status, hdrs, req, close)]
        if req.method != "HEAD":
            for off in range(0, len(body), 1000):
                piece = body[off:off + 1000]
                out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
            out.append(b"0\r\n\r\n")
        self._send(b"".join(out))
        return not close

    def _chunked(self, req, close):
        n = req.qint("size", 1024)
        m = req.qint("chunk", 100)
        if m <= 0:
            raise ValueError("chunk must be > 0")
        hdrs = [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")]
        head = self._head(200, hdrs, req, close)
        if req.method == "HEAD":
            self._send(head)
            return not close
        body = pattern(n)
        out = [head]
        for off in range(0, n, m):
            piece = body[off:off + m]
            out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        out.append(b"0\r\n\r\n")
        self._send(b"".join(out))
        return not close

    def _slowbody(self, req, close):
        n = req.qint("size", 1024)
        interval = req.qint("interval_ms", 10) / 1000.0
        piece = req.qint("piece", 1)
        if piece <= 0:
            raise ValueError("piece must be > 0")
        hdrs = [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
        self._send(self._head(200, hdrs, req, close))
        if req.method == "HEAD":
            return not close
        body = pattern(n)
        for off in range(0, n, piece):
            if off and self.stop.wait(interval):
                return False
            self._send(body[off:off + piece])
        return not close

    def _hang(self):
        self.s.settimeout(0.5)
        while not self.stop.is_set():
            try:
                if not self.s.recv(_RECV):
                    return
            except socket.timeout:
                continue

    # ---- WebSocket -----------------------------------------------------------------------

    def _websocket(self, req):
        conn_tokens = {t.strip().lower() for v in req.header_all("connection")
                       for t in v.split(",")}
        key = req.header("sec-websocket-key")
        if (req.method != "GET" or (req.header("upgrade") or "").lower() != "websocket"
                or "upgrade" not in conn_tokens or not key
                or req.header("sec-websocket-version") != "13"):
            return self._respond(req, 400, b"not a websocket handshake\n", close=True)
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        hdrs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept)]
        chosen = req.query.get("protocol", [None])[0]
        offered = [p.strip() for v in req.header_all("sec-websocket-protocol")
                   for p in v.split(",") if p.strip()]
        if chosen is None and offered:
            chosen = offered[0]
        if chosen:
            hdrs.append(("Sec-WebSocket-Protocol", chosen))
        out = ["HTTP/1.1 101 Switching Protocols"] + ["%s: %s" % h for h in hdrs]
        out.append("X-Backend: %s" % self.b.name)
        self._send(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        while not self.stop.is_set():
            b0, b1 = self._read_exact(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            masked, ln = b1 & 0x80, b1 & 0x7F
            if ln == 126:
                ln = struct.unpack("!H", self._read_exact(2))[0]
            elif ln == 127:
                ln = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if masked else None
            payload = self._read_exact(ln)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if not masked:
                self._send(ws_frame(8, struct.pack("!H", 1002)))
                self.graceful_close()
                return False
            if opcode == 8:
                self._send(ws_frame(8, payload))
                self.graceful_close()
                return False
            if opcode == 9:
                self._send(ws_frame(10, payload))
            elif opcode in (0, 1, 2):
                self._send(ws_frame(opcode, payload, fin=bool(fin)))
        return False


Backend.conn_class = _Conn


def ws_frame(opcode, payload, fin=True, mask=None):
    """Encodes one WebSocket frame; ``mask`` is None (server side) or 4 bytes (client side)."""
    b0 = (0x80 if fin else 0) | (opcode & 0x0F)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return head + mask + payload
    return head + payload


# --------------------------------------------------------------------------------------------
# Script mode


def main(argv=None):
    ap = argparse.ArgumentParser(description="Photon integration-test HTTP/1.1 backend")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: kernel-chosen)")
    ap.add_argument("--name", default="backend", help="name sent in X-Backend and /name")
    ap.add_argument("--health-status", type=int, default=200, help="initial /health status")
    args = ap.parse_args(argv)
    b = Backend(name=args.name, port=args.port)
    b.set_health_status(args.health_status)
    b.start()
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("ready %d" % b.port, flush=True)
    while not done.wait(1.0):
        pass
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
