# SPDX-License-Identifier: Apache-2.0
"""WebSocket proxying (route `websocket` block): upgrade detection, the checks on the client's
handshake (method, body, version, key, subprotocols) and on the upstream's 101 (Upgrade,
Connection, Accept, selected subprotocol), the relay after the 101 (frames unchanged, bytes that
arrive with the handshake kept, control frames, extensions), the limits the gateway enforces
with a close frame to both sides (1009 message size, 1002 protocol errors, 1001 idle and
lifetime timeouts), middleware on the upgrade request (auth, rate limit, CORS origin check),
1000 concurrent connections on 2 workers, reload and graceful stop.

The upstream is ws_backend.WsBackend (scripted by the query string, records every frame and
close code it receives); the client is WsClient below, on raw sockets. Most classes share one
photon and backend per class (setUpClass) whose config has one route per behaviour:

    /ws/**     protocols [chat, superchat], max_message_size 65536
    /any/**    websocket enabled, everything default (any protocol, 1 MiB)
    /none/**   protocols []
    /big/**    max_message_size 32 MiB
    /idle/**   idle_timeout 2s
    /life/**   timeout 3s (lifetime), idle_timeout 10s
    /rt/**     route timeout 1s (HTTP), websocket idle_timeout 5s
    /rdt/**    backend whose upstream read_timeout is 2s, websocket without idle_timeout
    /auth/**   middleware auth (api_key), /rl/** rate_limit (1/min, burst 1), /cors/** cors
    /off/**    websocket block with enabled: false
    /plain/**  no websocket block (same WsBackend, which answers plain requests with JSON)
    /echo      no websocket block, backend.py's /echo
"""

import base64
import json
import os
import resource
import shutil
import signal
import socket
import struct
import tempfile
import time
import unittest
import uuid
import zlib

from harness import (Backend, Conn, IntegrationTest, Photon, ProtocolError, accepting_pid,
                     base_config, cmdline, free_port, pattern, photon_binary, timeout,
                     wait_until, write_config)
from ws_backend import WsBackend, accept_for, encode_frame, mask_payload

API_KEY = "ws-test-key-0123456789"
APP_ORIGIN = "https://app.example.com"
WORKER_TITLE = "photon: worker process"
_RANDOM = object()


