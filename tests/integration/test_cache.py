# SPDX-License-Identifier: Apache-2.0
"""Response cache (`cache` and routes' `cache` blocks): one cache in shared memory for every
worker. Hits and misses across workers, X-Cache / X-Cache-Key / Age, freshness (max-age,
s-maxage, Expires, the default TTL), what is never stored (no-store, private, Set-Cookie,
Authorization, Vary: *, too large), request directives, Vary, HEAD answered from a stored GET,
304s from stored validators, invalidation by unsafe methods, bodies of every framing, PURGE on
the metrics listener, the metrics, auth running before a hit, and kill -9 of workers while they
store responses."""

import hashlib
import json
import os
import signal
import threading
import time

from harness import (Conn, IntegrationTest, base_config, free_port, http_request, wait_until,
                     write_config)

PATH = "/__cache/"


class CacheTest(IntegrationTest):
    """Photon with 2 workers, one backend, route `c` (/__cache/**) caching, route `all` not."""

    def start(self, cache=None, route_cache=None, routes=None, middleware=None, workers=2,
                metrics=False):
        self.b = self.backend()
        self.port = free_port()
        self.mport = free_port() if metrics else None
        cfg = base_config(self.port, [self.b], metrics_port=self.mport)
        cfg["server"]["worker_processes"] = workers
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["enabled"] = False
        cfg["cache"] = dict({"enabled": True, "max_entries": 1000, "default_ttl": "300s",
                             "max_memory": 8 << 20}, **(cache or {}))
        rc = dict({"enabled": True}, **(route_cache or {}))
        cfg["routes"] = routes if routes is not None else [
            {"id": "c", "path": PATH + "**", "backend": "default", "cache": rc},
            {"id": "all", "path": "/**", "backend": "default"},
        ]
        if middleware is not None:
            cfg["middleware"] = middleware
        self.cfg = cfg
        self.proxy = self.photon(cfg)
        return self.proxy

    def reload(self, mutate):
        """Rewrites the configuration with `mutate(cfg)` applied and reloads (SIGHUP); returns
        once the new workers answer the marker route."""
        old = set(self.proxy.worker_pids())
        mutate(self.cfg)
        write_config(self.tmpdir, self.cfg)
        self.proxy.signal(signal.SIGHUP)
        wait_until(lambda: old.isdisjoint(self.proxy.worker_pids()) and
                   len(self.proxy.worker_pids()) > 0, timeout=15)

    def get(self, path, headers=None, method="GET", **kw):
        return http_request(self.port, method, path, headers=headers, **kw)

    def upstream_count(self, path):
        return sum(1 for r in self.b.request_log() if r.path == path)

    def assert_cached(self, path, headers=None, hits=3):
        """The first request misses, the next `hits` hit with the same body."""
        r = self.get(path, headers)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("X-Cache"), "MISS")
        for _ in range(hits):
            h = self.get(path, headers)
            self.assertEqual(h.status, 200)
            self.assertEqual(h.headers.get("X-Cache"), "HIT", h.headers_list)
            self.assertEqual(h.body, r.body)
        self.assertEqual(self.upstream_count(path), 1)
        return r

    def assert_not_stored(self, path, headers=None):
        for i in range(3):
            r = self.get(path, headers)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("X-Cache"), "MISS", r.headers_list)
            self.assertTrue(r.body.endswith(b":%d\n" % (i + 1)) or b":%d\n" % (i + 1) in r.body)
        self.assertEqual(self.upstream_count(path), 3)


