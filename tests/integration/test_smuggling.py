# SPDX-License-Identifier: Apache-2.0
"""Request smuggling and desynchronisation defence on the real binary, over raw sockets.

Every malformed request carries a second, smuggled request behind it. Photon must answer the
first with the documented status (JSON error body), close the connection, and the upstream must
never see a request at all: neither the rejected one nor the smuggled one. Response-side
framing errors from an upstream become 502 and never reach the client as a response."""

import os
import sys
import time

from harness import (IntegrationTest, ProtocolError, free_port, http_request, parse_responses,
                     wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "proxy"))

from proxy_support import CannedServer, check_error_reply, proxy_config  # noqa: E402

MAX_BODY = 4096
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def max_body(size):
    """Runs one test against a photon with server.max_body_size: ``size`` (0 = unlimited)."""
    def deco(fn):
        fn.max_body_size = size
        return fn
    return deco


def req(head_lines, body=b"", request_line=b"POST /echo HTTP/1.1"):
    """A raw request: request line, header lines joined by CRLF, empty line, body."""
    return request_line + b"\r\n" + b"".join(h + b"\r\n" for h in head_lines) + b"\r\n" + body


class SmugglingTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.b = self.backend()
        self.port = free_port()
        limit = getattr(getattr(self, self._testMethodName), "max_body_size", MAX_BODY)
        cfg = proxy_config(self.tmpdir, self.port, [self.b], workers=1, max_body_size=limit)
        self.proxy = self.photon(cfg)

    def exchange(self, data):
        """Sends ``data``; returns (bytes received until the close, how it ended)."""
        c = self.conn(self.port, timeout=5)
        c.send(data)
        raw = c.recv_until_close(timeout=5)
        return raw, c.last_close

    def assert_rejected(self, data, status, served=0):
        """``data`` gets exactly one response, ``status`` as a JSON error, then a close; the
        upstream has served ``served`` requests (and never the smuggled one)."""
        raw, how = self.exchange(data)
        self.assertIn(how, ("eof", "reset"),
                      "connection left open after the rejection; got %r" % raw[:300])
        resps = parse_responses(raw)
        self.assertEqual(len(resps), 1 + served, "responses: %r" % resps)
        check_error_reply(self, resps[-1], status)
        self.assertIn("close", (resps[-1].header("connection") or "").lower())
        # Anything photon passed on has arrived once the upstream side is closed.
        wait_until(lambda: self.b.open_connections <= (1 if served else 0), 3)
        self.assertEqual(self.b.requests_served, served,
                         "upstream saw %r" % [r.target for r in self.b.request_log()])
        self.assertNotIn("/smuggled", [r.target for r in self.b.request_log()])
        if not served:
            # Not a byte of it reached an upstream: the gateway never even connected.
            self.assertEqual(self.b.connections_accepted, 0)
        return resps[-1]

    # ---- framing conflicts -----------------------------------------------------------------

    def test_content_length_with_transfer_encoding(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: 6",
                                  b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED), 400)

    def test_transfer_encoding_with_content_length(self):
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked",
                                  b"Content-Length: 40"], b"0\r\n\r\n" + SMUGGLED), 400)

    def test_duplicate_differing_content_length(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: 0",
                                  b"Content-Length: %d" % len(SMUGGLED)], SMUGGLED), 400)

    def test_content_length_list(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: 0, %d" % len(SMUGGLED)],
                                 SMUGGLED), 400)

    def test_duplicate_identical_content_length(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: 3", b"Content-Length: 3"],
                                 b"abc" + SMUGGLED), 400)

    def test_malformed_content_length(self):
        for value in (b"+3", b"-1", b"0x3", b"3 3", b""):
            with self.subTest(value=value):
                self.assert_rejected(req([b"Host: a", b"Content-Length: " + value],
                                         b"abc" + SMUGGLED), 400)

    def test_transfer_encoding_other_than_chunked_is_501(self):
        for te in ([b"Transfer-Encoding: gzip"], [b"Transfer-Encoding: gzip, chunked"],
                   [b"Transfer-Encoding: identity"], [b"Transfer-Encoding: chunked, chunked"],
                   [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"]):
            with self.subTest(te=te):
                self.assert_rejected(req([b"Host: a"] + te, b"0\r\n\r\n" + SMUGGLED), 501)

    def test_transfer_encoding_in_http10_request(self):
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                 b"0\r\n\r\n" + SMUGGLED, request_line=b"POST /echo HTTP/1.0"),
                             400)

    # ---- header syntax ---------------------------------------------------------------------

    def test_obs_fold(self):
        self.assert_rejected(req([b"Host: a", b"X-Folded: one", b" two"]) + SMUGGLED, 400)
        self.assert_rejected(req([b" X-Folded: one", b"Host: a"]) + SMUGGLED, 400)

    def test_obs_fold_hiding_transfer_encoding(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: 5", b"X-Pad: x",
                                  b"\tTransfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED),
                             400)

    def test_bare_lf(self):
        self.assert_rejected(b"GET /echo HTTP/1.1\nHost: a\n\n" + SMUGGLED, 400)
        self.assert_rejected(b"GET /echo HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n" + SMUGGLED, 400)

    def test_bare_cr(self):
        self.assert_rejected(b"GET /echo HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n" + SMUGGLED, 400)

    def test_nul_in_header(self):
        self.assert_rejected(req([b"Host: a", b"X-Nul: a\x00b"], request_line=b"GET /echo "
                                 b"HTTP/1.1") + SMUGGLED, 400)

    def test_control_character_in_header_name(self):
        self.assert_rejected(req([b"Host: a", b"X-\x01Bad: v"], request_line=b"GET /echo "
                                 b"HTTP/1.1") + SMUGGLED, 400)

    def test_space_before_colon(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length : %d" % len(SMUGGLED)],
                                 SMUGGLED), 400)
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding\t: chunked"],
                                 b"0\r\n\r\n" + SMUGGLED), 400)

    def test_missing_host_in_http11(self):
        self.assert_rejected(b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n" + SMUGGLED, 400)

    def test_two_host_headers(self):
        self.assert_rejected(b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED, 400)
        self.assert_rejected(b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" + SMUGGLED, 400)

    def test_absolute_form_host_mismatch(self):
        self.assert_rejected(b"GET http://a/echo HTTP/1.1\r\nHost: b\r\n\r\n" + SMUGGLED, 400)

    # ---- request line and size limits -------------------------------------------------------

    def test_http2_version_is_505(self):
        self.assert_rejected(b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n" + SMUGGLED, 505)
        self.assert_rejected(b"GET /echo HTTP/1.2\r\nHost: a\r\n\r\n" + SMUGGLED, 505)

    def test_malformed_version_is_400(self):
        self.assert_rejected(b"GET /echo http/1.1\r\nHost: a\r\n\r\n" + SMUGGLED, 400)
        self.assert_rejected(b"GET  /echo HTTP/1.1\r\nHost: a\r\n\r\n" + SMUGGLED, 400)

    def test_overlong_request_line_is_414(self):
        self.assert_rejected(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n" + SMUGGLED,
                             414)

    def test_too_many_headers_is_431(self):
        fields = [b"Host: a"] + [b"X-H%d: v" % i for i in range(120)]
        self.assert_rejected(req(fields, request_line=b"GET /echo HTTP/1.1") + SMUGGLED, 431)

    def test_oversized_head_is_431(self):
        fields = [b"Host: a"] + [b"X-Big%d: %s" % (i, b"v" * 1000) for i in range(20)]
        self.assert_rejected(req(fields, request_line=b"GET /echo HTTP/1.1") + SMUGGLED, 431)

    # ---- bodies ------------------------------------------------------------------------------

    def test_invalid_chunk_size(self):
        for size_line in (b"zz", b"0x5", b"-5", b" 5", b"5\x00"):
            with self.subTest(size_line=size_line):
                self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                         size_line + b"\r\nhello\r\n0\r\n\r\n" + SMUGGLED), 400)

    @max_body(0)
    def test_chunk_size_overflow(self):
        # No body limit here, so only the 2^63-1 bound on a chunk size applies.
        for size_line in (b"10000000000000000", b"ffffffffffffffffff", b"8000000000000000"):
            with self.subTest(size_line=size_line):
                self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                         size_line + b"\r\nhello\r\n0\r\n\r\n" + SMUGGLED), 400)

    def test_chunk_data_without_crlf(self):
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                 b"3\r\nabcX\r\n0\r\n\r\n" + SMUGGLED), 400)

    def test_content_length_body_over_max_body_size_is_413(self):
        self.assert_rejected(req([b"Host: a", b"Content-Length: %d" % (MAX_BODY + 1)],
                                 b"x" * (MAX_BODY + 1) + SMUGGLED), 413)

    def test_413_comes_before_100_continue(self):
        raw, how = self.exchange(req([b"Host: a", b"Content-Length: %d" % (MAX_BODY * 2),
                                      b"Expect: 100-continue"]))
        self.assertIn(how, ("eof", "reset"))
        resps = parse_responses(raw)
        self.assertEqual([r.status for r in resps], [413], "no 100 Continue for a body refused")
        self.assertEqual(self.b.requests_served, 0)

    def test_chunked_body_over_max_body_size_is_413(self):
        body = b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(MAX_BODY // 1024 + 2))
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                 body + b"0\r\n\r\n" + SMUGGLED), 413)

    def test_declared_chunk_over_max_body_size_is_413_at_once(self):
        # The chunk-size line alone announces more than max_body_size: refuse it then, rather
        # than stream the start of it upstream and wait for the client to send it all.
        self.assert_rejected(req([b"Host: a", b"Transfer-Encoding: chunked"],
                                 b"%x\r\n" % (MAX_BODY * 1000) + b"z" * 100), 413)

    # ---- desynchronisation after a valid request ------------------------------------------

    def test_smuggling_attempt_after_valid_request(self):
        valid = b"GET /name HTTP/1.1\r\nHost: a\r\n\r\n"
        bad = req([b"Host: a", b"Content-Length: 6", b"Transfer-Encoding: chunked"],
                  b"0\r\n\r\n" + SMUGGLED)
        raw, how = self.exchange(valid + bad)
        self.assertIn(how, ("eof", "reset"))
        resps = parse_responses(raw)
        self.assertEqual([r.status for r in resps], [200, 400])
        self.assertEqual(resps[0].body, self.b.name.encode())
        check_error_reply(self, resps[1], 400)
        self.assertEqual([r.target for r in self.b.request_log()], ["/name"])

    def test_bad_chunk_after_a_forwarded_part_cuts_the_upstream_off(self):
        """A chunked upload whose framing breaks after its valid beginning was already sent
        on: the client gets its 400 and a close, the upstream connection is closed (the
        backend never sees a complete request, nor the smuggled one), and the next request
        goes over a fresh connection."""
        c = self.conn(self.port, timeout=5)
        c.send(req([b"Host: a", b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n"))
        wait_until(lambda: self.b.connections_accepted == 1, 3)
        time.sleep(0.2)
        c.send(b"3\r\nabcX\r\n0\r\n\r\n" + SMUGGLED)
        raw = c.recv_until_close(timeout=5)
        self.assertIn(c.last_close, ("eof", "reset"))
        resps = parse_responses(raw)
        self.assertEqual([r.status for r in resps], [400])
        check_error_reply(self, resps[0], 400)
        wait_until(lambda: self.b.open_connections == 0, 3,
                   msg="the upstream connection carrying the broken body was kept")
        self.assertEqual(self.b.requests_served, 0)
        self.assertNotIn("/smuggled", [r.target for r in self.b.request_log()])
        r = http_request(self.port, "GET", "/name")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.b.connections_accepted, 2)

    def test_chunked_body_ends_exactly_at_last_chunk(self):
        # A valid chunked request followed by a pipelined one: both are separate requests and
        # the second is not swallowed into (or smuggled out of) the first body.
        first = req([b"Host: a", b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n")
        second = b"GET /name HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        raw, how = self.exchange(first + second)
        self.assertEqual(how, "eof")
        resps = parse_responses(raw)
        self.assertEqual([r.status for r in resps], [200, 200])
        self.assertEqual(resps[0].json()["body_length"], 5)
        self.assertEqual([r.target for r in self.b.request_log()], ["/echo", "/name"])


class ResponseSmugglingTest(IntegrationTest):
    """An upstream whose response framing is ambiguous gets its response refused (502)."""

    def via(self, response):
        up = CannedServer(response)
        self.addCleanup(up.stop)
        port = free_port()
        self.photon(proxy_config(self.tmpdir, port, [up.address], workers=1))
        return port, up

    def test_response_with_content_length_and_transfer_encoding_is_502(self):
        port, up = self.via(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        r = http_request(port, "GET", "/x")
        check_error_reply(self, r, 502)
        self.assertEqual(up.requests, 1)

    def test_response_with_differing_content_lengths_is_502(self):
        port, _ = self.via(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 9\r\n"
                           b"\r\nhello")
        check_error_reply(self, http_request(port, "GET", "/x"), 502)

    def test_response_with_obs_fold_is_502(self):
        port, _ = self.via(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n c\r\n\r\nhello")
        check_error_reply(self, http_request(port, "GET", "/x"), 502)

    def test_response_with_bad_chunk_mid_body_is_cut_off(self):
        port, _ = self.via(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
        c = self.conn(port)
        with self.assertRaises((ProtocolError, ConnectionResetError)):
            c.request("GET", "/x")  # the head went out already: the body must not complete
        self.assertTrue(c.wait_closed(5))


class UnderscoreFieldTest(IntegrationTest):
    """Header field names with '_' (X_Forwarded_For, which a CGI-style backend reads as
    X-Forwarded-For) are not forwarded unless server.underscores_in_headers is true; the
    request is still served."""

    def run_with(self, allow):
        import json
        from harness import base_config
        b = self.backend()
        port = free_port()
        cfg = base_config(port, [b])
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "p%s.pid" % allow)
        if allow is not None:
            cfg["server"]["underscores_in_headers"] = allow
        self.photon(cfg, name="u%s" % allow)
        r = http_request(port, "GET", "/echo", headers=[("X_Forwarded_For", "6.6.6.6"),
                                                        ("Auth_User", "admin"),
                                                        ("X-Kept", "yes")])
        self.assertEqual(r.status, 200)
        return {k.lower(): v for k, v in json.loads(r.body)["headers"]}

    def test_dropped_by_default_forwarded_when_allowed(self):
        seen = self.run_with(None)
        self.assertNotIn("x_forwarded_for", seen)
        self.assertNotIn("auth_user", seen)
        self.assertEqual(seen["x-kept"], "yes")
        self.assertNotIn("6.6.6.6", seen["x-forwarded-for"])
        seen = self.run_with(True)
        self.assertEqual(seen["x_forwarded_for"], "6.6.6.6")
        self.assertEqual(seen["auth_user"], "admin")