def tokens(values):
    """Lower-cased comma-separated tokens of a list of header values."""
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def raw_tokens(values):
    """Comma-separated tokens of a list of header values, trimmed, case kept."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


# --------------------------------------------------------------------------------------------
# Client


class WsEOF(ProtocolError):
    """The peer closed the TCP connection (or reset it) where a frame was expected."""


class Frame:
    """One received frame: fin, rsv (3 bits, 4 = RSV1), opcode, masked, payload (unmasked)."""

    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = (fin, rsv, opcode, masked,
                                                                      payload)

    @property
    def code(self):
        """Close code of a close frame with one, else None."""
        if self.opcode == 8 and len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def __repr__(self):
        return "Frame(op=%d fin=%s rsv=%d masked=%s len=%d %r)" % (
            self.opcode, self.fin, self.rsv, self.masked, len(self.payload), self.payload[:40])


class WsClient:
    """A raw WebSocket client over harness.Conn: handshake(), send_frame() (masked unless told
    otherwise), send_raw(), recv() one frame, expect_close(), wait_eof()."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.conn = Conn(port, timeout=timeout)
        self.key = None
        self.response = None
        self.tag = None

    def handshake(self, path, protocols=None, extensions=None, headers=None, key=_RANDOM,
                  version="13", method="GET", http_version="HTTP/1.1", upgrade="websocket",
                  connection="Upgrade", body=None, chunked=False, extra=b""):
        """Sends an upgrade request (plus ``extra`` bytes in the same write) and returns the
        Response. ``protocols``/``extensions``: a string (one field) or a list (one field
        each). ``key``/``version``/``upgrade``/``connection`` None leave that field out."""
        self.key = base64.b64encode(os.urandom(16)).decode() if key is _RANDOM else key
        pairs = []
        if upgrade is not None:
            pairs.append(("Upgrade", upgrade))
        if connection is not None:
            pairs.append(("Connection", connection))
        if self.key is not None:
            pairs.append(("Sec-WebSocket-Key", self.key))
        if version is not None:
            pairs.append(("Sec-WebSocket-Version", version))
        for name, v in (("Sec-WebSocket-Protocol", protocols),
                        ("Sec-WebSocket-Extensions", extensions)):
            if v is not None:
                for item in ([v] if isinstance(v, str) else v):
                    pairs.append((name, item))
        pairs += list(headers or [])
        head, payload = self.conn.build_request(method, path, pairs, body, http_version, chunked)
        self.conn.send(head + payload + extra)
        self.response = self.conn.read_response(method)
        return self.response

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True):
        """Sends one frame; ``mask`` True (random key), 4 bytes, or None/False (unmasked).
        Returns the key used (or None)."""
        key = os.urandom(4) if mask is True else (mask or None)
        self.conn.send(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask=key))
        return key

    def send_raw(self, data):
        self.conn.send(data)

    def try_send(self, data):
        """Sends, tolerating a peer that already closed (a gateway that refused what came
        before). Returns False if the send failed."""
        try:
            self.conn.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def recv(self, timeout=None):
        """Reads one frame. Raises socket.timeout when nothing complete arrives in time and
        WsEOF on a close or reset of the TCP connection."""
        r = self.conn._r
        r.deadline = time.monotonic() + (timeout if timeout is not None else self.conn.timeout)
        try:
            b0, b1 = r.exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", r.exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", r.exact(8))[0]
            key = r.exact(4) if b1 & 0x80 else None
            payload = r.exact(n)
            if key:
                payload = mask_payload(payload, key)
            return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, bool(b1 & 0x80), payload)
        except ConnectionResetError:
            raise WsEOF("connection reset while reading a frame")
        except ProtocolError as e:
            if r.eof:
                raise WsEOF("connection closed while reading a frame (%s)" % e)
            raise
        finally:
            r.deadline = None
            r.consumed = bytearray()

    def expect_close(self, timeout=5.0):
        """Reads frames until a close frame; returns (close frame, frames before it)."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no close frame within %.1f s (frames: %r)"
                                     % (timeout, before[:5]))
            try:
                f = self.recv(left)
            except WsEOF as e:
                raise AssertionError("TCP closed without a close frame (%s); frames before: %r"
                                     % (e, before[:5]))
            if f.opcode == 8:
                return f, before
            before.append(f)

    def wait_eof(self, timeout=5.0):
        """True once the peer closed (FIN or RST) within ``timeout``."""
        return self.conn.wait_closed(timeout)

    def close(self):
        self.conn.close()


# --------------------------------------------------------------------------------------------
# Configs


def ws_block(**kw):
    d = {"enabled": True}
    d.update(kw)
    return d


def shared_config(port, ws, http, tmpdir):
    """The config every shared-photon class runs (see the module doc)."""
    cfg = base_config(port, [ws.address])
    cfg["server"]["worker_processes"] = 1
    cfg["server"]["pid_file"] = os.path.join(tmpdir, "photon.pid")
    cfg["server"]["max_connections"] = 4000
    cfg["health_check"]["enabled"] = False
    backends = cfg["load_balancing"]["backends"]
    backends["http"] = {"upstreams": [{"address": http.address}]}
    backends["short"] = {"upstreams": [{"address": ws.address, "read_timeout": "2s"}]}
    # The tests provoke invalid 101s (502): passive health must not eject the only upstream.
    for b in backends.values():
        b["max_fails"] = 0
    cfg["middleware"] = {
        "authentication": {"auth_type": "api_key", "api_key": {"keys": [API_KEY]}},
        "rate_limiting": {"requests_per_minute": 1, "burst": 1, "key": "ip", "max_keys": 16},
        "cors": {"allowed_origins": [APP_ORIGIN], "allowed_methods": ["GET", "POST"],
                 "allowed_headers": ["Content-Type"]},
    }

    def route(rid, path, backend="default", **kw):
        r = {"id": rid, "path": path, "backend": backend}
        r.update(kw)
        return r

    cfg["routes"] = [
        route("ws", "/ws/**", websocket=ws_block(protocols=["chat", "superchat"],
                                                 max_message_size=65536)),
        route("any", "/any/**", websocket=ws_block()),
        route("none", "/none/**", websocket=ws_block(protocols=[])),
        route("big", "/big/**", websocket=ws_block(max_message_size=32 * 1024 * 1024)),
        route("idle", "/idle/**", websocket=ws_block(idle_timeout="2s")),
        route("life", "/life/**", websocket=ws_block(timeout="3s", idle_timeout="10s")),
        route("rt", "/rt/**", timeout="1s", websocket=ws_block(idle_timeout="5s")),
        route("rdt", "/rdt/**", backend="short", websocket=ws_block()),
        route("auth", "/auth/**", middleware=["auth"], websocket=ws_block()),
        route("rl", "/rl/**", middleware=["rate_limit"], websocket=ws_block()),
        route("cors", "/cors/**", middleware=["cors"], websocket=ws_block()),
        route("off", "/off/**", websocket={"enabled": False}),
        route("plain", "/plain/**"),
        route("echo", "/echo", backend="http"),
        route("all", "/**"),
    ]
    return cfg


def lifecycle_config(port, ws, tmpdir, workers=1, server=None):
    cfg = base_config(port, [ws.address])
    cfg["server"]["worker_processes"] = workers
    cfg["server"]["pid_file"] = os.path.join(tmpdir, "photon.pid")
    cfg["server"]["max_connections"] = 4000
    cfg["server"].update(server or {})
    cfg["health_check"]["enabled"] = False
    cfg["routes"] = [{"id": "ws", "path": "/ws/**", "backend": "default",
                      "websocket": ws_block()}]
    return cfg


# --------------------------------------------------------------------------------------------
# Base classes


class WsTestMixin:
    """Helpers shared by every class: self.port (photon), self.ws (WsBackend)."""

    def ws_open(self, route="/ws", query="", expect=101, port=None, timeout=5.0, **hs):
        """Opens a client and sends a handshake to ``route``/<test name>?tag=<unique>&query.
        Asserts the status (unless ``expect`` is None) and, on 101, the Accept value."""
        tag = uuid.uuid4().hex
        path = "%s/%s?tag=%s%s" % (route, self._testMethodName[:48], tag,
                                   "&" + query if query else "")
        c = WsClient(port or self.port, timeout=timeout)
        self.addCleanup(c.close)
        c.tag = tag
        c.accepted_before = self.ws.connections_accepted
        r = c.handshake(path, **hs)
        if expect is not None:
            self.assertEqual(r.status, expect, "upgrade of %s answered %d (expected %d): %r %r"
                             % (path, r.status, expect, r.headers_list, r.body[:300]))
        if r.status == 101:
            self.assertEqual(r.header("sec-websocket-accept"), accept_for(c.key),
                             "wrong Sec-WebSocket-Accept relayed: %r" % r.headers_list)
        return c

    def upstream(self, c, timeout=5.0):
        """The handshake the backend received for client ``c``."""
        return wait_until(lambda: self.ws.request_for(c.tag), timeout=timeout,
                          msg="the backend never received the request tagged %s" % c.tag)

    def assert_not_forwarded(self, c, settle=0.1):
        """The backend saw neither the request of ``c`` nor any new connection."""
        time.sleep(settle)
        self.assertIsNone(self.ws.request_for(c.tag),
                          "the backend received a request it should not have: %r"
                          % self.ws.request_for(c.tag))
        self.assertEqual(self.ws.connections_accepted, c.accepted_before,
                         "the gateway opened an upstream connection for a refused upgrade")

    def assert_json_error(self, r, status):
        self.assertEqual(r.status, status, "expected %d, got %d: %r %r"
                         % (status, r.status, r.headers_list, r.body[:300]))
        try:
            doc = r.json()
        except ValueError:
            self.fail("error body is not JSON: %r" % r.body[:300])
        self.assertEqual(doc.get("status"), status, doc)
        self.assertIsInstance(doc.get("error"), str, doc)
        self.assertTrue(doc.get("error"), doc)
        self.assertTrue(doc.get("request_id"), doc)
        if r.header("x-request-id"):
            self.assertEqual(doc["request_id"], r.header("x-request-id"))
        return doc

    def echo(self, c, payload, opcode=1, timeout=5.0):
        """Sends one message and asserts it comes back unchanged."""
        c.send_frame(opcode, payload)
        f = c.recv(timeout)
        if isinstance(payload, str):
            payload = payload.encode()
        self.assertEqual((f.opcode, f.fin, f.rsv, f.masked), (opcode, True, 0, False), f)
        self.assertEqual(f.payload, payload)
        return f

    def assert_client_close(self, c, code, timeout=5.0):
        """The gateway sent ``c`` an unmasked close frame with ``code`` and closed TCP.
        Returns the frames that came before the close."""
        try:
            close, before = c.expect_close(timeout)
        except socket.timeout as e:
            self.fail("client got no close frame %d: %s" % (code, e))
        self.assertEqual(close.code, code, "client got %r (frames before: %r)"
                         % (close, before[:5]))
        self.assertFalse(close.masked, "close frame to the client is masked")
        self.assertTrue(close.fin)
        self.assertTrue(c.wait_eof(5), "gateway kept the client connection open after its "
                        "close frame %d" % code)
        return before

    def assert_upstream_close(self, c, code, timeout=5.0):
        """The backend received a masked close frame with ``code`` on ``c``'s upstream
        connection, and that connection was closed."""
        cid = self.upstream(c).conn
        evs = self.ws.wait_for(lambda b: b.events("close", cid), timeout=timeout,
                               msg="the backend got no close frame on conn %d (frames: %r)"
                               % (cid, [(f["opcode"], f["length"]) for f in
                                        self.ws.frames(cid)][:10]))
        self.assertEqual(evs[0].data["code"], code, "backend got close %r"
                         % (evs[0].data,))
        self.assertTrue(evs[0].data["masked"], "the gateway's close frame to the upstream is "
                        "not masked")
        self.ws.wait_for(lambda b: b.disconnected(cid), timeout=timeout,
                         msg="upstream connection %d still open after close %d" % (cid, code))

    def upstream_frames(self, c):
        return self.ws.frames(self.upstream(c).conn)


class SharedPhotonTest(WsTestMixin, IntegrationTest):
    """One photon (shared_config), one WsBackend ``ws`` and one HTTP Backend ``http`` for the
    whole class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not os.path.exists(photon_binary()):
            if os.environ.get("PHOTON_REQUIRE_BIN") == "1":
                raise RuntimeError("photon binary not found: %s" % photon_binary())
            raise unittest.SkipTest("photon binary not found: %s" % photon_binary())
        cls.class_tmp = tempfile.mkdtemp(prefix="photon-ws-")
        if not os.environ.get("PHOTON_KEEP_TMP"):
            cls.addClassCleanup(shutil.rmtree, cls.class_tmp, True)
        cls.ws = WsBackend(name="ws1").start()
        cls.addClassCleanup(cls.ws.stop)
        cls.http = Backend(name="h1").start()
        cls.addClassCleanup(cls.http.stop)
        cls.port = free_port()
        path = write_config(cls.class_tmp, shared_config(cls.port, cls.ws, cls.http,
                                                         cls.class_tmp))
        cls.proxy = Photon(path, log_dir=cls.class_tmp)
        cls.addClassCleanup(cls.proxy.close)
        cls.proxy.start()

    def setUp(self):
        super().setUp()
        if not self.proxy.alive():
            self.fail("the shared photon died:\n%s" % self.proxy.stderr_text()[-3000:])

    def diagnostics(self):
        text = super().diagnostics()
        p = getattr(type(self), "proxy", None)
        if p is not None and p.proc is not None:
            text += "\n" + p.diagnostics()
        return text


