# SPDX-License-Identifier: Apache-2.0
"""CORS middleware (`middleware.cors`, named instances `cors:NAME`): preflights answered by the
gateway (204 / 403), origin matching, headers on proxied and gateway-generated responses,
replacement of the upstream's own CORS headers, and the load-time checks (`photon -t`)."""

import os

from harness import (IntegrationTest, base_config, free_port, http_request, run_photon,
                     write_config)

APP = "https://app.example.com"
PREFLIGHT_VARY = {"origin", "access-control-request-method", "access-control-request-headers"}


def cors_block(**over):
    """The reference `middleware.cors` block; keyword arguments replace or add keys."""
    c = {
        "allowed_origins": [APP, "https://*.example.org", "http://localhost:3000"],
        "allowed_methods": ["GET", "POST", "PUT"],
        "allowed_headers": ["Content-Type", "Authorization"],
        "max_age": "10m",
        "expose_headers": ["X-Total"],
    }
    c.update(over)
    return c


def _without(d, key):
    """A copy of dict ``d`` without ``key``."""
    d = dict(d)
    d.pop(key, None)
    return d


def tokens(values):
    """Lower-cased comma-separated tokens of every value in ``values``."""
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


def cors_names(resp):
    """Names (lower-cased) of the Access-Control-* fields of a response."""
    return [n for n in resp.headers.names() if n.startswith("access-control-")]


class CorsBase(IntegrationTest):
    """Starts photon with one backend b1 in front of it. By default: route `api` (/api/**)
    runs `cors` (cors_block()), route `all` (/**) runs nothing."""

    def make_config(self, cors=None, routes=None, upstreams=None, middleware=None):
        if not hasattr(self, "b"):
            self.b = self.backend()
        self.port = free_port()
        cfg = base_config(self.port, upstreams if upstreams is not None else [self.b])
        cfg["server"]["worker_processes"] = 1
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["enabled"] = False   # no /health probes in the request counts
        cfg["middleware"] = middleware if middleware is not None \
            else {"cors": cors if cors is not None else cors_block()}
        cfg["routes"] = routes if routes is not None else [
            {"id": "api", "path": "/api/**", "backend": "default", "middleware": ["cors"]},
            {"id": "all", "path": "/**", "backend": "default"},
        ]
        return cfg

    def start(self, **kw):
        self.proxy = self.photon(self.make_config(**kw))
        return self.proxy

    def preflight(self, path="/api/items", origin=APP, method="POST", req_headers=None,
                  conn=None):
        h = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if req_headers is not None:
            h.append(("Access-Control-Request-Headers", req_headers))
        if conn is not None:
            return conn.request("OPTIONS", path, headers=h)
        return http_request(self.port, "OPTIONS", path, headers=h)

    def get(self, path="/api/items", origin=APP, method="GET", **kw):
        h = [("Origin", origin)] if origin is not None else []
        return http_request(self.port, method, path, headers=h, **kw)

    def assert_preflight_ok(self, r, origin=APP):
        self.assertEqual(r.status, 204, "preflight not answered with 204: %r %r"
                         % (r, r.body))
        self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)
        return r

    def assert_refused(self, r):
        """A refused preflight: 403, JSON error body, no Access-Control-* field."""
        self.assertEqual(r.status, 403, "expected 403, got %r: %r" % (r, r.body))
        self.assertEqual(cors_names(r), [], "a refused preflight carries CORS headers: %r"
                         % r.headers)
        doc = r.json()
        self.assertEqual(doc.get("status"), 403, doc)
        self.assertIsInstance(doc.get("error"), str)
        self.assertTrue(doc.get("error"), doc)
        self.assertTrue(doc.get("request_id"), doc)
        self.assertEqual(doc["request_id"], r.header("x-request-id"))
        cl = r.header("content-length")
        self.assertIsNotNone(cl, "403 without Content-Length")
        self.assertEqual(int(cl), len(r.body))

    def assert_not_proxied(self):
        self.assertEqual(self.b.requests_served, 0, "the backend saw %r"
                         % self.b.request_log())

    # `photon -t`

    def check(self, cfg, env=None):
        self.require_photon()
        path = write_config(self.tmpdir, cfg, name="check")
        return run_photon(["-t", "-c", path], env=env)


# --------------------------------------------------------------------------------------------


