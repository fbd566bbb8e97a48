#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Soak test: mixed traffic for a long time, with reloads and worker kills, on 127.0.0.1 only.

    benchmarks/soak/soak.py [--minutes 30] [--rate 2000] [--conns 40] [--websockets 4]
                            [--workers 2] [--reload-every 60] [--kill-every 300]
                            [--sample-every 5] [--out DIR]

Starts build/photon (PHOTON_BIN overrides it) with two workers on a configuration that uses
plain proxying, a rate-limited route, a cached route, API-key authentication, request and
response header transforms, a WebSocket route, active health checks and the metrics listener,
in front of two backends started here (tests/integration/backend.py). Then, for --minutes:

- HTTP/1.1 keep-alive clients send --rate requests per second in all, at a fixed pace, mixed
  over the routes (a few with a wrong API key, and more to the limited route than its limit
  admits); every answer is checked (status, body length, the transformed fields);
- --websockets WebSocket connections each send a message every 0.5 s and wait for its echo;
- the metrics endpoint is scraped every 10 s;
- every --reload-every seconds the master gets SIGHUP, alternating between two configurations
  that differ only in the value of one response field (the clients see the switch);
- every --kill-every seconds (first at half of it) one worker, chosen at random, gets SIGKILL
  (0 turns reloads or kills off: without reloads workers live long enough to show their own
  growth);
- every --sample-every seconds the RSS and PSS (/proc/PID/smaps_rollup) of the master, the
  workers and the helper are recorded, by role; workers that a reload retired are "draining".

Goals, each printed in the results table; the exit status is 1 when one is missed:

- RSS flat: for each role, the mean RSS over a window after warm-up (minutes 2-4 of a run of
  8 minutes or more; the second sixth of a shorter run) and over the last window of the same
  length differ by at most 5 %.
- No unexplained failures. A failure is a connection error, a timeout, a 5xx, an unexpected
  status or a wrong body. It is explained only by a kill: a request in flight on a connection
  that was open when the worker was killed, failing within 1 s of the kill. A request sent on
  a reused keep-alive connection that the gateway closed before answering is retried once on a
  new connection, as HTTP clients do; the retry is explained near a reload (draining workers
  close idle connections) or a kill, and counted as a failure anywhere else. A WebSocket
  closed by the gateway with 1001 while a reload drains is expected; one cut without a close
  frame is explained only by a kill, as above.
- The rate limit held: admitted requests on the limited route at most burst + rate x time.
- Every killed worker replaced within 5 s; every retired worker gone within
  server.shutdown_timeout + 5 s; the master's open file descriptors flat.

Results (samples.csv, events.csv, failures.txt, photon.log, summary.md) go to --out, by
default benchmarks/soak/results/<time>/. The summary ends with a markdown table.
"""

import argparse
import asyncio
import base64
import collections
import csv
import datetime
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PHOTON_BIN", os.path.join(ROOT, "build", "photon"))
BACKEND = os.path.join(ROOT, "tests", "integration", "backend.py")

API_KEY = "soak-key-0123456789abcdef"
LIMIT_RATE = 100          # the limited route: requests per second for its one key
LIMIT_BURST = 50
SHUTDOWN_TIMEOUT = 10     # server.shutdown_timeout (the default), seconds
KILL_WINDOW = 1.0         # a failure this long after a kill is the kill's
REQUEST_TIMEOUT = 10.0
WS_INTERVAL = 0.5
WS_ECHO_TIMEOUT = 5.0
FLAT_LIMIT = 5.0          # percent

# (name, weight): the traffic mix
MIX = [
    ("plain", 40),       # proxied, 512-byte body checked
    ("transform", 15),   # request and response header transforms, checked through /echo
    ("cache", 20),       # 40 keys with a 10 s ttl: mostly hits, a refresh every 10 s per key
    ("auth", 12),        # API key; one in 12 of these sends a wrong key (401 expected)
    ("limited", 13),     # one key, sent faster than its limit: 429s expected
]


def now():
    return time.monotonic()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config_text(d, port, metrics_port, backends, workers, variant):
    ups = "\n".join('        - address: "127.0.0.1:%d"' % p for p in backends)
    return f"""# soak configuration, variant {variant}