# --------------------------------------------------------------------------------------------
# Handshake: detection, request checks, subprotocols, the upstream's answer, the relayed 101


class HandshakeTest(SharedPhotonTest):

    def test_upgrade_is_tunnelled_with_the_expected_101_and_upstream_request(self):
        c = self.ws_open("/ws", protocols="chat", headers=[("X-Custom", "kept")])
        r = c.response
        self.assertEqual((r.header("upgrade") or "").lower(), "websocket", r.headers_list)
        self.assertIn("upgrade", tokens(r.headers.get_all("connection")), r.headers_list)
        self.assertEqual(r.header("sec-websocket-protocol"), "chat")
        self.assertIsNone(r.header("sec-websocket-extensions"))
        rid = r.header("x-request-id")
        self.assertTrue(rid, "101 without X-Request-ID: %r" % r.headers_list)
        up = self.upstream(c)
        self.assertEqual(up.method, "GET")
        self.assertEqual(up.version, "HTTP/1.1")
        self.assertIn("websocket", tokens(up.header_all("upgrade")), up.headers)
        self.assertIn("upgrade", tokens(up.header_all("connection")), up.headers)
        self.assertEqual(up.header_all("sec-websocket-key"), [c.key])
        self.assertEqual(up.header_all("sec-websocket-version"), ["13"])
        self.assertEqual(raw_tokens(up.header_all("sec-websocket-protocol")), ["chat"])
        self.assertEqual(up.header_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(up.header_all("x-request-id"), [rid])
        self.assertEqual(up.header_all("x-custom"), ["kept"])
        self.assertEqual(up.body_length, 0)
        self.echo(c, "tunnel works")

    def test_accept_value_matches_the_rfc_6455_example(self):
        # RFC 6455 section 1.3: this key must give this accept value, whatever GUID the
        # backend and the gateway were built with.
        self.assertEqual(accept_for("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        c = self.ws_open("/any", key="dGhlIHNhbXBsZSBub25jZQ==")
        self.assertEqual(c.response.header("sec-websocket-accept"),
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.echo(c, "rfc example")

    def test_101_carries_no_message_framing_fields(self):
        # RFC 9110: no Content-Length / Transfer-Encoding in a 1xx response.
        c = self.ws_open("/any")
        names = c.response.headers.names()
        self.assertNotIn("content-length", names)
        self.assertNotIn("transfer-encoding", names)
        self.assertEqual(c.conn.buffered, b"", "bytes after the 101 nobody sent")

    def test_client_request_id_is_kept(self):
        c = self.ws_open("/any", headers=[("X-Request-ID", "ws-req-4242")])
        self.assertEqual(c.response.header("x-request-id"), "ws-req-4242")
        self.assertEqual(self.upstream(c).header_all("x-request-id"), ["ws-req-4242"])

    def test_backend_sees_forwarded_handshake_headers(self):
        # ?headers=1: the backend's first frame is the JSON of the headers it received.
        c = self.ws_open("/ws", query="headers=1", protocols="foo, superchat, chat")
        f = c.recv()
        self.assertEqual(f.opcode, 1, f)
        hdrs = json.loads(f.payload)
        names = [n.lower() for n, _ in hdrs]
        get = lambda n: [v for k, v in hdrs if k.lower() == n]  # noqa: E731
        self.assertIn("websocket", tokens(get("upgrade")))
        self.assertIn("upgrade", tokens(get("connection")))
        self.assertEqual(get("sec-websocket-key"), [c.key])
        self.assertEqual(raw_tokens(get("sec-websocket-protocol")), ["superchat", "chat"])
        self.assertEqual(get("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(get("x-request-id"), [c.response.header("x-request-id")])
        self.assertEqual(names.count("sec-websocket-protocol"), 1, hdrs)
        self.assertEqual(c.response.header("sec-websocket-protocol"), "superchat")

    def test_upgrade_detection_is_case_insensitive(self):
        c = self.ws_open("/any", upgrade="WebSocket", connection="keep-alive, UPGRADE")
        self.echo(c, "mixed case")

    def test_upgrade_on_route_without_websocket_is_plain_http(self):
        # backend.py's /echo: the request arrives without Upgrade and without the token.
        c = WsClient(self.port)
        self.addCleanup(c.close)
        r = c.handshake("/echo")
        self.assertEqual(r.status, 200, "%r %r" % (r.headers_list, r.body[:200]))
        self.assertIsNone(r.header("upgrade"))
        doc = r.json()
        names = [n.lower() for n, _ in doc["headers"]]
        self.assertNotIn("upgrade", names, doc["headers"])
        conn_vals = [v for n, v in doc["headers"] if n.lower() == "connection"]
        self.assertNotIn("upgrade", tokens(conn_vals), doc["headers"])
        # The same through the WebSocket backend on a route without the block.
        c2 = self.ws_open("/plain", expect=200)
        up = self.upstream(c2)
        self.assertFalse(up.upgrade, up.headers)
        self.assertEqual(up.header_all("upgrade"), [])
        self.assertEqual(c2.response.json()["backend"], "ws1")

    def test_disabled_websocket_block_is_plain_http(self):
        c = self.ws_open("/off", expect=200)
        up = self.upstream(c)
        self.assertFalse(up.upgrade, up.headers)
        self.assertEqual(up.header_all("upgrade"), [])

    def test_h2c_upgrade_is_never_tunnelled(self):
        for route in ("/ws", "/plain"):
            with self.subTest(route=route):
                c = self.ws_open(route, expect=200, upgrade="h2c",
                                 connection="Upgrade, HTTP2-Settings",
                                 headers=[("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
                up = self.upstream(c)
                self.assertEqual(up.header_all("upgrade"), [], up.headers)
                self.assertNotIn("upgrade", tokens(up.header_all("connection")))
        c = WsClient(self.port)
        self.addCleanup(c.close)
        r = c.handshake("/echo", upgrade="h2c", connection="Upgrade")
        self.assertEqual(r.status, 200)
        self.assertNotIn("upgrade", [n.lower() for n, _ in r.json()["headers"]])

    def test_upgrade_header_without_connection_token_is_plain_http(self):
        c = self.ws_open("/ws", expect=200, connection="keep-alive")
        up = self.upstream(c)
        self.assertFalse(up.upgrade, "Upgrade forwarded without the Connection token: %r"
                         % up.headers)

    def test_http10_upgrade_is_not_tunnelled(self):
        c = self.ws_open("/ws", expect=None, http_version="HTTP/1.0")
        self.assertNotEqual(c.response.status, 101)
        self.assertEqual(c.response.status, 200, c.response.body[:200])
        self.assertFalse(self.upstream(c).upgrade)

    def test_non_get_upgrade_is_400(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                c = self.ws_open("/ws", expect=None, method=method)
                self.assert_json_error(c.response, 400)
                self.assert_not_forwarded(c)

    def test_upgrade_with_a_body_is_400(self):
        c = self.ws_open("/ws", expect=None, body=b"hello")
        self.assert_json_error(c.response, 400)
        self.assert_not_forwarded(c)
        c = self.ws_open("/ws", expect=None, body=[b"hel", b"lo"], chunked=True)
        self.assert_json_error(c.response, 400)
        self.assert_not_forwarded(c)

    def test_empty_content_length_body_is_not_a_body(self):
        # Content-Length: 0 is no body: the upgrade goes through.
        c = self.ws_open("/any", headers=[("Content-Length", "0")])
        self.echo(c, "ok")

    def test_wrong_or_missing_version_is_426(self):
        for version in ("8", "12", "14", "13, 8", None):
            with self.subTest(version=version):
                c = self.ws_open("/ws", expect=None, version=version)
                self.assert_json_error(c.response, 426)
                self.assertEqual(c.response.headers.get_all("sec-websocket-version"), ["13"])
                self.assert_not_forwarded(c)

    def test_missing_or_malformed_key_is_400(self):
        keys = {
            "missing": None,
            "15 bytes": base64.b64encode(b"x" * 15).decode(),
            "17 bytes": base64.b64encode(b"x" * 17).decode(),
            "not base64": "!!!!!!!!!!!!!!!!!!!!!!==",
            "empty": "",
        }
        for label, key in keys.items():
            with self.subTest(key=label):
                c = self.ws_open("/ws", expect=None, key=key)
                self.assert_json_error(c.response, 400)
                self.assert_not_forwarded(c)

    # ---- subprotocols ------------------------------------------------------------------------

    def test_offered_protocols_are_filtered_in_client_order(self):
        c = self.ws_open("/ws", protocols="foo, superchat, bar, chat")
        self.assertEqual(raw_tokens(self.upstream(c).header_all("sec-websocket-protocol")),
                         ["superchat", "chat"])
        self.assertEqual(c.response.header("sec-websocket-protocol"), "superchat")

    def test_protocols_over_several_fields_are_trimmed_and_filtered(self):
        c = self.ws_open("/ws", protocols=["  foo ,chat", "superchat  ", "baz"])
        self.assertEqual(raw_tokens(self.upstream(c).header_all("sec-websocket-protocol")),
                         ["chat", "superchat"])
        self.assertEqual(c.response.header("sec-websocket-protocol"), "chat")

    def test_protocol_match_is_case_sensitive(self):
        c = self.ws_open("/ws", expect=None, protocols="Chat, SUPERCHAT")
        self.assert_json_error(c.response, 400)
        self.assert_not_forwarded(c)

    def test_no_allowed_protocol_is_400(self):
        c = self.ws_open("/ws", expect=None, protocols="foo, bar")
        self.assert_json_error(c.response, 400)
        self.assert_not_forwarded(c)

    def test_no_protocol_offered_none_forwarded(self):
        c = self.ws_open("/ws")
        self.assertEqual(self.upstream(c).header_all("sec-websocket-protocol"), [])
        self.assertIsNone(c.response.header("sec-websocket-protocol"))
        self.echo(c, "no protocol")

    def test_empty_protocol_list_refuses_any_offer(self):
        c = self.ws_open("/none", expect=None, protocols="chat")
        self.assert_json_error(c.response, 400)
        self.assert_not_forwarded(c)
        c = self.ws_open("/none")
        self.assertEqual(self.upstream(c).header_all("sec-websocket-protocol"), [])
        self.echo(c, "none offered")

    def test_absent_protocols_forward_the_list_unchanged(self):
        c = self.ws_open("/any", protocols=["foo, Bar", "baz"])
        self.assertEqual(raw_tokens(self.upstream(c).header_all("sec-websocket-protocol")),
                         ["foo", "Bar", "baz"])
        self.assertEqual(c.response.header("sec-websocket-protocol"), "foo")

    # ---- the upstream's answer ---------------------------------------------------------------

    def assert_502_nothing_tunnelled(self, c):
        self.assert_json_error(c.response, 502)
        rest = c.conn.recv_until_close(timeout=1.0)
        self.assertNotIn(b"secret", rest, "bytes from a refused 101 reached the client")

    def test_wrong_accept_from_upstream_is_502(self):
        c = self.ws_open("/any", query="bad_accept=1&greet=secret", expect=None)
        self.assert_502_nothing_tunnelled(c)

    def test_101_missing_upgrade_connection_or_accept_is_502(self):
        for omit in ("upgrade", "connection", "accept"):
            with self.subTest(omit=omit):
                c = self.ws_open("/any", query="omit=%s&greet=secret" % omit, expect=None)
                self.assert_502_nothing_tunnelled(c)

    def test_protocol_selected_when_none_offered_is_502(self):
        c = self.ws_open("/any", query="protocol=chat&greet=secret", expect=None)
        self.assert_502_nothing_tunnelled(c)

    def test_protocol_not_offered_is_502(self):
        c = self.ws_open("/ws", query="protocol=superchat&greet=secret", expect=None,
                         protocols="chat")
        self.assert_502_nothing_tunnelled(c)

    def test_protocol_filtered_out_by_the_route_is_502(self):
        # foo was offered by the client but not forwarded (the route does not allow it).
        c = self.ws_open("/ws", query="protocol=foo&greet=secret", expect=None,
                         protocols="foo, chat")
        self.assert_502_nothing_tunnelled(c)

    def test_protocol_selected_among_forwarded_is_relayed(self):
        c = self.ws_open("/ws", query="protocol=superchat", protocols="chat, superchat")
        self.assertEqual(c.response.header("sec-websocket-protocol"), "superchat")
        self.echo(c, "selected")

    def test_upstream_refusal_is_relayed_then_closed(self):
        c = self.ws_open("/any", query="status=403", expect=403)
        self.assertEqual(c.response.body, b"refused by ws1\n")
        self.assertTrue(c.wait_eof(5), "connection kept open after a refused upgrade")

    def test_extensions_are_passed_through_end_to_end(self):
        offer = "permessage-deflate; client_max_window_bits"
        c = self.ws_open("/any", query="extensions=echo", extensions=offer)
        self.assertEqual(self.upstream(c).header_all("sec-websocket-extensions"), [offer])
        self.assertEqual(c.response.header("sec-websocket-extensions"), offer)
        text = b"compressed hello " * 20
        comp = zlib.compressobj(wbits=-15)
        data = comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH)
        self.assertTrue(data.endswith(b"\x00\x00\xff\xff"))
        payload = data[:-4]
        c.send_frame(1, payload, rsv=4)
        f = c.recv()
        self.assertEqual((f.opcode, f.fin, f.rsv), (1, True, 4), f)
        self.assertEqual(f.payload, payload)
        d = zlib.decompressobj(wbits=-15)
        self.assertEqual(d.decompress(f.payload + b"\x00\x00\xff\xff"), text)
        self.assertEqual([fr["rsv"] for fr in self.upstream_frames(c)], [4])


# --------------------------------------------------------------------------------------------
# Relay


class RelayTest(SharedPhotonTest):

    def test_client_frames_reach_the_server_unchanged(self):
        c = self.ws_open("/any")
        key = c.send_frame(1, "hello", mask=b"\x01\x02\x03\x04")
        f = c.recv()
        self.assertEqual((f.opcode, f.fin, f.masked, f.payload), (1, True, False, b"hello"))
        c.send_frame(2, b"\x00\xffbin", mask=b"\xa0\xb0\xc0\xd0")
        f = c.recv()
        self.assertEqual((f.opcode, f.payload), (2, b"\x00\xffbin"))
        frames = self.upstream_frames(c)
        self.assertEqual(len(frames), 2, frames)
        self.assertEqual((frames[0]["masked"], frames[0]["mask"], frames[0]["payload"],
                          frames[0]["opcode"], frames[0]["fin"], frames[0]["rsv"]),
                         (True, key, b"hello", 1, True, 0))
        self.assertEqual((frames[1]["mask"], frames[1]["opcode"]), (b"\xa0\xb0\xc0\xd0", 2))

    def test_bytes_sent_with_the_upgrade_request_are_not_lost(self):
        extra = (encode_frame(1, "early bird", mask=os.urandom(4))
                 + encode_frame(2, b"\x01\x02", mask=os.urandom(4)))
        c = self.ws_open("/any", extra=extra)
        f1, f2 = c.recv(), c.recv()
        self.assertEqual((f1.opcode, f1.payload), (1, b"early bird"))
        self.assertEqual((f2.opcode, f2.payload), (2, b"\x01\x02"))

    def test_bytes_sent_with_the_101_are_not_lost(self):
        c = self.ws_open("/any", query="greet=hello%20there&send=300")
        f = c.recv()
        self.assertEqual((f.opcode, f.fin, f.masked, f.payload), (1, True, False, b"hello there"))
        f = c.recv()
        self.assertEqual((f.opcode, f.payload), (2, pattern(300)))
        self.echo(c, "still works")

    def test_ping_pong_and_close_pass_through(self):
        c = self.ws_open("/any")
        c.send_frame(9, b"p1")
        f = c.recv()
        self.assertEqual((f.opcode, f.payload, f.masked), (10, b"p1", False))
        frames = self.upstream_frames(c)
        self.assertEqual([(x["opcode"], x["payload"], x["masked"]) for x in frames],
                         [(9, b"p1", True)])
        c.send_frame(10, b"unsolicited")     # a pong nobody asked for passes too
        c.send_frame(8, struct.pack("!H", 1000) + b"bye")
        f = c.recv()
        self.assertEqual((f.opcode, f.code), (8, 1000), f)
        self.assertTrue(c.wait_eof(5), "connection open after the close handshake")
        cid = self.upstream(c).conn
        closes = self.ws.closes(cid)
        self.assertEqual(closes, [(cid, 1000, True)])
        self.assertIn((10, b"unsolicited"), [(x["opcode"], x["payload"])
                                             for x in self.ws.frames(cid)])
        close_ev = self.ws.events("close", cid)[0]
        self.assertEqual(close_ev.data["reason"], b"bye")

    def test_close_without_code_passes(self):
        c = self.ws_open("/any")
        c.send_frame(8, b"")
        f = c.recv()
        self.assertEqual((f.opcode, f.payload), (8, b""))
        cid = self.upstream(c).conn
        self.assertEqual(self.ws.closes(cid), [(cid, None, True)])

    def test_server_ping_fragments_and_close_reach_the_client(self):
        raw = (encode_frame(9, b"srv-ping") + encode_frame(1, b"frag-", fin=False)
               + encode_frame(0, b"ment") + encode_frame(8, struct.pack("!H", 1000)))
        c = self.ws_open("/any", query="raw=" + raw.hex())
        got = [c.recv() for _ in range(4)]
        self.assertEqual([(f.opcode, f.fin, f.payload) for f in got],
                         [(9, True, b"srv-ping"), (1, False, b"frag-"), (0, True, b"ment"),
                          (8, True, struct.pack("!H", 1000))])
        self.assertFalse(any(f.masked for f in got))
        c.send_frame(10, b"srv-ping")
        c.send_frame(8, struct.pack("!H", 1000))
        cid = self.upstream(c).conn
        self.ws.wait_for(lambda b: b.closes(cid), msg="the client's close reply never reached "
                         "the backend")
        self.assertEqual(self.ws.closes(cid), [(cid, 1000, True)])
        self.assertIn(10, [x["opcode"] for x in self.ws.frames(cid)])

    def test_many_small_server_messages_in_one_write(self):
        msgs = [b"s%02d" % i for i in range(60)]
        raw = b"".join(encode_frame(1, m) for m in msgs)
        c = self.ws_open("/any", query="raw=" + raw.hex())
        self.assertEqual([c.recv().payload for _ in msgs], msgs)
        self.echo(c, "after the burst")

    def test_payload_lengths_client_to_server(self):
        c = self.ws_open("/any")
        for n in (0, 125, 126, 65535, 65536):
            with self.subTest(length=n):
                data = pattern(n)
                self.echo(c, data, opcode=2)
        self.assertEqual([x["length"] for x in self.upstream_frames(c)],
                         [0, 125, 126, 65535, 65536])

    def test_payload_lengths_server_to_client(self):
        for n in (0, 125, 126, 65535, 65536):
            with self.subTest(length=n):
                c = self.ws_open("/any", query="send=%d" % n)
                f = c.recv()
                self.assertEqual((f.opcode, f.fin, f.masked, len(f.payload)), (2, True, False, n))
                self.assertEqual(f.payload, pattern(n))

    @timeout(90)
    def test_16_mib_message_is_echoed_intact(self):
        c = self.ws_open("/big", timeout=60)
        data = os.urandom(16 * 1024 * 1024)
        c.send_frame(2, data)
        f = c.recv(60)
        self.assertEqual((f.opcode, f.fin, len(f.payload)), (2, True, len(data)))
        self.assertTrue(f.payload == data, "16 MiB payload changed on the way")

    def test_fragmented_text_message_is_echoed_intact(self):
        c = self.ws_open("/any")
        parts = [b"Hel", "lo, w\u00f6".encode(), b"rld!"]
        c.send_frame(1, parts[0], fin=False)
        c.send_frame(0, parts[1], fin=False)
        c.send_frame(0, parts[2], fin=True)
        got = [c.recv() for _ in range(3)]
        self.assertEqual([(f.opcode, f.fin) for f in got], [(1, False), (0, False), (0, True)])
        self.assertEqual(b"".join(f.payload for f in got), b"".join(parts))

    def test_control_frame_between_fragments_passes(self):
        c = self.ws_open("/any")
        c.send_frame(1, b"part1", fin=False)
        c.send_frame(9, b"mid")
        c.send_frame(0, b"part2", fin=True)
        got = [c.recv() for _ in range(3)]
        self.assertEqual([(f.opcode, f.fin, f.payload) for f in got],
                         [(1, False, b"part1"), (10, True, b"mid"), (0, True, b"part2")])

    def test_many_small_messages_in_one_write(self):
        c = self.ws_open("/any")
        msgs = [("m%d-" % i).encode() + pattern(i % 200) for i in range(300)]
        c.send_raw(b"".join(encode_frame(1 if i % 2 else 2, m, mask=os.urandom(4))
                            for i, m in enumerate(msgs)))
        for i, m in enumerate(msgs):
            f = c.recv()
            self.assertEqual((f.opcode, f.payload), (1 if i % 2 else 2, m), "message %d" % i)
        self.assertEqual(len(self.upstream_frames(c)), 300)


# --------------------------------------------------------------------------------------------
# Limits: message size (1009) and protocol errors (1002), closed on both sides


class LimitsTest(SharedPhotonTest):

    def violation(self, data, code=1002, route="/ws", query="", pre=()):
        """Opens a connection, sends the valid frames ``pre`` (echoed first), then the raw
        ``data``; asserts a close ``code`` to the client and to the upstream."""
        c = self.ws_open(route, query=query)
        for opcode, payload, fin in pre:
            c.send_frame(opcode, payload, fin=fin)
        c.try_send(data)
        before = self.assert_client_close(c, code)
        self.assert_upstream_close(c, code)
        return c, before

    # ---- message size --------------------------------------------------------------------

    def test_message_of_exactly_max_size_passes(self):
        c = self.ws_open("/ws")
        self.echo(c, pattern(65536), opcode=2)
        # Fragments summing to the limit, with control frames (not counted) between them.
        c.send_frame(2, pattern(30000), fin=False)
        c.send_frame(9, b"x" * 125)
        c.send_frame(0, pattern(30000, 30000), fin=False)
        c.send_frame(10, b"y" * 125)
        c.send_frame(0, pattern(5536, 60000), fin=True)
        got = [c.recv() for _ in range(4)]
        self.assertEqual([f.opcode for f in got], [2, 10, 0, 0])
        self.assertEqual(got[0].payload + got[2].payload + got[3].payload, pattern(65536))
        self.echo(c, "still open")

    def test_client_message_over_max_size_is_1009(self):
        c, before = self.violation(encode_frame(2, pattern(65537), mask=os.urandom(4)), 1009)
        self.assertEqual(before, [])
        self.assertNotIn(65537, [x["length"] for x in self.upstream_frames(c)])

    def test_fragmented_client_message_over_max_size_is_1009(self):
        data = (encode_frame(1, b"a" * 30000, fin=False, mask=os.urandom(4))
                + encode_frame(0, b"b" * 30000, fin=False, mask=os.urandom(4))
                + encode_frame(0, b"c" * 30000, fin=True, mask=os.urandom(4)))
        c, before = self.violation(data, 1009)
        self.assertNotIn(b"c" * 30000, [f.payload for f in before])

    def test_server_message_exactly_max_size_passes(self):
        c = self.ws_open("/ws", query="send=65536")
        f = c.recv()
        self.assertEqual((f.opcode, f.payload), (2, pattern(65536)))
        self.echo(c, "after")

    def test_server_message_over_max_size_is_1009(self):
        c = self.ws_open("/ws", query="send=65537")
        before = self.assert_client_close(c, 1009)
        self.assertEqual([f for f in before if len(f.payload) == 65537], [])
        self.assert_upstream_close(c, 1009)

    def test_fragmented_server_message_over_max_size_is_1009(self):
        c = self.ws_open("/ws", query="send=80000&fragments=2")
        before = self.assert_client_close(c, 1009)
        self.assertNotIn(pattern(40000, 40000), [f.payload for f in before])
        self.assert_upstream_close(c, 1009)

    # ---- client protocol errors ------------------------------------------------------------

    def test_unmasked_client_frame_is_1002(self):
        c, before = self.violation(encode_frame(1, b"naked"))
        self.assertEqual(before, [])
        self.assertNotIn(b"naked", [x["payload"] for x in self.upstream_frames(c)])

    def test_reserved_opcodes_are_1002(self):
        for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
            with self.subTest(opcode=op):
                c, _ = self.violation(encode_frame(op, b"r", mask=os.urandom(4)))
                self.assertNotIn(op, [x["opcode"] for x in self.upstream_frames(c)])

    def test_rsv_bits_without_extension_are_1002(self):
        for rsv in (4, 2, 1):
            with self.subTest(rsv=rsv):
                self.violation(encode_frame(1, b"rsv", rsv=rsv, mask=os.urandom(4)))

    def test_oversized_control_frames_are_1002(self):
        for op, payload in ((9, b"p" * 126), (10, b"q" * 126),
                            (8, struct.pack("!H", 1000) + b"r" * 124)):
            with self.subTest(opcode=op):
                self.violation(encode_frame(op, payload, mask=os.urandom(4)))

    def test_fragmented_control_frames_are_1002(self):
        for op, payload in ((9, b"ping"), (10, b"pong"), (8, struct.pack("!H", 1000))):
            with self.subTest(opcode=op):
                self.violation(encode_frame(op, payload, fin=False, mask=os.urandom(4)))

    def test_continuation_without_a_message_is_1002(self):
        self.violation(encode_frame(0, b"orphan", mask=os.urandom(4)))

    def test_new_message_during_a_fragmented_one_is_1002(self):
        for op in (1, 2):
            with self.subTest(opcode=op):
                c, before = self.violation(encode_frame(op, b"intruder", mask=os.urandom(4)),
                                           pre=[(1, b"first-part", False)])
                self.assertNotIn(b"intruder", [f.payload for f in before])

    def test_close_with_one_byte_payload_is_1002(self):
        self.violation(encode_frame(8, b"\x03", mask=os.urandom(4)))

    def test_64_bit_length_with_top_bit_set_is_1002(self):
        data = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63 | 5) + os.urandom(4) + b"12345"
        self.violation(data)

    def test_non_minimal_length_encodings_are_1002(self):
        cases = {
            "10 in 16 bits": struct.pack("!BBH", 0x81, 0x80 | 126, 10) + b"\0\0\0\0" + b"a" * 10,
            "125 in 16 bits": struct.pack("!BBH", 0x82, 0x80 | 126, 125) + b"\0\0\0\0"
            + b"b" * 125,
            "200 in 64 bits": struct.pack("!BBQ", 0x82, 0x80 | 127, 200) + b"\0\0\0\0"
            + b"c" * 200,
            "65535 in 64 bits": struct.pack("!BBQ", 0x82, 0x80 | 127, 65535) + b"\0\0\0\0"
            + b"d" * 65535,
        }
        for label, data in cases.items():
            with self.subTest(case=label):
                c, before = self.violation(data, route="/any")
                self.assertEqual(before, [])

    # ---- server protocol error -----------------------------------------------------------

    def test_server_rsv_bits_without_extension_are_1002(self):
        c = self.ws_open("/any", query="raw=" + encode_frame(1, b"rsv", rsv=4).hex())
        before = self.assert_client_close(c, 1002)
        self.assertEqual(before, [], "the frame with RSV1 was relayed")
        self.assert_upstream_close(c, 1002)

    def test_default_max_message_size_is_1_mib(self):
        c = self.ws_open("/any", timeout=15)
        self.echo(c, pattern(1048576), opcode=2, timeout=15)
        c.try_send(encode_frame(2, pattern(1048577), mask=os.urandom(4)))
        self.assert_client_close(c, 1009, timeout=15)
        self.assert_upstream_close(c, 1009)

    def test_masked_server_frame_is_1002(self):
        c = self.ws_open("/ws", query="send_masked=1")
        before = self.assert_client_close(c, 1002)
        self.assertEqual(before, [], "the masked frame was relayed")
        self.assert_upstream_close(c, 1002)


# --------------------------------------------------------------------------------------------
# Timeouts


class TimeoutTest(SharedPhotonTest):

    def wait_1001(self, c, quiet_since, at_least, within):
        """The client gets close 1001 no sooner than ``at_least`` s and within ``within`` s
        after ``quiet_since``; the upstream too."""
        self.assert_client_close(c, 1001, timeout=within)
        elapsed = time.monotonic() - quiet_since
        self.assertGreaterEqual(elapsed, at_least, "closed after %.2f s of silence" % elapsed)
        self.assert_upstream_close(c, 1001)
        return elapsed

    def test_idle_timeout_closes_with_1001(self):
        c = self.ws_open("/idle")
        self.echo(c, "before the silence")
        self.wait_1001(c, time.monotonic(), 1.0, 8.0)

    def test_idle_timer_restarts_on_client_bytes(self):
        c = self.ws_open("/idle", query="silent=1")
        for i in range(7):  # 4.2 s of client-only traffic, idle_timeout is 2 s
            c.send_frame(1, "keepalive %d" % i)
            try:
                f = c.recv(0.6)
                self.fail("unexpected frame %r after %d client messages" % (f, i + 1))
            except socket.timeout:
                pass
        self.assertEqual(len(self.upstream_frames(c)), 7)
        self.wait_1001(c, time.monotonic(), 1.0, 8.0)

    def test_idle_timer_restarts_on_server_bytes(self):
        c = self.ws_open("/idle", query="tick_ms=600&ticks=7")
        for i in range(7):  # 4.2 s of server-only traffic
            f = c.recv(3)
            self.assertEqual((f.opcode, f.payload), (1, b"tick %d" % i), f)
        self.wait_1001(c, time.monotonic(), 1.0, 8.0)

    def test_default_idle_timeout_is_the_upstream_read_timeout(self):
        c = self.ws_open("/rdt")
        self.echo(c, "hello")
        self.wait_1001(c, time.monotonic(), 1.0, 8.0)

    def test_lifetime_timeout_closes_with_1001_while_traffic_flows(self):
        c = self.ws_open("/life")
        t0 = time.monotonic()
        echoed = 0
        close = None
        while time.monotonic() < t0 + 10:
            if not c.try_send(encode_frame(1, "msg %d" % echoed, mask=os.urandom(4))):
                break
            try:
                f = c.recv(2)
            except socket.timeout:
                continue
            if f.opcode == 8:
                close = f
                break
            self.assertEqual(f.payload, b"msg %d" % echoed)
            echoed += 1
            time.sleep(0.3)
        self.assertIsNotNone(close, "no close frame within 10 s of a 3 s lifetime (%d echoes)"
                             % echoed)
        elapsed = time.monotonic() - t0
        self.assertEqual(close.code, 1001, close)
        self.assertFalse(close.masked)
        self.assertGreaterEqual(echoed, 4, "closed after %d echoes (%.2f s)" % (echoed, elapsed))
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertTrue(c.wait_eof(5))
        self.assert_upstream_close(c, 1001)

    def test_route_timeout_does_not_cut_an_upgraded_connection(self):
        c = self.ws_open("/rt")
        self.echo(c, "before")
        try:
            f = c.recv(2.0)
            self.fail("frame during 2 s of silence: %r" % (f,))
        except socket.timeout:
            pass
        self.echo(c, "after 2 s of silence")
        self.assertIsNone(self.ws.disconnected(self.upstream(c).conn))


# --------------------------------------------------------------------------------------------
# Middleware on the upgrade request


class MiddlewareTest(SharedPhotonTest):

    def test_auth_refuses_upgrade_without_credentials(self):
        c = self.ws_open("/auth", expect=None)
        self.assert_json_error(c.response, 401)
        self.assert_not_forwarded(c)
        c = self.ws_open("/auth", expect=None, headers=[("X-API-Key", "wrong-key")])
        self.assert_json_error(c.response, 401)
        self.assert_not_forwarded(c)
        c = self.ws_open("/auth", headers=[("X-API-Key", API_KEY)])
        self.echo(c, "authenticated")

    def test_exhausted_rate_limit_refuses_upgrade_with_429(self):
        first = self.ws_open("/rl")
        self.echo(first, "admitted")
        for _ in range(4):
            c = self.ws_open("/rl", expect=None)
            if c.response.status != 101:
                break
        self.assert_json_error(c.response, 429)
        self.assert_not_forwarded(c)

    def test_cors_origin_check_on_upgrade(self):
        c = self.ws_open("/cors", expect=None, headers=[("Origin", "https://evil.example")])
        self.assert_json_error(c.response, 403)
        self.assert_not_forwarded(c)
        c = self.ws_open("/cors", headers=[("Origin", APP_ORIGIN)])
        self.echo(c, "same origin")


# --------------------------------------------------------------------------------------------
# Scale, reload, graceful stop (a photon per test)


def workers_of(p):
    return [w for w in p.worker_pids() if cmdline(w).startswith(WORKER_TITLE)]


class LifecycleTest(WsTestMixin, IntegrationTest):

    def start(self, workers=1, server=None):
        self.ws = WsBackend(name="ws-life").start()
        self.addCleanup(self.ws.stop)
        self.port = free_port()
        self.cfg = lifecycle_config(self.port, self.ws, self.tmpdir, workers, server)
        self.proxy = self.photon(self.cfg)
        wait_until(lambda: len(workers_of(self.proxy)) == workers, timeout=10,
                   msg="photon never ran %d workers" % workers)
        return self.proxy

    @timeout(180)
    def test_1000_concurrent_connections_on_two_workers(self):
        n = 1000
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 3 * n + 512
        if soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        if soft < 2 * n + 256:
            self.skipTest("RLIMIT_NOFILE hard limit %d too low for %d connections" % (hard, n))
        p = self.start(workers=2)
        workers = sorted(workers_of(p))
        clients = []
        for i in range(n):
            c = WsClient(self.port, timeout=15)
            self.addCleanup(c.close)
            r = c.handshake("/ws/scale?i=%d" % i)
            self.assertEqual(r.status, 101, "connection %d: %r %r" % (i, r, r.body[:200]))
            clients.append(c)
        self.ws.wait_for(lambda b: b.open_connections >= n, timeout=20,
                         msg="backend holds %d of %d connections" % (self.ws.open_connections,
                                                                     n))
        for i, c in enumerate(clients):
            c.send_frame(1, "message %d" % i)
        for i, c in enumerate(clients):
            f = c.recv(15)
            self.assertEqual((f.opcode, f.payload), (1, b"message %d" % i))
        # A second round in the other order, all still open at once.
        for i, c in reversed(list(enumerate(clients))):
            c.send_frame(2, pattern(100 + i))
        for i, c in reversed(list(enumerate(clients))):
            self.assertEqual(c.recv(15).payload, pattern(100 + i))
        self.assertEqual(self.ws.open_connections, n)
        self.assertEqual(sorted(workers_of(p)), workers, "a worker died under the load")
        for c in clients:
            c.send_frame(8, struct.pack("!H", 1000))
        for i, c in enumerate(clients):
            f = c.recv(15)
            self.assertEqual(f.code, 1000, "connection %d" % i)
        self.ws.wait_for(lambda b: b.open_connections == 0, timeout=20)
        self.assertTrue(p.alive())

    @timeout(90)
    def test_reload_keeps_open_connections(self):
        p = self.start(workers=1, server={"shutdown_timeout": "30s"})
        old = workers_of(p)
        olds = [self.ws_open("/ws") for _ in range(3)]
        for i, c in enumerate(olds):
            self.echo(c, "before %d" % i)
        write_config(self.tmpdir, self.cfg)
        p.signal(signal.SIGHUP)
        new = wait_until(lambda: [w for w in workers_of(p) if w not in old], timeout=10,
                         msg="no new worker after SIGHUP")
        for i, c in enumerate(olds):
            self.echo(c, "after reload %d" % i)
        fresh = self.ws_open("/ws")
        holder = wait_until(lambda: accepting_pid(workers_of(p), self.port, fresh.conn),
                            timeout=5)
        self.assertIn(holder, new, "the new connection went to an old worker")
        self.echo(fresh, "new connection")
        time.sleep(1.0)
        for i, c in enumerate(olds):
            self.echo(c, "later %d" % i)
            c.send_frame(8, struct.pack("!H", 1000))
            self.assertEqual(c.recv().code, 1000)
        self.assertTrue(p.alive())

    @timeout(60)
    def test_graceful_stop_closes_with_1001_after_shutdown_timeout(self):
        p = self.start(workers=1, server={"shutdown_timeout": "2s"})
        clients = [self.ws_open("/ws") for _ in range(3)]
        for i, c in enumerate(clients):
            self.echo(c, "before %d" % i)
        t0 = time.monotonic()
        p.signal(signal.SIGQUIT)
        time.sleep(0.3)
        for i, c in enumerate(clients):
            self.echo(c, "draining %d" % i)
        time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
        for i, c in enumerate(clients):
            self.echo(c, "still draining %d" % i)
        for c in clients:
            self.assert_client_close(c, 1001, timeout=max(0.5, t0 + 8 - time.monotonic()))
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        p.wait(10)
        self.assertFalse(p.alive())


if __name__ == "__main__":
    unittest.main()
