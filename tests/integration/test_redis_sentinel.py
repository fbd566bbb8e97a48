# SPDX-License-Identifier: Apache-2.0
"""Rate limits on a Redis master found through Sentinel (`redis.mode: sentinel`).

Every test starts its own processes on free 127.0.0.1 ports (`--save '' --appendonly no`): a
master, one replica (`--replicaof`) and a Sentinel (`redis-server <file> --sentinel`, the file in
the test's tmpdir: `sentinel monitor m 127.0.0.1 PORT 1`, down-after 1s). Covered: two Photon
instances share one limit on the master the Sentinel names (the first listed Sentinel is down,
the second asks for AUTH with a password from the environment that never reaches the logs or
`photon -t`); a failover during traffic, forced with SENTINEL FAILOVER and by killing the
master, is followed without a reload (no request waits past its deadline, only 200 and 429 come
back, the workers survive and got +switch-master on their subscription, and afterwards a fresh
key's burst is decided on the new master); a master the Sentinel still names turned into a
replica (READONLY replies, then ROLE refusing new connections until it is a master again); no
Sentinel answering (or refusing the password, which stays out of the logs) sends every decision
to on_store_error at once; and config errors.
"""

import os
import subprocess
import time

from harness import Conn, free_port, run_photon, timeout, wait_until, write_config
from test_ratelimit import limit
from test_redis_ratelimit import REDIS_SERVER, Redis, RedisTestBase


class Replica(Redis):
    def __init__(self, tmpdir, master_port):
        super().__init__(tmpdir)
        self.master_port = master_port

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--replicaof", "127.0.0.1", str(self.master_port),
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.wait_started()
        return self


