# SPDX-License-Identifier: Apache-2.0
"""`make install DESTDIR=...` and `make uninstall`: the tree a package would ship.

The paths come from build/config.mk (what ./configure chose). The installed binary checks the
installed configuration and every installed example; a second install keeps an edited
configuration and puts the new default beside it; uninstall removes what install put there
except the configuration.
"""

import os
import subprocess

from harness import REPO_ROOT, IntegrationTest


def config_mk():
    values = {}
    with open(os.path.join(REPO_ROOT, "build", "config.mk")) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, v = line.partition("=")
                values[k.strip()] = v.strip()
    return values


class InstallTest(IntegrationTest):
    def make(self, target, destdir):
        # build/photon is taken as it is (never rebuilt here, whatever flags built it).
        r = subprocess.run(["make", "--no-print-directory", "-o", "build/photon",
                            "-o", "build/flags", target, "DESTDIR=" + destdir],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def test_install_and_uninstall_tree(self):
        self.require_photon()
        mk = config_mk()
        dest = os.path.join(self.tmpdir, "root")
        self.make("install", dest)
        sbin = dest + mk["SBINDIR"] + "/photon"
        conf = dest + mk["CONF_PATH"]
        man8 = dest + mk["MANDIR"] + "/man8/photon.8"
        man5 = dest + mk["MANDIR"] + "/man5/photon.conf.5"
        examples = dest + mk["SYSCONFDIR"] + "/examples"
        for path, mode in ((sbin, 0o755), (conf, 0o644), (man8, 0o644), (man5, 0o644)):
            self.assertTrue(os.path.isfile(path), path)
            self.assertEqual(os.stat(path).st_mode & 0o777, mode, path)
        self.assertIn("metrics.yaml", os.listdir(examples))

        r = subprocess.run([sbin, "-V"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(mk["VERSION"], r.stdout)
        for path in [conf] + [os.path.join(examples, n) for n in sorted(os.listdir(examples))]:
            r = subprocess.run([sbin, "-t", "-c", path], capture_output=True, text=True,
                               timeout=30, env=dict(os.environ, PHOTON_TEST_IO_URING="0"))
            self.assertEqual(r.returncode, 0, "%s: %s" % (path, r.stderr))
            self.assertIn("test is successful", r.stderr)

        # An edited configuration survives a second install; the new default goes beside it.
        with open(conf, "a") as f:
            f.write("# edited\n")
        out = self.make("install", dest)
        self.assertIn("keeping existing", out)
        with open(conf) as f:
            self.assertTrue(f.read().endswith("# edited\n"))
        self.assertTrue(os.path.isfile(conf + ".default"))

        self.make("uninstall", dest)
        for path in (sbin, man8, man5, examples):
            self.assertFalse(os.path.exists(path), path)
        self.assertTrue(os.path.isfile(conf), "uninstall must keep the configuration")
