# SPDX-License-Identifier: Apache-2.0
"""Header transform middleware (`middleware.transform`, named instances `transform:NAME`):
remove / set / add on the upstream request and on the client response (gateway errors
included), variables in values, environment substitution, overflow handling, and the load-time
checks (`photon -t`)."""

import os

from harness import (IntegrationTest, base_config, free_port, http_request, run_photon,
                     write_config)

ENV_NAME = "PHOTON_IT_TRANSFORM_VALUE"


def side(add=None, set=None, remove=None):  # noqa: A002 - mirrors the config key
    """One `request_headers` / `response_headers` block."""
    out = {}
    if remove is not None:
        out["remove"] = remove
    if set is not None:
        out["set"] = set
    if add is not None:
        out["add"] = add
    return out


def xform(request=None, response=None):
    """A `middleware.transform` block."""
    out = {}
    if request is not None:
        out["request_headers"] = request
    if response is not None:
        out["response_headers"] = response
    return out


class TransformBase(IntegrationTest):
    """Starts photon with one backend b1. By default route `t` (/t/**) runs `transform`, route
    `all` (/**) runs nothing."""

    def make_config(self, transform=None, routes=None, upstreams=None, middleware=None,
                    server=None):
        if not hasattr(self, "b"):
            self.b = self.backend()
        self.port = free_port()
        cfg = base_config(self.port, upstreams if upstreams is not None else [self.b])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"].update(server or {})
        cfg["health_check"]["enabled"] = False   # no /health probes in the request logs
        cfg["middleware"] = middleware if middleware is not None \
            else {"transform": transform if transform is not None else xform()}
        cfg["routes"] = routes if routes is not None else [
            {"id": "t", "path": "/t/**", "backend": "default", "middleware": ["transform"]},
            {"id": "all", "path": "/**", "backend": "default"},
        ]
        return cfg

    def start(self, env=None, **kw):
        self.proxy = self.photon(self.make_config(**kw), env=env)
        return self.proxy

    def send(self, path="/t/x", headers=None, method="GET", **kw):
        """One request; returns (response, the request as the backend received it)."""
        r = http_request(self.port, method, path, headers=headers, **kw)
        self.assertEqual(r.status, 200, "%s %s: %r %r" % (method, path, r, r.body))
        log = self.b.request_log()
        self.assertTrue(log, "the backend received nothing")
        return r, log[-1]

    # `photon -t`

    def check(self, cfg, env=None):
        self.require_photon()
        path = write_config(self.tmpdir, cfg, name="check")
        return run_photon(["-t", "-c", path], env=env)

    def assert_valid(self, transform, **kw):
        rc, _, err = self.check(self.make_config(transform=transform, **kw))
        self.assertEqual(rc, 0, "rejected %r:\n%s" % (transform, err))

    def assert_invalid(self, transform, *patterns, **kw):
        rc, _, err = self.check(self.make_config(transform=transform, **kw))
        self.assertEqual(rc, 1, "accepted %r:\n%s" % (transform, err))
        for p in patterns:
            self.assertRegex(err, p)
        return err


# --------------------------------------------------------------------------------------------


