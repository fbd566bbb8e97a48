# SPDX-License-Identifier: Apache-2.0
"""Process model: master and workers, /health, worker respawn, signals, pid file, daemon mode,
refused second instances and configuration reload."""

import os
import signal
import socket
import subprocess
import threading

from harness import (IntegrationTest, ProtocolError, accepting_pid, base_config, cmdline,
                     free_port, http_request, pattern, pid_alive, port_listening, run_photon,
                     wait_until, write_config)

MASTER_TITLE = "photon: master process"
WORKER_TITLE = "photon: worker process"


def gateway_config(tmpdir, http_port, upstreams, workers=2, metrics_port=None,
                   pid_name="photon.pid", **server):
    """A complete config whose pid file lives in ``tmpdir``.

    Routes only /slow, /name and /fixed (exact paths) to backend "default", so that GET /health
    on the main listener is not shadowed by a route and is answered by photon itself.
    """
    cfg = base_config(http_port, upstreams, metrics_port=metrics_port)
    cfg["server"]["pid_file"] = os.path.join(str(tmpdir), pid_name)
    cfg["server"]["worker_processes"] = workers
    cfg["server"].update(server)
    cfg["routes"] = [{"id": name, "path": "/" + name, "backend": "default"}
                     for name in ("slow", "name", "fixed")]
    return cfg


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def titled(pids, title):
    return [p for p in pids if cmdline(p).startswith(title)]



class FoundationTest(IntegrationTest):
    """Shared set-up for a running gateway with one backend."""

    def start_gateway(self, workers=2, metrics=False, args=(), **server):
        self.b1 = self.backend()
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.cfg = gateway_config(self.tmpdir, self.port, [self.b1], workers=workers,
                                  metrics_port=self.metrics_port, **server)
        self.pid_file = self.cfg["server"]["pid_file"]
        self.p = self.photon(self.cfg, args=args)
        return self.p

    def workers_of(self, p, n):
        """Waits until the master has ``n`` children titled as workers; returns their pids."""
        return wait_until(lambda: (lambda w: len(w) == n and w)(
            titled(p.worker_pids(), WORKER_TITLE)), timeout=5,
            msg="master never had %d worker(s); children: %r"
            % (n, [(c, cmdline(c)) for c in p.worker_pids()]))

    def wait_replaced(self, p, old_workers, n, old_may_linger=False):
        """Waits until the master runs ``n`` workers none of which is in ``old_workers`` and
        (unless ``old_may_linger``) every old worker has exited; returns the new pids."""
        def done():
            now = titled(p.worker_pids(), WORKER_TITLE)
            fresh = [w for w in now if w not in old_workers]
            if len(fresh) != n:
                return None
            if not old_may_linger and any(pid_alive(w) for w in old_workers):
                return None
            return fresh
        return wait_until(done, timeout=5, msg="workers %r were not replaced by %d new one(s)"
                          % (old_workers, n))

    def wait_worker_draining(self, p, pid):
        """Waits until worker ``pid`` has logged that it began its graceful shutdown."""
        p.wait_stderr(r"\b%d#\d+: graceful shutdown" % pid)

    def start_slow_request(self, delay_ms):
        """Sends GET /slow on a new connection and waits until the backend holds it."""
        c = self.conn(self.port, timeout=15)
        c.send_request("GET", "/slow?delay_ms=%d" % delay_ms)
        wait_until(lambda: any(r.path == "/slow" for r in self.b1.request_log()), timeout=5,
                   msg="the slow request never reached the backend")
        return c

    def health(self, port):
        r = http_request(port, "GET", "/health")
        self.assertEqual(r.status, 200, r.text)
        self.assertIn("json", r.header("content-type", ""))
        return r.json()

    def assert_serves(self, backend_name="b1", count=1):
        for _ in range(count):
            r = http_request(self.port, "GET", "/name")
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(r.text, backend_name)