class TestHitsAndMisses(CacheTest):

    def test_miss_then_hit_in_every_worker(self):
        p = self.start()
        self.assertEqual(len(p.worker_pids()), 2)
        path = PATH + "a"
        first = self.get(path)
        self.assertEqual(first.headers.get("X-Cache"), "MISS")
        self.assertEqual(first.headers.get("X-Cache-Key"), "GET:127.0.0.1:%d%s" % (self.port, path))
        # Fresh connections land on either worker: all hits, one upstream request.
        for _ in range(20):
            r = self.get(path)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("X-Cache"), "HIT")
            self.assertEqual(r.body, first.body)
            self.assertEqual(r.headers.get("X-Cache-Key"), first.headers.get("X-Cache-Key"))
            self.assertEqual(r.headers.get("X-Backend"), self.b.name)  # stored fields replayed
            self.assertIsNotNone(r.headers.get("X-Request-ID"))
            self.assertNotEqual(r.headers.get("X-Request-ID"), first.headers.get("X-Request-ID"))
            self.assertEqual(r.headers.get("X-Gateway"), "Photon/1.0")
            self.assertEqual(int(r.headers.get("Content-Length")), len(first.body))
        self.assertEqual(self.upstream_count(path), 1)

    def test_keep_alive_mixes_hits_and_misses(self):
        self.start(workers=1)
        with Conn(self.port) as c:
            bodies = []
            for i in range(6):
                r = c.request("GET", PATH + "k%d" % (i % 2))
                self.assertEqual(r.status, 200)
                bodies.append(r.body)
                self.assertEqual(r.headers.get("X-Cache"), "MISS" if i < 2 else "HIT")
            self.assertEqual(bodies[0], bodies[4])
            self.assertEqual(bodies[1], bodies[5])

    def test_age_counts_up(self):
        self.start()
        path = PATH + "age"
        self.get(path, {"X-Reply-Cache-Control": "max-age=60", "X-Reply-Age": "5"})
        r = self.get(path)
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        self.assertGreaterEqual(int(r.headers.get("Age")), 5)
        self.assertLessEqual(int(r.headers.get("Age")), 6)
        time.sleep(1.2)
        r2 = self.get(path)
        self.assertGreaterEqual(int(r2.headers.get("Age")), int(r.headers.get("Age")) + 1)
        self.assertEqual(len(r2.headers.get_all("Age")), 1)

    def test_uncached_route_has_no_cache_fields(self):
        self.start()
        r = self.get("/other")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.headers.get("X-Cache"))
        self.assertIsNone(r.headers.get("X-Cache-Key"))

    def test_query_bypasses_unless_configured(self):
        self.start()
        for _ in range(2):
            r = self.get(PATH + "q?x=1")
            self.assertEqual(r.headers.get("X-Cache"), "BYPASS")
        self.assertEqual(self.upstream_count(PATH + "q"), 2)

    def test_query_in_key_when_configured(self):
        self.start(route_cache={"cache_with_query_params": True})
        a = self.get(PATH + "q?x=1")
        b = self.get(PATH + "q?x=2")
        self.assertEqual(a.headers.get("X-Cache"), "MISS")
        self.assertEqual(b.headers.get("X-Cache"), "MISS")
        self.assertTrue(a.headers.get("X-Cache-Key").endswith(PATH + "q?x=1"))
        self.assertEqual(self.get(PATH + "q?x=1").body, a.body)
        self.assertEqual(self.get(PATH + "q?x=2").body, b.body)
        self.assertEqual(self.upstream_count(PATH + "q"), 2)

    def test_host_is_part_of_the_key(self):
        self.start()
        a = self.get(PATH + "h", {"Host": "one.example"})
        b = self.get(PATH + "h", {"Host": "TWO.example"})
        self.assertEqual(b.headers.get("X-Cache"), "MISS")
        self.assertEqual(b.headers.get("X-Cache-Key"), "GET:two.example" + PATH + "h")
        self.assertEqual(self.get(PATH + "h", {"Host": "one.example"}).body, a.body)

    def test_head_answered_from_stored_get(self):
        self.start()
        path = PATH + "head"
        g = self.get(path, {"X-Reply-Size": "5000"})
        h = self.get(path, method="HEAD")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.headers.get("X-Cache"), "HIT")
        self.assertEqual(h.body, b"")
        self.assertEqual(int(h.headers.get("Content-Length")), len(g.body))
        self.assertEqual(self.upstream_count(path), 1)

    def test_head_miss_is_not_stored(self):
        self.start()
        path = PATH + "headmiss"
        h = self.get(path, method="HEAD")
        self.assertEqual(h.headers.get("X-Cache"), "MISS")
        g = self.get(path)
        self.assertEqual(g.headers.get("X-Cache"), "MISS")
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")

    def test_large_bodies_every_framing(self):
        self.start(cache={"max_body_size": 4 << 20})
        for name, hdrs in (("cl", {"X-Reply-Size": "700000"}),
                           ("chunked", {"X-Reply-Size": "300000", "X-Reply-Chunked": "1"})):
            path = PATH + name
            first = self.get(path, hdrs)
            self.assertEqual(len(first.body), int(hdrs["X-Reply-Size"]))
            for _ in range(3):
                r = self.get(path)
                self.assertEqual(r.headers.get("X-Cache"), "HIT", name)
                self.assertFalse(r.chunked)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(),
                                 hashlib.sha256(first.body).hexdigest(), name)
            self.assertEqual(self.upstream_count(path), 1)

    def test_body_over_max_body_size_streams_but_is_not_stored(self):
        self.start(route_cache={"max_body_size": 10000})
        path = PATH + "big"
        for i in range(2):
            r = self.get(path, {"X-Reply-Size": "200000"})
            self.assertEqual(len(r.body), 200000)
            self.assertEqual(r.headers.get("X-Cache"), "MISS")
        self.assertEqual(self.upstream_count(path), 2)