class RequestHeadersTest(TransformBase):

    def test_remove_deletes_every_field_case_insensitively(self):
        self.start(transform=xform(request=side(remove=["X-Drop"])))
        _, up = self.send(headers=[("X-Drop", "a"), ("x-drop", "b"), ("X-Keep", "k"),
                                   ("X-DROP", "c")])
        self.assertEqual(up.header_all("x-drop"), [], up.headers)
        self.assertEqual(up.header_all("x-keep"), ["k"])

    def test_set_replaces_all_values_with_one(self):
        self.start(transform=xform(request=side(set={"X-Mode": "gateway",
                                                      "X-New": "fresh"})))
        _, up = self.send(headers=[("X-Mode", "a"), ("x-mode", "b")])
        self.assertEqual(up.header_all("x-mode"), ["gateway"], up.headers)
        self.assertEqual(up.header_all("x-new"), ["fresh"])

    def test_add_appends_and_keeps_existing_values(self):
        self.start(transform=xform(request=side(add={"X-Tag": "gw"})))
        _, up = self.send(headers=[("X-Tag", "client")])
        self.assertEqual(up.header_all("x-tag"), ["client", "gw"], up.headers)
        _, up = self.send()
        self.assertEqual(up.header_all("x-tag"), ["gw"], up.headers)

    def test_operations_apply_in_order_remove_set_add(self):
        # Any other order of the three gives a different result for X-A.
        self.start(transform=xform(request=side(remove=["X-A"], set={"X-A": "s"},
                                                add={"X-A": "a"})))
        _, up = self.send(headers=[("X-A", "c1"), ("X-A", "c2")])
        self.assertEqual(up.header_all("x-a"), ["s", "a"], up.headers)

    def test_set_host_changes_the_host_the_upstream_sees(self):
        self.start(transform=xform(request=side(set={"Host": "internal.svc:8081"})))
        _, up = self.send(headers={"Host": "public.example.test"})
        self.assertEqual(up.header_all("host"), ["internal.svc:8081"], up.headers)

    def test_routes_without_transform_are_unchanged(self):
        self.start(transform=xform(request=side(remove=["X-Drop"], set={"X-Mode": "gw"},
                                                add={"X-Tag": "gw"}),
                                   response=side(add={"X-Resp": "gw"})))
        hdrs = [("X-Drop", "d"), ("X-Mode", "client"), ("X-Tag", "client")]
        r, up = self.send("/plain", headers=hdrs)
        self.assertEqual(up.header_all("x-drop"), ["d"])
        self.assertEqual(up.header_all("x-mode"), ["client"])
        self.assertEqual(up.header_all("x-tag"), ["client"])
        self.assertIsNone(r.header("x-resp"))
        # The transform route, for contrast.
        r, up = self.send("/t/x", headers=hdrs)
        self.assertEqual(up.header_all("x-drop"), [])
        self.assertEqual(r.header("x-resp"), "gw")


class ResponseHeadersTest(TransformBase):

    def test_remove_set_add_on_the_response(self):
        self.start(transform=xform(response=side(remove=["X-Secret"],
                                                 set={"X-Powered": "gateway"},
                                                 add={"X-Multi": "gw"})))
        r, _ = self.send("/t/x?header=X-Secret:1&header=x-secret:2&header=X-Powered:a"
                         "&header=X-Powered:b&header=X-Multi:up")
        self.assertEqual(r.body, b"b1")
        self.assertEqual(r.headers.get_all("x-secret"), [], r.headers)
        self.assertEqual(r.headers.get_all("x-powered"), ["gateway"], r.headers)
        self.assertEqual(r.headers.get_all("x-multi"), ["up", "gw"], r.headers)
        # Framing is untouched.
        self.assertEqual(r.header("content-length"), "2")

    def test_response_transform_applies_to_gateway_errors(self):
        dead = "127.0.0.1:%d" % free_port()   # nothing listens there
        self.start(upstreams=[dead],
                   transform=xform(response=side(add={"X-Gw": "yes"},
                                                 set={"X-Rid": "${request_id}"})))
        r = http_request(self.port, "GET", "/t/x")
        self.assertIn(r.status, (502, 503), r.body)
        self.assertEqual(r.header("x-gw"), "yes", r.headers)
        self.assertEqual(r.header("x-rid"), r.header("x-request-id"))
        doc = r.json()
        self.assertEqual(doc.get("status"), r.status)
        self.assertEqual(int(r.header("content-length")), len(r.body))


