# SPDX-License-Identifier: Apache-2.0
"""Rate limits kept in Redis over TLS (`redis.tls`).

Every test starts its own redis-server with TLS only (`--port 0 --tls-port P`, Debian's 7.0),
with certificates made by the openssl command-line tool at test time (pki.py), on free
127.0.0.1 ports. Covered: exact limits over TLS, the server's certificate checked against its
IP address by default and against sni_hostname when given, `photon -t` showing paths and never
a key; a wrong CA and a name that does not match are store errors (on_store_error decides) with
a log line saying why, and no connection comes up; mutual TLS (`--tls-auth-clients yes`) with a
client certificate, and without one refused; Redis killed and restarted on its port under load
over TLS (no request waits past its deadline, recovery without a reload); a Sentinel and its
master both over TLS; a Redis Cluster over TLS (its bus too); a reload from a plain server to a TLS one, and a reload with a CA file
that does not load refused while the running configuration keeps serving; and certificate files
that cannot be loaded are config errors.
"""

import os
import signal
import socket
import ssl
import subprocess
import time

from harness import Conn, free_port, http_request, run_photon, timeout, wait_until, write_config
from pki import Pki
from test_ratelimit import limit
from test_redis_ratelimit import REDIS_SERVER, Redis, RedisTestBase, _read_reply, resp


