# SPDX-License-Identifier: Apache-2.0
"""Integration-test harness: run the real photon binary, talk raw HTTP/1.1 to it.

Standard library only (Python 3.11). Everything binds and connects on 127.0.0.1 and every wait
is bounded. The pieces, most used first (README.md beside this file has examples):

    IntegrationTest          unittest.TestCase base: self.tmpdir, self.backend(), self.photon()
    Photon                   one foreground photon master in its own process group
    run_photon(args)         one-shot run (e.g. ``-t``): (exit code, stdout, stderr)
    Conn                     one client connection: requests, pipelining, raw bytes, WebSocket
    http_request(port, ...)  one request on a fresh connection -> Response
    raw_exchange(port, data) send raw bytes, return everything received until close/timeout
    parse_responses(data)    split a raw byte stream into Responses
    base_config(port, ups)   minimal complete config dict to edit
    write_config(dir, cfg)   dict or text -> config file (YAML, JSON or TOML by suffix)
    free_port(), wait_until(pred), photon_binary(), timeout(seconds), pattern(n)
    Backend                  re-exported from backend.py
"""

import base64
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
from signal import SIGKILL, SIGTERM
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import weakref

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from backend import Backend, Request, pattern, pattern_sha256, ws_frame, WS_GUID  # noqa: E402

__all__ = [
    "Backend", "Request", "pattern", "pattern_sha256",
    "REPO_ROOT", "free_port", "photon_binary", "write_config", "render_yaml", "render_toml",
    "Raw", "base_config", "config_ports",
    "Photon", "PhotonError", "run_photon", "child_pids", "descendant_pids", "group_pids",
    "pid_alive", "cmdline", "port_listening",
    "Conn", "Response", "Headers", "ProtocolError", "PeerClosed", "http_request",
    "raw_exchange", "parse_responses", "encode_chunked", "wait_until", "WaitTimeout", "timeout",
    "IntegrationTest",
]

REPO_ROOT = os.path.dirname(os.path.dirname(_HERE))
DEFAULT_TIMEOUT = 5.0


class WaitTimeout(AssertionError):
    """A bounded wait expired (an AssertionError, so unittest reports a failure)."""


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid HTTP/1.x response (or stopped mid-message)."""


class PeerClosed(ProtocolError):
    """The peer closed the connection cleanly (FIN) before the first byte of a response.
    (A reset shows as ConnectionResetError instead.)"""


class PhotonError(Exception):
    """photon failed to start, or did not stop in time. The message includes its stderr."""


# --------------------------------------------------------------------------------------------
# Small utilities


_given_ports = set()
_given_lock = threading.Lock()
_rng = random.Random()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A TCP port on 127.0.0.1 that is free now, for a photon listener in a config.

    The port is drawn from below the kernel's ephemeral range (ip_local_port_range) and checked
    by binding it, so it can never collide with a port the kernel hands out on its own (the
    test backends' port 0, client source ports), which a freed kernel-chosen port could. Never
    returns the same port twice in one test process. Falls back to a kernel-chosen port if the
    ephemeral range leaves no room below it.
    """
    lo, _ = _ephemeral_range()
    first = 20000 if lo > 21000 else None
    for _ in range(200):
        if first is not None:
            port = _rng.randrange(first, lo)
            if not _bindable(port):
                continue
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            finally:
                s.close()
        with _given_lock:
            if port not in _given_ports:
                _given_ports.add(port)
                return port
    raise RuntimeError("no free port found")


def photon_binary():
    """Path of the photon binary: $PHOTON_BIN if set, else <repo>/build/photon."""
    return os.environ.get("PHOTON_BIN") or os.path.join(REPO_ROOT, "build", "photon")


def nofile_wrapper(tmpdir, n):
    """The path of a script that runs photon with an open-file limit of ``n``, soft and hard
    (the master raises a soft limit up to the hard one for max_connections); pass it to
    IntegrationTest.photon(binary=...)."""
    wrapper = os.path.join(tmpdir, "photon-nofile-%d" % n)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nulimit -n %d\nexec %s \"$@\"\n" % (n, photon_binary()))
    os.chmod(wrapper, 0o755)
    return wrapper