server:
  http_addr: "127.0.0.1:{port}"
  worker_processes: {workers}
  pid_file: "{d}/photon.pid"
  error_log: "{d}/photon.log"
  log_level: info
  access_log: "/dev/null"
  max_connections: 10000
load_balancing:
  backends:
    web:
      upstreams:
{ups}
      health_check:
        check_type: http
        path: /health
        interval: "2s"
routes:
  - id: plain
    path: "/plain/**"
    strip_prefix: "/plain"
    backend: web
  - id: transform
    path: "/tx/**"
    strip_prefix: "/tx"
    backend: web
    middleware: [transform]
  - id: cache
    path: "/cache/**"
    backend: web
    cache:
      enabled: true
      ttl: "10s"
  - id: auth
    path: "/auth/**"
    strip_prefix: "/auth"
    backend: web
    middleware: [auth]
  - id: limited
    path: "/limited/**"
    strip_prefix: "/limited"
    backend: web
    middleware: [rate_limit]
  - id: ws
    path: "/ws"
    backend: web
    websocket:
      enabled: true
middleware:
  authentication:
    auth_type: api_key
    api_key:
      keys: ["{API_KEY}"]
      header: "X-API-Key"
  rate_limiting:
    requests_per_second: {LIMIT_RATE}
    burst: {LIMIT_BURST}
    key: "header:X-Soak-Key"
  transform:
    request_headers:
      remove: ["X-Soak-Remove"]
      set:
        X-Soak-Path: "${{path}}"
      add:
        X-Soak-Added: "yes"
    response_headers:
      remove: ["X-Backend"]
      set:
        X-Soak-Config: "{variant}"
cache:
  enabled: true
  max_memory: 8388608
  max_entries: 1024
health_check:
  interval: "2s"
  timeout: "1s"
metrics:
  prometheus: true
  metrics_addr: "127.0.0.1:{metrics_port}"