class PreflightTest(CorsBase):

    def test_preflight_is_answered_by_the_gateway_with_204(self):
        self.start()
        c = self.conn(self.port)
        r = self.preflight(req_headers="content-type, authorization", conn=c)
        self.assert_preflight_ok(r)
        self.assertEqual(r.body, b"")
        self.assertIsNone(r.header("content-length"), "204 with Content-Length")
        self.assertIsNone(r.header("transfer-encoding"), "204 with Transfer-Encoding")
        self.assertEqual(r.header("access-control-allow-methods"), "GET, POST, PUT")
        self.assertEqual(r.header("access-control-allow-headers"), "Content-Type, Authorization")
        self.assertEqual(r.header("access-control-max-age"), "600")
        self.assertIsNone(r.header("access-control-allow-credentials"))
        self.assertEqual(len(r.headers.get_all("access-control-allow-origin")), 1)
        self.assertEqual(set(tokens(r.headers.get_all("vary"))), PREFLIGHT_VARY, r.headers)
        self.assertTrue(r.header("x-request-id"), "preflight without X-Request-ID")
        self.assert_not_proxied()
        # The connection stays usable: no stray body bytes follow the 204.
        r2 = c.request("GET", "/api/after", headers={"Origin": APP})
        self.assertEqual((r2.status, r2.body), (200, b"b1"))
        self.assertEqual(c.buffered, b"")
        self.assertEqual(self.b.requests_served, 1)
        self.assertEqual(self.b.request_log()[0].method, "GET")

    def test_optional_preflight_headers_follow_the_config(self):
        # No max_age, credentials allowed: no Max-Age, Allow-Credentials: true.
        self.start(cors=_without(cors_block(allow_credentials=True), "max_age"))
        r = self.assert_preflight_ok(self.preflight(method="PUT"))
        self.assertIsNone(r.header("access-control-max-age"), r.headers)
        self.assertEqual(r.header("access-control-allow-credentials"), "true")
        self.assertEqual(r.header("access-control-allow-methods"), "GET, POST, PUT")
        self.assert_not_proxied()

    def test_wildcard_allowed_headers_echo_the_requested_headers(self):
        self.start(cors=cors_block(allowed_headers=["*"]))
        r = self.assert_preflight_ok(self.preflight(req_headers="X-Custom-One, x-other"))
        self.assertEqual(r.header("access-control-allow-headers"), "X-Custom-One, x-other")
        # Nothing requested: no Allow-Headers at all.
        r = self.assert_preflight_ok(self.preflight())
        self.assertIsNone(r.header("access-control-allow-headers"), r.headers)
        self.assert_not_proxied()

    def test_requested_headers_match_case_insensitively(self):
        self.start()
        for requested in ("CONTENT-TYPE", "authorization,content-type", "Authorization"):
            with self.subTest(requested=requested):
                self.assert_preflight_ok(self.preflight(req_headers=requested))
        self.assert_not_proxied()

    def test_preflight_works_when_route_methods_exclude_options(self):
        self.start(routes=[
            {"id": "api", "path": "/api/**", "backend": "default", "methods": ["GET", "POST"],
             "middleware": ["cors"]},
        ])
        r = self.assert_preflight_ok(self.preflight(method="POST"))
        self.assertEqual(r.header("access-control-allow-methods"), "GET, POST, PUT")
        self.assert_not_proxied()
        # The route really serves its methods.
        self.assertEqual(self.get(method="POST", body=b"x").status, 200)

    def test_preflight_from_disallowed_origin_is_403(self):
        self.start()
        self.assert_refused(self.preflight(origin="https://evil.example.net"))
        self.assert_not_proxied()

    def test_preflight_for_disallowed_method_is_403(self):
        self.start()
        self.assert_refused(self.preflight(method="DELETE"))
        self.assert_not_proxied()

    def test_preflight_for_disallowed_header_is_403(self):
        self.start()
        self.assert_refused(self.preflight(req_headers="Content-Type, X-Not-Allowed"))
        self.assert_refused(self.preflight(req_headers="x-not-allowed"))
        self.assert_not_proxied()

    def test_origin_matching_rules(self):
        self.start()
        allowed = [APP, "https://APP.Example.COM", "https://a.example.org",
                   "https://x.y.example.org", "http://localhost:3000"]
        refused = ["https://example.org", "http://a.example.org", "http://app.example.com",
                   "https://app.example.com:8443", "https://app.example.com.evil.net",
                   "https://evilexample.org", "https://notapp.example.com",
                   "https://a.example.org.evil.net", "http://localhost:3001",
                   "http://localhost", "null"]
        for origin in allowed:
            with self.subTest(origin=origin):
                r = self.preflight(origin=origin)
                self.assertEqual(r.status, 204, "%s refused: %r" % (origin, r.body))
                acao = r.header("access-control-allow-origin")
                self.assertIsNotNone(acao)
                self.assertEqual(acao.lower(), origin.lower())
        for origin in refused:
            with self.subTest(origin=origin):
                self.assert_refused(self.preflight(origin=origin))
        self.assert_not_proxied()

    def test_options_without_request_method_is_proxied(self):
        self.start()
        r = http_request(self.port, "OPTIONS", "/api/items", headers={"Origin": APP})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-backend"), "b1")
        log = self.b.request_log()
        self.assertEqual([q.method for q in log], ["OPTIONS"])
        self.assertEqual(r.header("access-control-allow-origin"), APP)

    def test_route_without_cors_proxies_preflights(self):
        self.start()
        r = self.preflight(path="/other")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-backend"), "b1")
        self.assertEqual([q.method for q in self.b.request_log()], ["OPTIONS"])
        self.assertEqual(cors_names(r), [])