class ProcessModelTest(FoundationTest):

    def test_master_and_workers_carry_process_titles(self):
        p = self.start_gateway(workers=3)
        self.assertTrue(cmdline(p.pid).startswith(MASTER_TITLE), cmdline(p.pid))
        workers = self.workers_of(p, 3)
        for w in workers:
            self.assertEqual(cmdline(w), WORKER_TITLE)
        # Every child of the master is a worker or the health-check helper (no strays). A child
        # that was forked a moment ago may still carry the master's title: wait for it.
        def others():
            return [c for c in p.worker_pids() if c not in workers]
        wait_until(lambda: all(cmdline(c) == "photon: helper process" for c in others()),
                   timeout=5, msg="unexpected children: %r" % [(c, cmdline(c)) for c in others()])
        self.assertLessEqual(len(others()), 1)
        self.assertEqual(read_pid(self.pid_file), p.pid)
        self.assert_serves()

    def test_worker_count_follows_config(self):
        p = self.start_gateway(workers=1)
        self.assertEqual(len(self.workers_of(p, 1)), 1)
        self.assertEqual(self.health(self.port)["workers"], 1)

    def test_health_answered_on_main_and_metrics_listeners(self):
        p = self.start_gateway(workers=2, metrics=True)
        for port in (self.port, self.metrics_port):
            with self.subTest(port=port):
                h = self.health(port)
                self.assertEqual(h["status"], "ok")
                self.assertEqual(h["workers"], 2)
                self.assertIsInstance(h["generation"], int)
                self.assertGreaterEqual(h["generation"], 1)
                self.assertEqual(h["pid"], p.pid)

    def test_killed_worker_is_replaced_within_a_second(self):
        p = self.start_gateway(workers=2)
        before = self.workers_of(p, 2)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            now = titled(p.worker_pids(), WORKER_TITLE)
            return len(now) == 2 and victim not in now and set(now) - set(before) and now
        now = wait_until(replaced, timeout=1.0,
                         msg="no replacement worker within 1 s of kill -9 %d" % victim)
        self.assertIn(before[1], now)  # the other worker was left alone
        self.assertTrue(p.alive())
        self.assert_serves(count=10)
        self.assertEqual(self.health(self.port)["status"], "ok")

    def test_worker_processes_auto_starts_one_per_cpu(self):
        p = self.start_gateway(workers="auto")
        n = min(os.cpu_count(), 32)
        self.assertEqual(len(self.workers_of(p, n)), n)
        self.assertEqual(self.health(self.port)["workers"], n)

    def test_worker_killed_repeatedly_is_always_replaced(self):
        p = self.start_gateway(workers=1)
        seen = set(self.workers_of(p, 1))
        for _ in range(4):
            victim = titled(p.worker_pids(), WORKER_TITLE)[0]
            os.kill(victim, signal.SIGKILL)
            new = wait_until(lambda: (lambda w: len(w) == 1 and w[0] not in seen and w)(
                titled(p.worker_pids(), WORKER_TITLE)), timeout=5,
                msg="worker not replaced after repeated kills")
            seen.add(new[0])
        self.assert_serves(count=3)

    def test_log_level_flag_overrides_config(self):
        b1 = self.backend()
        port = free_port()
        cfg = gateway_config(self.tmpdir, port, [b1], workers=1, log_level="warn")
        quiet = self.photon(cfg)
        self.assertEqual(http_request(port, "GET", "/name").status, 200)
        quiet.stop(signal.SIGTERM)
        self.assertNotRegex(quiet.stderr_text(), r"\[(info|notice)\]")
        loud = self.photon(quiet.config, args=["-l", "info"])
        loud.wait_stderr(r"\[info\].*started worker")
        self.assertNotRegex(loud.stderr_text(), r"\[debug\]")

    def test_workers_exit_when_master_is_killed(self):
        p = self.start_gateway(workers=2)
        workers = self.workers_of(p, 2)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
        wait_until(lambda: not any(pid_alive(w) for w in workers), timeout=5,
                   msg="workers outlived a killed master: %r"
                   % [w for w in workers if pid_alive(w)])