class TlsRedis(Redis):
    """A redis-server listening with TLS only on 127.0.0.1:`port`."""

    def __init__(self, tmpdir, pki, cert, key, auth_clients=False, client=None, extra=()):
        super().__init__(tmpdir)
        self.pki, self.cert, self.key = pki, cert, key
        self.auth_clients = auth_clients
        self.client = client  # (cert, key) this test's own commands present, when needed
        self.extra = list(extra)

    def args(self):
        return [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", self.cert, "--tls-key-file", self.key,
                "--tls-ca-cert-file", self.pki.ca,
                "--tls-auth-clients", "yes" if self.auth_clients else "no",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")] + self.extra

    def start(self):
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.wait_started()
        return self

    def command(self, *args):
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        ctx.check_hostname = False  # the chain is what matters to this test's own client
        if self.client:
            ctx.load_cert_chain(*self.client)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                f = s.makefile("rb")
                s.sendall(resp(*args))
                r = _read_reply(f)
                if isinstance(r, RuntimeError):
                    raise r
                return r


class RedisTlsTest(RedisTestBase):

    def setUp(self):
        super().setUp()
        if not os.path.exists(REDIS_SERVER):
            self.fail("redis-server is not installed (contrib/install-deps.sh installs it)")
        self.pki = Pki(os.path.join(self.tmpdir, "pki"))
        # By default the certificate must carry the address connected to.
        self.server_cert = self.pki.issue("redis", "redis", ips=("127.0.0.1",))

    def tls_redis(self, cert=None, **kw):
        c, k = cert or self.server_cert
        r = TlsRedis(self.tmpdir, self.pki, c, k, **kw).start()
        self.addCleanup(r.stop)
        return r

    def lim(self, **kw):
        d = dict(requests_per_second=1, burst=3, store="redis", on_store_error="deny")
        d.update(kw)
        return {"rate_limiting": limit(**d)}

    def errors(self):
        return self.health()["redis"]["limits"]["default"]["store_errors"]

    @timeout(60)
    def test_exact_limits_over_tls_verified_by_address_and_by_sni_hostname(self):
        r = self.tls_redis()
        block = {"tls": {"ca_file": self.pki.ca}, "command_timeout": "3s"}
        # photon -t shows the block (paths only).
        cfg = self.redis_config(r, self.lim(), block)
        rc, out, err = run_photon(["-t", "-c", write_config(self.tmpdir, cfg, name="check"),
                                   "-l", "debug"])  # with the dump
        self.assertEqual(rc, 0, out + err)
        self.assertIn("ca_file: \"%s\"" % self.pki.ca, out)
        self.assertIn("tls_verify: true", out)
        self.start_redis_photon(r, self.lim(), block, metrics=True, workers=2)
        self.wait_redis_up(self.proxy)
        self.assertEqual(self.statuses(5), [200, 200, 200, 429, 429])
        self.assertEqual(self.errors(), 0)
        # The bucket is in this Redis (reached only over TLS: its plain port is off).
        keys = r.command("KEYS", "photon:rl:*")
        self.assertEqual(len(keys), 1, keys)
        clients = r.command("CLIENT", "LIST")
        self.assertGreaterEqual(clients.count("\n"), 4, clients)  # 2 workers x pool_size 2

        # A certificate for a DNS name only: sni_hostname names what to check (and is sent).
        named = self.tls_redis(cert=self.pki.issue("named", "redis.test", dns=("redis.test",)))
        del self.port
        self.start_redis_photon(named, self.lim(),
                                {"tls": {"ca_file": self.pki.ca, "sni_hostname": "redis.test"},
                                 "command_timeout": "3s"}, metrics=True)
        self.wait_redis_up(self.proxy)
        self.assertEqual(self.statuses(4), [200, 200, 200, 429])
        self.assertEqual(self.errors(), 0)
        self.assertEqual(named.command("DBSIZE"), 1)

    @timeout(60)
    def test_wrong_ca_or_name_is_a_store_error_with_a_clear_log_line(self):
        r = self.tls_redis()
        other = Pki(os.path.join(self.tmpdir, "other-pki"), name="Some Other CA")
        self.start_redis_photon(r, self.lim(burst=10), {"tls": {"ca_file": other.ca}},
                                metrics=True)
        self.proxy.wait_stderr(r"redis 127\.0\.0\.1:%d: TLS handshake failed: certificate "
                               r"verification failed: .*(unable to get local issuer|"
                               r"self.signed)" % r.port)
        # on_store_error: deny decides, though the limit has room: Redis was never reached.
        self.assertEqual(self.statuses(3), [429, 429, 429])
        h = self.health()["redis"]
        self.assertEqual(h["state"], "down", h)
        self.assertEqual(h["connections"], 0, h)
        self.assertGreater(h["limits"]["default"]["store_errors"], 0, h)
        self.assertGreater(h["failures"], 0, h)
        self.assertEqual(r.command("DBSIZE"), 0)
        self.assertRegex(self.proxy.stderr_text(), r"Redis did not decide \(not connected\); "
                                                   r"refusing \(on_store_error: deny\)")

        # The right CA, but a certificate for another name and no sni_hostname: the address
        # is checked, and it is not in the certificate.
        elsewhere = self.tls_redis(cert=self.pki.issue("else", "x", dns=("elsewhere.test",)))
        del self.port
        self.start_redis_photon(elsewhere, self.lim(burst=10), {"tls": {"ca_file": self.pki.ca}},
                                metrics=True)
        self.proxy.wait_stderr(r"TLS handshake failed: certificate verification failed: "
                               r"IP address mismatch")
        self.assertEqual(self.statuses(2), [429, 429])
        self.assertEqual(elsewhere.command("DBSIZE"), 0)

    @timeout(60)
    def test_mutual_tls_with_a_client_certificate_and_refused_without(self):
        client = self.pki.issue("photon-client", "photon", client=True)
        r = self.tls_redis(auth_clients=True, client=client)
        cert, key = client
        self.start_redis_photon(r, self.lim(),
                                {"tls": {"ca_file": self.pki.ca, "tls_cert": cert,
                                         "tls_key": key},
                                 "command_timeout": "3s"}, metrics=True)
        self.wait_redis_up(self.proxy)
        self.assertEqual(self.statuses(4), [200, 200, 200, 429])
        self.assertEqual(self.errors(), 0)
        self.assertEqual(r.command("DBSIZE"), 1)
        # photon -t names the key file, never its contents.
        cfg = self.redis_config(r, self.lim(), {"tls": {"ca_file": self.pki.ca,
                                                        "tls_cert": cert, "tls_key": key}})
        rc, out, err = run_photon(["-t", "-c", write_config(self.tmpdir, cfg, name="mtls"),
                                   "-l", "debug"])
        self.assertEqual(rc, 0, out + err)
        self.assertIn(key, out)
        with open(key) as f:
            body = [ln for ln in f.read().splitlines() if ln and not ln.startswith("-----")]
        for line in body:
            self.assertNotIn(line, out + err)
            self.assertNotIn(line, self.proxy.stderr_text())

        # Without a client certificate the server refuses: store errors, and the log says so.
        del self.port
        self.start_redis_photon(r, self.lim(burst=10), {"tls": {"ca_file": self.pki.ca}},
                                metrics=True)
        self.proxy.wait_stderr(r"redis 127\.0\.0\.1:%d: (connection lost: TLS: .*certificate "
                               r"required|TLS session ended before any reply \(.*\): the server "
                               r"may want a client certificate)" % r.port)
        self.assertEqual(self.statuses(2), [429, 429])
        self.assertEqual(self.health()["redis"]["state"], "down")

    @timeout(90)
    def test_redis_restarted_under_load_over_tls(self):
        rate, burst, deadline = 50, 20, 0.2
        r = self.tls_redis()
        self.start_redis_photon(
            r, {"rate_limiting": limit(requests_per_second=rate, burst=burst, store="redis",
                                       on_store_error="deny", key="route")},
            {"tls": {"ca_file": self.pki.ca}}, metrics=True, workers=2)
        self.wait_redis_up(self.proxy)
        conns = [Conn(self.port) for _ in range(4)]
        marks = {}

        def kill():
            marks["down"] = time.monotonic()
            r.kill()

        def restart():
            marks["restart"] = time.monotonic()
            r.start()

        load, _ = self.hammer_ports(conns, 3.5, at=[(0.8, kill), (2.0, restart)])
        self.assertEqual(load.errors, [])
        self.assertEqual(load.other, [], "only 200 and 429 may come back")
        slowest = max(b - a for a, b, _ in load.records)
        self.assertLess(slowest, deadline + 0.8, "a request waited %.3fs" % slowest)
        during = [s for a, _, s in load.records
                  if marks["down"] + 0.3 < a < marks["restart"] - 0.05]
        self.assertGreater(len(during), 20, load)
        self.assertEqual(set(during), {429})
        before = [s for a, _, s in load.records if a < marks["down"]]
        self.assertIn(200, before)
        # Recovery without a reload: new TLS connections, and Redis decides again.
        wait_until(lambda: self.health()["redis"]["state"] == "up", timeout=10,
                   msg="photon never reconnected to redis over TLS")

        def decided_by_redis():
            errors_before = self.errors()
            st = http_request(self.port, "GET", "/api/x").status
            return st == 200 and r.command("DBSIZE") >= 1 and self.errors() == errors_before
        wait_until(decided_by_redis, timeout=10, msg="redis never decided again")
        self.assertGreater(self.errors(), 0)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(len(self.proxy.worker_pids()), 2)
        self.assertNotIn("Assertion", self.proxy.stderr_text())

    @timeout(90)
    def test_sentinel_and_master_over_tls(self):
        from test_redis_sentinel import Sentinel
        master = self.tls_redis()

        class TlsSentinel(Sentinel):
            def __init__(s, tmpdir, master_port, pki, cert, key):
                Sentinel.__init__(s, tmpdir, master_port)
                s.pki, s.cert, s.key, s.client = pki, cert, key, None

            command = TlsRedis.command

            def start(s):
                conf = os.path.join(s.dir, "sentinel.conf")
                lines = ["port 0", "tls-port %d" % s.port, "bind 127.0.0.1", "daemonize no",
                         "dir %s" % s.dir, "logfile %s" % os.path.join(s.dir, "sentinel.log"),
                         "tls-cert-file %s" % s.cert, "tls-key-file %s" % s.key,
                         "tls-ca-cert-file %s" % s.pki.ca, "tls-auth-clients no",
                         "tls-replication yes",
                         "sentinel monitor m 127.0.0.1 %d 1" % s.master_port,
                         "sentinel down-after-milliseconds m 1000"]
                with open(conf, "w") as f:
                    f.write("\n".join(lines) + "\n")
                s.proc = subprocess.Popen([REDIS_SERVER, conf, "--sentinel"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
                s.wait_started()
                return s

        c, k = self.server_cert
        sentinel = TlsSentinel(self.tmpdir, master.port, self.pki, c, k).start()
        self.addCleanup(sentinel.stop)
        wait_until(lambda: sentinel.master_addr() == "127.0.0.1:%d" % master.port, timeout=20,
                   msg="the sentinel never named the master")
        self.start_redis_photon(master, self.lim(),
                                {"address": None, "mode": "sentinel", "master_name": "m",
                                 "addresses": ["127.0.0.1:%d" % sentinel.port],
                                 "tls": {"ca_file": self.pki.ca}, "command_timeout": "3s"},
                                metrics=True)
        wait_until(lambda: self.health()["redis"].get("master") ==
                   "127.0.0.1:%d" % master.port and self.health()["redis"]["state"] == "up",
                   timeout=15, msg="photon never found the master: %r" % (self.health(),))
        self.assertEqual(self.statuses(4), [200, 200, 200, 429])
        self.assertEqual(self.errors(), 0)
        self.assertEqual(master.command("DBSIZE"), 1)
        # The subscription to +switch-master is a TLS connection to the Sentinel too.
        wait_until(lambda: "cmd=subscribe" in sentinel.command("CLIENT", "LIST"), timeout=10,
                   msg="no subscription on the sentinel: %r"
                   % (sentinel.command("CLIENT", "LIST"),))

    @timeout(120)
    def test_cluster_over_tls(self):
        from test_redis_cluster import REDIS_CLI, cli
        if not os.path.exists(REDIS_CLI):
            self.fail("redis-cli is not installed (contrib/install-deps.sh installs redis-tools)")
        nodes = []
        # The cluster bus is TLS too (tls-cluster), where nodes show their certificate as
        # clients; CLUSTER SLOTS names the TLS ports.
        cert = self.pki.issue("node", "node", ips=("127.0.0.1",), both=True)
        for _ in range(3):
            n = self.tls_redis(cert=cert, extra=["--cluster-enabled", "yes",
                                      "--cluster-port", str(free_port()),
                                      "--cluster-config-file", "nodes.conf",
                                      "--cluster-node-timeout", "3000",
                                      "--tls-cluster", "yes", "--tls-replication", "yes"])
            nodes.append(n)
        rc, out = cli("--tls", "--cacert", self.pki.ca, "--cluster", "create",
                      *["127.0.0.1:%d" % n.port for n in nodes], "--cluster-replicas", "0",
                      "--cluster-yes")
        self.assertEqual(rc, 0, out)

        def cluster_ok():
            return all("cluster_state:ok" in n.command("CLUSTER", "INFO") for n in nodes)
        wait_until(cluster_ok, timeout=20, msg="the cluster never reached cluster_state:ok")
        self.start_redis_photon(nodes[0], self.lim(key="header:X-Key", burst=2),
                                {"mode": "cluster", "address": None,
                                 "addresses": ["127.0.0.1:%d" % nodes[0].port],
                                 "tls": {"ca_file": self.pki.ca}, "command_timeout": "3s"},
                                metrics=True, workers=2)
        wait_until(lambda: self.health()["redis"]["state"] == "up"
                   and self.health()["redis"]["nodes"] == 3, timeout=15,
                   msg="photon never loaded the slot map: %r" % (self.health(),))
        with Conn(self.port) as c:
            for i in range(30):
                k = "tls-key-%02d" % i
                got = [c.request("GET", "/api/x", headers=[("X-Key", k)]).status
                       for _ in range(3)]
                self.assertEqual(got, [200, 200, 429], k)
        sizes = [n.command("DBSIZE") for n in nodes]
        self.assertEqual(sum(sizes), 30, sizes)
        self.assertTrue(all(x > 0 for x in sizes), sizes)
        self.assertEqual(self.errors(), 0)

    @timeout(90)
    def test_reload_to_tls_and_a_bad_ca_file_at_reload(self):
        plain = self.redis()
        lim = self.lim(burst=2)
        p = self.start_redis_photon(plain, lim, {"command_timeout": "3s"}, metrics=True,
                                    workers=2)
        self.wait_redis_up(p)
        self.assertEqual(self.statuses(3), [200, 200, 429])
        # Reloaded to a TLS server: the master makes the new context, the new workers use it.
        r = self.tls_redis()
        cfg = self.redis_config(r, lim, {"tls": {"ca_file": self.pki.ca},
                                         "command_timeout": "3s"}, self.mport, workers=2)
        cfg["server"]["pid_file"] = self.proxy_pid_file
        self.reload(p, cfg, 2)
        self.wait_redis_up(p)
        self.assertEqual(self.statuses(3), [200, 200, 429])
        self.assertEqual(r.command("DBSIZE"), 1)
        # A CA file that does not load: the reload is refused and the running one stays.
        bad = os.path.join(self.tmpdir, "garbage-ca.pem")
        with open(bad, "w") as f:
            f.write("garbage\n")
        workers = sorted(p.worker_pids())
        cfg["redis"]["tls"] = {"ca_file": bad}
        name, fmt = os.path.splitext(os.path.basename(p.config))
        write_config(os.path.dirname(p.config), cfg, fmt[1:], name=name)
        p.signal(signal.SIGHUP)
        p.wait_stderr(r"redis\.tls: ca_file %s: cannot load it" % bad)
        time.sleep(0.5)
        self.assertEqual(sorted(p.worker_pids()), workers)
        self.assertEqual(self.health()["redis"]["state"], "up")
        self.assertIn(self.status(), (200, 429))  # decided by the TLS server still
        self.assertEqual(self.errors(), 0)
        self.assertEqual(r.command("DBSIZE"), 1)

    def test_unloadable_certificate_files_are_config_errors(self):
        bad = os.path.join(self.tmpdir, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        cert, key = self.pki.issue("c2", "photon", client=True)
        cfg = self.config(self.lim())
        cfg["redis"] = {"address": "127.0.0.1:%d" % free_port(),
                        "tls": {"ca_file": bad}}
        rc, out, err = run_photon(["-t", "-c", write_config(self.tmpdir, cfg, name="badca")])
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"redis\.tls: ca_file %s: cannot load it" % bad)
        # A key that does not belong to the certificate.
        _, other_key = self.pki.issue("c3", "photon", client=True)
        cfg["redis"]["tls"] = {"ca_file": self.pki.ca, "tls_cert": cert, "tls_key": other_key}
        rc, out, err = run_photon(["-t", "-c", write_config(self.tmpdir, cfg, name="badkey")])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("redis.tls: tls_key %s does not match tls_cert %s" % (other_key, cert), err)
        with open(other_key) as f:
            body = [ln for ln in f.read().splitlines() if ln and not ln.startswith("-----")]
        for line in body:
            self.assertNotIn(line, out + err)


