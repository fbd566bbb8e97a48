# SPDX-License-Identifier: Apache-2.0
"""Load balancing on shared memory: every algorithm across two workers, upstream
max_connections, passive ejection and its expiry, fail_open, the in-flight gauges after
kill -9 of a worker, and the per-upstream part of /health. Every test runs the real binary on
127.0.0.1 with two workers unless it says otherwise."""

import os
import signal
import sys
import threading
from collections import Counter

from harness import (IntegrationTest, Conn, WaitTimeout, cmdline, free_port, http_request,
                     wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                                "balancing"))

from balancing_support import (WorkBackend, accepting_worker, balancing_config,  # noqa: E402
                               connections_per_worker, get_health, served_by, upstream_entry,
                               upstream_spec)

WORKER_TITLE = "photon: worker process"


def within(count, expected, pct=2.0):
    return abs(count - expected) <= expected * pct / 100.0


def longest_run(seq, item):
    best = run = 0
    for x in seq:
        run = run + 1 if x == item else 0
        best = max(best, run)
    return best


class BalancingTest(IntegrationTest):
    """Base: photon with one backend "default" in front of the given upstreams, two workers,
    the metrics listener on (it serves /health) and active health checks off."""

    def start(self, upstreams, algorithm="round_robin", workers=2, retries=None, config=None,
              **backend_keys):
        self.port = free_port()
        self.mport = free_port()
        cfg = balancing_config(self.tmpdir, self.port, upstreams, algorithm, workers=workers,
                               metrics_port=self.mport, retries=retries, **backend_keys)
        if config:
            config(cfg)
        self.cfg = cfg
        self.p = self.photon(cfg)
        self.workers = self.worker_pids(workers)
        return self.p

    def worker_pids(self, n):
        """Waits until the master runs ``n`` workers; returns their pids."""
        def ready():
            w = [c for c in self.p.worker_pids() if cmdline(c).startswith(WORKER_TITLE)]
            return len(w) == n and sorted(w)
        return wait_until(ready, timeout=5, msg="master never ran %d workers" % n)

    def alternate_workers(self, path, n):
        """Sends ``n`` GETs alternating strictly between one keep-alive connection per worker
        (so every other request is served by the other worker); returns the upstream names."""
        per = connections_per_worker(self, self.port, self.workers, 1)
        conns = [per[w][0] for w in self.workers]
        seq = []
        for i in range(n):
            r = conns[i % len(conns)].request("GET", path)
            self.assertEqual(r.status, 200, r.body)
            seq.append(served_by(r))
        return seq

    def health(self):
        return get_health(self.mport)

    def entry(self, u, backend="default"):
        return upstream_entry(self.health(), backend, u.address)

    def get_fresh(self, path, workers=None, status=200):
        """GET ``path`` on a new connection; returns (response, accepting worker pid or None).
        With ``workers`` the pid is looked up while the connection is still open. The
        connection is then reset, so that thousands of them leave no TIME_WAIT behind."""
        c = Conn(self.port, timeout=10)
        try:
            r = c.request("GET", path)
            pid = accepting_worker(workers, self.port, c) if workers else None
        finally:
            c.reset()
        if status is not None:
            self.assertEqual(r.status, status, "GET %s: %d %r" % (path, r.status, r.body))
        return r, pid

    def get_fresh_with(self, path, headers, status=200):
        """GET ``path`` with ``headers`` on a new connection; returns the response."""
        r = http_request(self.port, "GET", path, headers=headers, timeout=10)
        if status is not None:
            self.assertEqual(r.status, status, "GET %s: %d %r" % (path, r.status, r.body))
        return r

    def assert_no_inflight(self):
        """Waits until /health shows no request in flight on any upstream."""
        def idle():
            doc = self.health()
            return all(u["inflight"] == 0 for b in doc["backends"].values()
                       for u in b["upstreams"])
        try:
            wait_until(idle, timeout=5)
        except WaitTimeout:
            self.fail("in-flight gauges stuck: %r" % self.health())

    def names_served(self, backends, path):
        """How many requests for ``path`` each backend received (from its own log)."""
        return {b.name: sum(1 for q in b.request_log() if q.path == path) for b in backends}


# --------------------------------------------------------------------------------------------
# Algorithms


