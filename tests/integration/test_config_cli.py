# SPDX-License-Identifier: Apache-2.0
"""Command line and configuration loading: -h, -V, usage errors, -s without a running
instance, and `photon -t` on good and bad YAML, JSON and TOML files (located errors, warnings
with "did you mean", environment substitution, masked secrets, every shipped config)."""

import glob
import os
import re
import subprocess
import textwrap

from harness import (REPO_ROOT, IntegrationTest, base_config, cmdline, free_port,
                     http_request, port_listening, run_photon, wait_until, write_config)

SUCCESS_RE = r"configuration file %s test is successful"
FAILED_RE = r"configuration file %s test failed"
FORMATS = ("yaml", "json", "toml")

# Every option the help text must document, short and long.
OPTIONS = [("-c", "--config"), ("-l", "--log-level"), ("-d", "--daemon"), ("-u", "--upgrade"),
           ("-t", "--test"), ("-s", "--signal"), ("-h", "--help"), ("-V", "--version")]


def valid_config(tmpdir, port=None, workers=2):
    """A complete valid config dict; its pid file lives in ``tmpdir``."""
    cfg = base_config(port or free_port(), ["127.0.0.1:9001", "127.0.0.1:9002"])
    cfg["server"]["pid_file"] = os.path.join(str(tmpdir), "photon.pid")
    cfg["server"]["worker_processes"] = workers
    return cfg


def yaml_doc(tmpdir, body):
    """The YAML text ``body`` (dedented) with ``@PID@`` replaced by a pid file in tmpdir."""
    return textwrap.dedent(body).lstrip("\n").replace(
        "@PID@", os.path.join(str(tmpdir), "photon.pid"))


class CheckMixin:
    """Helpers around `photon -t`."""

    def check(self, path, *extra, env=None, cwd=None):
        """Runs ``photon -t -c path [extra]``; returns (status, stdout, stderr)."""
        self.require_photon()
        return run_photon(["-t", "-c", path] + list(extra), env=env, cwd=cwd)

    def assert_valid(self, path, *extra, env=None, cwd=None):
        rc, out, err = self.check(path, *extra, env=env, cwd=cwd)
        self.assertEqual(rc, 0, "photon -t rejected %s:\n%s" % (path, err))
        self.assertRegex(err, SUCCESS_RE % re.escape(path))
        self.assertNotRegex(err, r"\[error\]")
        return out, err

    def assert_invalid(self, path, *extra, env=None, errors=None):
        rc, out, err = self.check(path, *extra, env=env)
        self.assertEqual(rc, 1, "photon -t accepted %s:\n%s" % (path, err))
        self.assertRegex(err, FAILED_RE % re.escape(path))
        self.assertNotRegex(err, SUCCESS_RE % re.escape(path))
        if errors is not None:
            self.assertRegex(err, r"test failed \(%d errors?\)" % errors)
            self.assertEqual(len(re.findall(r"^photon: \[error\] ", err, re.M)), errors, err)
        return err

    def error_lines(self, err):
        return [l for l in err.splitlines() if l.startswith("photon: [error] ")]

    def warn_lines(self, err):
        return [l for l in err.splitlines() if l.startswith("photon: [warn] ")]