class SignalTest(FoundationTest):

    def test_sigquit_finishes_inflight_request_then_exits(self):
        p = self.start_gateway(workers=2)
        workers = self.workers_of(p, 2)
        c = self.start_slow_request(1500)
        p.signal(signal.SIGQUIT)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, pattern(1024))
        self.assertEqual(p.wait(10), 0)
        self.assertFalse(os.path.exists(self.pid_file), "pid file left behind")
        wait_until(lambda: not any(pid_alive(w) for w in workers), timeout=5)

    def test_sigquit_stops_accepting_while_draining(self):
        p = self.start_gateway(workers=1)
        c = self.start_slow_request(4000)
        p.signal(signal.SIGQUIT)
        # While the in-flight request drains, nothing may listen on the port any more: a
        # connection queued on a listener no process accepts from would hang, then be reset.
        wait_until(lambda: not port_listening(self.port), timeout=2,
                   msg="port %d still listening after SIGQUIT" % self.port)
        self.assertTrue(p.alive(), "master exited before the in-flight request finished")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(p.wait(10), 0)

    def test_connection_accepted_before_sigquit_is_still_served(self):
        p = self.start_gateway(workers=1)
        workers = self.workers_of(p, 1)
        c = self.conn(self.port)
        wait_until(lambda: accepting_pid(workers, self.port, c), timeout=5,
                   msg="the worker never accepted the connection")
        p.signal(signal.SIGQUIT)
        self.wait_worker_draining(p, workers[0])
        try:
            r = c.request("GET", "/name")
        except (ProtocolError, OSError) as e:
            self.fail("connection accepted before SIGQUIT got no response: %r" % (e,))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.text, "b1")
        self.assertEqual(p.wait(10), 0)

    def test_sigquit_gives_up_after_shutdown_timeout(self):
        p = self.start_gateway(workers=1, shutdown_timeout="1s")
        c = self.start_slow_request(15000)
        p.signal(signal.SIGQUIT)
        # The request outlives shutdown_timeout: its connection is closed and photon exits
        # long before the backend would have answered.
        self.assertEqual(p.wait(6), 0)
        data = c.recv_until_close(timeout=5)
        self.assertIn(c.last_close, ("eof", "reset"))
        self.assertNotIn(b" 200 ", data)
        self.assertEqual(p.group_pids(), [])

    def test_signal_reopen_reopens_error_log(self):
        log = os.path.join(self.tmpdir, "error.log")
        p = self.start_gateway(workers=1, error_log=log)
        wait_until(lambda: os.path.exists(log) and "started" in open(log).read(), timeout=5,
                   msg="error log never written")
        os.rename(log, log + ".1")
        rc, out, err = run_photon(["-c", p.config, "-s", "reopen"])
        self.assertEqual(rc, 0, err)
        wait_until(lambda: os.path.exists(log), timeout=5, msg="error log not reopened")
        # Later messages go to the new file, not the renamed one.
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait(5), 0)
        with open(log) as f:
            self.assertIn("SIGTERM", f.read())
        with open(log + ".1") as f:
            self.assertNotIn("SIGTERM", f.read())

    def test_sigterm_exits_promptly_without_waiting_for_requests(self):
        p = self.start_gateway(workers=2)
        c = self.start_slow_request(20000)
        p.signal(signal.SIGTERM)
        # Fast shutdown: well before the backend would answer.
        self.assertEqual(p.wait(5), 0)
        data = c.recv_until_close(timeout=5)
        self.assertIn(c.last_close, ("eof", "reset"))
        self.assertNotIn(b" 200 ", data)
        self.assertEqual(p.group_pids(), [])
        self.assertFalse(os.path.exists(self.pid_file))

    def test_sigint_is_a_fast_shutdown_too(self):
        p = self.start_gateway(workers=1)
        self.workers_of(p, 1)
        p.signal(signal.SIGINT)
        self.assertEqual(p.wait(5), 0)
        self.assertEqual(p.group_pids(), [])
        self.assertFalse(os.path.exists(self.pid_file))

    def test_signal_stop_through_pid_file(self):
        p = self.start_gateway(workers=2)
        rc, out, err = run_photon(["-c", p.config, "-s", "stop"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(p.wait(5), 0)
        self.assertEqual(p.group_pids(), [])
        self.assertFalse(os.path.exists(self.pid_file))
        self.assertFalse(port_listening(self.port))

    def test_signal_quit_through_pid_file_drains(self):
        p = self.start_gateway(workers=1)
        c = self.start_slow_request(1500)
        rc, out, err = run_photon(["-c", p.config, "-s", "quit"])
        self.assertEqual(rc, 0, err)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(p.wait(10), 0)
        self.assertFalse(os.path.exists(self.pid_file))

    def test_signal_reload_through_pid_file(self):
        p = self.start_gateway(workers=2, metrics=True)
        gen = self.health(self.metrics_port)["generation"]
        old_workers = self.workers_of(p, 2)
        b2 = self.backend()
        write_config(self.tmpdir, gateway_config(self.tmpdir, self.port, [b2], workers=2,
                                                 metrics_port=self.metrics_port))
        rc, out, err = run_photon(["-c", p.config, "-s", "reload"])
        self.assertEqual(rc, 0, err)
        self.wait_replaced(p, old_workers, 2)
        self.assertEqual(self.health(self.metrics_port)["generation"], gen + 1)
        self.assert_serves(backend_name="b2", count=4)
        self.assertTrue(p.alive())
        self.assertEqual(read_pid(self.pid_file), p.pid)


    def test_signal_reload_reports_the_outcome(self):
        p = self.start_gateway(workers=1, metrics=True)
        b2 = self.backend()
        write_config(self.tmpdir, gateway_config(self.tmpdir, self.port, [b2], workers=1,
                                                 metrics_port=self.metrics_port))
        rc, out, err = run_photon(["-c", p.config, "-s", "reload"])
        self.assertEqual(rc, 0, err)
        self.assertIn("reloaded: configuration generation 2", err)
        # A file with errors is reported here and never reaches the gateway.
        with open(p.config) as f:
            good = f.read()
        with open(p.config, "w") as f:
            f.write(good.replace("worker_processes: 1", "worker_processes: -3"))
        rc, out, err = run_photon(["-c", p.config, "-s", "reload"])
        self.assertEqual(rc, 1, err)
        self.assertIn("worker_processes", err)
        self.assertIn("reload not sent", err)
        self.assertEqual(self.health(self.metrics_port)["generation"], 2)
        # Valid on paper, refused by the running gateway (its new listener's port is taken):
        # the command says so and the running configuration stays.
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        self.addCleanup(blocker.close)
        taken = blocker.getsockname()[1]
        cfg = gateway_config(self.tmpdir, self.port, [b2], workers=1,
                             metrics_port=self.metrics_port)
        cfg["server"]["http_addr"] = "127.0.0.1:%d" % taken
        write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-c", p.config, "-s", "reload"])
        self.assertEqual(rc, 1, err)
        self.assertIn("reload failed", err)
        self.assertEqual(self.health(self.metrics_port)["generation"], 2)
        self.assertEqual(http_request(self.port, "GET", "/name").status, 200)


class ReloadTest(FoundationTest):

    def test_sighup_with_valid_config_starts_new_generation(self):
        p = self.start_gateway(workers=2, metrics=True)
        h0 = self.health(self.port)
        old_workers = self.workers_of(p, 2)
        b2 = self.backend()
        write_config(self.tmpdir, gateway_config(self.tmpdir, self.port, [b2], workers=3,
                                                 metrics_port=self.metrics_port))
        p.signal(signal.SIGHUP)
        new_workers = self.wait_replaced(p, old_workers, 3)
        self.assertFalse(set(new_workers) & set(old_workers))
        for port in (self.port, self.metrics_port):
            h1 = self.health(port)
            self.assertEqual(h1["workers"], 3)
            self.assertEqual(h1["generation"], h0["generation"] + 1)
        self.assert_serves(backend_name="b2", count=6)
        self.assertTrue(p.alive())
        self.assertEqual(read_pid(self.pid_file), p.pid)

    def test_sighup_lets_inflight_request_finish(self):
        p = self.start_gateway(workers=1)
        c = self.start_slow_request(1500)
        p.signal(signal.SIGHUP)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, pattern(1024))
        self.assert_serves()

    def test_connection_accepted_before_sighup_is_still_served(self):
        # A client that connected just before the reload and sends its request just after it
        # must get an answer: the old worker finishes what it accepted (nginx closes only
        # keep-alive connections that sit between requests).
        p = self.start_gateway(workers=1)
        old = self.workers_of(p, 1)
        c = self.conn(self.port)
        wait_until(lambda: accepting_pid(old, self.port, c), timeout=5,
                   msg="the worker never accepted the connection")
        p.signal(signal.SIGHUP)
        self.wait_replaced(p, old, 1, old_may_linger=True)
        self.wait_worker_draining(p, old[0])
        try:
            r = c.request("GET", "/name")
        except (ProtocolError, OSError) as e:
            self.fail("connection accepted before the reload got no response: %r" % (e,))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.text, "b1")

    def test_requests_keep_succeeding_across_reloads(self):
        reloads = 8
        p = self.start_gateway(workers=2)
        failures, successes = [], [0]
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    r = http_request(self.port, "GET", "/name", timeout=5)
                    if r.status == 200 and r.text == "b1":
                        successes[0] += 1
                    else:
                        failures.append("%d %r" % (r.status, r.body[:80]))
                except Exception as e:  # noqa: BLE001 - every failure kind is reported
                    failures.append(repr(e))
        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            workers = self.workers_of(p, 2)
            gen = self.health(self.port)["generation"]
            for _ in range(reloads):
                p.signal(signal.SIGHUP)
                workers = self.wait_replaced(p, workers, 2)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertGreater(successes[0], 0)
        if failures:
            self.fail("%d request(s) failed during %d reloads (%d succeeded): %s"
                      % (len(failures), reloads, successes[0], sorted(set(failures))))
        self.assertEqual(self.health(self.port)["generation"], gen + reloads)

    def test_sighup_moves_listener_to_new_port(self):
        p = self.start_gateway(workers=1)
        gen = self.health(self.port)["generation"]
        old = self.workers_of(p, 1)
        new_port = free_port()
        write_config(self.tmpdir, gateway_config(self.tmpdir, new_port, [self.b1], workers=1))
        p.signal(signal.SIGHUP)
        self.wait_replaced(p, old, 1)
        wait_until(lambda: port_listening(new_port), timeout=5, msg="new port never listened")
        wait_until(lambda: not port_listening(self.port), timeout=5,
                   msg="old port still listening after the reload")
        r = http_request(new_port, "GET", "/name")
        self.assertEqual(r.text, "b1")
        self.assertEqual(self.health(new_port)["generation"], gen + 1)

    def test_sighup_to_busy_port_keeps_old_listener(self):
        p = self.start_gateway(workers=1)
        gen = self.health(self.port)["generation"]
        workers = self.workers_of(p, 1)
        busy = free_port()
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", busy))
        blocker.listen(1)
        write_config(self.tmpdir, gateway_config(self.tmpdir, busy, [self.b1], workers=1))
        p.signal(signal.SIGHUP)
        m = p.wait_stderr(r"(?i)^.*reload failed.*$")
        self.assertIn("already in use", m.group(0))
        self.assertTrue(p.alive())
        self.assertEqual(titled(p.worker_pids(), WORKER_TITLE), workers)
        self.assertEqual(self.health(self.port)["generation"], gen)
        self.assert_serves()

    def test_sighup_with_broken_config_keeps_serving_old_one(self):
        p = self.start_gateway(workers=2, metrics=True)
        h0 = self.health(self.metrics_port)
        workers = self.workers_of(p, 2)
        b2 = self.backend()
        cfg = gateway_config(self.tmpdir, self.port, [b2], workers=2,
                             metrics_port=self.metrics_port)
        cfg["routes"][0]["backend"] = "missing"   # references an undefined backend
        write_config(self.tmpdir, cfg)
        p.signal(signal.SIGHUP)
        p.wait_stderr(r"routes\[0\]\.backend")
        p.wait_stderr(r"(?i)reload failed")
        self.assertTrue(p.alive())
        self.assertEqual(self.health(self.metrics_port)["generation"], h0["generation"])
        self.assertEqual(titled(p.worker_pids(), WORKER_TITLE), workers)
        self.assert_serves(backend_name="b1", count=4)

    def test_sighup_with_unparsable_config_keeps_serving_old_one(self):
        p = self.start_gateway(workers=1)
        h0 = self.health(self.port)
        workers = self.workers_of(p, 1)
        write_config(self.tmpdir, "server:\n  http_addr: [unclosed\n")
        p.signal(signal.SIGHUP)
        p.wait_stderr(r"(?i)reload failed")
        self.assertTrue(p.alive())
        self.assertEqual(titled(p.worker_pids(), WORKER_TITLE), workers)
        self.assertEqual(self.health(self.port)["generation"], h0["generation"])
        self.assert_serves()


