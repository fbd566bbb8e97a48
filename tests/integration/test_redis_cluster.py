# SPDX-License-Identifier: Apache-2.0
"""Rate limits in a Redis Cluster (`redis.mode: cluster`).

The test creates a 3-master cluster of Debian redis-server processes (`--cluster-enabled yes`,
`--save '' --appendonly no`, free 127.0.0.1 ports) with `redis-cli --cluster create`, gives
Photon one seed, and checks: the slot map is discovered (every master holds some of the keys),
each key's limit is exact, and a resharding of 2000 slots from one master to another during
traffic is followed (MOVED and ASK) without a fallback decision, a hung request or an answer
other than 200/429, while every key's admissions stay within burst + rate x t. A second test
builds 3 masters with a replica each (`--cluster-replicas 1`, a 1 s node timeout) and kills -9 a
master during traffic: no request waits past its deadline, only 200 and 429 come back, no worker
dies, and once the replica is promoted the workers find it in the refreshed slot map without a
reload and enforce exact limits on the keys it now serves.
"""

import os
import shutil
import subprocess
import threading
import time

from harness import Conn, free_port, http_request, timeout, wait_until
from test_redis_ratelimit import REDIS_SERVER, Redis, RedisTestBase
from test_ratelimit import limit

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class ClusterNode(Redis):
    def __init__(self, tmpdir, node_timeout_ms=3000):
        super().__init__(tmpdir)
        self.bus_port = free_port()
        self.node_timeout_ms = node_timeout_ms

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--cluster-enabled", "yes",
                # The bus port defaults to port + 10000, which nothing checked was free.
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.wait_started()
        return self

    def node_id(self):
        return self.command("CLUSTER", "MYID")

    def info(self):
        text = self.command("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)

    def role(self):
        try:
            return self.command("ROLE")[0]
        except OSError:
            return None

    def replication(self):
        text = self.command("INFO", "replication")
        return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def cli(*args, timeout=60):
    r = subprocess.run([REDIS_CLI] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


class ClusterTestBase(RedisTestBase):

    RATE, BURST = 5, 10
    KEYS = ["client-%03d" % i for i in range(60)]

    def cluster(self, masters=3, replicas=0, node_timeout_ms=3000):
        for tool in (REDIS_SERVER, REDIS_CLI):
            if not os.path.exists(tool):
                self.fail("%s is not installed (contrib/install-deps.sh installs redis-server "
                          "and redis-tools)" % tool)
        nodes = []
        for _ in range(masters * (1 + replicas)):
            n = ClusterNode(self.tmpdir, node_timeout_ms).start()
            self.addCleanup(n.stop)
            nodes.append(n)
        rc, out = cli("--cluster", "create", *["127.0.0.1:%d" % n.port for n in nodes],
                      "--cluster-replicas", str(replicas), "--cluster-yes")
        self.assertEqual(rc, 0, out)
        wait_until(lambda: all(n.info().get("cluster_state") == "ok" for n in nodes),
                   timeout=20, msg="the cluster never reached cluster_state:ok")
        return nodes

    def keyed(self, key, conn):
        return conn.request("GET", "/api/x", headers=[("X-Key", key)]).status


class RedisClusterTest(ClusterTestBase):

    @timeout(180)
    def test_slots_spread_exact_limits_and_resharding_under_traffic(self):
        nodes = self.cluster()
        # keySlot() agrees with the server (CRC16 of the hash tag).
        self.assertEqual(nodes[0].command("CLUSTER", "KEYSLOT", "photon:rl:{0123456789abcdef}"),
                         nodes[0].command("CLUSTER", "KEYSLOT", "0123456789abcdef"))
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      key="header:X-Key", store="redis",
                                      on_store_error="deny", max_keys=1024)}
        self.start_redis_photon(nodes[0], lim,
                                {"mode": "cluster", "command_timeout": "3s",
                                 "address": None,
                                 "addresses": ["127.0.0.1:%d" % nodes[0].port]},
                                metrics=True, workers=2)
        wait_until(lambda: self.health()["redis"]["state"] == "up"
                   and self.health()["redis"]["nodes"] == 3, timeout=15,
                   msg="photon never loaded the slot map: %r" % (self.health(),))

        # Each key: exactly its burst at once (the rate is far below the request rate).
        emptied = {}
        with Conn(self.port) as c:
            for k in self.KEYS:
                statuses = [self.keyed(k, c) for _ in range(self.BURST + 2)]
                self.assertEqual(statuses[:self.BURST], [200] * self.BURST, (k, statuses))
                emptied[k] = time.monotonic()
        # The keys are spread over the three masters.
        sizes = [n.command("DBSIZE") for n in nodes]
        self.assertEqual(sum(sizes), len(self.KEYS), sizes)
        self.assertTrue(all(s > 0 for s in sizes), sizes)
        h = self.health()["redis"]
        self.assertEqual(h["limits"]["default"]["store_errors"], 0, h)

        # Resharding under traffic: 2000 slots from the first master to the second.
        src, dst = nodes[0].node_id(), nodes[1].node_id()
        before = self.health()["redis"]["limits"]["default"]["redirects"]
        reshard = {}

        def start_reshard():
            reshard["proc"] = subprocess.Popen(
                [REDIS_CLI, "--cluster", "reshard", "127.0.0.1:%d" % nodes[0].port,
                 "--cluster-from", src, "--cluster-to", dst, "--cluster-slots", "2000",
                 "--cluster-yes", "--cluster-pipeline", "10"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            self.addCleanup(lambda p=reshard["proc"]: p.poll() is None and p.kill())

        conns = [Conn(self.port) for _ in range(4)]
        load_start = time.monotonic()
        records, errors = [], []
        stop = [time.monotonic() + 6.0]
        lock = threading.Lock()

        def run(c, keys):
            mine = []
            i = 0
            while time.monotonic() < stop[0]:
                k = keys[i % len(keys)]
                i += 1
                sent = time.monotonic()
                try:
                    r = c.request("GET", "/api/x", headers=[("X-Key", k)])
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(repr(e))
                    return
                mine.append((k, sent, time.monotonic(), r.status))
                if not r.keep_alive:  # server.keepalive_requests reached
                    c.close()
                    c = Conn(self.port)
            with lock:
                records.extend(mine)
            c.close()

        threads = [threading.Thread(target=run, args=(c, self.KEYS[i::4]), daemon=True)
                   for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        start_reshard()
        out, _ = reshard["proc"].communicate(timeout=120)
        self.assertEqual(reshard["proc"].returncode, 0, out.decode("utf-8", "replace")[-2000:])
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "a load thread hung")
        self.assertEqual(errors, [])
        statuses = {st for _, _, _, st in records}
        self.assertLessEqual(statuses, {200, 429}, statuses)
        slowest = max(b - a for _, a, b, _ in records)
        self.assertLess(slowest, 3.0, "a request waited %.3fs" % slowest)
        # Redirects were followed and nothing fell back to on_store_error (deny).
        h = self.health()["redis"]
        self.assertEqual(h["limits"]["default"]["store_errors"], 0, h)
        self.assertGreater(h["limits"]["default"]["redirects"], before, h)
        # Every key stayed within its limit, across the migration of its slot: its bucket was
        # empty at emptied[k], so during the load it could admit what had refilled since, plus
        # rate x the load's duration (+1 for rounding).
        per_key, last = {}, {}
        for k, _, answered, st in records:
            per_key[k] = per_key.get(k, 0) + (st == 200)
            last[k] = max(last.get(k, 0), answered)
        for k, ok in per_key.items():
            refilled = min(self.BURST, self.RATE * (load_start - emptied[k]))
            bound = refilled + self.RATE * (last[k] - load_start) + 1
            self.assertLessEqual(ok, bound, (k, ok, bound))
        self.assertGreater(sum(per_key.values()), 0)
        # The load asked far more than the limits allow: the limits did the refusing.
        self.assertGreater(sum(1 for r in records if r[3] == 429), sum(per_key.values()))
        # The moved slots' keys now live on the second master.
        sizes_after = [n.command("DBSIZE") for n in nodes]
        self.assertEqual(sum(sizes_after), len(self.KEYS), sizes_after)
        self.assertLess(sizes_after[0], sizes[0], (sizes, sizes_after))
        self.assertTrue(self.proxy.alive())
        # Decisions still go to the right masters afterwards.
        r = http_request(self.port, "GET", "/api/x", headers=[("X-Key", "fresh-key")])
        self.assertEqual(r.status, 200)
        self.assertEqual(sum(n.command("DBSIZE") for n in nodes), len(self.KEYS) + 1)


class RedisClusterFailoverTest(ClusterTestBase):
    """3 masters + 3 replicas; a master killed (SIGKILL) during traffic."""

    TIMEOUT = 1.0  # command_timeout

    def send_burst(self, keys, n):
        """`n` requests per key, each key on its own fresh connection (so both workers take
        some); returns {key: [status, ...]}."""
        out = {}
        for k in keys:
            with Conn(self.port) as c:
                out[k] = [self.keyed(k, c) for _ in range(n)]
        return out

    def errors(self):
        return self.health()["redis"]["limits"]["default"]["store_errors"]

    @timeout(240)
    def test_master_killed_during_traffic_replica_promoted_and_followed(self):
        nodes = self.cluster(masters=3, replicas=1, node_timeout_ms=1000)
        masters = [n for n in nodes if n.role() == "master"]
        replicas = [n for n in nodes if n.role() == "slave"]
        self.assertEqual((len(masters), len(replicas)), (3, 3), [n.role() for n in nodes])
        # Every replica has synced, so the one promoted holds its master's slots' keys.
        wait_until(lambda: all(r.replication().get("master_link_status") == "up"
                               for r in replicas), timeout=20, msg="a replica never synced")
        seed, victim = masters[0], masters[1]
        heir = next(r for r in replicas
                    if int(r.replication()["master_port"]) == victim.port)
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      key="header:X-Key", store="redis",
                                      on_store_error="deny", max_keys=4096)}
        self.start_redis_photon(seed, lim,
                                {"mode": "cluster", "command_timeout": "%gs" % self.TIMEOUT,
                                 "connect_timeout": "300ms", "retry_interval": "100ms",
                                 "address": None, "addresses": ["127.0.0.1:%d" % seed.port]},
                                metrics=True, workers=2)
        wait_until(lambda: self.health()["redis"]["state"] == "up"
                   and self.health()["redis"]["nodes"] == 3, timeout=15,
                   msg="photon never loaded the slot map: %r" % (self.health(),))
        workers = sorted(self.proxy.worker_pids())
        self.assertEqual(len(workers), 2)
        # Before: every key's burst, exactly, and keys on each master.
        got = self.send_burst(self.KEYS, self.BURST + 1)
        for k, st in got.items():
            self.assertEqual(st, [200] * self.BURST + [429], k)
        self.assertEqual(self.errors(), 0)
        self.assertTrue(all(m.command("DBSIZE") > 0 for m in masters),
                        [m.command("DBSIZE") for m in masters])

        # Traffic on all keys from 4 connections; the victim is killed 1 s in.
        conns = [Conn(self.port) for _ in range(4)]
        records, errors = [], []
        lock = threading.Lock()
        stop = [time.monotonic() + 8.0]
        marks = {}

        def run(c, keys):
            mine = []
            i = 0
            port = c.port
            try:
                while time.monotonic() < stop[0]:
                    k = keys[i % len(keys)]
                    i += 1
                    sent = time.monotonic()
                    try:
                        r = c.request("GET", "/api/x", headers=[("X-Key", k)])
                    except Exception as e:  # noqa: BLE001 - reported below
                        with lock:
                            errors.append(repr(e))
                        c.close()
                        c = Conn(port)
                        continue
                    mine.append((k, sent, time.monotonic(), r.status))
                    if not r.keep_alive:
                        c.close()
                        c = Conn(port)
            finally:
                with lock:
                    records.extend(mine)
                c.close()

        threads = [threading.Thread(target=run, args=(c, self.KEYS[i::4]), daemon=True)
                   for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        marks["kill"] = time.monotonic()
        victim.kill()
        # The replica takes over after the node timeout (1 s) and an election.
        wait_until(lambda: heir.role() == "master", timeout=30,
                   msg="the replica was never promoted")
        marks["promoted"] = time.monotonic()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "a load thread hung")
        self.assertEqual(errors, [])
        self.assertGreater(len(records), 100)
        statuses = {st for _, _, _, st in records}
        self.assertLessEqual(statuses, {200, 429}, statuses)
        # No request waited past its deadline: pending commands on the dead master failed when
        # its connections dropped, and while it was down nothing waited for it.
        slowest = max(b - a for _, a, b, _ in records)
        self.assertLess(slowest, self.TIMEOUT + 1.0, "a request waited %.3fs" % slowest)
        # The lost slots' decisions went to on_store_error (deny) meanwhile.
        self.assertGreater(self.errors(), 0)

        # After: the workers refresh the slot map and connect to the promoted replica without a
        # reload. Fresh keys are used: the ones above are at their limit. Wait until a round of
        # fresh keys is decided by Redis with no store error (every worker follows).
        wait_until(lambda: all(n.info().get("cluster_state") == "ok"
                               for n in nodes if n is not victim), timeout=30,
                   msg="the cluster never recovered")
        round_ = [0]

        def decided_by_redis():
            round_[0] += 1
            before = self.errors()
            keys = ["probe-%d-%02d" % (round_[0], i) for i in range(12)]
            got = self.send_burst(keys, 1)
            return (all(st == [200] for st in got.values()) and self.errors() == before)
        wait_until(decided_by_redis, timeout=30, interval=0.5,
                   msg="the workers never followed the failover: %r" % (self.health(),))
        # Exact limits again on fresh keys, some of them on the promoted replica.
        heir_before = heir.command("DBSIZE")
        before = self.errors()
        fresh = ["after-%03d" % i for i in range(30)]
        got = self.send_burst(fresh, self.BURST + 2)
        for k, st in got.items():
            self.assertEqual(st, [200] * self.BURST + [429, 429], k)
        self.assertEqual(self.errors(), before)
        self.assertGreater(heir.command("DBSIZE"), heir_before)
        # Both workers know the promoted node (4 nodes: the dead one stays listed).
        nodes_seen = {self.health()["redis"]["nodes"] for _ in range(8)}
        self.assertEqual(nodes_seen, {4}, nodes_seen)
        # Nothing crashed: the same workers, no assertion in the log.
        self.assertTrue(self.proxy.alive())
        self.assertEqual(sorted(self.proxy.worker_pids()), workers)
        self.assertNotIn("Assertion", self.proxy.stderr_text())