class ConfigTestModeTest(CheckMixin, IntegrationTest):

    def test_valid_config_passes_in_every_format(self):
        cfg = valid_config(self.tmpdir)
        dumps = {}
        for fmt in FORMATS:
            with self.subTest(fmt=fmt):
                path = write_config(self.tmpdir, cfg, fmt)
                out, err = self.assert_valid(path)
                self.assertEqual(self.warn_lines(err), [])
                dumps[fmt], _ = self.assert_valid(path, "-l", "debug")
        # The three spellings of one config load into one model.
        self.assertIn("http_addr", dumps["yaml"])
        self.assertEqual(dumps["json"], dumps["yaml"])
        self.assertEqual(dumps["toml"], dumps["yaml"])

    def test_yml_suffix_is_yaml(self):
        path = write_config(self.tmpdir, valid_config(self.tmpdir), "yml")
        self.assert_valid(path)

    def test_test_mode_opens_nothing_and_writes_no_pid_file(self):
        port = free_port()
        cfg = valid_config(self.tmpdir, port=port)
        cfg["server"]["error_log"] = os.path.join(self.tmpdir, "error.log")
        cfg["server"]["access_log"] = os.path.join(self.tmpdir, "access.log")
        path = write_config(self.tmpdir, cfg)
        self.assert_valid(path)
        self.assertEqual(sorted(os.listdir(self.tmpdir)), ["photon.yaml"])
        self.assertFalse(port_listening(port))

    def test_syntax_errors_fail_in_every_format(self):
        cases = {
            # (text, line the error must name)
            "yaml": ('server:\n  http_addr: "127.0.0.1:8080"\n   bad: [\n', 3),
            "json": ('{\n  "server": {\n    "http_addr": "127.0.0.1:8080",\n  }\n}\n', 4),
            "toml": ('[server]\nhttp_addr = "127.0.0.1:8080"\nworker_processes = = 2\n', 3),
        }
        for fmt, (text, line) in cases.items():
            with self.subTest(fmt=fmt):
                path = write_config(self.tmpdir, text, fmt, name="syntax")
                err = self.assert_invalid(path, errors=1)
                self.assertRegex(err, r"\[error\] %s:%d:\d+: .*(?i:syntax)"
                                 % (re.escape(path), line))

    def test_yaml_errors_name_key_path_line_and_column(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, """
            server:
              http_addr: "127.0.0.1:8080"
              worker_processes: 1
              pid_file: "@PID@"
              max_connections: "lots"
            load_balancing:
              backends:
                default:
                  upstreams:
                    - address: "127.0.0.1:9001"
            routes:
              - id: "all"
                path: "/**"
                backend: "default"
            health_check: {}
            metrics:
              prometheus: false
            """))
        err = self.assert_invalid(path, errors=1)
        self.assertRegex(err, r"(?m)^photon: \[error\] %s:5:20: server\.max_connections: .*lots"
                         % re.escape(path))

    def test_errors_inside_lists_name_the_index(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, """
            server:
              http_addr: "127.0.0.1:8080"
              worker_processes: 1
              pid_file: "@PID@"
            load_balancing:
              backends:
                default:
                  upstreams:
                    - address: "127.0.0.1:9001"
                    - address: "127.0.0.1:9002"
                      weight: "heavy"
            routes:
              - id: "one"
                path: "/one"
                backend: "default"
              - id: "two"
                path: "/two"
                backend: "nope"
            health_check: {}
            metrics:
              prometheus: false
            """))
        err = self.assert_invalid(path, errors=2)
        self.assertRegex(err, r"%s:11:\d+: load_balancing\.backends\.default\.upstreams\[1\]"
                         r"\.weight: " % re.escape(path))
        self.assertRegex(err, r"%s:18:\d+: routes\[1\]\.backend: .*nope" % re.escape(path))

    def test_several_errors_reported_in_one_run(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, """
            server:
              http_addr: "not an address"
              worker_processes: 0
              pid_file: "@PID@"
              connection_timeout: "soon"
            load_balancing:
              backends:
                default:
                  upstreams:
                    - address: "127.0.0.1:9001"
            routes:
              - id: "all"
                path: "/**"
                backend: "missing"
            health_check:
              failure_threshold: -1
            metrics:
              prometheus: false
            """))
        err = self.assert_invalid(path, errors=5)
        for line, key in ((2, r"server\.http_addr"), (3, r"server\.worker_processes"),
                          (5, r"server\.connection_timeout"), (14, r"routes\[0\]\.backend"),
                          (16, r"health_check\.failure_threshold")):
            self.assertRegex(err, r"%s:%d:\d+: %s: " % (re.escape(path), line, key))
        # Errors come in file order.
        lines = [int(m) for m in re.findall(r"\[error\] [^:]+:(\d+):", err)]
        self.assertEqual(lines, sorted(lines))

    def test_json_and_toml_errors_name_key_path_and_line(self):
        cfg = valid_config(self.tmpdir)
        cfg["server"]["connection_timeout"] = "soon"
        cfg["routes"][0]["backend"] = "missing"
        for fmt in ("json", "toml"):
            with self.subTest(fmt=fmt):
                path = write_config(self.tmpdir, cfg, fmt)
                with open(path) as f:
                    text = f.read().splitlines()
                want_timeout = 1 + next(i for i, l in enumerate(text) if "soon" in l)
                want_backend = 1 + next(i for i, l in enumerate(text) if "missing" in l)
                err = self.assert_invalid(path, errors=2)
                self.assertRegex(err, r"%s:%d:\d+: server\.connection_timeout: "
                                 % (re.escape(path), want_timeout))
                self.assertRegex(err, r"%s:%d:\d+: routes\[0\]\.backend: "
                                 % (re.escape(path), want_backend))

    def test_duplicate_keys_are_errors_naming_both_lines(self):
        cases = {
            "yaml": ('server:\n  http_addr: "127.0.0.1:8080"\n  worker_processes: 1\n'
                     '  http_addr: "127.0.0.1:8081"\n', 4, 2),
            "json": ('{\n  "server": {\n    "http_addr": "127.0.0.1:8080",\n'
                     '    "http_addr": "127.0.0.1:8081"\n  }\n}\n', 4, 3),
        }
        for fmt, (text, line, first) in cases.items():
            with self.subTest(fmt=fmt):
                path = write_config(self.tmpdir, text, fmt, name="dup")
                err = self.assert_invalid(path)
                dup = [l for l in self.error_lines(err) if "duplicate" in l]
                self.assertEqual(len(dup), 1, err)
                self.assertRegex(dup[0], r"%s:%d:\d+: server\.http_addr: .*line %d"
                                 % (re.escape(path), line, first))

    def test_empty_or_non_map_documents_are_errors(self):
        for name, text in (("empty", ""), ("list", "- a\n- b\n"), ("scalar", "42\n")):
            with self.subTest(doc=name):
                path = write_config(self.tmpdir, text, "yaml", name=name)
                err = self.assert_invalid(path, errors=1)
                self.assertRegex(err, r"%s:1:1: " % re.escape(path))

    def test_missing_required_sections_are_errors(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, """
            server:
              http_addr: "127.0.0.1:8080"
              worker_processes: 1
              pid_file: "@PID@"
            """))
        err = self.assert_invalid(path)
        self.assertRegex(err, r"load_balancing")

    def test_unknown_keys_warn_with_did_you_mean(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, """
            server:
              http_addr: "127.0.0.1:8080"
              worker_processes: 1
              pid_file: "@PID@"
              conection_timeout: "30s"
            load_balancing:
              backends:
                default:
                  upstreams:
                    - address: "127.0.0.1:9001"
            routes:
              - id: "all"
                path: "/**"
                backend: "default"
                methds: ["GET"]
            health_check: {}
            metrics:
              prometheus: false
              zz_totally_custom: 1
            """))
        out, err = self.assert_valid(path)
        warns = self.warn_lines(err)
        self.assertEqual(len(warns), 3, err)
        self.assertRegex(err, r"%s:5:\d+: server\.conection_timeout: .*unknown.*"
                         r"did you mean 'connection_timeout'" % re.escape(path))
        self.assertRegex(err, r"%s:15:\d+: routes\[0\]\.methds: .*did you mean 'methods'"
                         % re.escape(path))
        custom = [w for w in warns if "zz_totally_custom" in w]
        self.assertEqual(len(custom), 1, err)
        self.assertRegex(custom[0], r":19:\d+: metrics\.zz_totally_custom: ")
        self.assertNotIn("did you mean", custom[0])

    def test_unsupported_suffix_is_rejected(self):
        text = yaml_doc(self.tmpdir, """
            server:
              http_addr: "127.0.0.1:8080"
            """)
        for suffix in ("conf", "ini", ""):
            with self.subTest(suffix=suffix):
                path = write_config(self.tmpdir, text, suffix, name="photon-" + suffix)
                err = self.assert_invalid(path, errors=1)
                self.assertRegex(err, r"(?i)unsupported")
                for s in (".yaml", ".yml", ".json", ".toml"):
                    self.assertIn(s, err)

    def test_missing_file_is_an_error(self):
        path = os.path.join(self.tmpdir, "absent.yaml")
        err = self.assert_invalid(path, errors=1)
        self.assertIn(path, err)

    def test_every_shipped_config_passes(self):
        files = sorted(f for pat in ("conf/*", "conf/examples/*")
                       for f in glob.glob(os.path.join(REPO_ROOT, pat))
                       if os.path.splitext(f)[1] in (".yaml", ".yml", ".json", ".toml"))
        self.assertIn(os.path.join(REPO_ROOT, "conf", "photon.yaml"), files)
        self.assertGreaterEqual(len(files), 3)
        # Run from the repository root (the TLS example names its files relative to it) with
        # none of the variables the examples reference set, so their defaults apply.
        env = {k: None for k in os.environ if k.startswith(("PHOTON_", "APP_", "JWT_"))}
        for f in files:
            with self.subTest(file=os.path.relpath(f, REPO_ROOT)):
                self.assert_valid(f, env=env, cwd=REPO_ROOT)