class ActualRequestTest(CorsBase):

    def test_allowed_origin_gets_cors_headers_on_proxied_response(self):
        self.start()
        r = self.get("/api/items?header=X-Total:5")
        self.assertEqual((r.status, r.body), (200, b"b1"))
        self.assertEqual(r.headers.get_all("access-control-allow-origin"), [APP])
        self.assertEqual(r.headers.get_all("access-control-expose-headers"), ["X-Total"])
        self.assertIsNone(r.header("access-control-allow-credentials"))
        self.assertIn("origin", tokens(r.headers.get_all("vary")))
        self.assertEqual(r.header("x-total"), "5")
        self.assertEqual(self.b.requests_served, 1)

    def test_upstream_vary_is_kept_and_origin_added(self):
        self.start()
        r = self.get("/api/items?header=Vary:Accept-Encoding")
        self.assertEqual(r.status, 200)
        vary = tokens(r.headers.get_all("vary"))
        self.assertIn("accept-encoding", vary, r.headers)
        self.assertIn("origin", vary, r.headers)
        self.assertEqual(vary.count("origin"), 1, r.headers)

    def test_upstream_cors_headers_are_replaced_not_duplicated(self):
        self.start()
        r = self.get("/api/items?header=Access-Control-Allow-Origin:*"
                     "&header=Access-Control-Expose-Headers:X-Upstream")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get_all("access-control-allow-origin"), [APP], r.headers)
        self.assertEqual(r.headers.get_all("access-control-expose-headers"), ["X-Total"],
                         r.headers)

    def test_disallowed_origin_is_proxied_without_allow_origin(self):
        self.start()
        r = self.get(origin="https://evil.example.net")
        self.assertEqual((r.status, r.body), (200, b"b1"))
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        self.assertIsNone(r.header("access-control-allow-credentials"), r.headers)
        self.assertEqual(self.b.requests_served, 1)

    def test_request_without_origin_is_untouched(self):
        self.start()
        for method in ("GET", "POST"):
            r = self.get(origin=None, method=method, body=b"" if method == "POST" else None)
            self.assertEqual((r.status, r.body), (200, b"b1"))
            self.assertEqual(cors_names(r), [], r.headers)
        self.assertEqual(self.b.requests_served, 2)

    def test_allow_credentials_on_actual_responses(self):
        self.start(cors=cors_block(allow_credentials=True))
        r = self.get()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("access-control-allow-origin"), APP)
        self.assertEqual(r.headers.get_all("access-control-allow-credentials"), ["true"])
        r = self.get(origin="https://evil.example.net")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("access-control-allow-origin"))
        self.assertIsNone(r.header("access-control-allow-credentials"))

    def test_star_origin_answers_star(self):
        self.start(cors=cors_block(allowed_origins=["*"]))
        origin = "https://anyone.test:8443"
        r = self.preflight(origin=origin)
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(r.header("access-control-allow-origin"), "*")
        self.assertIsNone(r.header("access-control-allow-credentials"))
        self.assert_not_proxied()
        r = self.get(origin=origin)
        self.assertEqual((r.status, r.body), (200, b"b1"))
        self.assertEqual(r.headers.get_all("access-control-allow-origin"), ["*"])

    def test_gateway_error_on_cors_route_carries_cors_headers(self):
        dead = "127.0.0.1:%d" % free_port()   # nothing listens there
        self.start(upstreams=[dead])
        r = self.get()
        self.assertIn(r.status, (502, 503), r.body)
        doc = r.json()
        self.assertEqual(doc.get("status"), r.status)
        self.assertEqual(doc.get("request_id"), r.header("x-request-id"))
        self.assertEqual(r.headers.get_all("access-control-allow-origin"), [APP], r.headers)
        self.assertIn("origin", tokens(r.headers.get_all("vary")))
        self.assertEqual(r.header("access-control-expose-headers"), "X-Total")
        # A disallowed origin gets the error without CORS headers.
        r = self.get(origin="https://evil.example.net")
        self.assertIn(r.status, (502, 503))
        self.assertIsNone(r.header("access-control-allow-origin"))
        # The gateway still answers preflights itself.
        self.assert_preflight_ok(self.preflight())