class TestFreshness(CacheTest):

    def test_max_age_expiry(self):
        self.start()
        path = PATH + "ma"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1"})
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
        time.sleep(2.1)
        r = self.get(path, {"X-Reply-Cache-Control": "max-age=60"})
        self.assertEqual(r.headers.get("X-Cache"), "EXPIRED")
        self.assertIn(b":2\n", r.body)
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
        self.assertEqual(self.upstream_count(path), 2)

    def test_s_maxage_wins_over_max_age(self):
        self.start()
        path = PATH + "sm"
        self.get(path, {"X-Reply-Cache-Control": "max-age=100, s-maxage=1"})
        time.sleep(2.1)
        self.assertEqual(self.get(path).headers.get("X-Cache"), "EXPIRED")

    def test_past_expires_is_not_stored(self):
        self.start()
        self.assert_not_stored(PATH + "exp", {"X-Reply-Expires": "Thu, 01 Jan 1970 00:00:00 GMT"})

    def test_future_expires_in_rfc850_form(self):
        self.start()
        future = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
        self.assert_cached(PATH + "exp850", {"X-Reply-Expires": future})

    def test_default_ttl_with_min_ttl_floor(self):
        # Route ttl 1s is raised to min_ttl (2s here) for responses without freshness.
        self.start(cache={"min_ttl": "2s"}, route_cache={"ttl": "1s"})
        path = PATH + "ttl"
        self.get(path)
        time.sleep(1.3)
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
        time.sleep(1.2)
        self.assertEqual(self.get(path).headers.get("X-Cache"), "EXPIRED")

    def test_request_no_cache_goes_upstream(self):
        self.start()
        path = PATH + "rnc"
        self.get(path)
        r = self.get(path, {"Cache-Control": "no-cache"})
        self.assertEqual(r.headers.get("X-Cache"), "EXPIRED")
        self.assertEqual(self.upstream_count(path), 2)

    def test_request_max_age_and_max_stale(self):
        self.start()
        path = PATH + "rma"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1"})
        time.sleep(1.5)
        # Stale by less than 10 s: max-stale allows it.
        r = self.get(path, {"Cache-Control": "max-stale=10"})
        self.assertEqual(r.headers.get("X-Cache"), "STALE")
        self.assertEqual(self.upstream_count(path), 1)
        r = self.get(path, {"Cache-Control": "max-age=0"})
        self.assertEqual(r.headers.get("X-Cache"), "EXPIRED")

    def test_request_min_fresh(self):
        """min-fresh=N wants an answer fresh for N more seconds: an entry with 60 s left
        serves min-fresh=30 but not min-fresh=120, which goes upstream (and stores the new
        answer)."""
        self.start()
        path = PATH + "rmf"
        self.get(path, {"X-Reply-Cache-Control": "max-age=60"})
        r = self.get(path, {"Cache-Control": "min-fresh=30"})
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        self.assertEqual(self.upstream_count(path), 1)
        r = self.get(path, {"Cache-Control": "min-fresh=120"})
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.headers.get("X-Cache"), "HIT")
        self.assertEqual(self.upstream_count(path), 2)

    def test_must_revalidate_is_never_served_stale(self):
        self.start()
        path = PATH + "mr"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1, must-revalidate"})
        time.sleep(1.5)
        r = self.get(path, {"Cache-Control": "max-stale=100"})
        self.assertEqual(r.headers.get("X-Cache"), "EXPIRED")

    def test_only_if_cached(self):
        self.start()
        r = self.get(PATH + "oic", {"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 504)
        self.assertEqual(self.upstream_count(PATH + "oic"), 0)
        self.get(PATH + "oic")
        r = self.get(PATH + "oic", {"Cache-Control": "only-if-cached"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("X-Cache"), "HIT")


class TestNotStored(CacheTest):

    def test_no_store_private_set_cookie_vary_star(self):
        self.start()
        for name, hdrs in (("ns", {"X-Reply-Cache-Control": "no-store"}),
                           ("pv", {"X-Reply-Cache-Control": "private, max-age=60"}),
                           ("nc", {"X-Reply-Cache-Control": "no-cache"}),
                           ("ck", {"X-Reply-Set-Cookie": "a=b"}),
                           ("vs", {"X-Reply-Vary": "*"})):
            self.assert_not_stored(PATH + name, hdrs)

    def test_request_no_store(self):
        self.start()
        path = PATH + "rns"
        self.get(path, {"Cache-Control": "no-store"})
        self.assertEqual(self.get(path).headers.get("X-Cache"), "MISS")

    def test_status_not_cacheable_by_default(self):
        self.start()
        for i in range(2):
            r = self.get(PATH + "st", {"X-Reply-Status": "503"})
            self.assertEqual(r.status, 503)
        self.assertEqual(self.upstream_count(PATH + "st"), 2)
        # 404 is heuristically cacheable.
        for i in range(2):
            r = self.get(PATH + "nf", {"X-Reply-Status": "404"})
            self.assertEqual(r.status, 404)
        self.assertEqual(self.upstream_count(PATH + "nf"), 1)

    def test_authorization_not_stored_unless_public(self):
        self.start()
        self.assert_not_stored(PATH + "auth", {"Authorization": "Bearer x"})
        self.assert_cached(PATH + "authpub", {"Authorization": "Bearer x",
                                              "X-Reply-Cache-Control": "public, max-age=60"})

    def test_strip_set_cookie(self):
        self.start(cache={"strip_set_cookie": True})
        path = PATH + "cookie"
        first = self.get(path, {"X-Reply-Set-Cookie": "session=secret"})
        self.assertEqual(first.headers.get("Set-Cookie"), "session=secret")  # its own client
        hit = self.get(path)
        self.assertEqual(hit.headers.get("X-Cache"), "HIT")
        self.assertIsNone(hit.headers.get("Set-Cookie"))  # never shared
        self.assertEqual(hit.body, first.body)

    def test_cache_authorized_stores_them(self):
        self.start(cache={"cache_authorized": True})
        self.assert_cached(PATH + "auth", {"Authorization": "Bearer x"})


class TestVary(CacheTest):

    def test_variants_stored_apart(self):
        self.start()
        path = PATH + "vary"
        en = self.get(path, {"Accept-Language": "en", "X-Reply-Vary": "Accept-Language"})
        fr = self.get(path, {"Accept-Language": "fr", "X-Reply-Vary": "Accept-Language"})
        self.assertEqual(fr.headers.get("X-Cache"), "MISS")
        self.assertNotEqual(en.body, fr.body)
        for _ in range(3):
            e = self.get(path, {"Accept-Language": "en"})
            f = self.get(path, {"Accept-Language": "fr"})
            self.assertEqual((e.headers.get("X-Cache"), e.body), ("HIT", en.body))
            self.assertEqual((f.headers.get("X-Cache"), f.body), ("HIT", fr.body))
        none = self.get(path)
        self.assertEqual(none.headers.get("X-Cache"), "MISS")
        self.assertEqual(none.headers.get("X-Cache-Key"), en.headers.get("X-Cache-Key"))
        self.assertEqual(self.upstream_count(path), 3)


class TestConditional(CacheTest):

    def test_if_none_match_from_the_store(self):
        self.start()
        path = PATH + "etag"
        self.get(path, {"X-Reply-ETag": '"v1"'})
        r = self.get(path, {"If-None-Match": 'W/"v0", "v1"'})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers.get("ETag"), '"v1"')
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        r = self.get(path, {"If-None-Match": '"v2"'})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.upstream_count(path), 1)

    def test_if_modified_since_from_the_store(self):
        self.start()
        path = PATH + "lm"
        self.get(path, {"X-Reply-Last-Modified": "Tue, 15 Nov 1994 12:45:26 GMT"})
        r = self.get(path, {"If-Modified-Since": "Wed, 16 Nov 1994 00:00:00 GMT"})
        self.assertEqual(r.status, 304)
        r = self.get(path, {"If-Modified-Since": "Mon, 14 Nov 1994 00:00:00 GMT"})
        self.assertEqual(r.status, 200)
        # If-None-Match takes precedence over If-Modified-Since.
        r = self.get(path, {"If-None-Match": '"x"',
                            "If-Modified-Since": "Wed, 16 Nov 1994 00:00:00 GMT"})
        self.assertEqual(r.status, 200)


class TestInvalidation(CacheTest):

    def test_unsafe_methods_invalidate(self):
        self.start()
        path = PATH + "inv"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            self.get(path)
            self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
            r = self.get(path, method=method, body=b"x")
            self.assertEqual(r.status, 200)
            self.assertEqual(self.get(path).headers.get("X-Cache"), "MISS", method)

    def test_failed_unsafe_request_does_not_invalidate(self):
        self.start()
        path = PATH + "inv2"
        self.get(path)
        self.get(path, method="POST", body=b"x", headers={"X-Reply-Status": "500"})
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")

    def test_location_on_the_same_host_is_invalidated(self):
        self.start()
        target = PATH + "target"
        self.get(target)
        self.get(PATH + "other", {"Host": "else.example"})
        self.get(PATH + "post", method="POST", body=b"x",
                 headers={"X-Reply-Location": target,
                          "X-Reply-Content-Location": "http://else.example%sother" % PATH})
        self.assertEqual(self.get(target).headers.get("X-Cache"), "MISS")
        # Another host's URL is not ours to touch.
        self.assertEqual(self.get(PATH + "other", {"Host": "else.example"}).headers.get("X-Cache"),
                         "HIT")


class TestAuthBeforeCache(CacheTest):

    def test_cached_answer_never_reaches_unauthenticated_requests(self):
        mw = {"authentication": {"auth_type": "api_key", "api_key": {"keys": ["k1"]}}}
        self.start(middleware=mw, routes=[
            {"id": "c", "path": PATH + "**", "backend": "default", "middleware": ["auth"],
             "cache": {"enabled": True}},
        ], cache={"cache_authorized": True})
        path = PATH + "secret"
        ok = self.get(path, {"X-API-Key": "k1"})
        self.assertEqual(ok.status, 200)
        self.assertEqual(self.get(path, {"X-API-Key": "k1"}).headers.get("X-Cache"), "HIT")
        for hdrs in ({}, {"X-API-Key": "wrong"}):
            r = self.get(path, hdrs)
            self.assertEqual(r.status, 401, r.body)
            self.assertNotIn(b"secret", r.body)
            self.assertIsNone(r.headers.get("X-Cache"))

    def test_auth_route_answers_not_shared_by_default(self):
        mw = {"authentication": {"auth_type": "api_key", "api_key": {"keys": ["k1"]}}}
        self.start(middleware=mw, routes=[
            {"id": "c", "path": PATH + "**", "backend": "default", "middleware": ["auth"],
             "cache": {"enabled": True}},
        ])
        path = PATH + "mine"
        for _ in range(2):
            self.assertEqual(self.get(path, {"X-API-Key": "k1"}).headers.get("X-Cache"), "MISS")
        self.get(path, {"X-API-Key": "k1", "X-Reply-Cache-Control": "public, max-age=30"})
        self.assertEqual(self.get(path, {"X-API-Key": "k1"}).headers.get("X-Cache"), "HIT")


class TestPurgeAndMetrics(CacheTest):

    def purge(self, what):
        r = http_request(self.mport, "PURGE", "/cache/" + what)
        self.assertEqual(r.status, 200, r.body)
        return json.loads(r.body)["purged"]

    def test_purge_url_prefix_all(self):
        self.start(metrics=True, route_cache={"cache_with_query_params": True})
        host = "127.0.0.1:%d" % self.port
        for p in ("p/a", "p/a?x=1", "p/b", "q/c"):
            self.get(PATH + p)
        self.assertEqual(self.purge(host + PATH + "p/a"), 2)  # the URL and its query variant
        self.assertEqual(self.get(PATH + "p/a").headers.get("X-Cache"), "MISS")
        self.assertEqual(self.get(PATH + "p/b").headers.get("X-Cache"), "HIT")
        self.assertEqual(self.purge(host + PATH + "p/*"), 2)  # p/a (stored again) and p/b
        self.assertEqual(self.get(PATH + "q/c").headers.get("X-Cache"), "HIT")
        self.assertEqual(self.purge("*"), 1)
        self.assertEqual(self.get(PATH + "q/c").headers.get("X-Cache"), "MISS")
        # Never on the public listener: there PURGE is just a request for a route (proxied).
        self.get(PATH + "q/c")
        http_request(self.port, "PURGE", "/cache/*")
        self.assertEqual(self.get(PATH + "q/c").headers.get("X-Cache"), "HIT")

    def test_metrics(self):
        self.start(metrics=True)
        for i in range(3):
            self.get(PATH + "m%d" % i, {"X-Reply-Size": "10000"})
        for _ in range(5):
            self.get(PATH + "m0")
        text = http_request(self.mport, "GET", "/metrics").body.decode()
        values = {}
        for line in text.splitlines():
            if line.startswith("gateway_cache_"):
                name, _, v = line.partition(" ")
                values[name] = float(v)
        self.assertEqual(values["gateway_cache_hits_total"], 5)
        self.assertEqual(values["gateway_cache_misses_total"], 3)
        self.assertEqual(values["gateway_cache_entries"], 3)
        self.assertEqual(values["gateway_cache_entries_total"], 3)
        self.assertGreaterEqual(values["gateway_cache_memory_bytes"], 3 * 12288)
        self.assertEqual(values["gateway_cache_memory_limit_bytes"], 8 << 20)
        dash = json.loads(http_request(self.mport, "GET", "/dashboard/api").body)
        self.assertTrue(dash["cache"]["enabled"])
        self.assertEqual(dash["cache"]["hits"], 5)


class TestEviction(CacheTest):

    def test_memory_bound_and_eviction(self):
        # 1 MiB of body store, 40 KB responses: at most ~25 fit; all still answered correctly.
        self.start(cache={"max_memory": 1 << 20, "max_entries": 64}, workers=1, metrics=True)
        for i in range(60):
            r = self.get(PATH + "e%d" % i, {"X-Reply-Size": "40000"})
            self.assertEqual(len(r.body), 40000)
        text = http_request(self.mport, "GET", "/metrics").body.decode()
        vals = dict(l.split(" ", 1) for l in text.splitlines() if l.startswith("gateway_cache_"))
        self.assertLessEqual(float(vals["gateway_cache_memory_bytes"]), 1 << 20)
        self.assertGreater(float(vals["gateway_cache_evictions_total"]), 0)
        # The most recent ones are there and intact.
        r = self.get(PATH + "e59")
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        self.assertEqual(len(r.body), 40000)


class TestCrashes(CacheTest):

    def test_kill_workers_while_storing(self):
        """kill -9 the workers again and again while clients fill the cache with 2 workers:
        every response a client gets is whole and right, and afterwards every entry is
        consistent (a hit serves exactly what the backend sent) and the store has no leaked
        blocks (its memory gauge equals what the entries hold)."""
        self.start(cache={"max_memory": 4 << 20}, metrics=True)
        stop = threading.Event()
        errors = []
        bodies = {}

        def client(k):
            n = 0
            while not stop.is_set():
                path = PATH + "crash%d" % (n % 40)
                n += 1
                try:
                    r = self.get(path, {"X-Reply-Size": str(20000 + 997 * (n % 40))}, timeout=5)
                except Exception:  # noqa: BLE001 - a killed worker's connections fail
                    continue
                if r.status != 200:
                    continue
                size = int(r.headers.get("Content-Length"))
                if len(r.body) != size or not r.body.startswith(b"%s:%s:" % (
                        self.b.name.encode(), path.encode())):
                    errors.append((path, len(r.body), size))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                time.sleep(0.4)
                pids = self.proxy.worker_pids()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(errors, [])
        wait_until(lambda: len(self.proxy.worker_pids()) == 2, timeout=5)
        # Every stored entry replays exactly one backend answer.
        for i in range(40):
            path = PATH + "crash%d" % i
            r = self.get(path)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.body.startswith(b"%s:%s:" % (self.b.name.encode(), path.encode())))
            self.assertEqual(len(r.body), int(r.headers.get("Content-Length")))
        text = http_request(self.mport, "GET", "/metrics").body.decode()
        vals = dict(l.split(" ", 1) for l in text.splitlines() if l.startswith("gateway_cache_"))
        self.assertLessEqual(float(vals["gateway_cache_entries"]), 40)
        # No space leaked: purging everything returns the store to empty.
        r = http_request(self.mport, "PURGE", "/cache/*")
        self.assertEqual(r.status, 200)
        text = http_request(self.mport, "GET", "/metrics").body.decode()
        vals = dict(l.split(" ", 1) for l in text.splitlines() if l.startswith("gateway_cache_"))
        self.assertEqual(float(vals["gateway_cache_memory_bytes"]), 0)
        self.assertEqual(float(vals["gateway_cache_entries"]), 0)