class EnvSubstitutionTest(CheckMixin, IntegrationTest):

    TEXT = """
        server:
          http_addr: "${IT_ADDR}"
          worker_processes: ${IT_WORKERS:-3}
          max_connections: ${IT_MAXCONN:-777}
          pid_file: "@PID@"
          upgrade_sock: "${IT_SOCK:-/tmp/default.sock}"
        load_balancing:
          backends:
            default:
              upstreams:
                - address: "127.0.0.1:9001"
        routes:
          - id: "all"
            path: "/**"
            backend: "default"
        health_check: {}
        metrics:
          prometheus: false
        """

    def dump(self, env):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, self.TEXT))
        base = {"IT_ADDR": None, "IT_WORKERS": None, "IT_MAXCONN": None, "IT_SOCK": None}
        base.update(env)
        out, err = self.assert_valid(path, "-l", "debug", env=base)
        return out

    def test_variables_and_defaults_are_substituted(self):
        out = self.dump({"IT_ADDR": "127.0.0.1:18123"})
        self.assertRegex(out, r'http_addr: "127\.0\.0\.1:18123"')
        self.assertRegex(out, r"(?m)^  worker_processes: 3$")
        self.assertRegex(out, r"(?m)^  max_connections: 777$")
        self.assertRegex(out, r'upgrade_sock: "/tmp/default\.sock"')

    def test_set_variables_override_defaults_and_are_typed(self):
        out = self.dump({"IT_ADDR": "127.0.0.1:18124", "IT_WORKERS": "5",
                         "IT_MAXCONN": "4242", "IT_SOCK": "/tmp/other.sock"})
        self.assertRegex(out, r"(?m)^  worker_processes: 5$")
        self.assertRegex(out, r"(?m)^  max_connections: 4242$")
        self.assertRegex(out, r'upgrade_sock: "/tmp/other\.sock"')

    def test_empty_variable_takes_the_default(self):
        out = self.dump({"IT_ADDR": "127.0.0.1:18125", "IT_SOCK": ""})
        self.assertRegex(out, r'upgrade_sock: "/tmp/default\.sock"')

    def test_unset_variable_is_an_error_naming_it_and_the_key(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, self.TEXT))
        err = self.assert_invalid(path, env={"IT_ADDR": None}, errors=1)
        self.assertRegex(err, r"%s:2:\d+: server\.http_addr: .*IT_ADDR" % re.escape(path))

    def test_unterminated_reference_is_an_error(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, self.TEXT).replace(
            '"${IT_SOCK:-/tmp/default.sock}"', '"${IT_SOCK"'))
        err = self.assert_invalid(path, env={"IT_ADDR": "127.0.0.1:18128"}, errors=1)
        self.assertRegex(err, r"%s:6:\d+: server\.upgrade_sock: .*\$\$\{"
                         % re.escape(path))

    def test_badly_typed_substitution_is_an_error(self):
        path = write_config(self.tmpdir, yaml_doc(self.tmpdir, self.TEXT))
        err = self.assert_invalid(path, env={"IT_ADDR": "127.0.0.1:18126",
                                             "IT_WORKERS": "many"}, errors=1)
        self.assertRegex(err, r"server\.worker_processes: .*many")

    def test_substitution_works_in_json_and_toml(self):
        cfg = valid_config(self.tmpdir)
        cfg["server"]["http_addr"] = "${IT_ADDR}"
        cfg["server"]["upgrade_sock"] = "${IT_SOCK:-/tmp/fallback.sock}"
        for fmt in ("json", "toml"):
            with self.subTest(fmt=fmt):
                path = write_config(self.tmpdir, cfg, fmt)
                out, _ = self.assert_valid(path, "-l", "debug",
                                           env={"IT_ADDR": "127.0.0.1:18127", "IT_SOCK": None})
                self.assertRegex(out, r'http_addr: "127\.0\.0\.1:18127"')
                self.assertRegex(out, r'upgrade_sock: "/tmp/fallback\.sock"')
                err = self.assert_invalid(path, env={"IT_ADDR": None, "IT_SOCK": None})
                self.assertRegex(err, r"server\.http_addr: .*IT_ADDR")

    def test_running_photon_uses_substituted_values(self):
        b1 = self.backend()
        port = free_port()
        cfg = valid_config(self.tmpdir)
        cfg["server"]["http_addr"] = "${IT_ADDR}"
        cfg["server"]["worker_processes"] = "${IT_WORKERS:-2}"
        # $${ is a literal "${": the pid file name contains it.
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "$${lit}.pid")
        cfg["load_balancing"]["backends"]["default"]["upstreams"] = [{"address": "${IT_UP}"}]
        p = self.photon(cfg, ports=[port],
                        env={"IT_ADDR": "127.0.0.1:%d" % port, "IT_WORKERS": None,
                             "IT_UP": b1.address})
        r = http_request(port, "GET", "/anything")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("x-backend"), "b1")
        with open(os.path.join(self.tmpdir, "${lit}.pid")) as f:
            self.assertEqual(int(f.read()), p.pid)
        wait_until(lambda: len([c for c in p.worker_pids()
                                if cmdline(c) == "photon: worker process"]) == 2,
                   timeout=5, msg="expected 2 workers (${IT_WORKERS:-2})")


