# SPDX-License-Identifier: Apache-2.0
"""Self-checks of the integration harness: test backend, raw HTTP client, config rendering,
process control (against a stand-in master process) and run.py. Needs no photon binary."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import tomllib
import unittest
from unittest import mock

import harness
from harness import (Conn, IntegrationTest, PeerClosed, ProtocolError, http_request,
                     parse_responses, pattern, raw_exchange, wait_until, write_config)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class PatternTest(IntegrationTest):
    def test_pattern_is_position_derived(self):
        whole = pattern(4096)
        self.assertEqual(len(whole), 4096)
        self.assertEqual(pattern(100, 1000), whole[1000:1100])
        # Every 16-byte line names its own offset, so swapped ranges differ.
        self.assertNotEqual(pattern(16, 0) + pattern(16, 16), pattern(16, 16) + pattern(16, 0))
        self.assertEqual(whole[32:48], b"%015x\n" % 32)


class BodyFramingTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.b = self.backend("alpha")

    def test_fixed_bodies_match_pattern(self):
        for size in (0, 1, 15, 16, 1000, 65537, 1_000_000):
            r = http_request(self.b.port, "GET", "/fixed?size=%d" % size)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("content-length"), str(size))
            self.assertFalse(r.chunked)
            self.assertEqual(sha(r.body), harness.pattern_sha256(size), size)

    def test_chunked_body_uses_requested_chunk_size(self):
        r = http_request(self.b.port, "GET", "/chunked?size=1000&chunk=300")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.chunked)
        self.assertIsNone(r.header("content-length"))
        self.assertEqual(r.chunk_sizes, [300, 300, 300, 100, 0])
        self.assertEqual(r.body, pattern(1000))

    def test_close_delimited_body_ends_with_close(self):
        with self.conn(self.b.port) as c:
            r = c.request("GET", "/close?size=5000")
            self.assertTrue(r.close_delimited)
            self.assertFalse(r.keep_alive)
            self.assertIsNone(r.header("content-length"))
            self.assertIsNone(r.header("transfer-encoding"))
            self.assertEqual(r.body, pattern(5000))
            self.assertTrue(c.wait_closed(2))

    def test_head_has_length_but_no_body_and_keeps_connection(self):
        with self.conn(self.b.port) as c:
            r = c.request("HEAD", "/fixed?size=777")
            self.assertEqual(r.header("content-length"), "777")
            self.assertEqual(r.body, b"")
            r = c.request("HEAD", "/chunked?size=777")
            self.assertEqual(r.header("transfer-encoding"), "chunked")
            self.assertEqual(r.body, b"")
            r = c.request("GET", "/fixed?size=5")
            self.assertEqual(r.body, pattern(5))
        self.assertEqual(self.b.connections_accepted, 1)

    def test_slow_and_slowbody_deliver_whole_body(self):
        r = http_request(self.b.port, "GET", "/slow?delay_ms=20&size=300")
        self.assertEqual(r.body, pattern(300))
        r = http_request(self.b.port, "GET", "/slowbody?size=50&interval_ms=1&piece=7")
        self.assertEqual(r.header("content-length"), "50")
        self.assertEqual(r.body, pattern(50))

    def test_client_rejects_malformed_framing(self):
        bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
        with self.assertRaises(ProtocolError):
            parse_responses(bad)
        short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        with self.assertRaises(ProtocolError):
            parse_responses(short)
        with self.assertRaises(ProtocolError):
            parse_responses(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n")


class KeepAliveTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.b = self.backend("ka")

    def test_sequential_requests_share_one_connection(self):
        with self.conn(self.b.port) as c:
            for size in (10, 20, 30):
                r = c.request("GET", "/fixed?size=%d" % size)
                self.assertTrue(r.keep_alive)
                self.assertEqual(r.body, pattern(size))
        self.assertEqual(self.b.connections_accepted, 1)
        self.assertEqual(self.b.requests_served, 3)

    def test_pipelined_requests_answered_in_order(self):
        with self.conn(self.b.port) as c:
            reqs = b"".join([
                c.build_request("GET", "/fixed?size=100")[0],
                b"".join(c.build_request("POST", "/echo", body=b"x" * 33)),
                c.build_request("HEAD", "/fixed?size=9")[0],
                c.build_request("GET", "/chunked?size=250&chunk=100")[0],
                c.build_request("GET", "/name")[0],
            ])
            c.send(reqs)  # one write: all five requests arrive together
            r1 = c.read_response("GET")
            r2 = c.read_response("POST")
            r3 = c.read_response("HEAD")
            r4 = c.read_response("GET")
            r5 = c.read_response("GET")
        self.assertEqual(r1.body, pattern(100))
        self.assertEqual(r2.json()["body_sha256"], sha(b"x" * 33))
        self.assertEqual((r3.header("content-length"), r3.body), ("9", b""))
        self.assertEqual(r4.body, pattern(250))
        self.assertEqual(r5.body, b"ka")
        self.assertEqual(self.b.requests_served, 5)
        self.assertEqual(self.b.connections_accepted, 1)

    def test_connection_close_request_closes(self):
        with self.conn(self.b.port) as c:
            r = c.request("GET", "/fixed?size=3", headers={"Connection": "close"})
            self.assertEqual(r.header("connection"), "close")
            self.assertFalse(r.keep_alive)
            self.assertTrue(c.wait_closed(2))

    def test_close_query_option_and_extra_headers(self):
        with self.conn(self.b.port) as c:
            r = c.request("GET", "/fixed?size=1&close=1&header=Cache-Control:max-age%3D60"
                          "&header=X-Two:2")
            self.assertEqual(r.header("cache-control"), "max-age=60")
            self.assertEqual(r.header("x-two"), "2")
            self.assertTrue(c.wait_closed(2))

    def test_http10_closes_by_default(self):
        with self.conn(self.b.port) as c:
            r = c.request("GET", "/fixed?size=4", version="HTTP/1.0")
            self.assertEqual(r.body, pattern(4))
            self.assertTrue(c.wait_closed(2))


class EchoTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.b = self.backend("echo")

    def test_echo_reports_headers_in_order_with_duplicates(self):
        hdrs = [("X-B", "2"), ("x-a", "1"), ("X-B", "3"), ("Accept", "*/*")]
        r = http_request(self.b.port, "PUT", "/echo?q=1&q=2", headers=hdrs, body=b"abc")
        doc = r.json()
        self.assertEqual(r.header("x-backend"), "echo")
        self.assertEqual(doc["method"], "PUT")
        self.assertEqual(doc["path"], "/echo")
        self.assertEqual(doc["target"], "/echo?q=1&q=2")
        self.assertEqual(doc["query"], {"q": ["1", "2"]})
        self.assertEqual(doc["version"], "HTTP/1.1")
        self.assertEqual(doc["headers"][1:5], [list(h) for h in hdrs])
        self.assertEqual(doc["headers"][0][0], "Host")
        self.assertEqual(doc["body_length"], 3)
        self.assertEqual(doc["body_sha256"], sha(b"abc"))
        self.assertFalse(doc["chunked"])

    def test_chunked_upload_is_decoded_with_trailers(self):
        body = harness.encode_chunked([b"hello ", b"", b"chunked ", b"world"],
                                      trailers=[("X-Sum", "42")])
        with self.conn(self.b.port) as c:
            r = c.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                          body=body)
            doc = r.json()
            self.assertTrue(doc["chunked"])
            self.assertEqual(doc["body_length"], len(b"hello chunked world"))
            self.assertEqual(doc["body_sha256"], sha(b"hello chunked world"))
            self.assertEqual(doc["trailers"], [["X-Sum", "42"]])
            # The connection stays usable after a chunked body.
            r = c.request("POST", "/echo", body=b"z", chunked=True)
            self.assertEqual(r.json()["body_sha256"], sha(b"z"))
        log = self.b.request_log()
        self.assertEqual([req.body for req in log], [b"hello chunked world", b"z"])

    def test_large_upload_hash(self):
        data = pattern(300_000, 7)
        r = http_request(self.b.port, "POST", "/echo", body=data)
        self.assertEqual(r.json()["body_sha256"], sha(data))

    def test_expect_100_continue_sent_before_body(self):
        with self.conn(self.b.port) as c:
            head, body = c.build_request("POST", "/echo", headers={"Expect": "100-continue"},
                                         body=b"payload")
            c.send(head)
            interim = c.read_response("POST", stop_at_interim=True)
            self.assertEqual(interim.status, 100)  # arrives although no body byte was sent
            c.send(body)
            r = c.read_response("POST")
            self.assertEqual(r.json()["body_sha256"], sha(b"payload"))
            # Conn.request() does the same dance by itself.
            r = c.request("POST", "/echo", headers={"Expect": "100-continue"}, body=b"again")
            self.assertEqual([i.status for i in r.interim], [100])
            self.assertEqual(r.json()["body_length"], 5)

    def test_malformed_request_gets_400_and_close(self):
        data = raw_exchange(self.b.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                            timeout=3)
        resps = parse_responses(data)
        self.assertEqual([r.status for r in resps], [400])
        data = raw_exchange(self.b.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", timeout=3)
        self.assertEqual([r.status for r in parse_responses(data)], [400])

    def test_raw_exchange_sees_every_pipelined_response(self):
        data = raw_exchange(self.b.port,
                            b"GET /name HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"HEAD /fixed?size=10 HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            timeout=3)
        resps = parse_responses(data, methods=["GET", "HEAD", "GET"])
        self.assertEqual([r.status for r in resps], [200, 200, 404])
        self.assertEqual(resps[0].body, b"echo")
        self.assertEqual(resps[2].json(), {"status": 404, "backend": "echo"})


class MisbehaviourTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.b = self.backend("bad")

    def test_status_endpoint(self):
        r = http_request(self.b.port, "GET", "/status/503")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json(), {"status": 503, "backend": "bad"})
        with self.conn(self.b.port) as c:
            r = c.request("GET", "/status/204")
            self.assertEqual((r.status, r.body, r.header("content-length")), (204, b"", None))
            r = c.request("GET", "/status/201")
            self.assertEqual(r.status, 201)

    def test_reset_sends_rst_without_answer(self):
        with self.conn(self.b.port) as c:
            with self.assertRaises(ConnectionResetError):
                c.request("GET", "/reset")
        self.assertEqual(self.b.requests_served, 1)

    def test_reset_mid_body_delivers_half_then_rst(self):
        with self.conn(self.b.port) as c:
            c.send_request("GET", "/reset-mid?size=1000")
            data = c.recv_until_close(3)
            self.assertEqual(c.last_close, "reset")
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 1000", head)
        self.assertEqual(body, pattern(500))

    def test_hang_never_answers_until_closed(self):
        c = Conn(self.b.port, timeout=0.3)
        try:
            c.send_request("GET", "/hang")
            with self.assertRaises(socket.timeout):
                c.read_response()
            self.assertEqual(self.b.open_connections, 1)
        finally:
            c.close()
        wait_until(lambda: self.b.open_connections == 0, 3)

    def test_clean_close_reported_as_peer_closed(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        try:
            c = Conn(srv.getsockname()[1])
            s, _ = srv.accept()
            s.close()
            with self.assertRaises(PeerClosed):
                c.read_response()
            c.close()
        finally:
            srv.close()


class ControlTest(IntegrationTest):
    def test_names_tell_backends_apart(self):
        b1, b2 = self.backend(), self.backend("second")
        self.assertEqual(http_request(b1.port, "GET", "/name").body, b"b1")
        r = http_request(b2.port, "GET", "/anything/else")
        self.assertEqual((r.body, r.header("x-backend")), (b"second", "second"))

    def test_health_status_can_flip(self):
        b = self.backend()
        self.assertEqual(http_request(b.port, "GET", "/health").status, 200)
        b.set_health_status(503)
        r = http_request(b.port, "GET", "/health")
        self.assertEqual((r.status, r.json()["status"]), (503, "unhealthy"))
        b.set_health_status(200)
        self.assertEqual(http_request(b.port, "GET", "/health").status, 200)

    def test_stats_count_connections_and_requests(self):
        b = self.backend()
        with self.conn(b.port) as c:
            c.request("GET", "/fixed?size=1")
            c.request("GET", "/fixed?size=1")
            self.assertEqual(b.open_connections, 1)
        http_request(b.port, "GET", "/name")
        self.assertEqual(b.requests_served, 3)
        wait_until(lambda: b.open_connections == 0, 3)
        self.assertEqual(b.connections_accepted, 2)
        doc = http_request(b.port, "GET", "/__stats").json()
        self.assertEqual(doc["requests_served"], 3)  # /__stats itself is not counted
        self.assertEqual(doc["connections_accepted"], 3)
        self.assertEqual(doc["open_connections"], 1)
        b.reset_stats()
        self.assertEqual((b.requests_served, b.connections_accepted), (0, 0))

    def test_stop_closes_connections_and_start_reuses_port(self):
        b = self.backend()
        port = b.port
        c = self.conn(port)
        self.assertEqual(c.request("GET", "/name").body, b"b1")
        b.stop()
        self.assertTrue(c.wait_closed(3))
        with self.assertRaises(ConnectionRefusedError):
            http_request(port, "GET", "/name", timeout=1)
        b.start()
        self.assertEqual(b.port, port)
        self.assertEqual(http_request(port, "GET", "/name").body, b"b1")

    def test_websocket_echo(self):
        b = self.backend()
        with self.conn(b.port) as c:
            r = c.ws_upgrade("/ws", protocols=["chat", "superchat"])
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("sec-websocket-protocol"), "chat")
            c.ws_send("hello")
            self.assertEqual(c.ws_recv(), (True, 1, b"hello"))
            big = pattern(70000)
            c.ws_send(big, opcode=2)
            self.assertEqual(c.ws_recv(), (True, 2, big))
            c.ws_send(b"ping!", opcode=9)
            self.assertEqual(c.ws_recv(), (True, 10, b"ping!"))
            c.ws_send(b"\x03\xe8", opcode=8)
            self.assertEqual(c.ws_recv(), (True, 8, b"\x03\xe8"))
            self.assertTrue(c.wait_closed(3))
        r = http_request(b.port, "GET", "/ws")
        self.assertEqual(r.status, 400)

    def test_script_mode_prints_ready_port(self):
        proc = subprocess.Popen([sys.executable, os.path.join(harness._HERE, "backend.py"),
                                 "--port", "0", "--name", "script"],
                                stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, r"^ready \d+\n$")
            port = int(line.split()[1])
            self.assertEqual(http_request(port, "GET", "/name").body, b"script")
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(5), 0)
            proc.stdout.close()


class ConfigRenderTest(IntegrationTest):
    CFG = {
        "server": {"http_addr": "127.0.0.1:8080", "connection_timeout": "30s",
                   "trusted_proxies": []},
        "routes": [{"path": "/api/*", "backend": "api", "methods": ["GET", "POST"],
                    "middleware": {"cors": {"allow": True}}}],
        "middleware": {},
        "load_balancing": {"backends": [{"name": "api", "upstreams": [
            {"address": "127.0.0.1:9000", "weight": 2}]}]},
        "yes": "on",
        "secret": "${JWT_SECRET:-x}",
    }

    def test_yaml_rendering(self):
        text = harness.render_yaml(self.CFG)
        expected = textwrap.dedent('''\
            server:
              http_addr: "127.0.0.1:8080"
              connection_timeout: "30s"
              trusted_proxies: []
            routes:
            - path: "/api/*"
              backend: "api"
              methods:
              - "GET"
              - "POST"
              middleware:
                cors:
                  allow: true
            middleware: {}
            load_balancing:
              backends:
              - name: "api"
                upstreams:
                - address: "127.0.0.1:9000"
                  weight: 2
            "yes": "on"
            secret: "${JWT_SECRET:-x}"
            ''')
        self.assertEqual(text, expected)

    def test_json_and_toml_round_trip(self):
        path = write_config(self.tmpdir, self.CFG, "json")
        self.assertTrue(path.endswith("photon.json"))
        with open(path) as f:
            self.assertEqual(json.load(f), self.CFG)
        path = write_config(self.tmpdir, self.CFG, "toml")
        with open(path, "rb") as f:
            self.assertEqual(tomllib.load(f), self.CFG)
        self.assertEqual(harness.config_ports(path), [8080])

    def test_raw_values_and_base_config(self):
        b = self.backend()
        cfg = harness.base_config(8081, [b, "127.0.0.1:9"], metrics_port=9091)
        cfg["middleware"] = {"rate_limiting": {"requests_per_second": 5,
                                               "key": harness.Raw("!header X-Key")}}
        text = harness.render_yaml(cfg)
        self.assertIn("\n    key: !header X-Key\n", text)
        self.assertIn('- address: "%s"\n' % b.address, text)
        path = write_config(self.tmpdir, text)
        self.assertEqual(harness.config_ports(path), [8081, 9091])
        del cfg["middleware"]["rate_limiting"]["key"]
        with open(write_config(self.tmpdir, cfg, "toml"), "rb") as f:
            back = tomllib.load(f)
        self.assertEqual(back["load_balancing"]["backends"]["default"]["upstreams"],
                         [{"address": b.address}, {"address": "127.0.0.1:9"}])

    def test_text_is_written_verbatim(self):
        path = write_config(self.tmpdir, "a: 1\n", "conf", name="odd")
        self.assertTrue(path.endswith("odd.conf"))
        with open(path) as f:
            self.assertEqual(f.read(), "a: 1\n")


FAKE_MASTER = r'''#!/usr/bin/python3
# Stand-in for photon: -c CONFIG; listens on http_addr, forks two workers, TERM stops all.
import os, re, signal, socket, sys, time
args = sys.argv[1:]
if "-V" in args:
    print("photon fake"); sys.exit(0)
if "--sleep" in args:
    time.sleep(60)
text = open(args[args.index("-c") + 1]).read()
if "daemonize" in text:
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
if "fail_start" in text:
    sys.stderr.write("config error: fail_start requested\n"); sys.exit(3)
port = int(re.search(r"http_addr\D*127\.0\.0\.1:(\d+)", text).group(1))
kids = []
for i in range(2):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            signal.pause()
    kids.append(pid)
def on_term(*_):
    for k in kids:
        os.kill(k, signal.SIGTERM)
    for k in kids:
        os.waitpid(k, 0)
    sys.stderr.write("master exiting\n"); sys.stderr.flush()
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if "ignore_term" in text else on_term)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
sys.stderr.write("master ready pid=%d\n" % os.getpid()); sys.stderr.flush()
while True:
    c, _ = s.accept(); c.close()
'''


class ProcessControlTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.fake = os.path.join(self.tmpdir, "fake-photon")
        with open(self.fake, "w") as f:
            f.write(FAKE_MASTER)
        os.chmod(self.fake, 0o755)

    def cfg(self, extra=None):
        cfg = {"server": {"http_addr": "127.0.0.1:%d" % harness.free_port()}}
        cfg.update(extra or {})
        return cfg

    def test_start_waits_for_listener_and_finds_workers(self):
        p = self.photon(self.cfg(), binary=self.fake)
        self.assertTrue(p.alive())
        # The fake master may print after it starts listening: wait (bounded) for the line.
        wait_until(lambda: "master ready pid=%d" % p.pid in p.stderr_text(), timeout=5)
        workers = wait_until(lambda: len(p.worker_pids()) == 2 and p.worker_pids())
        self.assertEqual(sorted(harness.descendant_pids(p.pid)), workers)
        self.assertEqual(p.group_pids(), sorted([p.pid] + workers))
        self.assertTrue(harness.port_listening(p.ports[0]))
        p.signal(15)
        self.assertEqual(p.wait(5), 0)
        wait_until(lambda: p.group_pids() == [], 3)
        self.assertIn("master exiting", p.stderr_text())
        p.close()
        self.assertFalse(harness.port_listening(p.ports[0]))

    def test_two_instances_get_separate_configs_and_logs(self):
        p1 = self.photon(self.cfg(), binary=self.fake)
        p2 = self.photon(self.cfg(), binary=self.fake)
        self.assertNotEqual(p1.config, p2.config)
        self.assertNotEqual(p1.stderr_path, p2.stderr_path)
        wait_until(lambda: "pid=%d" % p1.pid in p1.stderr_text(), timeout=5)
        wait_until(lambda: "pid=%d" % p2.pid in p2.stderr_text(), timeout=5)
        self.assertNotIn("pid=%d" % p1.pid, p2.stderr_text())

    def test_start_failure_raises_with_stderr(self):
        with self.assertRaises(harness.PhotonError) as cm:
            self.photon(self.cfg({"fail_start": True}), binary=self.fake)
        self.assertIn("fail_start requested", str(cm.exception))
        self.assertIn("status 3", str(cm.exception))

    def test_teardown_kills_group_when_term_is_ignored(self):
        p = self.photon(self.cfg({"ignore_term": True}), binary=self.fake)
        workers = wait_until(lambda: len(p.worker_pids()) == 2 and p.worker_pids())
        with self.assertRaises(harness.WaitTimeout):
            p.stop(timeout=0.3)
        self.assertFalse(p.alive())
        self.assertFalse(any(harness.pid_alive(w) for w in workers))

    def test_missing_binary_skips_or_fails(self):
        missing = os.path.join(self.tmpdir, "no-such-photon")
        with mock.patch.dict(os.environ, {"PHOTON_BIN": missing, "PHOTON_REQUIRE_BIN": ""}):
            with self.assertRaises(unittest.SkipTest):
                self.photon(self.cfg())
        with mock.patch.dict(os.environ, {"PHOTON_BIN": missing, "PHOTON_REQUIRE_BIN": "1"}):
            with self.assertRaises(self.failureException):
                self.photon(self.cfg())
            with self.assertRaises(FileNotFoundError):
                harness.run_photon(["-V"])

    def test_free_ports_are_distinct_and_bindable(self):
        ports = {harness.free_port() for _ in range(20)}
        self.assertEqual(len(ports), 20)
        for port in ports:
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.close()

    def test_daemon_outside_group_is_found_and_killed(self):
        p = self.photon(self.cfg({"daemonize": True}), binary=self.fake)
        self.assertEqual(p.wait(5), 0)
        # The daemonised master and its two workers, all outside photon's process group.
        daemons = wait_until(lambda: len(p.config_pids()) == 3 and p.config_pids(), 3)
        self.assertNotIn(p.pid, daemons)
        self.assertEqual(p.group_pids(), [])
        p.close()
        self.assertFalse(any(harness.pid_alive(d) for d in daemons))

    def test_killed_worker_is_visible(self):
        p = self.photon(self.cfg(), binary=self.fake)
        workers = wait_until(lambda: len(p.worker_pids()) == 2 and p.worker_pids())
        os.kill(workers[0], 9)
        wait_until(lambda: workers[0] not in p.worker_pids(), 3)
        self.assertEqual(p.worker_pids(), workers[1:])

    def test_run_photon_returns_output_and_bounds_time(self):
        rc, out, err = harness.run_photon(["-V"], binary=self.fake)
        self.assertEqual((rc, out, err), (0, "photon fake\n", ""))
        with self.assertRaises(harness.WaitTimeout):
            harness.run_photon(["--sleep"], timeout=0.3, binary=self.fake)


HANGING_TESTS = r'''
import time, unittest, harness
class T(unittest.TestCase):
    def test_passes(self):
        self.assertTrue(True)
    def test_hangs(self):
        try:
            time.sleep(30)
        except Exception:
            time.sleep(30)   # a broad except must not swallow the timeout
    @harness.timeout(0.2)
    def test_own_timeout(self):
        time.sleep(30)
    @unittest.skip("demonstration")
    def test_skipped(self):
        pass
    def test_fails(self):
        self.assertEqual(1, 2)
'''


class RunnerTest(IntegrationTest):
    def test_runner_times_out_hanging_test_and_counts(self):
        with open(os.path.join(self.tmpdir, "test_demo.py"), "w") as f:
            f.write(HANGING_TESTS)
        run = os.path.join(harness._HERE, "run.py")
        proc = subprocess.run([sys.executable, run, "--dir", self.tmpdir, "--timeout", "1"],
                              capture_output=True, text=True, timeout=30)
        lines = proc.stdout.strip().splitlines()
        self.assertEqual(lines[-1], "1 passed, 3 failed, 1 skipped", proc.stdout)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("TestTimeout", proc.stdout)
        listed = subprocess.run([sys.executable, run, "--dir", self.tmpdir, "--list", "hang"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(listed.stdout, "test_demo.T.test_hangs\n")
        only = subprocess.run([sys.executable, run, "--dir", self.tmpdir, "passes"],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(only.stdout.strip().splitlines()[-1], "1 passed, 0 failed")
        self.assertEqual(only.returncode, 0)