class NamedInstanceTest(CorsBase):

    def test_named_instance_and_default_use_their_own_settings(self):
        public = {"allowed_origins": ["*"], "allowed_methods": ["GET", "DELETE"],
                  "allowed_headers": ["*"]}
        self.start(middleware={"cors": cors_block(), "cors:public": public}, routes=[
            {"id": "api", "path": "/api/**", "backend": "default", "middleware": ["cors"]},
            {"id": "pub", "path": "/public/**", "backend": "default",
             "middleware": ["cors:public"]},
            {"id": "all", "path": "/**", "backend": "default"},
        ])
        other = "https://other.test"
        r = self.preflight("/public/x", origin=other, method="DELETE", req_headers="X-Any")
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(r.header("access-control-allow-origin"), "*")
        self.assertEqual(r.header("access-control-allow-methods"), "GET, DELETE")
        self.assertEqual(r.header("access-control-allow-headers"), "X-Any")
        self.assertIsNone(r.header("access-control-max-age"))
        # The same preflight on the `cors` route is refused (origin and method).
        self.assert_refused(self.preflight("/api/x", origin=other, method="DELETE"))
        self.assert_refused(self.preflight("/api/x", origin=APP, method="DELETE"))
        r = self.assert_preflight_ok(self.preflight("/api/x", origin=APP, method="PUT"))
        self.assertEqual(r.header("access-control-allow-methods"), "GET, POST, PUT")
        self.assertEqual(r.header("access-control-max-age"), "600")
        self.assert_not_proxied()
        # Actual requests: each route its own expose/origin settings.
        r = self.get("/public/x", origin=other)
        self.assertEqual(r.header("access-control-allow-origin"), "*")
        self.assertIsNone(r.header("access-control-expose-headers"))
        r = self.get("/api/x", origin=APP)
        self.assertEqual(r.header("access-control-allow-origin"), APP)
        self.assertEqual(r.header("access-control-expose-headers"), "X-Total")


class CorsConfigTest(CorsBase):

    def test_star_origin_with_credentials_is_a_config_error(self):
        ok = self.make_config(cors=cors_block(allowed_origins=["*"], allow_credentials=False))
        rc, _, err = self.check(ok)
        self.assertEqual(rc, 0, err)
        bad = self.make_config(cors=cors_block(allowed_origins=["https://a.test", "*"],
                                               allow_credentials=True))
        rc, _, err = self.check(bad)
        self.assertEqual(rc, 1, "'*' with allow_credentials accepted:\n%s" % err)
        self.assertRegex(err, r"middleware\.cors\.(allow_credentials|allowed_origins)")

    def test_route_naming_a_missing_instance_is_a_config_error(self):
        public = {"allowed_origins": ["*"], "allowed_methods": ["GET"],
                  "allowed_headers": ["*"]}
        routes = [{"id": "api", "path": "/api/**", "backend": "default",
                   "middleware": ["cors:public"]}]
        rc, _, err = self.check(self.make_config(middleware={"cors:public": public},
                                                 routes=routes))
        self.assertEqual(rc, 0, err)
        routes[0]["middleware"] = ["cors:missing"]
        rc, _, err = self.check(self.make_config(middleware={"cors:public": public},
                                                 routes=routes))
        self.assertEqual(rc, 1, "route using cors:missing accepted:\n%s" % err)
        self.assertIn("cors:missing", err)
        self.assertRegex(err, r"routes\[0\]\.middleware")