class TestRevalidation(CacheTest):

    def test_304_from_upstream_refreshes_the_entry(self):
        self.start()
        path = PATH + "reval"
        first = self.get(path, {"X-Reply-Cache-Control": "max-age=1", "X-Reply-ETag": '"v1"',
                                "X-Reply-X-Version": "1"})
        time.sleep(1.5)
        r = self.get(path, {"X-Reply-Cache-Control": "max-age=60", "X-Reply-ETag": '"v1"',
                            "X-Reply-X-Version": "2"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("X-Cache"), "REVALIDATED")
        self.assertEqual(r.body, first.body)  # the stored body, not a new one
        self.assertEqual(r.headers.get("X-Version"), "2")  # fields freshened from the 304
        self.assertEqual(len(r.headers.get_all("X-Version")), 1)
        log = [q for q in self.b.request_log() if q.path == path]
        self.assertEqual(len(log), 2)
        self.assertEqual(log[1].header("If-None-Match"), '"v1"')
        # Fresh again for max-age=60, with the new fields.
        h = self.get(path)
        self.assertEqual(h.headers.get("X-Cache"), "HIT")
        self.assertEqual(h.headers.get("X-Version"), "2")
        self.assertEqual(h.body, first.body)
        self.assertEqual(self.upstream_count(path), 2)

    def test_last_modified_revalidation_and_client_conditionals(self):
        self.start()
        path = PATH + "reval-lm"
        lm = "Tue, 15 Nov 1994 12:45:26 GMT"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1", "X-Reply-Last-Modified": lm})
        time.sleep(1.5)
        # The client's own conditional matches the stored validator: 304 after revalidation.
        r = self.get(path, {"X-Reply-Cache-Control": "max-age=60", "X-Reply-Last-Modified": lm,
                            "If-Modified-Since": lm})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.headers.get("X-Cache"), "REVALIDATED")
        log = [q for q in self.b.request_log() if q.path == path]
        self.assertEqual(log[-1].header("If-Modified-Since"), lm)

    def test_no_cache_response_is_stored_and_revalidated_every_time(self):
        self.start()
        path = PATH + "nocache-etag"
        hdrs = {"X-Reply-Cache-Control": "no-cache", "X-Reply-ETag": '"n1"'}
        first = self.get(path, hdrs)
        self.assertEqual(first.headers.get("X-Cache"), "MISS")
        for _ in range(2):
            r = self.get(path, hdrs)
            self.assertEqual(r.headers.get("X-Cache"), "REVALIDATED")
            self.assertEqual(r.body, first.body)
        log = [q for q in self.b.request_log() if q.path == path]
        self.assertEqual(len(log), 3)
        self.assertEqual([q.header("If-None-Match") for q in log], [None, '"n1"', '"n1"'])

    def test_changed_resource_replaces_the_entry(self):
        self.start()
        path = PATH + "reval-new"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1", "X-Reply-ETag": '"v1"'})
        time.sleep(1.5)
        r = self.get(path, {"X-Reply-Cache-Control": "max-age=60", "X-Reply-ETag": '"v2"'})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("X-Cache"), "EXPIRED")
        self.assertIn(b":2\n", r.body)
        h = self.get(path)
        self.assertEqual(h.headers.get("X-Cache"), "HIT")
        self.assertEqual(h.headers.get("ETag"), '"v2"')
        self.assertEqual(h.body, r.body)