class GatewayFieldsTest(TransformBase):
    """Fields the gateway writes itself, which a transform may still change."""

    def test_transform_can_set_x_gateway_and_forwarded_proto(self):
        self.start(transform=xform(request=side(set={"X-Forwarded-Proto": "https"}),
                                   response=side(set={"X-Gateway": "edge-7"})))
        r, up = self.send(headers={"X-Forwarded-Proto": "gopher"})
        self.assertEqual(up.header_all("x-forwarded-proto"), ["https"])
        self.assertEqual(r.header("x-gateway"), "edge-7")
        # Without the transform the gateway's own values stand.
        r2, up2 = self.send("/other", headers={"X-Forwarded-Proto": "gopher"})
        self.assertEqual(up2.header("x-forwarded-proto"), "http")
        self.assertEqual(r2.header("x-gateway"), "Photon/1.0")

    def test_transform_can_remove_x_gateway(self):
        self.start(transform=xform(response=side(remove=["X-Gateway"])))
        r, _ = self.send()
        self.assertIsNone(r.header("x-gateway"), r.headers)

    def test_gateway_error_takes_the_transforms_cache_control_once(self):
        dead = "127.0.0.1:%d" % free_port()
        self.start(upstreams=[dead],
                   transform=xform(response=side(set={"Cache-Control": "max-age=5"})))
        r = http_request(self.port, "GET", "/t/x")
        self.assertIn(r.status, (502, 503), r.body)
        self.assertEqual(r.headers.get_all("cache-control"), ["max-age=5"], r.headers)

    def test_client_ip_follows_trusted_proxies(self):
        self.start(server={"trusted_proxies": ["127.0.0.1/32"]},
                   transform=xform(request=side(set={"X-Client": "${client_ip}"})))
        _, up = self.send(headers={"X-Forwarded-For": "203.0.113.9"})
        self.assertEqual(up.header("x-client"), "203.0.113.9")
        _, up = self.send()
        self.assertEqual(up.header("x-client"), "127.0.0.1")