class SecretMaskingTest(CheckMixin, IntegrationTest):

    JWT_SECRET = "jwt-Secret-Value-0123456789-abcdefXYZ"
    API_KEY = "api-Key-Value-9876543210-zyxwv"
    ENV_KEY = "env-Key-Value-1357924680-qwerty"

    def write(self):
        cfg = valid_config(self.tmpdir)
        cfg["routes"][0]["middleware"] = ["auth"]
        cfg["routes"].append({"id": "keys", "path": "/keys/**", "backend": "default",
                              "middleware": ["auth"]})
        cfg["middleware"] = {"authentication": {
            "auth_type": "jwt",
            "jwt": {"secret": self.JWT_SECRET, "algorithm": "HS256"},
            "api_key": {"keys": [self.API_KEY, "${IT_SECRET_KEY}"]},
        }}
        return write_config(self.tmpdir, cfg)

    def test_debug_dump_masks_jwt_secret_and_api_keys(self):
        path = self.write()
        out, err = self.assert_valid(path, "-l", "debug", env={"IT_SECRET_KEY": self.ENV_KEY})
        self.assertRegex(out, r'secret: "?\*\*\*\*"?')
        self.assertIn("auth_type: jwt", out)
        for secret in (self.JWT_SECRET, self.API_KEY, self.ENV_KEY):
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, err)
        # Not even a recognisable fragment of the secret.
        self.assertNotIn("0123456789", out + err)

    def test_trace_level_masks_too(self):
        path = self.write()
        rc, out, err = self.check(path, "-l", "trace", env={"IT_SECRET_KEY": self.ENV_KEY})
        self.assertEqual(rc, 0, err)
        for secret in (self.JWT_SECRET, self.API_KEY, self.ENV_KEY):
            self.assertNotIn(secret, out + err)

    def test_errors_about_secrets_do_not_print_them(self):
        cfg = valid_config(self.tmpdir)
        cfg["middleware"] = {"authentication": {
            "auth_type": "jwt",
            "jwt": {"secret": self.JWT_SECRET, "algorithm": "HS999"}}}
        path = write_config(self.tmpdir, cfg)
        err = self.assert_invalid(path, "-l", "debug")
        self.assertRegex(err, r"middleware\.authentication\.jwt\.algorithm")
        self.assertNotIn(self.JWT_SECRET, err)
        # An asymmetric algorithm without its key file: the error names the key, not the secret.
        cfg["middleware"]["authentication"]["jwt"]["algorithm"] = "RS256"
        path = write_config(self.tmpdir, cfg)
        err = self.assert_invalid(path, "-l", "debug")
        self.assertRegex(err, r"middleware\.authentication\.jwt\.public_key_file")
        self.assertNotIn(self.JWT_SECRET, err)