class AlgorithmTest(BalancingTest):

    def test_round_robin_rotation_is_global_across_workers(self):
        ups = [self.backend() for _ in range(4)]
        self.start(ups, "round_robin")
        seq = self.alternate_workers("/name", 400)
        counts = Counter(seq)
        for b in ups:
            self.assertTrue(within(counts[b.name], 100), "%s got %d of 400: %r"
                            % (b.name, counts[b.name], counts))
        self.assertEqual(self.names_served(ups, "/name"), {b.name: counts[b.name] for b in ups})
        # One shared rotation: any 4 consecutive answers name 4 different upstreams, whichever
        # worker served them. Two per-worker rotations, alternated like this, break it at once.
        broken = sum(1 for i in range(len(seq) - 3) if len(set(seq[i:i + 4])) != 4)
        self.assertLessEqual(broken, 8, "rotation not global: %d of %d windows repeat an "
                             "upstream; first 24: %r" % (broken, len(seq) - 3, seq[:24]))

    def test_weighted_round_robin_3_to_1_is_smooth(self):
        a, b = self.backend("A"), self.backend("B")
        self.start([upstream_spec(a, weight=3), upstream_spec(b, weight=1)],
                   "weighted_round_robin")
        seq = self.alternate_workers("/name", 400)
        counts = Counter(seq)
        self.assertTrue(within(counts["A"], 300), counts)
        self.assertTrue(within(counts["B"], 100), counts)
        self.assertEqual(counts["A"] + counts["B"], 400, counts)
        self.assertLessEqual(longest_run(seq, "A"), 3, "not smooth: %r" % seq[:40])
        self.assertEqual(longest_run(seq, "B"), 1, "not smooth: %r" % seq[:40])

    def test_least_connections_prefers_the_less_loaded_upstream(self):
        fast = WorkBackend("fast", delay_ms=5).start()
        slow = WorkBackend("slow", delay_ms=400).start()
        self.addCleanup(fast.stop)
        self.addCleanup(slow.stop)
        self.start([fast, slow], "least_connections")
        results, errors = [], []
        lock = threading.Lock()

        def client():
            try:
                for _ in range(10):
                    r = http_request(self.port, "GET", "/work", timeout=10)
                    with lock:
                        results.append((r.status, served_by(r)))
            except Exception as e:  # reported below
                with lock:
                    errors.append(repr(e))
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 40)
        self.assertTrue(all(s == 200 for s, _ in results), results)
        counts = Counter(n for _, n in results)
        # Round robin would split 20/20; least connections keeps sending to the upstream whose
        # requests finish, while the slow one holds its in-flight ones.
        self.assertGreaterEqual(counts["fast"], 3 * counts["slow"], counts)
        self.assertEqual(fast.work_served + slow.work_served, 40)

    def test_ip_hash_sticks_and_moves_only_when_the_owner_fails(self):
        ups = {n: self.backend(n) for n in ("A", "B", "C")}
        self.start(list(ups.values()), "ip_hash", max_fails=1, fail_timeout="3s", retries=1)
        seen, per_worker = Counter(), Counter()
        # Both workers must take part (the kernel picks the accepting worker, so sequential
        # connections may land on one of them for a while: keep going, bounded).
        for i in range(300):
            r, pid = self.get_fresh("/name", workers=self.workers)
            seen[served_by(r)] += 1
            per_worker[pid] += 1
            if i >= 29 and len(per_worker) == len(self.workers):
                break
        self.assertEqual(len(seen), 1, "127.0.0.1 was spread over %r" % seen)
        self.assertEqual(set(per_worker), set(self.workers), per_worker)
        owner = next(iter(seen))
        others = [n for n in ups if n != owner]

        # Stopping an upstream that does not own this client changes nothing.
        ups[others[0]].stop()
        for _ in range(20):
            r, _ = self.get_fresh("/name")
            self.assertEqual(served_by(r), owner)
        ups[others[0]].start()

        # Stopping the owner: the retry and every later request land on one other upstream.
        ups[owner].stop()
        moved = Counter()
        for _ in range(20):
            r, _ = self.get_fresh("/name")
            moved[served_by(r)] += 1
        self.assertEqual(len(moved), 1, "client spread after its owner failed: %r" % moved)
        self.assertNotIn(owner, moved)
        self.assertEqual(self.entry(ups[owner])["state"], "ejected")

        # Once the owner is back and its ejection has expired, the client returns to it.
        ups[owner].start()
        wait_until(lambda: self.entry(ups[owner])["state"] == "healthy", timeout=8,
                   msg="ejection of %s never expired" % owner)
        back = Counter(served_by(self.get_fresh("/name")[0]) for _ in range(10))
        self.assertEqual(back, Counter({owner: 10}))
        self.assert_no_inflight()

    def test_ip_hash_keys_on_trusted_forwarded_client_and_moves_only_failed_owners_clients(self):
        # Behind a trusted proxy (here 127.0.0.1) ip_hash keys on the right-most untrusted
        # X-Forwarded-For entry, which gives this test many client addresses.
        ups = {n: self.backend(n) for n in ("A", "B", "C")}

        def trust_loopback(cfg):
            cfg["server"]["trusted_proxies"] = ["127.0.0.1/32"]
        self.start(list(ups.values()), "ip_hash", max_fails=1, fail_timeout="30s", retries=1,
                   config=trust_loopback)
        clients = ["10.%d.%d.%d" % (i % 7, i // 7, 1 + i % 250) for i in range(60)]

        def owner(ip):
            r = self.get_fresh_with("/name", {"X-Forwarded-For": ip})
            return served_by(r)
        before = {ip: owner(ip) for ip in clients}
        self.assertEqual(set(before.values()), set(ups),
                         "60 client addresses did not spread over 3 upstreams: %r"
                         % Counter(before.values()))
        for ip in clients[:20]:
            self.assertEqual(owner(ip), before[ip], "client %s not sticky" % ip)

        failed = before[clients[0]]
        ups[failed].stop()
        after = {ip: owner(ip) for ip in clients}
        for ip in clients:
            if before[ip] == failed:
                self.assertNotEqual(after[ip], failed, ip)
            else:
                self.assertEqual(after[ip], before[ip], "client %s of a healthy upstream moved"
                                 % ip)
        self.assertEqual(self.entry(ups[failed])["state"], "ejected")

    def test_consistent_hash_keys_on_the_configured_header(self):
        ups = [self.backend(n) for n in ("A", "B", "C")]
        self.start(ups, "consistent_hash", hash_key="header:X-User")
        users = ["user-%d" % i for i in range(60)]

        def owner(user):
            r = self.get_fresh_with("/name", {"X-User": user})
            return served_by(r)
        first = {u: owner(u) for u in users}
        self.assertEqual(set(first.values()), {"A", "B", "C"},
                         "60 keys did not spread over 3 upstreams: %r"
                         % Counter(first.values()))
        for u in users[:20]:
            self.assertEqual(owner(u), first[u], "key %s not sticky" % u)

    def test_random_uses_every_upstream_but_never_weight_zero(self):
        for two_choices in (False, True):
            with self.subTest(two_choices=two_choices):
                if getattr(self, "p", None) is not None:
                    self.p.close()  # one gateway at a time (they share the pid file)
                ups = [self.backend() for _ in range(3)]
                drained = self.backend("zero")
                specs = [upstream_spec(u) for u in ups] + [upstream_spec(drained, weight=0)]
                self.start(specs, "random", two_choices=two_choices)
                counts = Counter(served_by(self.get_fresh("/name")[0]) for _ in range(300))
                self.assertEqual(counts["zero"], 0, counts)
                self.assertEqual(drained.requests_served, 0)
                for u in ups:
                    # Expected 100 each; below 50 is ~6 standard deviations away.
                    self.assertGreaterEqual(counts[u.name], 50, counts)


# --------------------------------------------------------------------------------------------
# max_connections


class MaxConnectionsTest(BalancingTest):

    def send_slow(self, conn, backends, expect_total):
        """Sends GET /work?delay_ms=1500 on ``conn`` and waits until ``backends`` together
        hold ``expect_total`` requests in flight."""
        conn.send_request("GET", "/work?delay_ms=1500")
        wait_until(lambda: sum(b.inflight for b in backends) == expect_total, timeout=5,
                   msg="in flight: %r, expected %d in total"
                   % ([(b.name, b.inflight) for b in backends], expect_total))

    def test_cap_is_shared_by_workers_and_overflow_goes_elsewhere(self):
        capped = WorkBackend("capped").start()
        spare = WorkBackend("spare").start()
        self.addCleanup(capped.stop)
        self.addCleanup(spare.stop)
        # With weights 10:1 nearly every pick wants "capped", so only the shared cap can keep
        # a worker that has sent nothing to it yet from adding a third request.
        self.start([upstream_spec(capped, weight=10, max_connections=2),
                    upstream_spec(spare, weight=1)], "weighted_round_robin")
        per = connections_per_worker(self, self.port, self.workers, 3)
        w1, w2 = self.workers
        order = [per[w1][0], per[w2][0], per[w1][1], per[w2][1], per[w1][2], per[w2][2]]
        for i, c in enumerate(order):
            self.send_slow(c, [capped, spare], i + 1)
            self.assertLessEqual(capped.inflight, 2)
        doc = self.health()
        self.assertEqual(upstream_entry(doc, "default", capped.address)["inflight"], 2, doc)
        self.assertEqual(upstream_entry(doc, "default", spare.address)["inflight"], 4, doc)
        got = Counter()
        for c in order:
            r = c.read_response()
            self.assertEqual(r.status, 200, r.body)
            got[served_by(r)] += 1
        self.assertEqual(capped.peak_inflight, 2)
        self.assertEqual(got, Counter({"capped": 2, "spare": 4}))

    def test_cap_on_the_only_upstream_answers_503(self):
        capped = WorkBackend("capped").start()
        self.addCleanup(capped.stop)
        self.start([upstream_spec(capped, max_connections=2)], "round_robin")
        per = connections_per_worker(self, self.port, self.workers, 3)
        w1, w2 = self.workers
        admitted = [per[w1][0], per[w2][0]]
        for i, c in enumerate(admitted):
            self.send_slow(c, [capped], i + 1)
        # Each worker has one request in flight, so a per-worker cap would admit more.
        for c in [per[w1][1], per[w2][1], per[w1][2], per[w2][2]]:
            r = c.request("GET", "/work?delay_ms=1500")
            self.assertEqual(r.status, 503, r.body)
            self.assertIsNotNone(r.header("retry-after"))
            self.assertIsNone(served_by(r))
        self.assertEqual(capped.peak_inflight, 2)
        for c in admitted:
            self.assertEqual(c.read_response().status, 200)
        wait_until(lambda: self.entry(capped)["inflight"] == 0, timeout=5)
        self.assertEqual(self.get_fresh("/name")[0].text, "capped")
        self.assertEqual(capped.work_served, 2)

    def test_sequential_client_is_never_refused_by_a_cap_of_one(self):
        # One request at a time never has two in flight, so a cap of 1 must never refuse one,
        # whichever worker takes the next connection. The slot has to be free by the time the
        # client holds the whole response (it is released before the next request arrives).
        b = self.backend("b1")
        self.start([upstream_spec(b, max_connections=1)], "round_robin")
        refused = []
        for i in range(2000):
            r, _ = self.get_fresh("/name", status=None)
            if r.status != 200:
                refused.append((i, r.status))
        self.assertEqual(len(refused), 0, "%d of 2000 sequential requests refused; first "
                         "(index, status): %r" % (len(refused), refused[:8]))
        self.assertEqual(b.requests_served, 2000)


# --------------------------------------------------------------------------------------------
# Passive health, fail_open


class PassiveHealthTest(BalancingTest):

    def test_refusing_upstream_is_ejected_without_client_errors_and_retried_later(self):
        good, bad = self.backend("good"), self.backend("bad")
        bad.stop()  # connections to its port are refused from now on
        self.start([good, bad], "round_robin", max_fails=1, fail_timeout="2s", retries=1)
        statuses = Counter()
        for _ in range(12):
            r, _ = self.get_fresh("/name", status=None)
            statuses[(r.status, served_by(r))] += 1
        self.assertEqual(statuses, Counter({(200, "good"): 12}))
        e = self.entry(bad)
        self.assertEqual(e["state"], "ejected", e)
        self.assertGreaterEqual(e["failures"], 1, e)
        self.assertEqual(self.entry(good)["state"], "healthy")
        first_failures = e["failures"]

        # After fail_timeout the ejection ends and the upstream is tried again: still refusing,
        # it fails once more (the client still gets 200 through the retry) and is ejected again.
        wait_until(lambda: self.entry(bad)["state"] == "healthy", timeout=5,
                   msg="ejection never expired")
        for _ in range(6):
            r, _ = self.get_fresh("/name")
            self.assertEqual(served_by(r), "good")
        e = self.entry(bad)
        self.assertGreater(e["failures"], first_failures, e)
        self.assertEqual(e["state"], "ejected", e)

        # Back up: once the ejection expires it gets its share again.
        bad.start()
        wait_until(lambda: self.entry(bad)["state"] == "healthy", timeout=5,
                   msg="ejection never expired")
        counts = Counter(served_by(self.get_fresh("/name")[0]) for _ in range(8))
        self.assertGreaterEqual(counts["bad"], 3, counts)
        self.assertEqual(self.names_served([bad], "/name")["bad"], counts["bad"])
        self.assert_no_inflight()

    def test_5xx_answers_count_toward_max_fails(self):
        good = WorkBackend("good").start()
        bad = WorkBackend("bad", status=500).start()
        self.addCleanup(good.stop)
        self.addCleanup(bad.stop)
        self.start([good, bad], "round_robin", max_fails=2, fail_timeout="30s", count_5xx=True)
        statuses = Counter()
        for _ in range(20):
            r, _ = self.get_fresh("/work", status=None)
            statuses[(r.status, served_by(r))] += 1
        # max_fails counts connect errors, timeouts and 5xx answers: after two 500s the
        # upstream is ejected and everything else goes to "good".
        self.assertEqual(self.entry(bad)["state"], "ejected", statuses)
        self.assertEqual(statuses, Counter({(500, "bad"): 2, (200, "good"): 18}))
        self.assertEqual(bad.work_served, 2)
        self.assertGreaterEqual(self.entry(bad)["failures"], 2)

    def test_stale_pooled_connections_after_upstream_restart_release_their_slot(self):
        b = self.backend("b1")
        self.start([upstream_spec(b, max_connections=1)], "round_robin", retries=1)
        # Each request waits for the previous one's release (see
        # test_sequential_client_is_never_refused_by_a_cap_of_one for why).
        for _ in range(10):  # both workers keep idle keep-alive connections to b1
            self.assert_no_inflight()
            self.get_fresh("/name")
        self.assertGreaterEqual(b.open_connections, 1)
        b.stop()   # every pooled connection dies under the workers
        b.start()
        # Reusing a dead pooled connection is retried transparently; the retry must not leave
        # the first attempt counted, or max_connections: 1 would refuse everything after it.
        for _ in range(10):
            self.assert_no_inflight()
            r, _ = self.get_fresh("/name", status=None)
            self.assertEqual((r.status, served_by(r)), (200, "b1"), r.body)
        self.assert_no_inflight()
        self.assertEqual(self.entry(b)["state"], "healthy")

    def eject_all(self, ups):
        """Sends requests until every (stopped) upstream in ``ups`` is ejected."""
        def all_ejected():
            r, _ = self.get_fresh("/name", status=None)
            self.assertIn(r.status, (502, 503), r.body)
            doc = self.health()
            return all(upstream_entry(doc, "default", u.address)["state"] == "ejected"
                       for u in ups)
        try:
            wait_until(all_ejected, timeout=5, interval=0.05)
        except WaitTimeout:
            self.fail("upstreams never all ejected: %r" % self.health())

    def test_fail_open_still_tries_ejected_upstreams(self):
        ups = [self.backend("A"), self.backend("B")]
        for u in ups:
            u.stop()
        # Every upstream may be ejected (max_ejection_percent 100) and no panic routing: the
        # original's rules, under which fail_open decides.
        self.start(ups, "round_robin", max_fails=1, fail_timeout="30s", retries=1,
                   fail_open=True, max_ejection_percent=100, panic_threshold=0)
        self.eject_all(ups)
        self.assertEqual(self.health()["backends"]["default"]["ejected"], 2)
        for _ in range(4):
            r, _ = self.get_fresh("/name", status=None)
            self.assertEqual(r.status, 502, "fail_open must still try the upstreams: %d %r"
                             % (r.status, r.body))
        # The upstreams come back while still ejected: fail_open reaches them.
        for u in ups:
            u.start()
        self.assertEqual(self.entry(ups[0])["state"], "ejected")
        counts = Counter(served_by(self.get_fresh("/name")[0]) for _ in range(6))
        self.assertEqual(set(counts), {"A", "B"}, counts)
        self.assert_no_inflight()

    def test_without_fail_open_all_ejected_answers_503_with_retry_after(self):
        ups = [self.backend("A"), self.backend("B")]
        for u in ups:
            u.stop()
        self.start(ups, "round_robin", max_fails=1, fail_timeout="30s", retries=1,
                   max_ejection_percent=100, panic_threshold=0)
        self.eject_all(ups)
        for u in ups:
            u.start()
        for _ in range(4):
            r, _ = self.get_fresh("/name", status=None)
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.header("retry-after"), "1")
            self.assertEqual(r.json()["status"], 503)
        self.assertEqual(sum(u.requests_served for u in ups), 0)


# --------------------------------------------------------------------------------------------
# Gauges after kill -9, /health


class SharedGaugeTest(BalancingTest):

    def test_killed_worker_leaves_no_inflight_count_behind(self):
        b = WorkBackend("b1").start()
        self.addCleanup(b.stop)
        self.start([upstream_spec(b, max_connections=2)], "least_connections")
        per = connections_per_worker(self, self.port, self.workers, 1)
        victim, survivor = self.workers
        for i, pid in enumerate((victim, survivor)):
            per[pid][0].send_request("GET", "/work?delay_ms=1500")
            wait_until(lambda: b.inflight == i + 1, timeout=5)
        self.assertEqual(self.entry(b)["inflight"], 2)
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(per[victim][0].wait_closed(5), "the killed worker's client stayed open")
        self.assertEqual(per[survivor][0].read_response().status, 200)
        new = wait_until(lambda: (lambda w: victim not in w and w)(self.worker_pids(2)),
                         timeout=5, msg="killed worker not replaced")
        self.workers = new
        self.assert_no_inflight()  # the dead worker's gauge was reclaimed
        # The cap admits two requests again, one through each (new) worker.
        b.reset_peak()
        per = connections_per_worker(self, self.port, new, 1)
        conns = [per[w][0] for w in new]
        for c in conns:
            c.send_request("GET", "/work?delay_ms=300")
        for c in conns:
            r = c.read_response()
            self.assertEqual(r.status, 200, "max_connections no longer admits 2: %d %r"
                             % (r.status, r.body))
        wait_until(lambda: self.entry(b)["inflight"] == 0, timeout=5)

    def test_health_lists_upstreams_with_state_inflight_and_requests(self):
        a, b = self.backend("A"), self.backend("B")
        c = WorkBackend("C").start()
        self.addCleanup(c.stop)

        def two_backends(cfg):
            cfg["load_balancing"]["backends"]["static"] = {
                "algorithm": "round_robin", "max_fails": 0,
                "upstreams": [upstream_spec(c)]}
            cfg["routes"] = [{"id": "api", "path": "/api/**", "backend": "default"},
                             {"id": "static", "path": "/**", "backend": "static"}]
        self.start([a, b], "round_robin", config=two_backends)
        for _ in range(6):
            self.get_fresh("/api/x")
        for _ in range(4):
            self.get_fresh("/y")
        self.assert_no_inflight()
        doc = self.health()
        self.assertEqual(doc["status"], "ok", doc)
        self.assertEqual(set(doc["backends"]), {"default", "static"}, doc)
        api = doc["backends"]["default"]
        self.assertEqual((api["total"], api["healthy"], api["ejected"]), (2, 2, 0), api)
        self.assertEqual([u["address"] for u in api["upstreams"]], [a.address, b.address])
        for u in api["upstreams"]:
            self.assertEqual((u["state"], u["inflight"], u["requests"]), ("healthy", 0, 3), u)
        st = doc["backends"]["static"]["upstreams"]
        self.assertEqual([(u["address"], u["state"], u["inflight"], u["requests"]) for u in st],
                         [(c.address, "healthy", 0, 4)])
        # A request in flight shows in the gauge, and is counted.
        with Conn(self.port, timeout=10) as conn:
            conn.send_request("GET", "/work?delay_ms=1000")
            wait_until(lambda: c.inflight == 1, timeout=5)
            self.assertEqual(self.entry(c, "static")["inflight"], 1)
            self.assertEqual(conn.read_response().status, 200)
        e = wait_until(lambda: (lambda x: x["inflight"] == 0 and x)(self.entry(c, "static")),
                       timeout=5)
        self.assertEqual(e["requests"], 5, e)


class AcceptSpreadTest(BalancingTest):
    """Workers share one listening socket; connections must still spread over them."""

    def test_concurrent_connections_spread_over_both_workers(self):
        b = self.backend("b1")
        self.start([b], "round_robin")
        conns = []
        for _ in range(40):
            c = Conn(self.port, timeout=10)
            self.addCleanup(c.close)
            c.send_request("GET", "/name")  # opened at once, like a load generator's pool
            conns.append(c)
        per = Counter()
        for c in conns:
            self.assertEqual(c.read_response().status, 200)
            per[accepting_worker(self.workers, self.port, c)] += 1
        # Without balancing one worker commonly takes nearly all; each must hold a quarter.
        self.assertEqual(set(per), set(self.workers), per)
        self.assertGreaterEqual(min(per.values()), 10, per)
