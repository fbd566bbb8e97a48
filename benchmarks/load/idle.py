#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory per idle keep-alive connection, Photon against nginx, on 127.0.0.1 only.

    benchmarks/load/idle.py [--conns 5000]

Each proxy (one worker) fronts the same local backend (an nginx started here). N client
connections each make one request and then stay open, idle, in keep-alive. The proxy's
memory is read from /proc (PSS of all its processes, and the worker's private dirty pages)
before and after; the difference divided by N is its memory per idle connection, beyond the
kernel's socket buffers (not counted in either process). Needs nginx; the ulimit for open files
must allow N connections (and nginx's and Photon's limits are raised to match)."""

import argparse
import os
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


def measure(name, port, pid, n):
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
""" % (d, d, a.conns + 1000, a.conns + 1000))
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
""" % (d, a.conns + 1000))
        photon = subprocess.Popen([BIN, "-c", d + "/photon.yaml"])
        procs.append(photon)
        for p in (19811, 19812, 19813):
            wait_port(p)
        time.sleep(0.5)
        measure("nginx", 19812, nginx.pid, a.conns)
        measure("photon", 19813, photon.pid, a.conns)
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