class Sentinel(Redis):
    """A Sentinel monitoring master `m` at 127.0.0.1:`master_port`, quorum 1."""

    def __init__(self, tmpdir, master_port, password=None):
        super().__init__(tmpdir, password=password)
        self.master_port = master_port

    def start(self):
        conf = os.path.join(self.dir, "sentinel.conf")  # Sentinel rewrites it: writable
        lines = ["port %d" % self.port, "bind 127.0.0.1", "daemonize no",
                 "dir %s" % self.dir, "logfile %s" % os.path.join(self.dir, "sentinel.log"),
                 "sentinel monitor m 127.0.0.1 %d 1" % self.master_port,
                 "sentinel down-after-milliseconds m 1000",
                 "sentinel failover-timeout m 4000",
                 "sentinel parallel-syncs m 1"]
        if self.password:
            lines.append("requirepass %s" % self.password)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([REDIS_SERVER, conf, "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.wait_started()
        return self

    def master_addr(self):
        r = self.command("SENTINEL", "get-master-addr-by-name", "m")
        return "%s:%s" % (r[0], r[1]) if r else None

    def replica_ready(self):
        reps = self.command("SENTINEL", "REPLICAS", "m") or []
        for rep in reps:
            d = dict(zip(rep[::2], rep[1::2]))
            if d.get("flags") == "slave" and d.get("master-link-status") == "ok":
                return True
        return False


class RedisSentinelTest(RedisTestBase):

    RATE, BURST = 20, 10

    def sentinel_setup(self, password=None):
        master = self.redis()
        replica = Replica(self.tmpdir, master.port).start()
        self.addCleanup(replica.stop)
        wait_until(lambda: "master_link_status:up" in replica.command("INFO", "replication"),
                   timeout=15, msg="the replica never synced")
        sentinel = Sentinel(self.tmpdir, master.port, password=password).start()
        self.addCleanup(sentinel.stop)
        # The Sentinel learns of the replica from the master's INFO (asked every 10s, and at
        # once when it connects).
        wait_until(sentinel.replica_ready, timeout=20,
                   msg="the sentinel never saw the replica")
        return master, replica, sentinel

    def sentinel_block(self, sentinel, **kw):
        d = {"address": None, "mode": "sentinel", "master_name": "m",
             "addresses": ["127.0.0.1:%d" % free_port(),  # nobody listens: the next is asked
                           "127.0.0.1:%d" % sentinel.port]}
        d.update(kw)
        return d

    def masters(self, mport, tries=6):
        """The master the workers answering /health name (several asks reach several
        workers)."""
        return {self.health(mport)["redis"]["master"] for _ in range(tries)}

    @timeout(90)
    def test_two_instances_share_a_limit_on_the_master_the_sentinel_names(self):
        secret = "Sn-%d-plugh" % os.getpid()
        master, replica, sentinel = self.sentinel_setup(password=secret)
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      store="redis", key="route", on_store_error="deny")}
        block = self.sentinel_block(sentinel, sentinel_password="${PHOTON_TEST_SENTINEL_PW}",
                                    command_timeout="3s")
        env = {"PHOTON_TEST_SENTINEL_PW": secret}
        # photon -t shows the block with the secret masked.
        path = write_config(self.tmpdir, self.redis_config(master, lim, block), name="check")
        rc, out, err = run_photon(["-t", "-c", path], env=env)
        self.assertEqual(rc, 0, err)
        self.assertNotIn(secret, out + err)
        rc, out, err = run_photon(["-t", "-c", path, "-l", "debug"], env=env)  # with the dump
        self.assertEqual(rc, 0, err)
        self.assertNotIn(secret, out + err)
        self.assertIn('sentinel_password: "****"', out)
        self.assertIn("mode: sentinel", out)

        self.start_redis_photon(master, lim, block, metrics=True, workers=2, env=env)
        port_a, mport_a = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_a)
        proxy_a = self.proxy
        del self.port
        self.start_redis_photon(master, lim, block, metrics=True, workers=2, env=env)
        port_b, mport_b = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_b)
        for mp in (mport_a, mport_b):
            wait_until(lambda mp=mp: self.masters(mp) == {"127.0.0.1:%d" % master.port},
                       timeout=10, msg="a worker never learnt the master: %r"
                       % (self.health(mp),))
            h = self.health(mp)["redis"]
            self.assertEqual((h["mode"], h["master_name"], h["sentinels"]), ("sentinel", "m", 2))
        conns = [Conn(port_a) for _ in range(3)] + [Conn(port_b) for _ in range(3)]
        load, _ = self.hammer_ports(conns, 2.0)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assert_exact(load, self.RATE, self.BURST)
        self.assertEqual(self.forwarded(), load.ok)
        for mp in (mport_a, mport_b):
            self.assertEqual(self.health(mp)["redis"]["limits"]["default"]["store_errors"], 0)
        keys = master.command("KEYS", "photon:rl:*")
        self.assertEqual(len(keys), 1, keys)
        for p in (proxy_a, self.proxy):
            self.assertNotIn(secret, p.stderr_text())

    def failover_under_traffic(self, how):
        master, replica, sentinel = self.sentinel_setup()
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      store="redis", key="header:X-Key",
                                      on_store_error="deny", max_keys=256)}
        deadline = 0.3
        p = self.start_redis_photon(master, lim, self.sentinel_block(
            sentinel, command_timeout="%dms" % (deadline * 1000), connect_timeout="300ms",
            retry_interval="100ms"), metrics=True, workers=2)
        pids = self.wait_workers(p, 2)
        self.wait_redis_up(p)
        old, new = "127.0.0.1:%d" % master.port, "127.0.0.1:%d" % replica.port
        wait_until(lambda: self.masters(self.mport) == {old}, timeout=10)
        # Before: a key's burst, decided on the first master.
        with Conn(self.port) as c:
            self.assertEqual([c.request("GET", "/api/x", headers=[("X-Key", "before")]).status
                              for _ in range(self.BURST + 1)], [200] * self.BURST + [429])

        marks = {}

        def fail_over():
            marks["at"] = time.monotonic()
            if how == "command":
                self.assertEqual(sentinel.command("SENTINEL", "FAILOVER", "m"), "OK")
            else:
                master.kill()

        conns = [Conn(self.port) for _ in range(4)]
        load, _ = self.hammer_ports(conns, 9.0, at=[(1.0, fail_over)])
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [], "only 200 and 429 may come back")
        slowest = max(b - a for a, b, _ in load.records)
        self.assertLess(slowest, deadline + 0.8, "a request waited %.3fs" % slowest)
        self.assertEqual(sentinel.master_addr(), new)
        # Every worker follows the failover, without a reload.
        wait_until(lambda: self.masters(self.mport, 8) == {new}
                   and self.health()["redis"]["state"] == "up", timeout=15,
                   msg="photon never followed the failover: %r" % (self.health(),))
        self.assertEqual(sorted(self.wait_workers(p, 2)), sorted(pids))
        # The Sentinel's +switch-master reached the workers' subscriptions.
        p.wait_stderr(r"\+switch-master m to 127\.0\.0\.1:%d" % replica.port, timeout=10)
        self.assertTrue(p.alive())
        # After: a fresh key's burst, decided on the new master (with on_store_error: deny, a
        # 200 comes only from a decision; the old master, if alive, is a read-only replica).
        errors_before = self.health()["redis"]["limits"]["default"]["store_errors"]
        with Conn(self.port) as c:
            self.assertEqual([c.request("GET", "/api/x", headers=[("X-Key", "after")]).status
                              for _ in range(self.BURST + 1)], [200] * self.BURST + [429])
        self.assertEqual(self.health()["redis"]["limits"]["default"]["store_errors"],
                         errors_before)
        self.assertEqual(replica.command("INFO", "replication").split("\r\n")[1], "role:master")
        self.assertGreaterEqual(len(replica.command("KEYS", "photon:rl:*")), 2)
        self.assertGreaterEqual(max(self.health()["redis"]["master_changes"]
                                    for _ in range(4)), 1)
        self.assertNotIn("Assertion", p.stderr_text())
        return marks

    @timeout(120)
    def test_sentinel_failover_command_under_traffic_is_followed(self):
        self.failover_under_traffic("command")

    @timeout(120)
    def test_killed_master_under_traffic_is_replaced(self):
        self.failover_under_traffic("kill")

    @timeout(60)
    def test_no_master_known_decides_by_on_store_error_at_once(self):
        # Sentinels that do not answer: decisions do not wait for them.
        lim = {"rate_limiting": limit(requests_per_second=1, burst=1, store="redis",
                                      on_store_error="allow")}
        dead = Redis(self.tmpdir)  # never started
        self.start_redis_photon(dead, lim, {
            "address": None, "mode": "sentinel", "master_name": "m",
            "addresses": ["127.0.0.1:%d" % free_port()]}, metrics=True)
        self.proxy.wait_stderr(r"no Sentinel named master 'm'")
        started = time.monotonic()
        self.assertEqual(self.statuses(3), [200, 200, 200])
        self.assertLess(time.monotonic() - started, 2.0)
        h = self.health()["redis"]
        self.assertEqual((h["state"], h["master"], h["mode"]), ("down", None, "sentinel"), h)
        self.assertGreater(h["limits"]["default"]["store_errors"], 0, h)

    @timeout(60)
    def test_demoted_master_is_left_on_readonly_and_role(self):
        # The master the Sentinel still names becomes a replica (of a server nobody monitors):
        # decisions get READONLY, the connections are replaced, and ROLE keeps new ones from
        # being used until it is a master again.
        master = self.redis()
        sentinel = Sentinel(self.tmpdir, master.port).start()
        self.addCleanup(sentinel.stop)
        wait_until(lambda: sentinel.master_addr() == "127.0.0.1:%d" % master.port, timeout=10)
        lim = {"rate_limiting": limit(requests_per_second=1, burst=3, store="redis",
                                      key="header:X-Key", on_store_error="deny")}
        self.start_redis_photon(master, lim, {
            "address": None, "mode": "sentinel", "master_name": "m",
            "addresses": ["127.0.0.1:%d" % sentinel.port], "command_timeout": "300ms",
            "connect_timeout": "300ms", "retry_interval": "100ms"}, metrics=True)
        self.wait_redis_up(self.proxy)

        def burst(key):
            with Conn(self.port) as c:
                return [c.request("GET", "/api/x", headers=[("X-Key", key)]).status
                        for _ in range(4)]
        self.assertEqual(burst("one"), [200, 200, 200, 429])
        other = self.redis()
        self.assertEqual(master.command("REPLICAOF", "127.0.0.1", other.port), "OK")
        started = time.monotonic()
        self.assertEqual(burst("two"), [429] * 4)  # on_store_error: deny
        self.assertLess(time.monotonic() - started, 3.0)
        self.proxy.wait_stderr(r"READONLY")
        wait_until(lambda: self.health()["redis"]["state"] == "down", timeout=10,
                   msg="a connection to the replica passed for a master: %r" % (self.health(),))
        time.sleep(0.5)  # reconnections meanwhile are refused by ROLE
        self.assertEqual(self.health()["redis"]["state"], "down")
        self.assertEqual(master.command("REPLICAOF", "NO", "ONE"), "OK")
        self.wait_redis_up(self.proxy)
        self.assertEqual(burst("three"), [200, 200, 200, 429])
        # With on_store_error: deny, those 200s were decided by Redis: the master again.
        self.assertGreaterEqual(master.command("DBSIZE"), 1)
        self.assertTrue(self.proxy.alive())

    @timeout(60)
    def test_wrong_sentinel_password_is_logged_without_it(self):
        master = self.redis()
        sentinel = Sentinel(self.tmpdir, master.port, password="right-one").start()
        self.addCleanup(sentinel.stop)
        wrong = "wrong-%d-sentinel" % os.getpid()
        lim = {"rate_limiting": limit(requests_per_second=1, burst=2, store="redis",
                                      on_store_error="deny")}
        self.start_redis_photon(master, lim, {
            "address": None, "mode": "sentinel", "master_name": "m",
            "addresses": ["127.0.0.1:%d" % sentinel.port],
            "sentinel_password": "${PHOTON_TEST_SENTINEL_PW}"}, metrics=True,
            env={"PHOTON_TEST_SENTINEL_PW": wrong})
        self.proxy.wait_stderr(r"no Sentinel named master 'm' \(.*AUTH refused")
        self.assertEqual(self.statuses(2), [429, 429])
        h = self.health()["redis"]
        self.assertEqual((h["state"], h["master"]), ("down", None), h)
        self.assertGreater(h["failures"], 0, h)
        self.assertNotIn(wrong, self.proxy.stderr_text())
        self.assertEqual(master.command("DBSIZE"), 0)


