# SPDX-License-Identifier: Apache-2.0
"""libphoton: `make install-lib DESTDIR=...` installs the static and shared library, the header
and photon.pc; the example program in contrib/embedding is built against that installed tree
(through pkg-config, shared and static) and runs the gateway: master and workers in the
embedding program, proxying, reload, graceful stop, configuration errors as exceptions."""

import json
import os
import re
import signal
import subprocess

from harness import (REPO_ROOT, IntegrationTest, base_config, cmdline, free_port, http_request,
                     wait_until, write_config)
from test_install import config_mk

EXAMPLE = os.path.join(REPO_ROOT, "contrib", "embedding", "photon-embedded.cc")


def run(cmd, env=None, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout + r.stderr


class LibraryTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.require_photon()
        self.mk = config_mk()
        self.root = os.path.join(self.tmpdir, "root")
        # The library as make check built it (never rebuilt here, whatever flags built it).
        rc, out = run(["make", "-C", REPO_ROOT, "--no-print-directory", "-o", "build/flags",
                       "-o", "build/libphoton.a", "-o", "build/libphoton.so",
                       "install-lib", "DESTDIR=" + self.root])
        self.assertEqual(rc, 0, out)
        self.libdir = self.root + self.mk["LIBDIR"]
        self.pc_env = {"PKG_CONFIG_PATH": self.libdir + "/pkgconfig",
                       "PKG_CONFIG_SYSROOT_DIR": self.root}

    def pkg_config(self, *args):
        rc, out = run(["pkg-config"] + list(args) + ["photon"], env=self.pc_env)
        self.assertEqual(rc, 0, out)
        return out.split()

    def build_example(self, static):
        exe = os.path.join(self.tmpdir, "photon-embedded" + ("-static" if static else ""))
        if static:
            libs = self.pkg_config("--variable=static_libs")
            self.assertTrue(os.path.isfile(libs[0]) and libs[0].endswith("/libphoton.a"), libs)
        else:
            libs = self.pkg_config("--libs")
        cmd = ["g++", "-std=c++20", "-Wall", "-Wextra", "-Werror", EXAMPLE, "-o", exe] + \
            self.pkg_config("--cflags") + libs
        rc, out = run(cmd)
        self.assertEqual(rc, 0, " ".join(cmd) + "\n" + out)
        return exe

    def needed(self, exe):
        rc, out = run(["readelf", "-d", exe])
        self.assertEqual(rc, 0, out)
        return re.findall(r"Shared library: \[([^\]]+)\]", out)

    def serve_and_stop(self, exe, env):
        b = self.backend()
        port = free_port()
        cfg = base_config(port, [b])
        cfg["server"].update(worker_processes=2, pid_file=os.path.join(self.tmpdir, "p.pid"))
        p = self.photon(cfg, binary=exe, env=env)
        # The program's argv stays its own: the process titles go to the thread names only.
        def comm(pid):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    return f.read().strip()
            except OSError:
                return ""

        def workers_now():
            pids = [pid for pid in p.worker_pids() if comm(pid).startswith("photon: worker")]
            return len(pids) == 2 and pids
        workers = wait_until(workers_now, timeout=10, msg="the embedded master forks 2 workers")
        self.assertIn("photon-embedded", cmdline(workers[0]))
        for _ in range(4):
            r = http_request(port, "GET", "/name")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"b1")
        # HUP re-reads the file the Config came from: a new route strips its prefix afterwards.
        def upstream_path():
            r = http_request(port, "GET", "/added/echo")
            try:
                return json.loads(r.body)["path"]
            except ValueError:
                return None  # the backend answers /added/echo as an ordinary path
        self.assertNotEqual(upstream_path(), "/echo")
        cfg["routes"].insert(0, {"id": "added", "path": "/added/**", "backend": "default",
                                 "strip_prefix": "/added"})
        write_config(self.tmpdir, cfg, name="photon")
        p.signal(signal.SIGHUP)
        wait_until(lambda: upstream_path() == "/echo", timeout=10,
                   msg="reload through the embedding program")
        p.signal(signal.SIGQUIT)
        self.assertEqual(p.wait(timeout=15), 0, p.stderr_text())
        self.assertIn("gateway stopped (status 0)", p.stderr_text())
        for pid in workers:
            wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                       open("/proc/%d/stat" % pid).read().split()[2] == "Z", timeout=5,
                       msg="workers end with the gateway")

    def test_installed_tree(self):
        inc, lib = self.root + self.mk["INCLUDEDIR"], self.libdir
        version = self.mk["VERSION"]
        for path in (inc + "/photon/photon.h", lib + "/libphoton.a",
                     lib + "/libphoton.so." + version, lib + "/pkgconfig/photon.pc"):
            self.assertTrue(os.path.isfile(path), path)
        self.assertEqual(os.readlink(lib + "/libphoton.so.0"), "libphoton.so." + version)
        self.assertEqual(os.readlink(lib + "/libphoton.so"), "libphoton.so.0")
        rc, out = run(["readelf", "-d", lib + "/libphoton.so." + version])
        self.assertIn("Library soname: [libphoton.so.0]", out)
        # Only the documented interface is exported.
        rc, out = run(["nm", "-DC", "--defined-only", lib + "/libphoton.so." + version])
        self.assertEqual(rc, 0, out)
        names = [line.split(None, 2)[2] for line in out.splitlines() if len(line.split()) >= 3]
        self.assertTrue(any(n.startswith("photon::Gateway::run()") for n in names), out)
        strays = [n for n in names if n != "PHOTON_0" and not re.match(
            r"(photon::(Config|ConfigError|Gateway)\b|photon::version\(\)|"
            r"(typeinfo|typeinfo name|vtable) for photon::ConfigError)", n)]
        self.assertEqual(strays, [])
        rc, out = run(["pkg-config", "--modversion", "photon"], env=self.pc_env)
        self.assertEqual(out.strip(), version)
        # The header stands alone, in C++17 too.
        src = os.path.join(self.tmpdir, "h.cc")
        with open(src, "w") as f:
            f.write("#include <photon/photon.h>\nint main() { return photon::version()[0] ? 0 : 1; }\n")
        cmd = ["g++", "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only",
               "-I" + inc, src]
        rc, out = run(cmd)
        self.assertEqual(rc, 0, out)

    def test_example_linked_shared(self):
        exe = self.build_example(static=False)
        self.assertIn("libphoton.so.0", self.needed(exe))
        env = {"LD_LIBRARY_PATH": self.libdir}
        rc, out = run([exe, "-c", os.path.join(self.tmpdir, "missing.yaml")], env=env)
        self.assertEqual(rc, 1, out)
        self.assertIn("missing.yaml has 1 error", out)
        self.serve_and_stop(exe, env)

    def test_example_linked_static(self):
        exe = self.build_example(static=True)
        self.assertFalse([n for n in self.needed(exe) if "photon" in n])
        # Errors come as photon::ConfigError with every error of the file.
        cfg = base_config(free_port(), ["127.0.0.1:1"])
        cfg["server"]["worker_processes"] = "many"
        cfg["routes"][0]["backend"] = "nowhere"
        path = write_config(self.tmpdir, cfg, name="bad")
        rc, out = run([exe, "-c", path])
        self.assertEqual(rc, 1, out)
        self.assertIn("has 2 errors", out)
        self.assertIn("worker_processes", out)
        self.assertIn("nowhere", out)
        self.serve_and_stop(exe, {})