class CliTest(CheckMixin, IntegrationTest):

    def run_cli(self, *args):
        self.require_photon()
        return run_photon(list(args))

    def test_help_lists_every_option(self):
        for flag in ("-h", "--help"):
            with self.subTest(flag=flag):
                rc, out, err = self.run_cli(flag)
                self.assertEqual(rc, 0, err)
                self.assertEqual(err, "")
                for short, long in OPTIONS:
                    self.assertRegex(out, r"(?m)^\s+%s, %s\b" % (re.escape(short),
                                                                re.escape(long)))
                for sig in ("stop", "quit", "reload", "reopen"):
                    self.assertIn(sig, out)

    def test_version_names_version_and_libraries(self):
        for flag in ("-V", "--version"):
            with self.subTest(flag=flag):
                rc, out, err = self.run_cli(flag)
                self.assertEqual(rc, 0, err)
                self.assertRegex(out, r"(?m)^photon version \d+\.\d+\.\d+")
                libs = re.search(r"(?m)^libraries: (.*)$", out)
                self.assertIsNotNone(libs, out)
                for lib in ("libev", "OpenSSL", "PCRE2", "xxHash", "cJSON", "Boost",
                            "yaml-cpp", "toml++"):
                    self.assertIn(lib, libs.group(1))

    def test_unknown_option_prints_usage_and_exits_2(self):
        for args in (["-x"], ["--bogus"], ["-t", "-q"], ["stray-argument"]):
            with self.subTest(args=args):
                rc, out, err = self.run_cli(*args)
                self.assertEqual(rc, 2, err)
                self.assertEqual(out, "")
                self.assertRegex(err, r"(?m)^usage: photon ")

    def test_bad_option_values_exit_2(self):
        for args, what in ((["-l", "loud"], "loud"), (["--log-level=verbose"], "verbose"),
                           (["-s", "explode"], "explode"), (["-c"], "-c"),
                           (["--help=yes"], "help")):
            with self.subTest(args=args):
                rc, out, err = self.run_cli(*args)
                self.assertEqual(rc, 2, err)
                self.assertIn(what, err)
                self.assertRegex(err, r"(?m)^usage: photon ")

    def test_long_options_and_attached_values(self):
        cfg = valid_config(self.tmpdir)
        path = write_config(self.tmpdir, cfg)
        for args in (["--test", "--config", path], ["--test", "--config=" + path],
                     ["-t", "-c" + path], ["-tc", path]):
            with self.subTest(args=args):
                rc, out, err = self.run_cli(*args)
                self.assertEqual(rc, 0, err)
                self.assertRegex(err, SUCCESS_RE % re.escape(path))

    def test_valid_log_levels_are_accepted(self):
        path = write_config(self.tmpdir, valid_config(self.tmpdir))
        for level in ("error", "warn", "info", "debug", "trace"):
            with self.subTest(level=level):
                rc, out, err = self.run_cli("-t", "-c", path, "-l", level)
                self.assertEqual(rc, 0, err)

    def test_signal_without_running_instance_fails(self):
        cfg = valid_config(self.tmpdir)
        path = write_config(self.tmpdir, cfg)
        pid_file = cfg["server"]["pid_file"]
        for sig in ("stop", "quit", "reload", "reopen"):
            with self.subTest(signal=sig):
                rc, out, err = self.run_cli("-c", path, "-s", sig)
                self.assertEqual(rc, 1, err)
                self.assertIn(pid_file, err)
                self.assertRegex(err, r"(?i)running")

    def test_signal_with_stale_pid_file_fails(self):
        cfg = valid_config(self.tmpdir)
        path = write_config(self.tmpdir, cfg)
        proc = subprocess.Popen(["/bin/true"])
        proc.wait()  # reaped: this pid names no process now
        with open(cfg["server"]["pid_file"], "w") as f:
            f.write("%d\n" % proc.pid)
        rc, out, err = self.run_cli("-c", path, "-s", "stop")
        self.assertEqual(rc, 1, err)
        self.assertIn(str(proc.pid), err)

    def test_start_with_invalid_config_exits_1_before_listening(self):
        port = free_port()
        cfg = valid_config(self.tmpdir, port=port)
        cfg["server"]["worker_processes"] = 0
        path = write_config(self.tmpdir, cfg)
        rc, out, err = self.run_cli("-c", path)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"server\.worker_processes")
        self.assertRegex(err, r"not starting")
        self.assertFalse(port_listening(port))
        self.assertFalse(os.path.exists(cfg["server"]["pid_file"]))


class HealthCheckDefaultNoticeTest(CheckMixin, IntegrationTest):
    def test_t_explains_the_default_health_check(self):
        cfg = valid_config(self.tmpdir)
        cfg["load_balancing"]["backends"]["plain"] = {"upstreams": [{"address": "127.0.0.1:1"}]}
        cfg["load_balancing"]["backends"]["tcp"] = {
            "upstreams": [{"address": "127.0.0.1:2"}], "health_check": {"check_type": "tcp"}}
        path = write_config(self.tmpdir, cfg)
        self.require_photon()
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertEqual(rc, 0, err)
        self.assertIn("backend plain: no health_check block, so its upstreams are checked "
                      "with GET /health and must answer 200", err)
        self.assertNotIn("backend tcp:", err)
        self.assertEqual(self.warn_lines(err), [])