"""


class Events:
    """Reloads and kills, with their times, for attributing failures."""

    def __init__(self):
        self.reloads = []   # monotonic times
        self.kills = []     # (time, pid)
        self.rows = []      # (t_rel, kind, detail) for events.csv
        self.t0 = now()

    def add(self, kind, detail=""):
        self.rows.append(("%.3f" % (now() - self.t0), kind, detail))

    def near_kill(self, t, started):
        for kt, _ in self.kills:
            if started < kt <= t <= kt + KILL_WINDOW:
                return True
        return False

    def near_reload(self, t):
        for rt in self.reloads:
            if rt <= t <= rt + SHUTDOWN_TIMEOUT + 2:
                return True
        return False


class Stats:
    def __init__(self):
        self.c = collections.Counter()
        self.failures = []   # (t_rel, kind, what, explained_by)
        self.unexplained = 0
        self.explained = 0
        self.configs_seen = collections.Counter()
        self.limited_admitted = 0
        self.cache = collections.Counter()
        self.late = 0


class Soak:
    def __init__(self, args):
        self.a = args
        self.ev = Events()
        self.st = Stats()
        self.stop = False
        self.master = None
        self.retiring = set()      # pids of workers/helpers a reload retired
        self.samples = []          # (t_rel, pid, role, rss_kb, pss_kb, fds)
        self.replace_times = []    # seconds until a killed worker was replaced
        self.drain_times = []      # seconds until the workers a reload retired were gone
        self.retire_pending = []   # (reload time, set of pids)
        self.variant = "a"

    # ----- processes

    def children(self):
        out = {}
        try:
            with open("/proc/%d/task/%d/children" % (self.master.pid, self.master.pid)) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return out
        for p in pids:
            try:
                with open("/proc/%d/cmdline" % p, "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "helper" in title:
                out[p] = "helper"
            elif "worker" in title:
                out[p] = "worker"
        return out

    def current_workers(self):
        return [p for p, r in self.children().items() if r == "worker" and p not in self.retiring]

    @staticmethod
    def mem(pid):
        rss = pss = None
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k == "Rss":
                        rss = int(v.split()[0])
                    elif k == "Pss":
                        pss = int(v.split()[0])
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except (OSError, ValueError):
            return None
        return rss, pss, fds

    def sample(self):
        t = now() - self.ev.t0
        procs = {self.master.pid: "master"}
        procs.update(self.children())
        for pid, role in procs.items():
            if pid in self.retiring:
                role += "-draining"
            m = self.mem(pid)
            if m:
                self.samples.append((round(t, 1), pid, role) + m)

    async def sampler(self):
        while not self.stop:
            self.sample()
            self.check_drains()
            await asyncio.sleep(self.a.sample_every)

    def check_drains(self):
        alive = set(self.children())
        still = []
        for rt, pids in self.retire_pending:
            if pids & alive:
                still.append((rt, pids))
            else:
                self.drain_times.append(now() - rt)
                self.retiring -= pids
        self.retire_pending = still

    def reload(self):
        old = set(self.children())
        self.variant = "b" if self.variant == "a" else "a"
        with open(os.path.join(self.d, "photon-%s.yaml" % self.variant)) as f:
            text = f.read()
        with open(self.conf + ".new", "w") as f:
            f.write(text)
        os.replace(self.conf + ".new", self.conf)
        self.retiring |= old
        t = now()
        self.retire_pending.append((t, old))
        self.ev.reloads.append(t)
        self.master.send_signal(signal.SIGHUP)
        self.ev.add("reload", "to config %s; retiring %s" % (self.variant, sorted(old)))

    async def kill_one(self):
        workers = self.current_workers()
        if not workers:
            self.ev.add("kill-skipped", "no current worker")
            return
        pid = random.choice(workers)
        t = now()
        self.ev.kills.append((t, pid))
        os.kill(pid, signal.SIGKILL)
        self.ev.add("kill", "worker %d" % pid)
        before = set(workers)
        while now() - t < 30:
            await asyncio.sleep(0.05)
            new = set(self.current_workers()) - before
            if new:
                self.replace_times.append(now() - t)
                self.ev.add("replaced", "worker %d by %s after %.2f s"
                            % (pid, sorted(new), now() - t))
                return
        self.replace_times.append(float("inf"))
        self.ev.add("not-replaced", "worker %d" % pid)

    async def scheduler(self):
        t0 = self.ev.t0
        end = t0 + self.a.minutes * 60
        inf = float("inf")
        next_reload = t0 + self.a.reload_every if self.a.reload_every > 0 else inf
        # Kills fall between reloads, so that the victim is a current worker.
        next_kill = (t0 + self.a.kill_every / 2 + max(self.a.reload_every, 0) / 4
                     if self.a.kill_every > 0 else inf)
        while True:
            t = now()
            if t >= end:
                break
            nxt = min(next_reload, next_kill, end)
            await asyncio.sleep(max(0, nxt - t))
            t = now()
            if t >= end:
                break
            if t >= next_kill:
                next_kill += self.a.kill_every
                asyncio.ensure_future(self.kill_one())
            if t >= next_reload:
                next_reload += self.a.reload_every
                self.reload()
        self.stop = True

    # ----- failure bookkeeping

    def fail(self, kind, what, started):
        t = now()
        if self.ev.near_kill(t, started):
            self.st.explained += 1
            by = "kill"
        else:
            self.st.unexplained += 1
            by = "-"
        self.st.c["fail:" + kind] += 1
        self.st.failures.append(("%.3f" % (t - self.ev.t0), kind, what, by))

    # ----- HTTP clients

    async def http_client(self, idx):
        interval = self.a.conns / self.a.rate
        nxt = now() + random.random() * interval
        conn = None
        rnd = random.Random(idx)
        names = [n for n, _ in MIX]
        weights = [w for _, w in MIX]
        seq = 0
        while not self.stop:
            delay = nxt - now()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                self.st.late += 1
                nxt = now()
            nxt += interval
            kind = rnd.choices(names, weights)[0]
            seq += 1
            conn = await self.one_request(conn, kind, idx, seq, rnd)
        if conn:
            conn[1].close()

    def build(self, kind, idx, seq, rnd):
        """Returns (request bytes, expectation dict)."""
        hdrs = ["Host: soak.test", "User-Agent: photon-soak"]
        exp = {"status": (200,)}
        if kind == "plain":
            target = "/plain/fixed?size=512"
            exp["length"] = 512
        elif kind == "transform":
            target = "/tx/echo?i=%d" % seq
            hdrs.append("X-Soak-Remove: secret")
            exp["transform"] = True
        elif kind == "cache":
            target = "/cache/item/%d" % rnd.randrange(40)
            exp["cache"] = True
        elif kind == "auth":
            target = "/auth/fixed?size=256"
            if seq % 12 == 0:
                hdrs.append("X-API-Key: wrong-key")
                exp["status"] = (401,)
                kind = "auth-bad"
            else:
                hdrs.append("X-API-Key: " + API_KEY)
                exp["length"] = 256
        elif kind == "limited":
            target = "/limited/fixed?size=128"
            hdrs.append("X-Soak-Key: the-one-key")
            exp["status"] = (200, 429)
            exp["limited"] = True
        else:
            raise ValueError(kind)
        exp["kind"] = kind
        req = "GET %s HTTP/1.1\r\n%s\r\n\r\n" % (target, "\r\n".join(hdrs))
        return req.encode(), exp

    async def one_request(self, conn, kind, idx, seq, rnd):
        data, exp = self.build(kind, idx, seq, rnd)
        started = now()
        if conn is not None and conn[0].at_eof():
            # The gateway closed this idle connection (a reload's drain, a kill) and the FIN
            # has arrived: open a new one, as HTTP clients do before reusing a connection.
            conn[1].close()
            conn = None
            self.st.c["idle-closed"] += 1
        for attempt in (0, 1):
            reused = conn is not None
            if conn is None:
                try:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), 5)
                except (OSError, asyncio.TimeoutError) as e:
                    self.fail("connect", "%s: %r" % (exp["kind"], e), started)
                    return None
            reader, writer = conn
            got_bytes = [False]
            try:
                writer.write(data)
                status, headers, body = await asyncio.wait_for(
                    self.read_response(reader, got_bytes), REQUEST_TIMEOUT)
            except asyncio.TimeoutError:
                writer.close()
                self.fail("timeout", exp["kind"], started)
                return None
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as e:
                writer.close()
                conn = None
                if reused and not got_bytes[0] and attempt == 0:
                    t = now()
                    if self.ev.near_reload(t):
                        self.st.c["retry:reload"] += 1
                    elif any(kt <= t <= kt + KILL_WINDOW for kt, _ in self.ev.kills):
                        self.st.c["retry:kill"] += 1
                    else:
                        self.st.c["retry:elsewhere"] += 1
                        self.st.unexplained += 1
                        self.st.failures.append(("%.3f" % (t - self.ev.t0), "keepalive-closed",
                                                 "%s: %r" % (exp["kind"], e), "-"))
                    continue
                self.fail("io", "%s: %r" % (exp["kind"], e), started)
                return None
            self.check(status, headers, body, exp, started)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                return None
            return conn
        return conn

    @staticmethod
    async def read_response(reader, got_bytes):
        line = await reader.readline()
        if not line:
            raise EOFError("connection closed")
        got_bytes[0] = True
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError("bad status line %r" % line[:80])
        status = int(parts[1])
        headers = {}
        while True:
            h = await reader.readline()
            if not h:
                raise EOFError("closed in the head")
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                n = int((await reader.readline()).split(b";")[0], 16)
                if n == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += await reader.readexactly(n)
                await reader.readexactly(2)
        elif status in (204, 304):
            body = b""
        else:
            raise ValueError("response without a length")
        return status, headers, body

    def check(self, status, headers, body, exp, started):
        kind = exp["kind"]
        if status >= 500:
            self.fail("5xx", "%s: %d %r" % (kind, status, body[:100]), started)
            return
        if status not in exp["status"]:
            self.fail("status", "%s: %d %r" % (kind, status, body[:100]), started)
            return
        self.st.c["status:%s:%d" % (kind, status)] += 1
        if status == 429 or status == 401:
            self.st.c["refused"] += 1
            return
        if "length" in exp and len(body) != exp["length"]:
            self.fail("body", "%s: %d bytes" % (kind, len(body)), started)
            return
        if exp.get("limited"):
            self.st.limited_admitted += 1
        if exp.get("cache"):
            self.st.cache[headers.get("x-cache", "none")] += 1
        if exp.get("transform"):
            cfg = headers.get("x-soak-config")
            text = body.decode("latin-1")
            if (cfg not in ("a", "b") or "x-backend" in headers or "X-Soak-Remove" in text
                    or '"X-Soak-Added", "yes"' not in text
                    or '"X-Soak-Path", "/tx/echo"' not in text):
                self.fail("transform", "config %r, body %r" % (cfg, text[:300]), started)
                return
            self.st.configs_seen[cfg] += 1
        self.st.c["ok"] += 1

    # ----- metrics scrapes

    async def scraper(self):
        while not self.stop:
            await asyncio.sleep(10)
            started = now()
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.metrics_port), 5)
                w.write(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                status, _, body = await asyncio.wait_for(
                    self.read_response(r, [False]), REQUEST_TIMEOUT)
                w.close()
                if status != 200 or b"gateway_" not in body:
                    self.fail("metrics", "status %d" % status, started)
                else:
                    self.st.c["metrics-scrapes"] += 1
                    self.last_metrics = body.decode(errors="replace")
            except (OSError, EOFError, ValueError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as e:
                self.fail("metrics", repr(e), started)

    # ----- WebSockets

    async def ws_client(self, idx):
        seq = 0
        while not self.stop:
            started = now()
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 5)
                key = base64.b64encode(os.urandom(16)).decode()
                w.write(("GET /ws HTTP/1.1\r\nHost: soak.test\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                if not head.startswith(b"HTTP/1.1 101"):
                    self.fail("ws-handshake", head.split(b"\r\n")[0].decode(errors="replace"),
                              started)
                    w.close()
                    await asyncio.sleep(1)
                    continue
            except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError) as e:
                self.fail("ws-connect", repr(e), started)
                await asyncio.sleep(1)
                continue
            self.st.c["ws-connections"] += 1
            opened = now()
            try:
                while not self.stop:
                    seq += 1
                    msg = ("soak ws %d %d " % (idx, seq)).encode() + b"x" * (seq % 200)
                    w.write(ws_frame(1, msg, os.urandom(4)))
                    op, payload = await asyncio.wait_for(read_frame(r), WS_ECHO_TIMEOUT)
                    if op == 8:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        if code == 1001 and self.ev.near_reload(now()):
                            self.st.c["ws-closed-1001-on-reload"] += 1
                        else:
                            self.fail("ws-close", "close code %r" % code, opened)
                        break
                    if op != 1 or payload != msg:
                        self.fail("ws-echo", "opcode %d, %r" % (op, payload[:60]), opened)
                        break
                    self.st.c["ws-messages"] += 1
                    await asyncio.sleep(WS_INTERVAL)
                else:
                    w.write(ws_frame(8, struct.pack("!H", 1000), os.urandom(4)))
            except asyncio.TimeoutError:
                self.fail("ws-timeout", "no echo in %.0f s" % WS_ECHO_TIMEOUT, opened)
            except (OSError, EOFError, asyncio.IncompleteReadError) as e:
                self.fail("ws-io", repr(e), opened)
            w.close()

    # ----- run

    def start(self):
        a = self.a
        self.d = tempfile.mkdtemp(prefix="photon-soak.")
        self.backends = []
        ports = []
        for name in ("b1", "b2"):
            p = subprocess.Popen([sys.executable, BACKEND, "--port", "0", "--name", name],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.backends.append(p)
            line = p.stdout.readline().split()
            if len(line) != 2 or line[0] != "ready":
                sys.exit("backend %s did not start" % name)
            ports.append(int(line[1]))
        self.port = free_port()
        self.metrics_port = free_port()
        for v in ("a", "b"):
            with open(os.path.join(self.d, "photon-%s.yaml" % v), "w") as f:
                f.write(config_text(self.d, self.port, self.metrics_port, ports, a.workers, v))
        self.conf = os.path.join(self.d, "photon.yaml")
        with open(os.path.join(self.d, "photon-a.yaml")) as src, open(self.conf, "w") as f:
            f.write(src.read())
        self.master = subprocess.Popen([BIN, "-c", self.conf], stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(self.d, "stderr.log"), "w"))
        end = now() + 10
        while now() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit("photon did not start; %s" % open(os.path.join(self.d, "stderr.log")).read())
        while len(self.current_workers()) < a.workers and now() < end:
            time.sleep(0.05)

    def cleanup(self):
        if self.master and self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(10)
            except subprocess.TimeoutExpired:
                self.master.kill()
        for p in self.backends:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    async def main(self):
        self.last_metrics = ""
        tasks = [asyncio.ensure_future(self.http_client(i)) for i in range(self.a.conns)]
        tasks += [asyncio.ensure_future(self.ws_client(i)) for i in range(self.a.websockets)]
        tasks.append(asyncio.ensure_future(self.scraper()))
        tasks.append(asyncio.ensure_future(self.sampler()))
        await self.scheduler()
        await asyncio.sleep(0.5)
        # Let draining workers finish before the last drain check.
        for _ in range(int((SHUTDOWN_TIMEOUT + 5) / 0.5)):
            self.check_drains()
            if not self.retire_pending:
                break
            await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def ws_frame(opcode, payload, mask):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(r):
    b0, b1 = await r.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await r.readexactly(8))[0]
    if b1 & 0x80:
        raise ValueError("masked frame from the server")
    return b0 & 0x0F, await r.readexactly(n)


# ----- report

def windows(total):
    """(early, late) windows in seconds from the start."""
    if total >= 480:
        return (120, 240), (total - 120, total)
    w = total / 6
    return (w, 2 * w), (total - w, total)


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def slope(points):
    """Least-squares slope of [(x, y)], or nan."""
    if len(points) < 2:
        return float("nan")
    mx = mean([x for x, _ in points])
    my = mean([y for _, y in points])
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def log_summary(path):
    """Lines of the error log at warn and above, grouped by message with numbers blanked."""
    groups = collections.Counter()
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"\S+ \S+ \[(warn|error|crit|alert|emerg)\] \S+ (.*)", line)
                if m:
                    groups[(m.group(1), re.sub(r"\d+", "N", m.group(2))[:120])] += 1
    except OSError:
        pass
    return groups


def report(s, args, elapsed, out):
    st = s.st
    early, late = windows(elapsed)
    by_role = collections.defaultdict(lambda: {"early": [], "late": [], "pe": [], "pl": [],
                                               "fe": [], "fl": []})
    totals = collections.defaultdict(lambda: collections.defaultdict(int))
    trend = collections.defaultdict(list)   # after warm-up: (hours, KiB)
    for t, pid, role, rss, pss, fds in s.samples:
        if t >= early[0]:
            trend[role].append((t / 3600, rss))
        for name, (lo, hi) in (("early", early), ("late", late)):
            if lo <= t < hi:
                r = by_role[role]
                r[name].append(rss)
                r["pe" if name == "early" else "pl"].append(pss)
                r["fe" if name == "early" else "fl"].append(fds)
                totals[name][t] += pss
    goals = []
    rows = []
    for role in ("master", "worker", "helper"):
        r = by_role.get(role)
        if not r or not r["early"] or not r["late"]:
            goals.append(("RSS flat: " + role, "no samples", False))
            continue
        e, l = mean(r["early"]), mean(r["late"])
        ch = 100 * (l - e) / e
        ok = abs(ch) <= FLAT_LIMIT
        rows.append("| %s | %.2f | %.2f | %+.1f %% | %+.0f | %.2f | %.2f | %s |" % (
            role, e / 1024, l / 1024, ch, slope(trend[role]), mean(r["pe"]) / 1024,
            mean(r["pl"]) / 1024, "flat" if ok else "**NOT FLAT**"))
        goals.append(("RSS flat (within %.0f %%): %s" % (FLAT_LIMIT, role),
                      "%.1f → %.1f MiB (%+.1f %%)" % (e / 1024, l / 1024, ch), ok))
    # A worker's own growth: the slope of its RSS once it is 20 s old (warmed up), per pid.
    lives = collections.defaultdict(list)
    for t, pid, role, rss, pss, fds in s.samples:
        if role == "worker":
            lives[pid].append((t, rss))
    life_slopes = []
    for pts in lives.values():
        born = pts[0][0]
        pts = [(t / 60, rss) for t, rss in pts if t - born >= 20]
        if len(pts) >= 3:
            life_slopes.append(slope(pts))
    life_slopes.sort()
    te = mean(list(totals["early"].values())) / 1024
    tl = mean(list(totals["late"].values())) / 1024
    mf = by_role.get("master")
    fds_ok = bool(mf and mf["fe"] and mf["fl"] and min(mf["fl"]) <= min(mf["fe"]))
    goals.append(("master's open fds flat", "%s → %s (least in each window)" % (
        min(mf["fe"]) if mf and mf["fe"] else "?", min(mf["fl"]) if mf and mf["fl"] else "?"),
        fds_ok))

    total_http = sum(v for k, v in st.c.items() if k.startswith("status:"))
    ok = st.c["ok"]
    refused = st.c["refused"]
    fails = sum(v for k, v in st.c.items() if k.startswith("fail:"))
    goals.append(("no unexplained failures", "%d unexplained, %d explained by kills"
                  % (st.unexplained, st.explained), st.unexplained == 0))
    limit_max = LIMIT_BURST + LIMIT_RATE * elapsed
    goals.append(("rate limit held", "%d admitted ≤ %d (burst + rate × %.0f s)"
                  % (st.limited_admitted, limit_max, elapsed), st.limited_admitted <= limit_max))
    rep_ok = all(x <= 5 for x in s.replace_times) and len(s.replace_times) == len(s.ev.kills)
    goals.append(("killed workers replaced within 5 s", "%d kills, slowest %s" % (
        len(s.ev.kills), "%.2f s" % max(s.replace_times) if s.replace_times else "-"),
        rep_ok))
    drain_ok = not s.retire_pending and all(x <= SHUTDOWN_TIMEOUT + 5 for x in s.drain_times)
    goals.append(("retired processes gone within shutdown_timeout + 5 s",
                  "%d reloads, slowest %s%s" % (
        len(s.ev.reloads), "%.1f s" % max(s.drain_times) if s.drain_times else "-",
        ", %d still running" % len(s.retire_pending) if s.retire_pending else ""), drain_ok))

    # RSS over time: means per bucket (5 minutes in a long run, else 1), by role.
    step = 300 if elapsed >= 600 else 60
    series = collections.defaultdict(lambda: collections.defaultdict(list))
    pss_sum = collections.defaultdict(lambda: collections.defaultdict(int))
    for t, pid, role, rss, pss, fds in s.samples:
        b = int(t // step)
        series[b][role].append(rss)
        pss_sum[b][t] += pss

    lines = []
    p = lines.append
    p("# Soak: %.1f minutes, %s" % (elapsed / 60, datetime.datetime.now(datetime.timezone.utc)
                                    .strftime("%Y-%m-%d %H:%M UTC")))
    p("")
    p("Command: `%s`" % args.command)
    p("")
    p("Load: %d requests/s target over %d keep-alive connections (achieved %.0f/s), "
      "%d WebSockets (a message every %.1f s), a metrics scrape every 10 s; "
      "%d workers; %s, %s." % (
          args.rate, args.conns, (total_http + fails) / elapsed, args.websockets, WS_INTERVAL,
          args.workers,
          "a reload every %g s (%d)" % (args.reload_every, len(s.ev.reloads))
          if args.reload_every > 0 else "no reloads",
          "a worker killed every %g s (%d)" % (args.kill_every, len(s.ev.kills))
          if args.kill_every > 0 else "no kills"))
    p("")
    p("| memory by role | RSS MiB, minutes %g–%g | RSS MiB, minutes %g–%g | change | "
      "trend, KiB/h | PSS MiB, early | PSS MiB, late | verdict |" % (
          round(early[0] / 60, 1), round(early[1] / 60, 1), round(late[0] / 60, 1),
          round(late[1] / 60, 1)))
    p("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        p(r)
    p("| all processes (PSS sum) | | | | | %.2f | %.2f | |" % (te, tl))
    if life_slopes:
        p("")
        p("A worker's RSS once 20 s old grew by %+.1f KiB/min (median over %d workers; "
          "least %+.1f, most %+.1f)." % (life_slopes[len(life_slopes) // 2], len(life_slopes),
                           life_slopes[0], life_slopes[-1]))
    p("")
    p("| minutes | master RSS MiB | worker RSS MiB (mean) | helper RSS MiB | "
      "draining workers, samples | PSS of all, MiB |")
    p("| --- | --- | --- | --- | --- | --- |")
    for b in sorted(series):
        if b * step >= elapsed:
            continue
        r = series[b]
        p("| %g–%g | %.2f | %.2f | %.2f | %d | %.1f |" % (
            b * step / 60, min((b + 1) * step, elapsed) / 60, mean(r["master"]) / 1024,
            mean(r["worker"]) / 1024, mean(r["helper"]) / 1024, len(r["worker-draining"]),
            mean(list(pss_sum[b].values())) / 1024))
    p("")
    p("| requests | count |")
    p("| --- | --- |")
    p("| HTTP requests answered | %d |" % total_http)
    p("| … as expected (2xx with the right body and fields) | %d |" % ok)
    p("| … expected refusals (429 from the limit, 401 for a wrong key) | %d (429: %d, 401: %d) |"
      % (
        refused, st.c["status:limited:429"], st.c["status:auth-bad:401"]))
    p("| cached route, by X-Cache | %s |" % ", ".join(
        "%s %d" % kv for kv in sorted(st.cache.items(), key=lambda kv: -kv[1])))
    p("| transformed responses by config a / b | %d / %d |" % (
        st.configs_seen["a"], st.configs_seen["b"]))
    p("| idle keep-alive connections the gateway closed (reopened before the next request) | %d |"
      % st.c["idle-closed"])
    p("| keep-alive connections closed under a request, retried: near a reload / kill / "
      "elsewhere | %d / %d / %d |" % (
        st.c["retry:reload"], st.c["retry:kill"], st.c["retry:elsewhere"]))
    p("| WebSocket connections / messages echoed / closed with 1001 by a reload's drain | "
      "%d / %d / %d |" % (
        st.c["ws-connections"], st.c["ws-messages"], st.c["ws-closed-1001-on-reload"]))
    p("| metrics scrapes | %d |" % st.c["metrics-scrapes"])
    p("| failures explained by kills | %d |" % st.explained)
    p("| **unexplained failures** | **%d** |" % st.unexplained)
    if st.late:
        p("| client fell behind its pace (resets) | %d |" % st.late)
    p("")
    groups = log_summary(os.path.join(out, "photon.log"))
    p("| gateway error log, warn and above | lines |")
    p("| --- | --- |")
    for (level, msg), n in sorted(groups.items(), key=lambda kv: -kv[1]):
        p("| [%s] %s | %d |" % (level, msg.replace("|", "\\|"), n))
    if not groups:
        p("| (none) | 0 |")
    p("")
    p("| goal | result | |")
    p("| --- | --- | --- |")
    for name, res, good in goals:
        p("| %s | %s | %s |" % (name, res, "met" if good else "**MISSED**"))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    return text, all(g for _, _, g in goals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--rate", type=int, default=2000, help="HTTP requests per second, in all")
    ap.add_argument("--conns", type=int, default=40, help="keep-alive client connections")
    ap.add_argument("--websockets", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reload-every", type=float, default=60, help="seconds; 0: no reloads")
    ap.add_argument("--kill-every", type=float, default=300, help="seconds; 0: no kills")
    ap.add_argument("--sample-every", type=float, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=None, help="for the choice of workers to kill")
    args = ap.parse_args()
    args.command = "benchmarks/soak/soak.py " + " ".join(sys.argv[1:])
    if not os.access(BIN, os.X_OK):
        sys.exit("build the gateway first (make), or set PHOTON_BIN")
    random.seed(args.seed)
    out = args.out or os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    s = Soak(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        s.start()
        print("soak: photon on 127.0.0.1:%d, %.0f minutes, results in %s"
              % (s.port, args.minutes, out), flush=True)
        t0 = now()
        asyncio.run(s.main())
        elapsed = min(now() - t0, args.minutes * 60)
    finally:
        s.cleanup()
        if getattr(s, "d", None):
            for name in ("photon.log", "stderr.log", "photon-a.yaml", "photon-b.yaml"):
                try:
                    os.replace(os.path.join(s.d, name), os.path.join(out, name))
                except OSError:
                    pass
            subprocess.run(["rm", "-rf", s.d])
    with open(os.path.join(out, "samples.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "pid", "role", "rss_kb", "pss_kb", "fds"])
        w.writerows(s.samples)
    with open(os.path.join(out, "events.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "event", "detail"])
        w.writerows(s.ev.rows)
    with open(os.path.join(out, "failures.txt"), "w") as f:
        for row in s.st.failures:
            f.write("%s %s %s (explained by: %s)\n" % row)
    with open(os.path.join(out, "metrics.txt"), "w") as f:
        f.write(s.last_metrics)
    text, good = report(s, args, elapsed, out)
    print(text)
    for row in s.st.failures[:20]:
        print("failure at %ss: %s %s (explained by: %s)" % row)
    print("results: %s" % out)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