def wait_until(pred, timeout=DEFAULT_TIMEOUT, interval=0.02, msg=None):
    """Polls ``pred()`` until it returns a truthy value, which is returned.

    Raises WaitTimeout (an AssertionError) after ``timeout`` seconds; exceptions from ``pred``
    propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(msg or "condition not met within %.1f s: %r" % (timeout, pred))
        time.sleep(interval)


def timeout(seconds):
    """Decorator setting the per-test timeout run.py enforces for one test method::

        @timeout(120)
        def test_long_drain(self): ...
    """
    def deco(fn):
        fn.photon_timeout = float(seconds)
        return fn
    return deco


# --------------------------------------------------------------------------------------------
# Config rendering

_SUFFIX = {"yaml": ".yaml", "yml": ".yml", "json": ".json", "toml": ".toml"}


def _with_test_overrides(config):
    """PHOTON_TEST_IO_URING=0 runs the suite with ``server.io_uring: false`` (plain system calls
    instead of io_uring batches) wherever a test did not choose itself."""
    if os.environ.get("PHOTON_TEST_IO_URING") != "0" or not isinstance(config, dict):
        return config
    server = config.get("server")
    if not isinstance(server, dict) or "io_uring" in server:
        return config
    config = dict(config)
    config["server"] = dict(server, io_uring=False)
    return config


def write_config(tmpdir, config, fmt="yaml", name="photon"):
    """Writes a config file into ``tmpdir`` and returns its path.

    ``config`` is either text (written verbatim) or a dict rendered for ``fmt``: "yaml"/"yml"
    (see render_yaml), "json" or "toml" (see render_toml). The file is ``<name>.<fmt>``; with
    text, any ``fmt`` is allowed as the suffix (e.g. "conf" to test an unsupported suffix) and
    an empty ``fmt`` writes ``<name>`` without suffix.
    """
    if isinstance(config, (dict, list)):
        config = _with_test_overrides(config)
        if fmt in ("yaml", "yml"):
            text = render_yaml(config)
        elif fmt == "json":
            text = json.dumps(config, indent=2) + "\n"
        elif fmt == "toml":
            text = render_toml(config)
        else:
            raise ValueError("cannot render a dict as %r" % fmt)
    elif isinstance(config, (str, bytes)):
        text = config
    else:
        raise TypeError("config must be dict, list, str or bytes")
    path = os.path.join(str(tmpdir), name + (_SUFFIX.get(fmt, "." + fmt) if fmt else ""))
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(path, mode) as f:
        f.write(text)
    return path


class Raw(str):
    """A string render_yaml/render_toml emit verbatim, e.g. a YAML tag:
    ``{"key": Raw("!header X-API-Key")}`` renders as ``key: !header X-API-Key``."""


def base_config(http_port, upstreams, metrics_port=None):
    """A minimal complete config dict: listener on 127.0.0.1:``http_port``, one backend
    ``"default"`` whose upstreams are ``upstreams`` (Backend objects or "host:port" strings),
    one catch-all route ``"all"`` (``/**``) to it, no middleware, global health_check
    settings, metrics off (or ``metrics_addr`` on ``metrics_port``). Edit the dict as needed
    and pass it to write_config() or IntegrationTest.photon()."""
    addrs = [u.address if isinstance(u, Backend) else str(u) for u in upstreams]
    cfg = {
        "server": {"http_addr": "127.0.0.1:%d" % http_port, "connection_timeout": "30s"},
        "load_balancing": {
            "algorithm": "round_robin",
            "backends": {"default": {"upstreams": [{"address": a} for a in addrs]}},
        },
        "routes": [{"id": "all", "path": "/**", "backend": "default"}],
        "middleware": {},
        "health_check": {"interval": "10s", "timeout": "5s", "failure_threshold": 3,
                         "success_threshold": 2},
        "metrics": {"prometheus": False, "detailed_metrics": False},
    }
    if metrics_port is not None:
        cfg["metrics"] = {"prometheus": True, "detailed_metrics": False,
                          "metrics_addr": "127.0.0.1:%d" % metrics_port}
    return cfg


_YAML_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_YAML_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_str(s):
    # JSON string escapes are all valid in YAML double-quoted scalars.
    return json.dumps(s, ensure_ascii=False)


def _yaml_key(k):
    k = str(k)
    if _YAML_PLAIN_KEY.match(k) and k.lower() not in _YAML_RESERVED:
        return k
    return _yaml_str(k)


def _yaml_scalar(v):
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _yaml_str(v)
    raise TypeError("cannot render %r as YAML" % (v,))


def render_yaml(value):
    """Renders dicts, lists, str, int, float, bool and None as block-style YAML.

    Strings are always double-quoted (so "30s", "on" or "${VAR}" stay strings), numbers and
    booleans are plain, empty containers are ``{}`` / ``[]``.
    """
    lines = []
    _yaml_block(value, 0, lines)
    return "\n".join(lines) + "\n"


def _yaml_block(value, indent, lines):
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            lines.append(pad + "{}")
        for k, v in value.items():
            key = pad + _yaml_key(k) + ":"
            if isinstance(v, (dict, list)) and v:
                lines.append(key)
                _yaml_block(v, indent + 2 if isinstance(v, dict) else indent, lines)
            else:
                lines.append(key + " " + _yaml_inline(v))
    elif isinstance(value, list):
        if not value:
            lines.append(pad + "[]")
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _yaml_block(item, indent + 2, sub)
                # Put the first line of the item after the dash.
                lines.append(pad + "- " + sub[0][indent + 2:])
                lines.extend(sub[1:])
            else:
                lines.append(pad + "- " + _yaml_inline(item))
    else:
        lines.append(pad + _yaml_scalar(value))


def _yaml_inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _yaml_scalar(v)


_TOML_BARE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _toml_key(k):
    k = str(k)
    return k if _TOML_BARE.match(k) else json.dumps(k)


def _toml_inline(v):
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        raise ValueError("TOML cannot express null")
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_inline(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (_toml_key(k), _toml_inline(x))
                               for k, x in v.items()) + "}"
    raise TypeError("cannot render %r as TOML" % (v,))


def _is_table_array(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def render_toml(value):
    """Renders a dict as TOML: nested dicts become ``[a.b]`` tables, lists of dicts ``[[a]]``
    arrays of tables, anything else inline. None is rejected (TOML has no null)."""
    if not isinstance(value, dict):
        raise TypeError("TOML top level must be a dict")
    out = []
    _toml_table([], value, out)
    return "\n".join(out).lstrip("\n") + "\n"


def _toml_table(path, d, out):
    for k, v in d.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            out.append("%s = %s" % (_toml_key(k), _toml_inline(v)))
    for k, v in d.items():
        sub = path + [_toml_key(k)]
        if isinstance(v, dict):
            out.append("")
            out.append("[%s]" % ".".join(sub))
            _toml_table(sub, v, out)
        elif _is_table_array(v):
            for item in v:
                out.append("")
                out.append("[[%s]]" % ".".join(sub))
                _toml_table(sub, item, out)


# --------------------------------------------------------------------------------------------
# Processes


def _read_stat(pid):
    """(state, ppid, pgrp) of a process from /proc, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces or parentheses.
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[1]), int(rest[2])


def pid_alive(pid):
    """True if ``pid`` exists and is not a zombie."""
    st = _read_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def child_pids(pid):
    """Sorted pids of the live (non-zombie) children of ``pid``, from /proc."""
    kids = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        cpid = int(path.split("/")[2])
        st = _read_stat(cpid)
        if st and st[1] == pid and st[0] not in ("Z", "X"):
            kids.append(cpid)
    return sorted(kids)


def descendant_pids(pid):
    """Sorted pids of every live descendant of ``pid`` (children, grandchildren, ...)."""
    parents = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        cpid = int(path.split("/")[2])
        st = _read_stat(cpid)
        if st and st[0] not in ("Z", "X"):
            parents.setdefault(st[1], []).append(cpid)
    out, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return sorted(out)


def cmdline(pid):
    """Command line of ``pid`` as one string (arguments joined by spaces; a process that set
    its title shows that title), or "" if it is gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def group_pids(pgid):
    """Sorted pids of the live processes in process group ``pgid``."""
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        pid = int(path.split("/")[2])
        st = _read_stat(pid)
        if st and st[2] == pgid and st[0] not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def _pids_mentioning(text):
    """Live pids (other than this process) whose command line contains ``text``."""
    needle = text.encode()
    out = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if needle in data:
            pid = int(path.split("/")[2])
            if pid != os.getpid() and pid_alive(pid):
                out.append(pid)
    return out


def _is_private_path(path):
    """True for paths under the temporary directory, where each test's config lives in a
    directory of its own, so a command line naming it identifies this test's processes."""
    tmp = os.path.realpath(tempfile.gettempdir())
    return os.path.realpath(path).startswith(tmp + os.sep)


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_live_photons = weakref.WeakSet()


def kill_all_photons():
    """Kills every Photon started by this process that is still running (used at exit)."""
    for p in list(_live_photons):
        p.close()


def _make_env(env):
    full = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = str(v)
    return full


_ADDR_RE = re.compile(
    r"""(http_addr|https_addr|metrics_addr)["']?\s*[:=]\s*["']?127\.0\.0\.1:(\d+)""")


def config_ports(path):
    """Ports of ``http_addr``/``https_addr``/``metrics_addr`` on 127.0.0.1 found in a config
    file's text (YAML, JSON or TOML), in file order."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    return [int(m.group(2)) for m in _ADDR_RE.finditer(text)]


def server_inode(port, client_port):
    """Inode of the server side of the established 127.0.0.1 connection client_port -> port,
    or 0 while it is not accepted yet (a connection still in the accept queue has no inode)."""
    want_local = ":%04X" % port
    want_remote = ":%04X" % client_port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote) \
                    and fields[3] == "01":
                return int(fields[9])
    return 0


def socket_holder(pids, inode):
    """The pid among ``pids`` that has socket ``inode`` open, or None."""
    target = "socket:[%d]" % inode
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return pid
            except OSError:
                continue
    return None


def accepting_pid(pids, port, conn):
    """The pid among ``pids`` holding the accepted server side of ``conn`` (a Conn or a
    socket), or None while no process has accepted it yet."""
    sock = conn.sock if isinstance(conn, Conn) else conn
    inode = server_inode(port, sock.getsockname()[1])
    return socket_holder(pids, inode) if inode else None


def port_listening(port):
    """True if some socket is in LISTEN state on TCP ``port`` (any address), read from
    /proc/net/tcp and tcp6 without connecting, so the server sees no extra connection."""
    want = ":%04X" % port
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(want):
                return True
    if not found_table:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    return False


_log_seq = 0
_log_lock = threading.Lock()


def _log_paths(log_dir):
    """Fresh (stdout, stderr) log file paths in ``log_dir``: photon-N.stdout.log, ..."""
    global _log_seq
    with _log_lock:
        while True:
            _log_seq += 1
            base = os.path.join(log_dir, "photon-%d" % _log_seq)
            if not os.path.exists(base + ".stderr.log"):
                return base + ".stdout.log", base + ".stderr.log"


class Photon:
    """The real photon binary running in the foreground, in its own process group.

    ``Photon(config, args=(), ports=None, env=None, cwd=None, binary=None, startup_timeout=10,
    log_dir=None)`` prepares; ``start()`` runs ``<binary> -c <config> <args...>`` (no ``-c`` if
    config is None) with start_new_session, stdout/stderr going to files in ``log_dir``
    (default: the config's directory), and waits until every port in ``ports`` is listening
    (read from /proc/net/tcp, so photon sees no probe connection). ``ports=None`` means the
    127.0.0.1 ports of http_addr/https_addr/metrics_addr found in the config text;
    ``ports=[]`` does not wait at all. ``env`` entries are added to the inherited environment
    (None removes one). If the process exits first or the ports do not listen within
    ``startup_timeout`` s, start() kills it and raises PhotonError with its stderr. Exit
    status 0 is not an error (``-d``: the daemon keeps running): start() then still waits for
    the ports.

    Teardown (``close()``, the context-manager exit, IntegrationTest cleanup, interpreter exit)
    always SIGKILLs the process group, every descendant and, when the config lives under the
    temporary directory, any process whose command line contains its absolute path
    (daemonised or upgraded masters), so nothing outlives a test.
    """

    def __init__(self, config, args=(), ports=None, env=None, cwd=None, binary=None,
                 startup_timeout=10.0, log_dir=None):
        self.config = str(config) if config is not None else None
        self.args = [str(a) for a in args]
        self.binary = binary or photon_binary()
        self.env = env
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        if ports is None:
            ports = config_ports(self.config) if self.config else []
        self.ports = list(ports)
        if log_dir is None:
            log_dir = os.path.dirname(os.path.abspath(self.config)) if self.config \
                else tempfile.mkdtemp(prefix="photon-log-")
        self.log_dir = str(log_dir)
        self.proc = None
        self.stdout_path = None
        self.stderr_path = None
        self._extra_pids = set()
        self._closed = False
        self._cached = {}

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def command(self):
        """The argv that start() runs."""
        cmd = [self.binary]
        if self.config is not None:
            cmd += ["-c", self.config]
        return cmd + self.args

    def start(self):
        """Starts the binary and waits for its listeners (see class doc). Returns self."""
        if self.proc is not None and self.proc.poll() is None:
            raise PhotonError("already running (pid %d)" % self.proc.pid)
        if not os.path.exists(self.binary):
            raise FileNotFoundError("photon binary not found: %s (build it or set PHOTON_BIN)"
                                    % self.binary)
        self.stdout_path, self.stderr_path = _log_paths(self.log_dir)
        self._closed = False
        self._cached = {}
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.cwd, env=_make_env(self.env),
                                         start_new_session=True, close_fds=True)
        _live_photons.add(self)
        deadline = time.monotonic() + self.startup_timeout
        pending = list(self.ports)
        while True:
            rc = self.proc.poll()
            if rc is not None and (rc != 0 or not self.ports):
                if rc == 0:
                    return self  # daemonised, nothing to wait for
                self.close()
                raise PhotonError("photon exited with status %d during start-up\n"
                                  "command: %s\n--- stderr ---\n%s"
                                  % (rc, " ".join(self.command), self.stderr_text()))
            pending = [p for p in pending if not port_listening(p)]
            if not pending:
                return self
            if time.monotonic() >= deadline:
                err = self.stderr_text()
                self.close()
                raise PhotonError("photon did not accept on port(s) %s within %.1f s\n"
                                  "command: %s\n--- stderr ---\n%s"
                                  % (pending, self.startup_timeout, " ".join(self.command),
                                     err))
            time.sleep(0.02)

    @property
    def pid(self):
        """Pid of the master started by start()."""
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        """Exit status of the master (negative: killed by that signal), None while running."""
        return self.proc.poll() if self.proc else None

    def alive(self):
        """True while the master process runs."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Sends ``sig`` to the master."""
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=10.0):
        """Waits for the master to exit; returns its status. Raises WaitTimeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout("photon (pid %d) still running after %.1f s"
                              % (self.proc.pid, timeout))

    def stop(self, sig=SIGTERM, timeout=10.0):
        """Sends ``sig``, waits up to ``timeout`` s for the master to exit, then kills the rest
        of the group. Returns the master's exit status; raises WaitTimeout (after killing
        everything) if it did not exit in time."""
        if self.proc is None:
            return None
        self.signal(sig)
        try:
            return self.wait(timeout)
        finally:
            self.close()

    def kill_group(self, sig=SIGKILL):
        """Sends ``sig`` to the whole process group (master and workers)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def adopt(self, pid):
        """Also kill ``pid`` (and its descendants) at teardown, e.g. a daemon's pid-file pid."""
        self._extra_pids.add(int(pid))

    def close(self):
        """Kills everything this instance started (see class doc) and reaps the master. Never
        raises; idempotent. Log files stay readable through the *_text() methods."""
        if self.proc is None or self._closed:
            return
        try:
            victims = set(self._extra_pids)
            for pid in list(victims):
                victims.update(descendant_pids(pid))
            if self.proc.poll() is None:
                victims.update(descendant_pids(self.proc.pid))
            if self.config and _is_private_path(self.config):
                for pid in _pids_mentioning(os.path.abspath(self.config)):
                    victims.add(pid)
                    victims.update(descendant_pids(pid))
            # A master that exits normally removes its shared-memory segments (a killed one
            # leaves them in /dev/shm, 4 MiB per rate limit): ask first, then kill.
            if self.proc.poll() is None:
                _kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    pass
            self.kill_group(signal.SIGKILL)
            for pid in victims:
                _kill(pid, signal.SIGKILL)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(pid_alive(p) for p in victims):
                time.sleep(0.01)
            self._cached = {"stderr": self.stderr_text(), "stdout": self.stdout_text()}
        except Exception as e:  # teardown must not mask the test's own outcome
            sys.stderr.write("harness: photon teardown: %r\n" % (e,))
        finally:
            self._closed = True
            _live_photons.discard(self)

    def __enter__(self):
        if not self.alive():
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- inspection ----------------------------------------------------------------------

    def worker_pids(self):
        """Sorted pids of the master's live children (workers and helper; also a new master
        forked for a binary upgrade). [] once the master has exited."""
        return child_pids(self.proc.pid) if self.alive() else []

    def config_pids(self):
        """Sorted live pids whose command line names this config's absolute path (finds a
        daemonised or upgraded master; processes that retitled themselves may not show)."""
        if not self.config:
            return []
        return sorted(_pids_mentioning(os.path.abspath(self.config)))

    def group_pids(self):
        """Sorted pids of every live process still in photon's process group, the master
        included; lets a test check that nothing outlived the master."""
        return group_pids(self.proc.pid) if self.proc else []

    def stderr_text(self):
        """Everything photon wrote to stderr so far."""
        return self._read_log(self.stderr_path, "stderr")

    def stdout_text(self):
        """Everything photon wrote to stdout so far."""
        return self._read_log(self.stdout_path, "stdout")

    def _read_log(self, path, key):
        if path is None:
            return ""
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return self._cached.get(key, "")

    def wait_stderr(self, regex, timeout=DEFAULT_TIMEOUT):
        """Waits until stderr matches ``regex`` (re.search, MULTILINE); returns the match."""
        rx = re.compile(regex, re.MULTILINE)
        return wait_until(lambda: rx.search(self.stderr_text()), timeout,
                          msg="stderr never matched %r within %.1f s; stderr:\n%s"
                          % (regex, timeout, self.stderr_text()[-4000:]))

    def diagnostics(self, lines=40):
        """Last ``lines`` lines of stderr, for failure reports."""
        tail = "\n".join(self.stderr_text().splitlines()[-lines:])
        return "photon %s (pid %s, status %s) stderr tail:\n%s" % (
            " ".join(self.command), self.pid, self.returncode, tail)

    def __repr__(self):
        return "Photon(pid=%s, config=%r)" % (self.pid, self.config)


def run_photon(args, timeout=10.0, env=None, cwd=None, binary=None, stdin=None):
    """Runs ``<binary> <args...>`` to completion (e.g. ``["-t", "-c", path]``, ``["-V"]``).

    Returns (exit status, stdout text, stderr text). If it runs longer than ``timeout`` s its
    process group is killed and WaitTimeout raised. ``stdin`` is bytes fed to it (default
    none).
    """
    binary = binary or photon_binary()
    if not os.path.exists(binary):
        raise FileNotFoundError("photon binary not found: %s (build it or set PHOTON_BIN)"
                                % binary)
    proc = subprocess.Popen([binary] + [str(a) for a in args],
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            env=_make_env(env), start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise WaitTimeout("%s %s ran longer than %.1f s; stderr:\n%s"
                          % (binary, " ".join(map(str, args)), timeout,
                             err.decode("utf-8", "replace")))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# HTTP client


class Headers:
    """Header fields in wire order with case-insensitive lookup.

    Iterating yields (name, value) pairs; ``h["content-length"]`` / ``h.get(name)`` give the
    first value, ``h.get_all(name)`` every value; ``name in h``; ``h.pairs`` is the list;
    ``len(h)`` counts fields.
    """

    def __init__(self, pairs=()):
        self.pairs = list(pairs)

    def get(self, name, default=None):
        lname = name.lower()
        for n, v in self.pairs:
            if n.lower() == lname:
                return v
        return default

    def get_all(self, name):
        lname = name.lower()
        return [v for n, v in self.pairs if n.lower() == lname]

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.pairs)

    def __len__(self):
        return len(self.pairs)

    def names(self):
        """Lower-cased field names, in order (duplicates kept)."""
        return [n.lower() for n, _ in self.pairs]

    def __repr__(self):
        return "Headers(%r)" % (self.pairs,)


class Response:
    """One HTTP response as received.

    status (int), reason (str), version ("HTTP/1.1"), headers (Headers), body (bytes, decoded
    if chunked), trailers (Headers), chunked (bool), chunk_sizes (list of int, wire chunk
    sizes), close_delimited (bool: body ended by connection close), interim (list of 1xx
    Responses that preceded this one), raw (the exact bytes of this response, interim ones
    excluded).
    """

    def __init__(self):
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers = Headers()
        self.body = b""
        self.trailers = Headers()
        self.chunked = False
        self.chunk_sizes = []
        self.close_delimited = False
        self.interim = []
        self.raw = b""

    @property
    def headers_list(self):
        """The header fields as a list of (name, value) in wire order."""
        return self.headers.pairs

    def header(self, name, default=None):
        """First value of header ``name`` (case-insensitive)."""
        return self.headers.get(name, default)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def keep_alive(self):
        """Whether the connection may carry another request after this response."""
        if self.close_delimited or self.status == 101:
            return False
        tokens = {t.strip().lower() for v in self.headers.get_all("connection")
                  for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def __repr__(self):
        return "Response(%d %s, %d header(s), %d body byte(s))" % (
            self.status, self.reason, len(self.headers), len(self.body))


_STATUS_RE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?$")


class _Reader:
    """Buffered reads from a socket (or from fixed bytes when sock is None)."""

    def __init__(self, sock=None, data=b""):
        self.sock = sock
        self.buf = bytearray(data)
        self.eof = False
        self.consumed = bytearray()   # bytes taken out of buf since the last mark
        self.deadline = None

    def _fill(self):
        if self.eof or self.sock is None:
            self.eof = True
            return False
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("response not complete before the deadline")
            self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.consumed += data
        return data

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                if i == 0 or self.buf[i - 1] != 0x0D:
                    raise ProtocolError("line not terminated by CRLF: %r"
                                        % bytes(self.buf[:i + 1]))
                return self._take(i + 1)[:-2]
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            if not self._fill():
                if not self.buf and not self.consumed:
                    raise PeerClosed("connection closed before a response")
                raise ProtocolError("connection closed mid-line after %r" % bytes(self.buf))

    def exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("connection closed after %d of %d body bytes"
                                    % (len(self.buf), n))
        return self._take(n)

    def rest(self):
        while self._fill():
            pass
        return self._take(len(self.buf))


def _read_one(reader, method):
    """Reads one response (1xx included) from ``reader``."""
    reader.consumed = bytearray()
    resp = Response()
    line = reader.line()
    m = _STATUS_RE.match(line)
    if not m:
        raise ProtocolError("bad status line: %r" % line)
    resp.version = "HTTP/%s.%s" % (m.group(1).decode(), m.group(2).decode())
    resp.status = int(m.group(3))
    resp.reason = (m.group(4) or b"").decode("latin-1")
    pairs = []
    while True:
        line = reader.line()
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise ProtocolError("bad header line: %r" % line)
        pairs.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    resp.headers = Headers(pairs)
    if 100 <= resp.status < 200 or resp.status in (204, 304) or method == "HEAD":
        resp.raw = bytes(reader.consumed)
        return resp
    te = resp.headers.get_all("transfer-encoding")
    cl = resp.headers.get_all("content-length")
    if te:
        codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
        if codings and codings[-1] == "chunked":
            resp.chunked = True
            resp.body, resp.trailers, resp.chunk_sizes = _read_chunked(reader)
        else:
            resp.close_delimited = True
            resp.body = reader.rest()
    elif cl:
        vals = {v.strip() for v in ",".join(cl).split(",")}
        if len(vals) != 1 or not next(iter(vals)).isdigit():
            raise ProtocolError("bad Content-Length: %r" % cl)
        resp.body = reader.exact(int(vals.pop()))
    else:
        resp.close_delimited = True
        resp.body = reader.rest()
    resp.raw = bytes(reader.consumed)
    return resp


def _read_chunked(reader):
    chunks, sizes = [], []
    while True:
        line = reader.line(4096)
        size_txt = line.split(b";", 1)[0]
        if not size_txt or any(c not in b"0123456789abcdefABCDEF" for c in size_txt):
            raise ProtocolError("bad chunk-size line: %r" % line)
        size = int(size_txt, 16)
        sizes.append(size)
        if size == 0:
            break
        chunks.append(reader.exact(size))
        crlf = reader.exact(2)
        if crlf != b"\r\n":
            raise ProtocolError("chunk data not followed by CRLF: %r" % crlf)
    trailers = []
    while True:
        line = reader.line()
        if not line:
            break
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError("bad trailer line: %r" % line)
        trailers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return b"".join(chunks), Headers(trailers), sizes


def _read_response(reader, method, stop_at_interim=False):
    interim = []
    while True:
        resp = _read_one(reader, method)
        if 100 <= resp.status < 200 and resp.status != 101 and not stop_at_interim:
            interim.append(resp)
            continue
        resp.interim = interim
        return resp


def encode_chunked(pieces, trailers=()):
    """Chunked transfer coding of ``pieces`` (bytes or list of bytes; empty pieces skipped),
    last chunk and optional ``trailers`` (list of (name, value))."""
    if isinstance(pieces, (bytes, bytearray)):
        pieces = [pieces]
    out = [b"%x\r\n%s\r\n" % (len(p), bytes(p)) for p in pieces if p]
    out.append(b"0\r\n")
    out += [("%s: %s\r\n" % t).encode("latin-1") for t in trailers]
    out.append(b"\r\n")
    return b"".join(out)


def _header_pairs(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return [tuple(h) for h in headers]


def _has(pairs, name):
    return any(n.lower() == name for n, _ in pairs)


class Conn:
    """One client TCP connection to 127.0.0.1 (or ``host``) with HTTP/1.1 framing.

    ``Conn(port, host="127.0.0.1", timeout=5)`` connects; ``timeout`` bounds each whole read
    of a response (and connect). Use as a context manager or call close().

    request() sends one request and reads its response. For pipelining, call send_request()
    several times (or send() raw bytes) and then read_response() once per request, passing
    the method of each so HEAD responses are framed right. Bytes that arrive beyond one
    response stay buffered for the next read.
    """

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._r = _Reader(self.sock)
        self.last_close = None

    # ---- sending -------------------------------------------------------------------------

    def send(self, data):
        """Sends raw bytes (str is encoded as latin-1)."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def build_request(self, method, path, headers=None, body=None, version="HTTP/1.1",
                      chunked=False):
        """The bytes send_request() would send (see there)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        pairs = _header_pairs(headers)
        if not _has(pairs, "host"):
            pairs.insert(0, ("Host", "%s:%d" % (self.host, self.port)))
        if chunked:
            if not _has(pairs, "transfer-encoding"):
                pairs.append(("Transfer-Encoding", "chunked"))
            body = encode_chunked(body if body is not None else [])
        elif body is not None and not _has(pairs, "content-length") \
                and not _has(pairs, "transfer-encoding"):
            pairs.append(("Content-Length", str(len(body))))
        head = "%s %s %s\r\n" % (method, path, version)
        head += "".join("%s: %s\r\n" % (n, v) for n, v in pairs) + "\r\n"
        return head.encode("latin-1"), (body or b"")

    def send_request(self, method, path, headers=None, body=None, version="HTTP/1.1",
                     chunked=False):
        """Sends one request without reading the answer.

        ``headers``: dict or list of (name, value), sent in order. ``Host: <host>:<port>`` is
        added first unless given. With ``body`` (bytes/str) Content-Length is added unless a
        Content-Length or Transfer-Encoding header is given. ``chunked=True`` adds
        ``Transfer-Encoding: chunked`` and encodes ``body`` (bytes or list of pieces).
        """
        head, body = self.build_request(method, path, headers, body, version, chunked)
        self.send(head + body)

    def request(self, method, path, headers=None, body=None, version="HTTP/1.1",
                chunked=False):
        """Sends one request and returns its Response (1xx interim ones in .interim).

        With an ``Expect: 100-continue`` header and a body, only the head is sent first; the
        body follows once ``100 Continue`` arrives. If a final response comes instead, it is
        returned and the body is not sent.
        """
        head, payload = self.build_request(method, path, headers, body, version, chunked)
        pairs = _header_pairs(headers)
        expect = any(n.lower() == "expect" and v.lower() == "100-continue" for n, v in pairs)
        if expect and payload:
            self.send(head)
            first = self.read_response(method, stop_at_interim=True)
            if first.status != 100:
                return first
            self.send(payload)
            final = self.read_response(method)
            final.interim = [first] + final.interim
            return final
        self.send(head + payload)
        return self.read_response(method)

    # ---- receiving -----------------------------------------------------------------------

    def read_response(self, method="GET", stop_at_interim=False, timeout=None):
        """Reads the next response. ``method`` is the request's method (HEAD responses have no
        body). 1xx responses other than 101 are collected in .interim unless
        ``stop_at_interim``, which returns the first response whatever its status. Raises
        ProtocolError on malformed or truncated responses, socket.timeout (TimeoutError) when
        ``timeout`` (default: the connection's) expires, ConnectionResetError on RST."""
        self._r.deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            return _read_response(self._r, method, stop_at_interim)
        finally:
            self._r.deadline = None

    def recv_until_close(self, timeout=None):
        """Returns every byte (buffered ones first) until the peer closes or ``timeout``
        (default: the connection's) expires. Sets ``last_close`` to "eof", "reset" or
        "timeout"."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        out = bytearray(self._r.buf)
        self._r.buf.clear()
        self.last_close = "timeout"
        while not self._r.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                self.last_close = "reset"
                break
            if not data:
                self._r.eof = True
                break
            out += data
        if self._r.eof:
            self.last_close = "eof"
        return bytes(out)

    def wait_closed(self, timeout=2.0):
        """True if the peer closes (FIN or RST) within ``timeout`` s; data arriving meanwhile
        is kept for later reads. False if the connection is still open."""
        deadline = time.monotonic() + timeout
        while not self._r.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                self._r.eof = True
                self.last_close = "reset"
                return True
            if not data:
                self._r.eof = True
                self.last_close = "eof"
                return True
            self._r.buf += data
        return True

    @property
    def buffered(self):
        """Bytes received but not consumed by a read yet."""
        return bytes(self._r.buf)

    def shutdown_write(self):
        """Half-closes the connection (sends FIN); reading still works."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Aborts the connection with RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- WebSocket -----------------------------------------------------------------------

    def ws_upgrade(self, path="/ws", headers=None, protocols=None):
        """Sends a WebSocket handshake and returns the Response. On 101 the Sec-WebSocket-Accept
        value is checked (ProtocolError if wrong) and the connection is left in WebSocket mode
        for ws_send()/ws_recv()."""
        key = base64.b64encode(os.urandom(16)).decode()
        pairs = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                 ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
        if protocols:
            pairs.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
        pairs += _header_pairs(headers)
        resp = self.request("GET", path, pairs)
        if resp.status == 101:
            want = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            if resp.header("sec-websocket-accept") != want:
                raise ProtocolError("bad Sec-WebSocket-Accept %r (want %r)"
                                    % (resp.header("sec-websocket-accept"), want))
        return resp

    def ws_send(self, payload, opcode=1, fin=True):
        """Sends one masked frame (opcode 1 text, 2 binary, 8 close, 9 ping, 0 continuation)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.send(ws_frame(opcode, payload, fin=fin, mask=os.urandom(4)))

    def ws_recv(self, timeout=None):
        """Reads one frame; returns (fin: bool, opcode: int, payload: bytes)."""
        r = self._r
        r.deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            b0, b1 = r.exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", r.exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", r.exact(8))[0]
            mask = r.exact(4) if b1 & 0x80 else None
            payload = r.exact(n)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            return bool(b0 & 0x80), b0 & 0x0F, payload
        finally:
            r.deadline = None


def http_request(port, method, path, headers=None, body=None, host="127.0.0.1",
                 timeout=DEFAULT_TIMEOUT, chunked=False, version="HTTP/1.1"):
    """One request on a fresh connection (closed afterwards); returns the Response.
    Arguments as in Conn.send_request()."""
    with Conn(port, host=host, timeout=timeout) as c:
        return c.request(method, path, headers, body, version=version, chunked=chunked)


def raw_exchange(port, data, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, idle_timeout=None,
                 shutdown_write=False):
    """Sends raw ``data`` and returns every byte received until the peer closes, ``timeout``
    s pass, or (if set) nothing arrives for ``idle_timeout`` s after at least one byte came.
    ``shutdown_write`` half-closes after sending. A reset by the peer ends the read (bytes
    received before it are returned)."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    deadline = time.monotonic() + timeout
    out = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if idle_timeout is not None and out:
                left = min(left, idle_timeout)
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return bytes(out)


def parse_responses(data, methods=None):
    """Splits a byte stream into Responses (1xx ones are returned as separate items).

    ``methods`` lists the request methods in order (for HEAD framing; default GET). Parsing
    stops at the end of the data; an incomplete or malformed tail raises ProtocolError, whose
    ``responses`` attribute holds those parsed before it.
    """
    r = _Reader(None, data)
    out = []
    i = 0
    while r.buf:
        method = methods[i] if methods and i < len(methods) else "GET"
        try:
            resp = _read_one(r, method)
        except ProtocolError as e:
            e.responses = out
            raise
        out.append(resp)
        if not (100 <= resp.status < 200):
            i += 1
    return out


# --------------------------------------------------------------------------------------------
# unittest base class


class IntegrationTest(unittest.TestCase):
    """Base class for integration tests.

    Per test: ``self.tmpdir`` (removed afterwards unless $PHOTON_KEEP_TMP is set), and
    helpers whose resources are torn down automatically:

      self.backend(name=None, port=0) -> started Backend (name defaults to "b1", "b2", ...)
      self.photon(config, fmt="yaml", args=(), ports=None, env=None, start=True, name=None,
                  **kw) -> started Photon
          ``config``: dict/str (written with write_config into tmpdir) or an existing path.
      self.conn(port, **kw) -> Conn closed at the end

    If the photon binary is missing, self.photon() skips the test (fails instead when
    $PHOTON_REQUIRE_BIN=1, as ``run.py --require-photon`` sets).
    """

    def setUp(self):
        super().setUp()
        self.tmpdir = tempfile.mkdtemp(prefix="photon-it-")
        self._photons = []
        self._backend_seq = 0
        if not os.environ.get("PHOTON_KEEP_TMP"):
            self.addCleanup(shutil.rmtree, self.tmpdir, True)

    def backend(self, name=None, port=0):
        """A started Backend, stopped after the test."""
        self._backend_seq += 1
        b = Backend(name=name or "b%d" % self._backend_seq, port=port).start()
        self.addCleanup(b.stop)
        return b

    def require_photon(self):
        """Skips the test if the photon binary is missing (or fails, see class doc)."""
        path = photon_binary()
        if not os.path.exists(path):
            if os.environ.get("PHOTON_REQUIRE_BIN") == "1":
                self.fail("photon binary not found: %s" % path)
            self.skipTest("photon binary not found: %s (build it or set PHOTON_BIN)" % path)

    def photon(self, config, fmt="yaml", args=(), ports=None, env=None, start=True, name=None,
               **kw):
        """A Photon (started unless ``start=False``), closed after the test.

        ``config``: a dict (rendered as ``fmt``) or config text, written to
        ``tmpdir/<name>.<fmt>``; or the path of an existing file, used as is. ``name``
        defaults to "photon" for the test's first instance and "photon2", "photon3", ... after
        it. Other keyword arguments go to Photon (cwd, binary, startup_timeout, log_dir).
        """
        if "binary" not in kw:
            self.require_photon()
        if name is None:
            name = "photon" if not self._photons else "photon%d" % (len(self._photons) + 1)
        if isinstance(config, (dict, list)) or (isinstance(config, (str, bytes))
                                                 and not os.path.exists(config)):
            path = write_config(self.tmpdir, config, fmt, name=name)
        else:
            path = str(config)
        kw.setdefault("log_dir", self.tmpdir)
        p = Photon(path, args=args, ports=ports, env=env, **kw)
        self._photons.append(p)
        self.addCleanup(p.close)
        return p.start() if start else p

    def conn(self, port, **kw):
        """A Conn to 127.0.0.1:``port`` (keyword arguments as Conn), closed after the test."""
        c = Conn(port, **kw)
        self.addCleanup(c.close)
        return c

    def diagnostics(self):
        """Text appended to failure reports by run.py: stderr tails of this test's photons."""
        return "\n".join(p.diagnostics() for p in self._photons if p.proc is not None)


import atexit  # noqa: E402

atexit.register(kill_all_photons)