class TestStale(CacheTest):

    def test_stale_if_error_on_5xx_and_dead_upstream(self):
        self.start()
        path = PATH + "sie"
        first = self.get(path, {"X-Reply-Cache-Control": "max-age=1, stale-if-error=60"})
        time.sleep(1.5)
        r = self.get(path, {"X-Reply-Status": "503"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("X-Cache"), "STALE")
        self.assertEqual(r.body, first.body)
        self.b.stop()
        r = self.get(path)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers.get("X-Cache"), "STALE")
        self.assertEqual(r.body, first.body)

    def test_without_stale_if_error_errors_pass(self):
        self.start()
        path = PATH + "nosie"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1"})
        time.sleep(1.5)
        self.assertEqual(self.get(path, {"X-Reply-Status": "503"}).status, 503)
        self.b.stop()
        self.assertEqual(self.get(path).status, 502)

    def test_gateway_default_stale_if_error(self):
        self.start(cache={"stale_if_error": "30s"})
        path = PATH + "sie-default"
        self.get(path, {"X-Reply-Cache-Control": "max-age=1"})
        time.sleep(1.5)
        self.b.stop()
        r = self.get(path)
        self.assertEqual((r.status, r.headers.get("X-Cache")), (200, "STALE"))

    def test_stale_while_revalidate_refreshes_in_the_background(self):
        self.start()
        path = PATH + "swr"
        first = self.get(path, {"X-Reply-Cache-Control": "max-age=1, stale-while-revalidate=30"})
        time.sleep(1.5)
        # The stale entry answers at once; the refresh (slow upstream) runs in the background.
        t0 = time.monotonic()
        r = self.get(path, {"X-Reply-Delay-Ms": "1000", "X-Reply-Cache-Control": "max-age=60"})
        self.assertLess(time.monotonic() - t0, 0.8)
        self.assertEqual(r.headers.get("X-Cache"), "STALE")
        self.assertEqual(r.body, first.body)
        # Meanwhile other requests get the stale entry too, without a second refresh.
        r2 = self.get(path)
        self.assertEqual(r2.headers.get("X-Cache"), "STALE")
        wait_until(lambda: self.get(path).headers.get("X-Cache") == "HIT", timeout=5)
        h = self.get(path)
        self.assertIn(b":2\n", h.body)
        self.assertEqual(self.upstream_count(path), 2)
        # The background request carried the client's request (a new id, the same fields).
        bg = [q for q in self.b.request_log() if q.path == path][-1]
        self.assertEqual(bg.header("X-Reply-Delay-Ms"), "1000")
        self.assertIsNotNone(bg.header("X-Request-ID"))

    def test_background_revalidation_with_validators(self):
        self.start()
        path = PATH + "swr-etag"
        first = self.get(path, {"X-Reply-Cache-Control": "max-age=1, stale-while-revalidate=30",
                                "X-Reply-ETag": '"v1"'})
        time.sleep(1.5)
        r = self.get(path, {"X-Reply-ETag": '"v1"', "X-Reply-Cache-Control": "max-age=60",
                            "X-Reply-X-Fresh": "yes"})
        self.assertEqual(r.headers.get("X-Cache"), "STALE")
        wait_until(lambda: self.get(path).headers.get("X-Cache") == "HIT", timeout=5)
        h = self.get(path)
        self.assertEqual(h.body, first.body)  # a 304 freshened the stored body
        self.assertEqual(h.headers.get("X-Fresh"), "yes")
        log = [q for q in self.b.request_log() if q.path == path]
        self.assertEqual(log[-1].header("If-None-Match"), '"v1"')

    def test_failed_background_refresh_keeps_the_stale_entry(self):
        self.start()
        path = PATH + "swr-fail"
        first = self.get(path, {"X-Reply-Cache-Control": "max-age=1, stale-while-revalidate=30"})
        time.sleep(1.5)
        self.b.stop()
        for _ in range(3):
            r = self.get(path)
            self.assertEqual((r.status, r.headers.get("X-Cache")), (200, "STALE"))
            self.assertEqual(r.body, first.body)
            time.sleep(0.2)


