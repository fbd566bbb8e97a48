# SPDX-License-Identifier: Apache-2.0
"""Scriptable WebSocket (RFC 6455) test backend for Photon's WebSocket integration tests.

One asyncio event loop in a background thread serves every connection, so a thousand
concurrent WebSocket connections cost a thousand sockets and no threads. It listens on
127.0.0.1 only and uses the standard library only.

In-process use::

    from ws_backend import WsBackend
    with WsBackend(name="ws1") as b:          # started; port chosen by the kernel
        ... b.port, b.address, b.requests(), b.events(), b.closes() ...

As a script (serves until SIGTERM/SIGINT)::

    /usr/bin/python3 tests/integration/ws_backend.py --port 0 --name ws1
    # prints "ready <port>" once listening

A request that is not a WebSocket handshake (no ``Upgrade: websocket``) is answered with 200
and a JSON body describing it: method, target, path, version, headers ([[name, value], ...] as
received), body_length, backend. Keep-alive follows HTTP/1.1.

A handshake (``Upgrade: websocket``, whatever the method) is answered according to the query
string of its target (the path is ignored, so any route prefix works):

    (default)           101 and echo: every data frame is sent back as received (same FIN,
                        RSV and opcode bits, unmasked payload); ping is answered with a pong
                        carrying the same payload; a close frame is answered with a close
                        frame carrying the same code, then the TCP connection is closed
    protocol=P          select subprotocol P in the 101, whatever the client offered; default:
                        the first one offered, none when none was offered
    extensions=echo     answer Sec-WebSocket-Extensions with the value(s) the client offered;
    extensions=TEXT     ... or with TEXT
    bad_accept=1        a wrong Sec-WebSocket-Accept
    omit=NAME           leave header NAME (upgrade | connection | accept) out of the 101
    status=N            refuse: an ordinary response with status N, a small text body
                        ("refused by <name>"), Connection: close, then close
    greet=TEXT          a text frame TEXT in the same write as the 101 head
    headers=1           after the 101, one text frame: JSON of the handshake's headers as
                        received, [[name, value], ...]
    send_masked=1       after the 101, one masked text frame "masked" (a server must not mask)
    send=N              after the 101, one binary message of N pattern bytes (backend.pattern)
    fragments=K         ... sent as K fragments of (almost) equal size [1]
    raw=HEX             after the 101, these raw bytes (any frame, valid or not)
    tick_ms=T&ticks=N   after the 101, a text frame "tick <i>" every T ms, N times [N=10]
    silent=1            accept and never send anything after the 101 (nor answer ping or close)
                        but keep reading and recording frames

Several of these combine (e.g. ``greet=hi&headers=1&send=10``); the post-101 sends go out in
that order: headers, send_masked, send, raw, then ticks.

Everything is recorded and readable from any thread:

    requests()          Handshake records (every request, upgrade or not): conn, method, target,
                        path, query, version, headers, body_length, upgrade (bool)
    request_for(text)   the most recent request whose target contains ``text`` (or None)
    events()            Event records in order: kind, conn, and a dict ``data``:
                          ("connect", conn, {})
                          ("request", conn, {"target": ...})
                          ("upgraded", conn, {"protocol": P or None})
                          ("frame", conn, {fin, rsv, opcode, masked, mask, length, payload})
                              payload is the unmasked payload when length <= 4096, else None
                          ("close", conn, {"code": N or None, "masked": bool,
                                           "reason": bytes})
                          ("disconnect", conn, {"how": "eof" | "reset" | "closed"})
                              eof: the peer closed; closed: this backend closed first
    frames(conn)        the "frame" events of one connection (their data dicts)
    closes(conn=None)   [(conn, code, masked)] of the close frames received
    disconnected(conn)  how the connection ended, or None while it is open
    wait_for(pred)      polls pred(self) until truthy (bounded), returns its value
    connections_accepted, open_connections, reset()
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import namedtuple

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from backend import pattern  # noqa: E402

# RFC 6455 §1.3. Kept here rather than imported, so that the backend and the gateway do not
# share one copy of it: a mistyped GUID on either side shows as a failed handshake.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

__all__ = ["WsBackend", "Handshake", "Event", "encode_frame", "mask_payload", "accept_for",
           "WS_GUID"]

_MAX_HEAD = 64 * 1024
_KEEP_PAYLOAD = 4096

Event = namedtuple("Event", "kind conn data")


def accept_for(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (str)."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + WS_GUID).digest()).decode()


def mask_payload(data, key):
    """XORs ``data`` with the 4-byte ``key`` (masking and unmasking are the same); fast for
    large payloads."""
    n = len(data)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=None):
    """One frame: ``rsv`` is the 3-bit RSV field (4 = RSV1), ``mask`` None or 4 bytes.
    The length uses its minimal encoding."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is not None:
        return head + bytes(mask) + mask_payload(payload, mask)
    return head + payload


