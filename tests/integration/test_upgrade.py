# SPDX-License-Identifier: Apache-2.0
"""Binary upgrade without downtime: USR2 starts the binary at the same path on the same listening
sockets (the pid file moves to <pid_file>.oldbin meanwhile), then the old master is stopped
gracefully; `photon -s upgrade` does both and reports. Under load, no request fails. A new
binary that cannot start leaves the old master serving, with its pid file back.
"""

import os
import signal
import threading
import time

from harness import (Conn, IntegrationTest, PeerClosed, base_config, free_port, http_request,
                     pid_alive, run_photon, timeout, wait_until, write_config)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class Load:
    """Requests in a loop until stopped: every other one on a fresh connection, the rest on a
    keep-alive connection (reopened when the server closed it while idle, as HTTP clients do:
    a close before any byte of the response is not a failed request)."""

    def __init__(self, port):
        self.port = port
        self.ok = 0
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if i % 2:
                    r = http_request(self.port, "GET", "/name", timeout=5)
                else:
                    for attempt in (1, 2):
                        if conn is None:
                            conn = Conn(self.port, timeout=5)
                        try:
                            r = conn.request("GET", "/name")
                            break
                        except (PeerClosed, ConnectionResetError, BrokenPipeError):
                            conn.close()
                            conn = None
                            if attempt == 2:
                                raise
                    if r.header("connection") == "close":
                        conn.close()
                        conn = None
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(r.status)
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.failures.append(repr(e))
                conn = None
        if conn is not None:
            conn.close()


class UpgradeTest(IntegrationTest):
    def gateway(self):
        b1 = self.backend()
        self.port, self.mport = free_port(), free_port()
        cfg = base_config(self.port, [b1], metrics_port=self.mport)
        self.pid_file = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"].update(worker_processes=2, pid_file=self.pid_file)
        cfg["health_check"]["enabled"] = False
        self.cfg = cfg
        self.p = self.photon(cfg)
        wait_until(lambda: read_pid(self.pid_file) == self.p.pid, timeout=5)
        return self.p

    @timeout(90)
    def test_upgrade_under_load_fails_no_request(self):
        p = self.gateway()
        old = p.pid
        load = Load(self.port)
        load.thread.start()
        time.sleep(0.5)
        rc, out, err = run_photon(["-c", p.config, "-s", "upgrade"], timeout=60)
        self.assertEqual(rc, 0, err)
        self.assertIn("upgraded: new master", err)
        new = read_pid(self.pid_file)
        self.assertNotIn(new, (0, old))
        self.p.adopt(new)
        wait_until(lambda: not pid_alive(old) or p.returncode is not None, timeout=20,
                   msg="the old master never exited")
        time.sleep(0.5)
        load.stop.set()
        load.thread.join(10)
        self.assertEqual(load.failures, [], "requests failed during the upgrade")
        self.assertGreater(load.ok, 20)
        self.assertTrue(pid_alive(new))
        self.assertFalse(os.path.exists(self.pid_file + ".oldbin"))
        # The new master serves, reloads and keeps the shared state (its /health answers).
        self.assertEqual(http_request(self.port, "GET", "/name").status, 200)
        self.assertEqual(http_request(self.mport, "GET", "/health").status, 200)
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not pid_alive(new), timeout=10)
        self.assertFalse(os.path.exists(self.pid_file))

    def test_new_binary_that_cannot_start_leaves_the_old_one_serving(self):
        p = self.gateway()
        # The new master reads the file again; this one does not load.
        with open(p.config, "w") as f:
            f.write("server: [\n")
        p.signal(signal.SIGUSR2)
        wait_until(lambda: "the new master" in p.stderr_text(), timeout=10,
                   msg="the old master never noticed the new one exit")
        self.assertIn("this master serves on", p.stderr_text())
        self.assertEqual(read_pid(self.pid_file), p.pid)
        self.assertFalse(os.path.exists(self.pid_file + ".oldbin"))
        for _ in range(4):
            self.assertEqual(http_request(self.port, "GET", "/name").status, 200)
        # The command refuses a configuration that does not load, before any signal.
        rc, out, err = run_photon(["-c", p.config, "-s", "upgrade"])
        self.assertEqual(rc, 1)
        self.assertIn("no upgrade", err)
        self.assertTrue(p.alive())

    def test_winch_stops_the_workers_and_hup_brings_them_back(self):
        p = self.gateway()
        from harness import cmdline
        workers = lambda: [w for w in p.worker_pids()  # noqa: E731
                           if cmdline(w).startswith("photon: worker")]
        wait_until(lambda: len(workers()) == 2, timeout=5)
        p.signal(signal.SIGWINCH)
        wait_until(lambda: workers() == [], timeout=10, msg="workers kept running after WINCH")
        time.sleep(1.5)  # past any respawn delay: nothing comes back on its own
        self.assertEqual(workers(), [])
        write_config(self.tmpdir, self.cfg)
        p.signal(signal.SIGHUP)
        wait_until(lambda: len(workers()) == 2, timeout=10, msg="HUP did not restart workers")
        self.assertEqual(http_request(self.port, "GET", "/name").status, 200)


