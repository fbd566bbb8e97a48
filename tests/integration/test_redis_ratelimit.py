# SPDX-License-Identifier: Apache-2.0
"""Rate limits kept in Redis (`store: redis`, the top-level `redis` block).

Every test starts its own redis-server (Debian's, `--save '' --appendonly no`) on a free
127.0.0.1 port and stops it afterwards. Covered: two Photon instances sharing one Redis admit
burst + rate x t (+-1) between them; the client sees the same fields with store: redis as with
store: local; Redis killed and restarted under load with on_store_error allow, deny and local
(no request waits past command_timeout, nothing else than 200/429, recovery without a reload,
the failures counted in /health); a stopped (SIGSTOP) Redis; SCRIPT FLUSH (NOSCRIPT reloads
the script); AUTH with a password from the environment that never reaches the logs or
`photon -t`; sync: batched (within the exact bounds, with a fraction of the round trips); a
worker killed under load and a reload to another Redis server; and config errors. Redis
Cluster is in test_redis_cluster.py, Sentinel in test_redis_sentinel.py.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (Conn, free_port, http_request, run_photon, timeout,
                     wait_until, write_config)
from test_ratelimit import Load, RateLimitBase, limit

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise ValueError("bad reply %r" % line)


class Redis:
    """One redis-server process on 127.0.0.1:`port`; restartable on the same port."""

    def __init__(self, tmpdir, port=None, password=None):
        self.port = port or free_port()
        self.password = password
        self.dir = os.path.join(tmpdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.wait_started()
        return self

    def wait_started(self):
        def up():
            if self.proc.poll() is not None:
                log = os.path.join(self.dir, "redis.log")
                tail = open(log).read()[-2000:] if os.path.exists(log) else ""
                raise AssertionError("redis-server on port %d exited (%s):\n%s"
                                     % (self.port, self.proc.returncode, tail))
            return self._pong()
        wait_until(up, timeout=10, msg="redis-server never answered PING")

    def _pong(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def command(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(resp("AUTH", self.password))
                _read_reply(f)
            s.sendall(resp(*args))
            r = _read_reply(f)
            if isinstance(r, RuntimeError):
                raise r
            return r

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


class RedisTestBase(RateLimitBase):
    def redis(self, **kw):
        if not os.path.exists(REDIS_SERVER):
            self.fail("redis-server is not installed (contrib/install-deps.sh installs it)")
        r = Redis(self.tmpdir, **kw).start()
        self.addCleanup(r.stop)
        return r

    def redis_block(self, r, **kw):
        d = {"address": "127.0.0.1:%d" % r.port, "command_timeout": "200ms",
             "connect_timeout": "300ms", "retry_interval": "100ms", "pool_size": 2}
        d.update(kw)
        return {k: v for k, v in d.items() if v is not None}

    def redis_config(self, r, limits, redis_kw=None, metrics_port=None, **kw):
        cfg = self.config(limits, **kw)
        cfg["redis"] = self.redis_block(r, **(redis_kw or {}))
        if metrics_port is not None:
            cfg["metrics"] = {"prometheus": True, "detailed_metrics": False,
                              "metrics_addr": "127.0.0.1:%d" % metrics_port}
        return cfg

    def start_redis_photon(self, r, limits, redis_kw=None, metrics=False, env=None, **kw):
        self.pid_name = "photon%d.pid" % len(self._photons)
        self.mport = free_port() if metrics else None
        cfg = self.redis_config(r, limits, redis_kw, self.mport, **kw)
        self.proxy_pid_file = cfg["server"]["pid_file"]
        p = self.photon(cfg, env=env)
        self.addCleanup(self.stop_quietly, p)
        self.proxy = p
        return p

    def health(self, mport=None):
        r = http_request(mport or self.mport, "GET", "/health")
        return json.loads(r.text)

    def wait_redis_up(self, p, mport=None):
        """Waits until photon's workers have their Redis connections (a request answered by
        Redis leaves a key behind)."""
        wait_until(lambda: self.health(mport).get("redis", {}).get("state") == "up",
                   timeout=10, msg="photon never connected to redis")

    def hammer_ports(self, conns, seconds, path="/api/x", at=()):
        """Like RateLimitBase.hammer over connections to any port; `at` is a list of (delay,
        fn) run from the main thread. Each failed connection is replaced (same port)."""
        records, errors = [], []
        lock = threading.Lock()
        go = threading.Barrier(len(conns) + 1)
        stop = [None]

        def run(c):
            mine = []
            port = c.port
            try:
                go.wait(10)
                while time.monotonic() < stop[0]:
                    sent = time.monotonic()
                    try:
                        r = c.request("GET", path)
                    except Exception as e:  # noqa: BLE001 - reported by the caller
                        with lock:
                            errors.append(repr(e))
                        c.close()
                        c = Conn(port)
                        continue
                    mine.append((sent, time.monotonic(), r.status))
                    if not r.keep_alive:
                        c.close()
                        c = Conn(port)
            finally:
                with lock:
                    records.extend(mine)
                c.close()

        threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in conns]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        stop[0] = t0 + seconds
        go.wait(10)
        for delay, fn in at:
            left = t0 + delay - time.monotonic()
            if left > 0:
                time.sleep(left)
            fn()
        for t in threads:
            t.join(seconds + 15)
        self.assertFalse(any(t.is_alive() for t in threads), "a load thread hung")
        return Load(records, errors), t0


class SharedAcrossInstancesTest(RedisTestBase):
    """Two Photon instances, two workers each, one Redis: one limit between them."""

    RATE, BURST = 20, 10

    @timeout(60)
    def test_two_instances_admit_burst_plus_rate_times_t(self):
        r = self.redis()
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      store="redis", key="route")}
        # A generous deadline: this checks exactness, not the fallback (a loaded test machine
        # may stall a reply past the default).
        slow_ok = {"command_timeout": "3s"}
        self.start_redis_photon(r, lim, slow_ok, metrics=True, workers=2)
        port_a, mport_a = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_a)
        del self.port  # a second listener for the second instance
        self.start_redis_photon(r, lim, slow_ok, metrics=True, workers=2)
        port_b, mport_b = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_b)
        conns = [Conn(port_a) for _ in range(3)] + [Conn(port_b) for _ in range(3)]
        load, _ = self.hammer_ports(conns, 2.0)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assert_exact(load, self.RATE, self.BURST)
        # Each instance alone would admit about as many: the limit is not per instance.
        self.assertLess(load.ok, 1.5 * (self.BURST + self.RATE * 2.0), load)
        self.assertEqual(self.forwarded(), load.ok)
        # Both instances decided through Redis (no fallback) and the key lives there.
        for mp in (mport_a, mport_b):
            h = self.health(mp)["redis"]
            self.assertEqual(h["limits"]["default"]["store_errors"], 0, h)
        keys = r.command("KEYS", "photon:rl:*")
        self.assertEqual(len(keys), 1, keys)
        self.assertRegex(keys[0], r"^photon:rl:\{[0-9a-f]{16}\}$")
        self.assertGreater(r.command("PTTL", keys[0]), 0)


class BatchedTest(RedisTestBase):
    """sync: batched — leases of rate x batch_interval tokens per round trip, refusals held
    locally until their retry time: never more than the exact limit, at most the unused rest of
    expired leases fewer, with far fewer round trips."""

    RATE, BURST = 50, 20
    INTERVAL = 0.1   # lease = ceil(50 x 0.1) = 5 tokens

    @timeout(60)
    def test_two_instances_batched_stay_within_the_limit_with_fewer_round_trips(self):
        r = self.redis()
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      store="redis", key="route", sync="batched",
                                      batch_interval="100ms", headers=True)}
        slow_ok = {"command_timeout": "3s"}
        self.start_redis_photon(r, lim, slow_ok, metrics=True, workers=2)
        port_a, mport_a = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_a)
        del self.port
        self.start_redis_photon(r, lim, slow_ok, metrics=True, workers=2)
        port_b, mport_b = self.port, self.mport
        self.wait_redis_up(self.proxy, mport_b)
        r.command("CONFIG", "RESETSTAT")
        conns = [Conn(port_a) for _ in range(3)] + [Conn(port_b) for _ in range(3)]
        load, _ = self.hammer_ports(conns, 2.0)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assertGreater(load.refused, load.ok, load)
        lo, hi = load.bounds(self.RATE, self.BURST)
        span = max(b for _, b, _ in load.records) - min(a for a, _, _ in load.records)
        workers, lease = 4, 5
        # Never more than exact; fewer by at most the rest of every worker's expired leases.
        waste = workers * (lease - 1) * (span / self.INTERVAL + 1)
        msg = "admitted %d, exact %.1f..%.1f, waste bound %.0f: %r" % (load.ok, lo, hi, waste,
                                                                      load)
        self.assertLessEqual(load.ok, hi, msg)
        self.assertGreaterEqual(load.ok, lo - waste, msg)
        self.assertEqual(self.forwarded(), load.ok)
        stats = r.command("INFO", "commandstats")
        calls = sum(int(part.split("=")[1]) for line in stats.split("\r\n")
                    if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:"))
                    for part in line.split(":", 1)[1].split(",") if part.startswith("calls="))
        total = load.ok + load.refused
        self.assertLess(calls, total / 4, "%d round trips for %d requests" % (calls, total))
        for mp in (mport_a, mport_b):
            self.assertEqual(self.health(mp)["redis"]["limits"]["default"]["store_errors"], 0)


class SameFieldsAsLocalTest(RedisTestBase):
    """Switching store changes nothing the client sees."""

    FIELDS = ("ratelimit-policy", "ratelimit", "retry-after", "x-ratelimit-limit",
              "x-ratelimit-remaining", "x-ratelimit-reset")

    def sequence(self, port, n):
        out = []
        with Conn(port) as c:
            for _ in range(n):
                resp_ = c.request("GET", "/api/x")
                body = resp_.json() if resp_.status == 429 else None
                if body:
                    body.pop("request_id", None)
                out.append((resp_.status, body,
                            [(f, resp_.headers.get_all(f)) for f in self.FIELDS]))
        return out

    @timeout(60)
    def test_store_redis_and_store_local_answer_alike(self):
        r = self.redis()
        common = dict(requests_per_second=1, burst=3, headers=True, legacy_headers=True)
        self.start(self.config({"rate_limiting": limit(**common)}))
        local = self.sequence(self.port, 5)
        del self.port
        self.start_redis_photon(r, {"rate_limiting": limit(store="redis", **common)},
                                {"command_timeout": "3s"}, metrics=True)
        self.wait_redis_up(self.proxy)
        remote = self.sequence(self.port, 5)
        self.assertEqual([s for s, _, _ in local], [200, 200, 200, 429, 429])
        self.assertEqual(local, remote)
        self.assertEqual(self.health()["redis"]["limits"]["default"]["store_errors"], 0)

    def start(self, cfg):
        self.pid_name = "photon%d.pid" % len(self._photons)
        p = self.photon(cfg)
        self.addCleanup(self.stop_quietly, p)
        return p


class StoreFailureTest(RedisTestBase):
    """Redis killed and restarted under load, in each on_store_error mode."""

    RATE, BURST = 50, 20
    TIMEOUT = 0.2   # command_timeout

    def outage(self, mode):
        r = self.redis()
        self.start_redis_photon(
            r, {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                       store="redis", on_store_error=mode, instances=2,
                                       key="route")},
            metrics=True, workers=2)
        self.wait_redis_up(self.proxy)
        conns = [Conn(self.port) for _ in range(4)]
        marks = {}

        def kill():
            marks["down"] = time.monotonic()
            r.kill()

        def restart():
            marks["restart"] = time.monotonic()
            r.start()

        load, t0 = self.hammer_ports(conns, 3.5, at=[(0.8, kill), (2.0, restart)])
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [], "only 200 and 429 may come back")
        # No request waited much past command_timeout (connect failures answer at once).
        slowest = max(b - a for a, b, _ in load.records)
        self.assertLess(slowest, self.TIMEOUT + 0.8, "a request waited %.3fs" % slowest)
        # During the outage (from a little after the kill until the restart), the mode decides.
        during = [s for a, _, s in load.records
                  if marks["down"] + 0.3 < a < marks["restart"] - 0.05]
        self.assertGreater(len(during), 20, load)
        if mode == "allow":
            self.assertEqual(set(during), {200})
        elif mode == "deny":
            self.assertEqual(set(during), {429})
        else:
            # The local share: rate/2 and burst/2 on this machine.
            ok = during.count(200)
            span = marks["restart"] - marks["down"]
            self.assertGreater(ok, 0)
            self.assertLessEqual(ok, self.BURST / 2 + self.RATE / 2 * span + 1)
            self.assertIn(429, during)
        # Recovery without a reload: the workers reconnect, Redis decides again (its fresh
        # key), and /health shows the failures.
        wait_until(lambda: self.health()["redis"]["state"] == "up", timeout=10,
                   msg="photon never reconnected to redis")
        h = self.health()["redis"]
        self.assertGreater(h["failures"] + h["limits"]["default"]["store_errors"], 0, h)
        self.assertGreater(h["limits"]["default"]["store_errors"], 0, h)

        def decided_by_redis():
            errors_before = self.health()["redis"]["limits"]["default"]["store_errors"]
            http_request(self.port, "GET", "/api/x")
            return (r.command("DBSIZE") >= 1 and
                    self.health()["redis"]["limits"]["default"]["store_errors"] ==
                    errors_before)
        wait_until(decided_by_redis, timeout=10, msg="redis never decided again")
        self.assertTrue(self.proxy.alive())
        self.assertEqual(len(self.proxy.worker_pids()) >= 2, True)
        self.assertNotIn("Assertion", self.proxy.stderr_text())
        return load

    @timeout(90)
    def test_kill_and_restart_with_on_store_error_allow(self):
        self.outage("allow")

    @timeout(90)
    def test_kill_and_restart_with_on_store_error_deny(self):
        self.outage("deny")

    @timeout(90)
    def test_kill_and_restart_with_on_store_error_local(self):
        self.outage("local")
        self.assertRegex(self.proxy.stderr_text(), r"Redis did not decide .*on_store_error: "
                                                   r"local")

    @timeout(60)
    def test_stopped_redis_never_holds_a_request_past_the_deadline(self):
        r = self.redis()
        self.start_redis_photon(
            r, {"rate_limiting": limit(requests_per_second=1000, burst=1000, store="redis",
                                       on_store_error="allow")},
            metrics=True, workers=1)
        self.wait_redis_up(self.proxy)
        conns = [Conn(self.port) for _ in range(3)]
        load, _ = self.hammer_ports(conns, 2.5, at=[(0.5, lambda: r.signal(signal.SIGSTOP)),
                                                    (1.5, lambda: r.signal(signal.SIGCONT))])
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        slowest = max(b - a for a, b, _ in load.records)
        self.assertLess(slowest, self.TIMEOUT + 0.8, "a request waited %.3fs" % slowest)
        self.assertGreater(self.health()["redis"]["limits"]["default"]["store_errors"], 0)
        wait_until(lambda: self.health()["redis"]["state"] == "up", timeout=10)


class ScriptAndAuthTest(RedisTestBase):

    @timeout(60)
    def test_script_flush_is_recovered_with_eval(self):
        r = self.redis()
        self.start_redis_photon(r, {"rate_limiting": limit(requests_per_second=1, burst=3,
                                                           store="redis")},
                                {"command_timeout": "3s"}, metrics=True)
        self.wait_redis_up(self.proxy)
        self.assertEqual(self.statuses(2), [200, 200])
        self.assertEqual(r.command("SCRIPT", "FLUSH"), "OK")
        # The bucket in Redis carries on: one left, then refused; nothing fell back.
        self.assertEqual(self.statuses(2), [200, 429])
        self.assertEqual(self.health()["redis"]["limits"]["default"]["store_errors"], 0)

    @timeout(60)
    def test_password_from_environment_works_and_stays_secret(self):
        secret = "Pw-%d-xyzzy" % os.getpid()
        r = self.redis(password=secret)
        lim = {"rate_limiting": limit(requests_per_second=1, burst=2, store="redis",
                                      on_store_error="deny")}
        cfg = self.redis_config(r, lim, {"password": "${PHOTON_TEST_REDIS_PW}"})
        path = write_config(self.tmpdir, cfg, name="auth")
        env = {"PHOTON_TEST_REDIS_PW": secret}
        rc, out, err = run_photon(["-t", "-c", path], env=env)
        self.assertEqual(rc, 0, err)
        self.assertNotIn(secret, out + err)
        self.start_redis_photon(r, lim, {"password": "${PHOTON_TEST_REDIS_PW}",
                                         "command_timeout": "3s"}, metrics=True, env=env)
        self.wait_redis_up(self.proxy)
        self.assertEqual(self.statuses(3), [200, 200, 429])
        self.assertEqual(self.health()["redis"]["limits"]["default"]["store_errors"], 0)
        self.assertNotIn(secret, self.proxy.stderr_text())

    @timeout(60)
    def test_wrong_password_is_a_store_error_and_logged_without_it(self):
        r = self.redis(password="right-one")
        wrong = "wrong-%d" % os.getpid()
        self.start_redis_photon(r, {"rate_limiting": limit(requests_per_second=1, burst=2,
                                                           store="redis",
                                                           on_store_error="deny")},
                                {"password": wrong}, metrics=True)
        self.proxy.wait_stderr(r"AUTH refused")
        self.assertEqual(self.statuses(2), [429, 429])
        h = self.health()["redis"]
        self.assertEqual(h["state"], "down", h)
        self.assertGreater(h["limits"]["default"]["store_errors"], 0)
        self.assertNotIn(wrong, self.proxy.stderr_text())


class ProcessEventsTest(RedisTestBase):
    """A worker killed under load and a reload to another Redis server."""

    RATE, BURST = 20, 10

    @timeout(90)
    def test_killed_worker_and_reload_to_another_server(self):
        r1 = self.redis()
        lim = {"rate_limiting": limit(requests_per_second=self.RATE, burst=self.BURST,
                                      store="redis", key="route")}
        slow_ok = {"command_timeout": "3s"}
        p = self.start_redis_photon(r1, lim, slow_ok, metrics=True, workers=2)
        pids = self.wait_workers(p, 2)
        self.wait_redis_up(p)
        victim = pids[0]
        conns, _ = self.open_conns(6, pids, need=[victim])
        killed = []

        def kill():
            os.kill(victim, signal.SIGKILL)
            killed.append(time.monotonic())

        load = self.hammer(conns, 1.2, at=(0.5, kill), reconnect=True)
        self.assertTrue(killed)
        self.assertEqual(load.other, [])
        lo, hi = load.bounds(self.RATE, self.BURST)
        self.assertLessEqual(load.ok, hi, (lo, hi, load))
        now = self.wait_workers(p, 2, old=[victim])
        # The new worker connects on its own; the limit holds with it deciding too.
        wait_until(lambda: all(self.health().get("redis", {}).get("state") == "up"
                               for _ in range(4)), timeout=10)
        time.sleep(self.BURST / self.RATE + 0.2)
        self.b.reset_stats()
        conns, _ = self.open_conns(6, now, min_workers=2)
        load = self.hammer(conns, 1.2)
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [])
        self.assert_exact(load, self.RATE, self.BURST)
        self.assertEqual(self.forwarded(), load.ok)
        for c in conns:
            c.close()
        # A reload to a second server: the new workers use it, the first sees nothing more.
        r2 = self.redis()
        keys_before = r1.command("DBSIZE")
        cfg = self.redis_config(r2, lim, slow_ok, self.mport, workers=2)
        cfg["server"]["pid_file"] = self.proxy_pid_file  # the same instance, reloaded
        self.reload(p, cfg, 2)
        self.wait_redis_up(p)
        self.assertEqual(self.statuses(3), [200, 200, 200])
        self.assertEqual(r2.command("DBSIZE"), 1)
        self.assertEqual(r1.command("DBSIZE"), keys_before)
        self.assertEqual(self.health()["redis"]["address"], "127.0.0.1:%d" % r2.port)


class ConfigCheckTest(RedisTestBase):

    def check(self, cfg):
        path = write_config(self.tmpdir, cfg, name="check")
        return run_photon(["-t", "-c", path])

    def test_store_redis_needs_the_redis_block(self):
        cfg = self.config({"rate_limiting": limit(store="redis")})
        rc, out, err = self.check(cfg)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("middleware.rate_limiting.store: store: redis needs the top-level redis "
                      "block", err)

    def test_sentinel_without_master_name_and_unknown_sync_are_refused(self):
        cfg = self.config({"rate_limiting": limit(store="redis", sync="eventually")})
        cfg["redis"] = {"addresses": ["127.0.0.1:7000", "127.0.0.1:7001"], "mode": "sentinel"}
        rc, out, err = self.check(cfg)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("redis.master_name: mode sentinel needs master_name", err)
        self.assertIn("middleware.rate_limiting.sync: unknown value 'eventually' (expected exact "
                      "or batched)", err)

    def test_valid_config_passes(self):
        cfg = self.config({"rate_limiting": limit(store="redis", on_store_error="local",
                                                  instances=3)})
        cfg["redis"] = {"address": "127.0.0.1:6379", "key_prefix": "gw:"}
        rc, out, err = self.check(cfg)
        self.assertEqual(rc, 0, out + err)
