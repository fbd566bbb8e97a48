#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory per idle keep-alive connection, Photon against nginx, on 127.0.0.1 only; then, with
those connections still open, the latency other clients see during a burst of new connections.

    benchmarks/load/idle.py [--conns 5000] [--burst 50000]

Each proxy (one worker) fronts the same local backend (an nginx started here). N client
connections each make one request and then stay open, idle, in keep-alive. The proxy's
memory is read from /proc (PSS of all its processes, and the worker's private dirty pages)
before and after; the difference divided by N is its memory per idle connection, beyond the
kernel's socket buffers (not counted in either process). Needs nginx; the ulimit for open files
must allow N connections (and nginx's and Photon's limits are raised to match).

The burst comes from a separate process: --burst connections, at most 1500 open at once, each
closed with a reset; meanwhile this process sends a request on a fresh connection every 10 ms
and reports the latency percentiles before and during the burst (a dropped SYN shows as a
latency over a second)."""

import argparse
import multiprocessing
import os
import struct
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PHOTON_BIN", os.path.join(ROOT, "build", "photon"))


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nothing listens on %d" % port)


def children(pid):
    out = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            for c in f.read().split():
                out += children(int(c))
    except OSError:
        pass
    return out


def mem(pids):
    """(PSS, private dirty) in KiB, summed over pids."""
    pss = priv = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k == "Pss":
                        pss += int(v.split()[0])
                    elif k == "Private_Dirty":
                        priv += int(v.split()[0])
        except OSError:
            pass
    return pss, priv


def burst(port, n, out):
    linger = struct.pack("ii", 1, 0)
    held = []
    t0 = time.time()
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.connect(("127.0.0.1", port))
        held.append(s)
        if len(held) >= 1500:
            for h in held[:750]:
                h.close()
            del held[:750]
    for h in held:
        h.close()
    out.put(time.time() - t0)


def probe_once(port):
    t0 = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
    return time.time() - t0


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] * 1e3


def measure_burst(name, port, n):
    base = []
    for _ in range(100):
        base.append(probe_once(port))
        time.sleep(0.01)
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=burst, args=(port, n, q))
    p.start()
    during = []
    while p.is_alive():
        during.append(probe_once(port))
        time.sleep(0.01)
    p.join()
    took = q.get()
    print("%-8s burst of %d connections in %.1f s; probes before p50 %.2f ms p99 %.2f ms, "
          "during (%d) p50 %.2f ms p99 %.2f ms max %.1f ms"
          % (name, n, took, pct(base, 0.5), pct(base, 0.99), len(during), pct(during, 0.5),
             pct(during, 0.99), max(during) * 1e3))


def measure(name, port, pid, n, burst_n=0):
    pids = children(pid)
    socks = []
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    # Warm up: a few requests so that pools and buffers exist before the baseline.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        s.recv(65536)
        s.close()
    time.sleep(0.5)
    before = mem(pids)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        socks.append(s)
    time.sleep(2.5)  # Photon gives an idle connection's request state back after 1 s
    after = mem(children(pid))
    if burst_n:
        measure_burst(name, port, burst_n)
    for s in socks:
        s.close()
    dpss = (after[0] - before[0]) * 1024 / n
    dpriv = (after[1] - before[1]) * 1024 / n
    print("%-8s %6d idle connections: PSS +%.0f bytes each, private dirty +%.0f bytes each"
          % (name, n, dpss, dpriv))
    return dpss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--burst", type=int, default=0,
                    help="connections in a burst measured with the idle ones open (0: none)")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="photon-idle.")
    os.makedirs(os.path.join(d, "logs"))
    procs = []
    try:
        with open(os.path.join(d, "backend.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/b.pid; error_log %s/logs/b.log;
events {} http { access_log off; server { listen 127.0.0.1:19811;
location / { return 200 "ok"; } } }
""" % (d, d))
        procs.append(subprocess.Popen(["nginx", "-p", d + "/", "-c", d + "/backend.conf",
                                       "-e", d + "/logs/b.err"]))
        with open(os.path.join(d, "proxy.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/p.pid; error_log %s/logs/p.log;
worker_rlimit_nofile %d;
events { worker_connections %d; } http { access_log off; keepalive_timeout 300s;
keepalive_requests 1000000; upstream b { server 127.0.0.1:19811; keepalive 16; }
server { listen 127.0.0.1:19812; location / { proxy_pass http://b;
proxy_http_version 1.1; proxy_set_header Connection ""; } } }
""" % (d, d, a.conns + 3000, a.conns + 3000))
        nginx = subprocess.Popen(["nginx", "-p", d + "/", "-c", d + "/proxy.conf",
                                  "-e", d + "/logs/p.err"])
        procs.append(nginx)
        with open(os.path.join(d, "photon.yaml"), "w") as f:
            f.write("""server:
  http_addr: "127.0.0.1:19813"
  worker_processes: 1
  pid_file: "%s/photon.pid"
  max_connections: %d
  connection_timeout: "300s"
  access_log: "off"
  log_level: warn
load_balancing:
  backends:
    b:
      upstreams:
        - address: "127.0.0.1:19811"
routes:
  - id: all
    path: "/**"
    backend: b
health_check:
  enabled: false
metrics:
  prometheus: false
""" % (d, a.conns + 3000))
        photon = subprocess.Popen([BIN, "-c", d + "/photon.yaml"])
        procs.append(photon)
        for p in (19811, 19812, 19813):
            wait_port(p)
        time.sleep(0.5)
        measure("nginx", 19812, nginx.pid, a.conns, a.burst)
        measure("photon", 19813, photon.pid, a.conns, a.burst)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