class VariablesTest(TransformBase):

    def test_request_side_variables(self):
        self.start(transform=xform(request=side(set={
            "X-Rid": "${request_id}", "X-Client": "${client_ip}", "X-Route": "${route_id}",
            "X-Host": "${host}", "X-Path": "${path}", "X-Method": "${method}"})))
        r, up = self.send("/t/x/../%7Eu//v?q=1&r=2", method="POST", body=b"abc",
                          headers={"Host": "api.example.test:8080"})
        self.assertEqual(up.path, "/t/~u/v", "unexpected forwarded path %r" % up.target)
        self.assertEqual(up.header("x-rid"), r.header("x-request-id"))
        self.assertTrue(up.header("x-rid"))
        self.assertEqual(up.header("x-client"), "127.0.0.1")
        self.assertEqual(up.header("x-route"), "t")
        self.assertEqual(up.header("x-host"), "api.example.test:8080")
        self.assertEqual(up.header("x-path"), "/t/~u/v")
        self.assertEqual(up.header("x-method"), "POST")

    def test_response_side_variables(self):
        self.start(transform=xform(response=side(set={
            "X-Up": "${upstream}", "X-Rid": "${request_id}", "X-Route": "${route_id}",
            "X-Method": "${method}", "X-Path": "${path}", "X-Client": "${client_ip}"})))
        r, _ = self.send("/t/a/./b?z=9", method="PUT", body=b"")
        self.assertEqual(r.header("x-up"), self.b.address)
        self.assertEqual(r.header("x-rid"), r.header("x-request-id"))
        self.assertEqual(r.header("x-route"), "t")
        self.assertEqual(r.header("x-method"), "PUT")
        self.assertEqual(r.header("x-path"), "/t/a/b")
        self.assertEqual(r.header("x-client"), "127.0.0.1")

    def test_variables_are_evaluated_per_request(self):
        self.start(transform=xform(request=side(set={"X-Rid": "${request_id}"}),
                                   response=side(set={"X-Echo-Rid": "${request_id}"})))
        c = self.conn(self.port)
        seen = []
        for i in range(3):
            r = c.request("GET", "/t/%d" % i)
            self.assertEqual(r.status, 200)
            up = self.b.request_log()[-1]
            self.assertEqual(up.header("x-rid"), r.header("x-request-id"))
            self.assertEqual(r.header("x-echo-rid"), r.header("x-request-id"))
            seen.append(r.header("x-request-id"))
        self.assertEqual(len(set(seen)), 3, "request ids repeated: %r" % seen)
        # A kept incoming X-Request-ID is the ${request_id}.
        r = c.request("GET", "/t/kept", headers={"X-Request-ID": "it-rid-0001"})
        self.assertEqual(r.header("x-request-id"), "it-rid-0001")
        self.assertEqual(self.b.request_log()[-1].header("x-rid"), "it-rid-0001")
        self.assertEqual(r.header("x-echo-rid"), "it-rid-0001")

    def test_text_and_variables_mix(self):
        self.start(transform=xform(request=side(set={
            "X-Mix": "rid=${request_id};m=${method}",
            "X-Adj": "${method}${route_id}-${method}!"})))
        r, up = self.send(method="DELETE")
        self.assertEqual(up.header("x-mix"), "rid=%s;m=DELETE" % r.header("x-request-id"))
        self.assertEqual(up.header("x-adj"), "DELETEt-DELETE!")

    def test_double_dollar_writes_a_literal(self):
        self.start(transform=xform(request=side(set={"X-Lit": "$${literal}",
                                                     "X-Lit2": "a$${request_id}b"}),
                                   response=side(set={"X-Lit": "$${method}"})))
        r, up = self.send()
        self.assertEqual(up.header("x-lit"), "${literal}")
        self.assertEqual(up.header("x-lit2"), "a${request_id}b")
        self.assertEqual(r.header("x-lit"), "${method}")

    def test_path_parameters(self):
        self.start(
            transform=xform(request=side(set={"X-User": "${path.id}",
                                              "X-Both": "${path.id}/${path.post}"}),
                            response=side(set={"X-Post": "${path.post}"})),
            routes=[{"id": "posts", "path": "/users/{id}/posts/{post}", "backend": "default",
                     "middleware": ["transform"]},
                    {"id": "all", "path": "/**", "backend": "default"}])
        r, up = self.send("/users/42/posts/abc-7")
        self.assertEqual(up.header("x-user"), "42")
        self.assertEqual(up.header("x-both"), "42/abc-7")
        self.assertEqual(r.header("x-post"), "abc-7")
        r, up = self.send("/users/u9/posts/1")
        self.assertEqual(up.header("x-user"), "u9")
        self.assertEqual(r.header("x-post"), "1")

    def test_environment_variables_are_substituted_at_load(self):
        t = xform(request=side(set={"X-Env": "${%s}" % ENV_NAME,
                                    "X-Env-Mix": "${%s}/${method}" % ENV_NAME}),
                  response=side(add={"X-Env": "${%s}" % ENV_NAME}))
        self.start(transform=t, env={ENV_NAME: "from-env"})
        r, up = self.send()
        self.assertEqual(up.header("x-env"), "from-env")
        self.assertEqual(up.header("x-env-mix"), "from-env/GET")
        self.assertEqual(r.header("x-env"), "from-env")
        # Unset, it is a load error naming the variable.
        rc, _, err = self.check(self.make_config(transform=t), env={ENV_NAME: None})
        self.assertEqual(rc, 1, err)
        self.assertIn(ENV_NAME, err)