class SentinelConfigCheckTest(RedisTestBase):

    def check(self, cfg, env=None):
        path = write_config(self.tmpdir, cfg, name="check")
        return run_photon(["-t", "-c", path], env=env)

    def test_sentinel_mode_needs_a_master_name(self):
        cfg = self.config({"rate_limiting": limit(store="redis")})
        cfg["redis"] = {"addresses": ["127.0.0.1:26379", "127.0.0.1:26380"], "mode": "sentinel"}
        rc, out, err = self.check(cfg)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("redis.master_name: mode sentinel needs master_name", err)

    def test_sentinel_keys_outside_sentinel_mode_are_errors(self):
        cfg = self.config({"rate_limiting": limit(store="redis")})
        cfg["redis"] = {"address": "127.0.0.1:6379", "master_name": "m",
                        "sentinel_password": "x"}
        rc, out, err = self.check(cfg)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("redis.master_name: is read in mode sentinel only", err)
        self.assertIn("redis.sentinel_password: is read in mode sentinel only", err)

    def test_valid_sentinel_config_passes(self):
        cfg = self.config({"rate_limiting": limit(store="redis")})
        cfg["redis"] = {"addresses": ["127.0.0.1:26379"], "mode": "sentinel",
                        "master_name": "gw-master", "sentinel_username": "watcher",
                        "sentinel_password": "${PHOTON_TEST_SENTINEL_PW}"}
        rc, out, err = self.check(cfg, env={"PHOTON_TEST_SENTINEL_PW": "hunter2-sentinel"})
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("hunter2-sentinel", out + err)