class TestCoalescing(CacheTest):

    def burst(self, path, n, headers):
        results = [None] * n

        def one(i):
            try:
                results[i] = self.get(path, headers, timeout=15)
            except Exception as e:  # noqa: BLE001
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        return results, time.monotonic() - t0

    def test_concurrent_misses_send_one_request(self):
        self.start()
        path = PATH + "herd"
        results, _ = self.burst(path, 12, {"X-Reply-Delay-Ms": "600", "X-Reply-Size": "3000"})
        for r in results:
            self.assertFalse(isinstance(r, Exception), r)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, results[0].body)
        self.assertEqual(self.upstream_count(path), 1)
        states = sorted(r.headers.get("X-Cache") for r in results)
        self.assertEqual(states.count("MISS"), 1, states)
        self.assertEqual(states.count("HIT"), 11, states)

    def test_uncacheable_fill_releases_the_waiters_at_once(self):
        self.start()
        path = PATH + "herd-ns"
        results, took = self.burst(path, 8, {"X-Reply-Delay-Ms": "500",
                                             "X-Reply-Cache-Control": "no-store"})
        for r in results:
            self.assertEqual(r.status, 200)
        self.assertEqual(self.upstream_count(path), 8)
        self.assertLess(took, 4.0)  # not one after another

    def test_lock_timeout_bounds_the_wait(self):
        # The first fill holds the key's lock for at most lock_timeout; a request that comes
        # 0.2 s later waits for the rest of it, then goes upstream itself.
        self.start(cache={"lock_timeout": "1s"})
        path = PATH + "herd-slow"
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", self.get(path, {"X-Reply-Delay-Ms": "3000"}, timeout=10)))
        t.start()
        try:
            time.sleep(0.2)
            t0 = time.monotonic()
            r = self.get(path, {"X-Reply-Delay-Ms": "100"})
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("X-Cache"), "MISS")
            self.assertLess(took, 2.5)
            self.assertGreaterEqual(took, 0.6)
        finally:
            t.join(10)

    def test_coalescing_off(self):
        self.start(cache={"lock_timeout": "0s"})
        path = PATH + "herd-off"
        self.burst(path, 4, {"X-Reply-Delay-Ms": "400"})
        self.assertEqual(self.upstream_count(path), 4)