class SocketHandOverTest(IntegrationTest):
    """The original's recipe: `upgrade_sock` in the file, QUIT to the running instance, then
    `photon --upgrade`; the old instance hands its listening sockets over and drains."""

    @timeout(90)
    def test_quit_then_upgrade_hands_the_sockets_over(self):
        import subprocess
        from harness import photon_binary
        b1 = self.backend()
        self.port, self.mport = free_port(), free_port()
        cfg = base_config(self.port, [b1], metrics_port=self.mport)
        self.pid_file = os.path.join(self.tmpdir, "photon.pid")
        sock = os.path.join(self.tmpdir, "upgrade.sock")
        cfg["server"].update(worker_processes=2, pid_file=self.pid_file, upgrade_sock=sock)
        cfg["health_check"]["enabled"] = False
        p = self.photon(cfg)
        wait_until(lambda: read_pid(self.pid_file) == p.pid, timeout=5)
        load = Load(self.port)
        load.thread.start()
        time.sleep(0.5)
        p.signal(signal.SIGQUIT)
        err = open(os.path.join(self.tmpdir, "new.err"), "w")
        new = subprocess.Popen([photon_binary(), "-c", p.config, "--upgrade"], stdout=err,
                               stderr=subprocess.STDOUT, start_new_session=True)
        p.adopt(new.pid)
        self.addCleanup(lambda: (new.poll() is None and new.kill(), new.wait(10), err.close()))
        self.assertEqual(p.wait(30), 0)  # the old one finished and exited
        wait_until(lambda: read_pid(self.pid_file) == new.pid, timeout=10,
                   msg="the new instance never wrote the pid file")
        time.sleep(0.5)
        load.stop.set()
        load.thread.join(10)
        with open(os.path.join(self.tmpdir, "new.err")) as f:
            log = f.read()
        self.assertIn("took over 2 listening socket(s)", log)
        self.assertEqual(load.failures, [], "requests failed during the hand-over")
        self.assertGreater(load.ok, 20)
        self.assertIn("handed the listening sockets over", p.stderr_text())
        self.assertEqual(http_request(self.mport, "GET", "/health").status, 200)
        new.send_signal(signal.SIGTERM)
        self.assertEqual(new.wait(10), 0)

    def test_quit_without_a_waiting_instance_is_an_ordinary_stop(self):
        b1 = self.backend()
        self.port = free_port()
        cfg = base_config(self.port, [b1])
        cfg["server"].update(pid_file=os.path.join(self.tmpdir, "photon.pid"),
                             upgrade_sock=os.path.join(self.tmpdir, "upgrade.sock"))
        cfg["health_check"]["enabled"] = False
        p = self.photon(cfg)
        p.signal(signal.SIGQUIT)
        self.assertEqual(p.wait(20), 0)
        self.assertNotIn("handed", p.stderr_text())


class AcceptanceTest(IntegrationTest):
    @timeout(150)
    def test_five_reloads_an_upgrade_and_a_hand_over_under_load(self):
        """One load run through 5 reloads, a USR2 upgrade and the --upgrade hand-over: no
        request fails and no connection is refused."""
        import subprocess
        from harness import photon_binary
        b1 = self.backend()
        port = free_port()
        cfg = base_config(port, [b1])
        pid_file = os.path.join(self.tmpdir, "photon.pid")
        cfg["server"].update(worker_processes=2, pid_file=pid_file,
                             upgrade_sock=os.path.join(self.tmpdir, "upgrade.sock"))
        cfg["health_check"]["enabled"] = False
        p = self.photon(cfg)
        wait_until(lambda: read_pid(pid_file) == p.pid, timeout=5)
        load = Load(port)
        load.thread.start()
        for i in range(5):
            time.sleep(0.3)
            rc, out, err = run_photon(["-c", p.config, "-s", "reload"], timeout=60)
            self.assertEqual(rc, 0, err)
            self.assertIn("reloaded: configuration generation %d" % (i + 2), err)
        rc, out, err = run_photon(["-c", p.config, "-s", "upgrade"], timeout=60)
        self.assertEqual(rc, 0, err)
        second = read_pid(pid_file)
        p.adopt(second)
        wait_until(lambda: not pid_alive(p.pid) or p.returncode is not None, timeout=30)
        time.sleep(0.3)
        # The original's way, from the second master to a third.
        os.kill(second, signal.SIGQUIT)
        err = open(os.path.join(self.tmpdir, "third.err"), "w")
        third = subprocess.Popen([photon_binary(), "-c", p.config, "--upgrade"], stdout=err,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        p.adopt(third.pid)
        self.addCleanup(lambda: (third.poll() is None and third.kill(), third.wait(10),
                                 err.close()))
        wait_until(lambda: not pid_alive(second), timeout=30, msg="the second master stayed")
        wait_until(lambda: read_pid(pid_file) == third.pid, timeout=10)
        time.sleep(0.5)
        load.stop.set()
        load.thread.join(10)
        self.assertEqual(load.failures, [], "requests failed")
        self.assertGreater(load.ok, 50)
        third.send_signal(signal.SIGTERM)
        self.assertEqual(third.wait(10), 0)