class OverflowTest(TransformBase):

    BIG = "v" * 30000

    def test_response_head_overflow_is_502_not_truncated(self):
        self.start(transform=xform(response=side(set={"X-Big": self.BIG})),
                   server={"max_header_size": 8192})
        r = http_request(self.port, "GET", "/t/x", timeout=10)
        self.assertEqual(r.status, 502, "expected 502, got %r" % r)
        doc = r.json()
        self.assertEqual(doc.get("status"), 502)
        self.assertEqual(doc.get("request_id"), r.header("x-request-id"))
        self.assertEqual(self.b.requests_served, 1)
        # The worker still serves other routes.
        r = http_request(self.port, "GET", "/plain")
        self.assertEqual((r.status, r.body), (200, b"b1"))

    def test_full_field_list_gives_one_502_and_the_connection_stays_in_step(self):
        # The upstream's head holds exactly as many fields as the gateway keeps (128): the
        # response transform cannot add its field and refuses the head. The client must get
        # exactly one 502 for that request, and its next request on the same connection its
        # own answer (no second, unsolicited reply shifting the responses).
        self.start(transform=xform(response=side(add={"X-Added": "1"})),
                   server={"max_header_size": 16384})
        import socket
        probe = socket.create_connection(("127.0.0.1", self.b.port), timeout=5)
        probe.sendall(b"GET /t/x HTTP/1.1\r\nHost: b\r\n\r\n")  # keep-alive, as the gateway
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = probe.recv(65536)
            if not chunk:
                break
            raw += chunk
        probe.close()
        own = raw.split(b"\r\n\r\n")[0].count(b"\r\n")  # fields after the status line
        extra = 128 - own
        self.assertGreater(extra, 0)
        query = "&".join("header=X-F%d:v" % i for i in range(extra))
        conn = self.conn(self.port)
        r1 = conn.request("GET", "/t/x?" + query)
        self.assertEqual(r1.status, 502, "%r %r" % (r1, r1.body))
        self.assertEqual(r1.json().get("status"), 502)
        r2 = conn.request("GET", "/plain")
        self.assertEqual((r2.status, r2.body), (200, b"b1"))

    def test_request_head_overflow_is_431(self):
        self.start(transform=xform(request=side(set={"X-Big": self.BIG})),
                   server={"max_header_size": 8192})
        r = http_request(self.port, "GET", "/t/x", timeout=10)
        self.assertEqual(r.status, 431, "expected 431, got %r: %r" % (r, r.body))
        doc = r.json()
        self.assertEqual(doc.get("status"), 431)
        self.assertEqual(self.b.requests_served, 0, "a truncated head reached the upstream")
        r = http_request(self.port, "GET", "/plain")
        self.assertEqual((r.status, r.body), (200, b"b1"))


class CompositionTest(TransformBase):

    def test_order_of_names_in_route_middleware_does_not_matter(self):
        cors = {"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET"],
                "allowed_headers": ["Content-Type"]}
        t = xform(request=side(set={"X-Q": "${route_id}"}), response=side(add={"X-T": "1"}))
        self.start(middleware={"cors": cors, "transform": t}, routes=[
            {"id": "ab", "path": "/a/**", "backend": "default",
             "middleware": ["cors", "transform"]},
            {"id": "ba", "path": "/b/**", "backend": "default",
             "middleware": ["transform", "cors"]},
        ])
        results = {}
        for path, rid in (("/a/x", "ab"), ("/b/x", "ba")):
            r, up = self.send(path, headers={"Origin": "https://app.example.com"})
            self.assertEqual(up.header("x-q"), rid)
            results[rid] = (r.header("access-control-allow-origin"), r.headers.get_all("x-t"))
        self.assertEqual(results["ab"], ("https://app.example.com", ["1"]))
        self.assertEqual(results["ba"], results["ab"])

    def test_named_instance_uses_its_own_settings(self):
        self.start(middleware={
            "transform": xform(request=side(set={"X-Which": "default"})),
            "transform:edge": xform(request=side(set={"X-Which": "edge"}),
                                    response=side(add={"X-Edge": "1"})),
        }, routes=[
            {"id": "t", "path": "/t/**", "backend": "default", "middleware": ["transform"]},
            {"id": "edge", "path": "/edge/**", "backend": "default",
             "middleware": ["transform:edge"]},
            {"id": "all", "path": "/**", "backend": "default"},
        ])
        r, up = self.send("/t/x")
        self.assertEqual(up.header_all("x-which"), ["default"])
        self.assertIsNone(r.header("x-edge"))
        r, up = self.send("/edge/x")
        self.assertEqual(up.header_all("x-which"), ["edge"])
        self.assertEqual(r.header("x-edge"), "1")
        r, up = self.send("/other")
        self.assertEqual(up.header_all("x-which"), [])
        # A route naming an instance that is not configured does not load.
        rc, _, err = self.check(self.make_config(
            middleware={"transform:edge": xform(request=side(set={"X-Which": "edge"}))},
            routes=[{"id": "r", "path": "/**", "backend": "default",
                     "middleware": ["transform:missing"]}]))
        self.assertEqual(rc, 1, err)
        self.assertIn("transform:missing", err)