class TestReload(CacheTest):

    def test_entries_survive_a_reload_of_the_same_size(self):
        self.start()
        path = PATH + "reload"
        first = self.get(path)
        self.reload(lambda c: c["routes"].append(
            {"id": "extra", "path": "/extra/**", "backend": "default"}))
        r = self.get(path)
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        self.assertEqual(r.body, first.body)
        # A new size: a new, empty cache.
        self.reload(lambda c: c["cache"].update({"max_memory": 4 << 20}))
        self.assertEqual(self.get(path).headers.get("X-Cache"), "MISS")
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
        # No route caches any more: no cache fields, nothing served from a cache.
        self.reload(lambda c: c["routes"][0].pop("cache"))
        r = self.get(path)
        self.assertIsNone(r.headers.get("X-Cache"))
        self.assertEqual(self.upstream_count(path), 3)


class TestMasterCrash(CacheTest):

    def test_restart_after_kill_9_reattaches_the_cache(self):
        """kill -9 of the master (its workers exit on their own); a new master on the same
        configuration re-attaches the segment: the entries are still there, and a worker that
        was storing when it died left nothing half-visible."""
        from harness import pid_alive
        p = self.start(cache={"max_memory": 4 << 20})
        path = PATH + "survivor"
        first = self.get(path, {"X-Reply-Size": "30000"})
        self.assertEqual(self.get(path).headers.get("X-Cache"), "HIT")
        workers = p.worker_pids()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
        wait_until(lambda: not any(pid_alive(w) for w in workers), timeout=5)
        p2 = self.photon(self.cfg, name="photon")
        wait_until(lambda: len(p2.worker_pids()) == 2, timeout=5)
        r = self.get(path)
        self.assertEqual(r.headers.get("X-Cache"), "HIT")
        self.assertEqual(r.body, first.body)
        self.assertEqual(self.upstream_count(path), 1)
