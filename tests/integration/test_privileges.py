# SPDX-License-Identifier: Apache-2.0
"""`server.user` / `server.group`: a master started as root keeps root for itself (listening
sockets, logs, shared memory) and runs its workers and helper as the configured user; the
access log stays writable by them across a rotation. Needs root (skipped otherwise, or failing
when $CI is set, where the suite runs as root)."""

import json
import os
import signal
import unittest

from harness import (IntegrationTest, base_config, cmdline, free_port, http_request, run_photon,
                     wait_until, write_config)


def ids(pid):
    """(real uid, real gid) of a process, from /proc."""
    uid = gid = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


class PrivilegesTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            if os.environ.get("CI"):
                self.fail("the privilege tests need root")
            raise unittest.SkipTest("needs root")
        # Workers running as nobody must be able to reach the log directory.
        self.logdir = os.path.join(self.tmpdir, "logs")
        os.makedirs(self.logdir)
        os.chmod(self.tmpdir, 0o755)
        os.chmod(self.logdir, 0o755)

    def test_workers_and_helper_run_as_the_configured_user(self):
        b1 = self.backend()
        port, mport = free_port(), free_port()
        cfg = base_config(port, [b1], metrics_port=mport)
        log = os.path.join(self.logdir, "access.log")
        cfg["server"].update(user="nobody", worker_processes=2, access_log=log,
                             pid_file=os.path.join(self.tmpdir, "photon.pid"))
        cfg["health_check"]["interval"] = "1s"
        p = self.photon(cfg)
        children = wait_until(lambda: len(p.worker_pids()) == 3 and p.worker_pids(), timeout=10,
                              msg="two workers and the helper")
        self.assertEqual(ids(p.pid), (0, 0))
        for pid in children:
            self.assertEqual(ids(pid), (65534, 65534), cmdline(pid))
        for _ in range(3):
            self.assertEqual(http_request(port, "GET", "/name").status, 200)

        def lines(path):
            if not os.path.exists(path):
                return []
            with open(path) as f:
                return [json.loads(x) for x in f if x.strip()]
        wait_until(lambda: len(lines(log)) >= 3, timeout=10, msg="access log lines")
        self.assertEqual(os.stat(log).st_uid, 65534)
        # Rotation: the old file moves away, USR1 makes a new one the workers can write.
        os.rename(log, log + ".1")
        p.signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(log), timeout=5, msg="no new access log")
        wait_until(lambda: (http_request(port, "GET", "/name") and len(lines(log)) >= 1),
                   timeout=10, msg="workers did not write to the new access log")
        self.assertEqual(os.stat(log).st_uid, 65534)

    def test_group_and_unknown_user(self):
        cfg = base_config(free_port(), ["127.0.0.1:1"])
        cfg["server"]["user"] = "no-such-user-here"
        path = write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn("unknown user 'no-such-user-here'", err + out)

        b1 = self.backend()
        port = free_port()
        cfg = base_config(port, [b1])
        cfg["server"].update(user="nobody", group="daemon", worker_processes=1,
                             pid_file=os.path.join(self.tmpdir, "photon2.pid"))
        cfg["health_check"]["enabled"] = False
        p = self.photon(cfg, name="photon2")
        w = wait_until(lambda: p.worker_pids(), timeout=10)
        self.assertEqual(ids(w[0]), (65534, 1))  # daemon is gid 1 on Debian
        self.assertEqual(http_request(port, "GET", "/name").status, 200)