class TransformConfigTest(TransformBase):

    PROTECTED = {"Content-Length": "5", "transfer-encoding": "chunked", "CONNECTION": "close",
                 "X-Forwarded-For": "10.0.0.1", "x-request-id": "abc"}

    def test_ordinary_transform_config_is_valid(self):
        # Control for the rejections below: the same shapes with ordinary names load.
        every = "${request_id} ${client_ip} ${route_id} ${host} ${path} ${method}"
        self.assert_valid(xform(
            request=side(remove=["X-A"], set={"Host": "up.internal", "X-B": every},
                         add={"X-C": "c"}),
            response=side(remove=["Server"], set={"X-D": every + " ${upstream}"},
                          add={"X-E": "$${x}"})))

    def test_protected_request_headers_are_rejected(self):
        for name, value in self.PROTECTED.items():
            for op in ("set", "add", "remove"):
                with self.subTest(name=name, op=op):
                    block = side(remove=[name]) if op == "remove" else side(**{op: {name: value}})
                    self.assert_invalid(xform(request=block),
                                        r"middleware\.transform\.request_headers\.%s" % op)

    def test_protected_response_headers_are_rejected(self):
        for name, value in self.PROTECTED.items():
            if name == "X-Forwarded-For":
                continue   # a request header; the spec does not say for the response side
            for op in ("set", "add", "remove"):
                with self.subTest(name=name, op=op):
                    block = side(remove=[name]) if op == "remove" else side(**{op: {name: value}})
                    self.assert_invalid(xform(response=block),
                                        r"middleware\.transform\.response_headers\.%s" % op)

    def test_host_may_be_set_but_not_added_or_removed(self):
        self.assert_valid(xform(request=side(set={"Host": "up.internal"})))
        self.assert_invalid(xform(request=side(add={"Host": "up.internal"})),
                            r"middleware\.transform\.request_headers\.add")
        self.assert_invalid(xform(request=side(remove=["host"])),
                            r"middleware\.transform\.request_headers\.remove")

    def test_upstream_variable_is_rejected_in_request_headers(self):
        self.assert_valid(xform(response=side(set={"X-Up": "${upstream}"})))
        self.assert_invalid(xform(request=side(set={"X-Up": "${upstream}"})),
                            r"middleware\.transform\.request_headers\.set", r"upstream")
        self.assert_invalid(xform(request=side(add={"X-Up": "via ${upstream}"})),
                            r"middleware\.transform\.request_headers\.add", r"upstream")

    def test_unknown_lower_case_variable_is_rejected(self):
        self.assert_valid(xform(request=side(set={"X-Rid": "${request_id}"}),
                                response=side(add={"X-M": "m=${method}"})))
        self.assert_invalid(xform(request=side(set={"X-Rid": "${requestid}"})),
                            r"middleware\.transform\.request_headers\.set", r"requestid")
        self.assert_invalid(xform(response=side(add={"X-M": "m=${methods}"})),
                            r"middleware\.transform\.response_headers\.add", r"methods")