class Handshake:
    """One request as received: conn, method, target, path, query (dict name -> [values]),
    version, headers ([(name, value)] as received), body_length, upgrade (bool)."""

    __slots__ = ("conn", "method", "target", "path", "query", "version", "headers",
                 "body_length", "upgrade")

    def header(self, name, default=None):
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return default

    def header_all(self, name):
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def q(self, name, default=None):
        return self.query.get(name, [default])[0]

    def __repr__(self):
        return "Handshake(conn=%d, %s %s, %d header(s))" % (self.conn, self.method, self.target,
                                                            len(self.headers))


class _Refuse(Exception):
    pass


class WsBackend:
    """The WebSocket test backend (see the module doc). ``WsBackend(name="ws", port=0)``;
    ``start()`` (returns self), ``stop()``; context manager; thread-safe accessors."""

    def __init__(self, name="ws", port=0, host="127.0.0.1"):
        self.name = name
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._events = []
        self._requests = []
        self._conn_seq = 0
        self._accepted = 0
        self._open = {}            # conn id -> writer
        self._ended = {}           # conn id -> how
        self._loop = None
        self._thread = None
        self._server = None
        self._running = False

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self):
        if self._running:
            return self
        ready = threading.Event()
        failure = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, self.host, self.port, backlog=4096, reuse_address=True,
                    limit=_MAX_HEAD))
            except Exception as e:  # noqa: BLE001 - reported by start()
                failure.append(e)
                ready.set()
                loop.close()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in tasks:
                    t.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="ws-backend-%s" % self.name,
                                        daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        if not ready.is_set():
            raise RuntimeError("ws backend did not start")
        self._running = True
        return self

    def stop(self, timeout=5.0):
        """Closes the listener and aborts every connection; waits (bounded) for the thread."""
        if not self._running:
            return
        self._running = False
        loop = self._loop

        async def shutdown():
            self._server.close()
            with self._lock:
                writers = list(self._open.values())
            for w in writers:
                try:
                    w.transport.abort()
                except Exception:  # noqa: BLE001
                    pass
            loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        except RuntimeError:
            pass
        self._thread.join(timeout)

    @property
    def running(self):
        return self._running

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "WsBackend(%r, %s)" % (self.name, self.address)

    # ---- records -------------------------------------------------------------------------

    def _event(self, kind, conn, **data):
        with self._lock:
            self._events.append(Event(kind, conn, data))

    @property
    def connections_accepted(self):
        return self._accepted

    @property
    def open_connections(self):
        with self._lock:
            return len(self._open)

    def reset(self):
        """Forgets the recorded requests and events (connection ids keep counting)."""
        with self._lock:
            self._events = []
            self._requests = []
            self._accepted = 0

    def requests(self):
        with self._lock:
            return list(self._requests)

    def request_for(self, text):
        """The most recent request whose target contains ``text``, or None."""
        with self._lock:
            for r in reversed(self._requests):
                if text in r.target:
                    return r
        return None

    def events(self, kind=None, conn=None):
        with self._lock:
            evs = list(self._events)
        return [e for e in evs if (kind is None or e.kind == kind)
                and (conn is None or e.conn == conn)]

    def frames(self, conn):
        return [e.data for e in self.events("frame", conn)]

    def closes(self, conn=None):
        return [(e.conn, e.data["code"], e.data["masked"]) for e in self.events("close", conn)]

    def disconnected(self, conn):
        with self._lock:
            return self._ended.get(conn)

    def wait_for(self, pred, timeout=5.0, interval=0.02, msg=None):
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self)
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError(msg or "ws backend: condition not met within %.1f s"
                                     % timeout)
            time.sleep(interval)

    # ---- serving -------------------------------------------------------------------------

    async def _handle(self, reader, writer):
        sock = writer.get_extra_info("socket")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        with self._lock:
            self._conn_seq += 1
            self._accepted += 1
            cid = self._conn_seq
            self._open[cid] = writer
        self._event("connect", cid)
        how = "closed"
        try:
            how = await self._serve(cid, reader, writer)
        except asyncio.IncompleteReadError:
            how = "eof"
        except ConnectionResetError:
            how = "reset"
        except (_Refuse, OSError):
            how = "closed"
        except asyncio.CancelledError:
            how = "closed"
        finally:
            with self._lock:
                self._open.pop(cid, None)
                self._ended[cid] = how
            self._event("disconnect", cid, how=how)
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _read_head(self, reader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refuse()
        text = head[:-4].decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _Refuse()
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Refuse()
            headers.append((name, value.strip(" \t")))
        return parts[0], parts[1], parts[2], headers

    async def _read_body(self, reader, req):
        te = ",".join(req.header_all("transfer-encoding")).lower()
        if "chunked" in te:
            total = 0
            while True:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return total
                await reader.readexactly(size + 2)
                total += size
        cl = req.header("content-length")
        if cl and cl.strip().isdigit() and int(cl) > 0:
            await reader.readexactly(int(cl))
            return int(cl)
        return 0

    async def _serve(self, cid, reader, writer):
        while True:
            try:
                method, target, version, headers = await self._read_head(reader)
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    return "eof"
                raise
            req = Handshake()
            req.conn, req.method, req.target, req.version = cid, method, target, version
            sp = urllib.parse.urlsplit(target)
            req.path = sp.path
            req.query = urllib.parse.parse_qs(sp.query, keep_blank_values=True)
            req.headers = headers
            upgrade_tokens = [t.strip().lower() for v in req.header_all("upgrade")
                              for t in v.split(",")]
            req.upgrade = "websocket" in upgrade_tokens
            req.body_length = await self._read_body(reader, req)
            with self._lock:
                self._requests.append(req)
            self._event("request", cid, target=target)
            if req.upgrade:
                return await self._websocket(cid, req, reader, writer)
            conn_tokens = {t.strip().lower() for v in req.header_all("connection")
                           for t in v.split(",")}
            close = "close" in conn_tokens or (version == "HTTP/1.0"
                                               and "keep-alive" not in conn_tokens)
            body = json.dumps({
                "method": method, "target": target, "path": req.path, "version": version,
                "headers": [[n, v] for n, v in headers], "body_length": req.body_length,
                "backend": self.name}).encode()
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\nX-Backend: %s\r\n%s\r\n"
                    % (len(body), self.name, "Connection: close\r\n" if close else ""))
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            if close:
                return "closed"

    async def _websocket(self, cid, req, reader, writer):
        q = req.q
        status = q("status")
        if status:
            body = ("refused by %s\n" % self.name).encode()
            writer.write(("HTTP/1.1 %s Refused\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %d\r\nConnection: close\r\nX-Backend: %s\r\n\r\n"
                          % (status, len(body), self.name)).encode("latin-1") + body)
            await writer.drain()
            return "closed"
        key = req.header("sec-websocket-key")
        if not key or req.header("sec-websocket-version") != "13":
            body = b"not a websocket handshake\n"
            writer.write(("HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n" % len(body)).encode() + body)
            await writer.drain()
            return "closed"
        accept = accept_for(key + ("x" if q("bad_accept") == "1" else ""))
        omit = {x.lower() for x in req.query.get("omit", [])}
        hdrs = []
        if "upgrade" not in omit:
            hdrs.append(("Upgrade", "websocket"))
        if "connection" not in omit:
            hdrs.append(("Connection", "Upgrade"))
        if "accept" not in omit:
            hdrs.append(("Sec-WebSocket-Accept", accept))
        offered = [p.strip() for v in req.header_all("sec-websocket-protocol")
                   for p in v.split(",") if p.strip()]
        chosen = q("protocol")
        if chosen is None and offered:
            chosen = offered[0]
        if chosen:
            hdrs.append(("Sec-WebSocket-Protocol", chosen))
        ext = q("extensions")
        if ext == "echo":
            ext = ", ".join(req.header_all("sec-websocket-extensions")) or None
        if ext:
            hdrs.append(("Sec-WebSocket-Extensions", ext))
        hdrs.append(("X-Backend", self.name))
        out = ("HTTP/1.1 101 Switching Protocols\r\n"
               + "".join("%s: %s\r\n" % h for h in hdrs) + "\r\n").encode("latin-1")
        greet = q("greet")
        if greet is not None:
            out += encode_frame(1, greet)
        writer.write(out)
        await writer.drain()
        self._event("upgraded", cid, protocol=chosen)

        after = b""
        if q("headers") == "1":
            after += encode_frame(1, json.dumps([[n, v] for n, v in req.headers]))
        if q("send_masked") == "1":
            after += encode_frame(1, b"masked", mask=os.urandom(4))
        if q("send") is not None:
            data = pattern(int(q("send")))
            k = max(1, int(q("fragments", "1")))
            step = -(-len(data) // k) if data else 0
            pieces = [data[i * step:(i + 1) * step] for i in range(k)]
            for i, piece in enumerate(pieces):
                after += encode_frame(2 if i == 0 else 0, piece, fin=i == k - 1)
        if q("raw") is not None:
            after += bytes.fromhex(q("raw"))
        if after:
            writer.write(after)
            await writer.drain()
        ticker = None
        if q("tick_ms") is not None:
            ticker = asyncio.ensure_future(self._tick(writer, int(q("tick_ms")),
                                                      int(q("ticks", "10"))))
        try:
            return await self._frames(cid, reader, writer, silent=q("silent") == "1")
        finally:
            if ticker is not None:
                ticker.cancel()

    async def _tick(self, writer, ms, n):
        for i in range(n):
            await asyncio.sleep(ms / 1000.0)
            writer.write(encode_frame(1, "tick %d" % i))
            await writer.drain()

    async def _frames(self, cid, reader, writer, silent):
        while True:
            try:
                b0, b1 = await reader.readexactly(2)
            except asyncio.IncompleteReadError as e:
                if not e.partial:
                    return "eof"
                raise
            fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
            masked, n = bool(b1 & 0x80), b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if masked else None
            payload = await reader.readexactly(n)
            if mask:
                payload = mask_payload(payload, mask)
            self._event("frame", cid, fin=fin, rsv=rsv, opcode=opcode, masked=masked,
                        mask=mask, length=n,
                        payload=payload if n <= _KEEP_PAYLOAD else None)
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self._event("close", cid, code=code, masked=masked, reason=payload[2:])
                if silent:
                    continue
                writer.write(encode_frame(8, payload[:2]))
                await writer.drain()
                return "closed"
            if silent:
                continue
            if opcode == 9:
                writer.write(encode_frame(10, payload))
            elif opcode != 10:
                head = bytes([b0])
                if n < 126:
                    head += bytes([n])
                elif n < 65536:
                    head += struct.pack("!BH", 126, n)
                else:
                    head += struct.pack("!BQ", 127, n)
                writer.write(head + payload)
            await writer.drain()


# --------------------------------------------------------------------------------------------
# Script mode


def main(argv=None):
    ap = argparse.ArgumentParser(description="Photon integration-test WebSocket backend")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: kernel-chosen)")
    ap.add_argument("--name", default="ws", help="name sent in X-Backend")
    args = ap.parse_args(argv)
    b = WsBackend(name=args.name, port=args.port).start()
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("ready %d" % b.port, flush=True)
    while not done.wait(0.5):
        pass
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