class PidFileAndDaemonTest(FoundationTest):

    def test_daemon_mode_detaches_and_stops_through_pid_file(self):
        b1 = self.backend()
        port = free_port()
        cfg = gateway_config(self.tmpdir, port, [b1], workers=2,
                             error_log=os.path.join(self.tmpdir, "error.log"))
        pid_file = cfg["server"]["pid_file"]
        p = self.photon(cfg, args=["-d"], ports=[])   # no waiting: the command itself must
        self.assertEqual(p.wait(10), 0)               # return only once the daemon is ready
        self.assertTrue(os.path.exists(pid_file), "command returned before the pid file")
        master = read_pid(pid_file)
        p.adopt(master)
        self.assertNotEqual(master, p.pid)
        self.assertTrue(pid_alive(master))
        self.assertTrue(cmdline(master).startswith(MASTER_TITLE), cmdline(master))
        self.assertTrue(port_listening(port), "command returned before the listener was open")
        self.assertNotEqual(os.getsid(master), os.getsid(0))   # detached into its own session
        r = http_request(port, "GET", "/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["pid"], master)
        self.assertEqual(http_request(port, "GET", "/name").text, "b1")
        rc, out, err = run_photon(["-c", p.config, "-s", "stop"])
        self.assertEqual(rc, 0, err)
        wait_until(lambda: not pid_alive(master), timeout=5, msg="daemon did not stop")
        wait_until(lambda: not port_listening(port), timeout=5)
        self.assertFalse(os.path.exists(pid_file))
        self.assertEqual(p.config_pids(), [])
        with open(os.path.join(self.tmpdir, "error.log")) as f:
            self.assertIn("SIGTERM", f.read())

    def test_daemon_that_cannot_write_its_pid_file_reports_failure(self):
        b1 = self.backend()
        port = free_port()
        cfg = gateway_config(self.tmpdir, port, [b1], workers=1,
                             pid_name=os.path.join("no-such-dir", "photon.pid"))
        p = self.photon(cfg, args=["-d"], ports=[])
        self.assertEqual(p.wait(10), 1)
        wait_until(lambda: not p.config_pids(), timeout=5, msg="a failed daemon kept running")
        self.assertFalse(port_listening(port))

    def test_second_instance_with_same_pid_file_is_refused(self):
        p = self.start_gateway(workers=1)
        other_port = free_port()
        cfg2 = gateway_config(self.tmpdir, other_port, [self.b1], workers=1)
        self.assertEqual(cfg2["server"]["pid_file"], self.pid_file)
        path2 = write_config(self.tmpdir, cfg2, name="second")
        rc, out, err = run_photon(["-c", path2], timeout=10)
        self.assertEqual(rc, 1, err)
        self.assertIn("already running", err)
        self.assertIn(str(p.pid), err)
        self.assertFalse(port_listening(other_port))
        self.assertEqual(read_pid(self.pid_file), p.pid)
        self.assertTrue(p.alive())
        self.assert_serves()

    def test_second_instance_on_same_port_fails_address_in_use(self):
        p = self.start_gateway(workers=1)
        cfg2 = gateway_config(self.tmpdir, self.port, [self.b1], workers=1,
                              pid_name="second.pid")
        path2 = write_config(self.tmpdir, cfg2, name="second")
        rc, out, err = run_photon(["-c", path2], timeout=10)
        self.assertEqual(rc, 1, err)
        self.assertIn("address already in use", err.lower())
        self.assertIn(str(self.port), err)
        self.assertFalse(os.path.exists(os.path.join(self.tmpdir, "second.pid")))
        self.assertEqual(read_pid(self.pid_file), p.pid)
        self.assertTrue(p.alive())
        self.assert_serves()

    def test_stale_pid_file_does_not_block_start(self):
        b1 = self.backend()
        port = free_port()
        cfg = gateway_config(self.tmpdir, port, [b1], workers=1)
        pid_file = cfg["server"]["pid_file"]
        dead = _dead_pid()
        with open(pid_file, "w") as f:
            f.write("%d\n" % dead)
        p = self.photon(cfg)
        self.assertEqual(read_pid(pid_file), p.pid)
        self.assertEqual(http_request(port, "GET", "/name").text, "b1")

    def test_invalid_config_never_listens(self):
        b1 = self.backend()
        port = free_port()
        cfg = gateway_config(self.tmpdir, port, [b1], workers=1)
        cfg["routes"][0]["backend"] = "missing"
        path = write_config(self.tmpdir, cfg)
        seen_listening = []
        done = threading.Event()

        def watch():
            while not done.is_set():
                if port_listening(port):
                    seen_listening.append(True)
                done.wait(0.005)
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        try:
            rc, out, err = run_photon(["-c", path], timeout=10)
        finally:
            done.set()
            t.join(2)
        self.assertEqual(rc, 1, err)
        self.assertIn("not starting", err)
        self.assertIn("routes[0].backend", err)
        self.assertEqual(seen_listening, [], "port was opened by a config that fails validation")
        self.assertFalse(port_listening(port))
        self.assertFalse(os.path.exists(cfg["server"]["pid_file"]))

    def test_start_failure_on_busy_port_leaves_no_pid_file(self):
        b1 = self.backend()
        port = free_port()
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        cfg = gateway_config(self.tmpdir, port, [b1], workers=1)
        path = write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-c", path], timeout=10)
        self.assertEqual(rc, 1, err)
        self.assertIn("address already in use", err.lower())
        self.assertFalse(os.path.exists(cfg["server"]["pid_file"]))


def _dead_pid():
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["/bin/true"])
    proc.wait()
    return proc.pid
