# SPDX-License-Identifier: Apache-2.0
"""The live dashboard on the metrics listener: GET /dashboard (one self-contained HTML page,
src/modules/metrics/dashboard.html embedded verbatim) and GET /dashboard/api (a JSON snapshot).

Without a browser: the page's status, Content-Type and self-containment, the API's schema and
counts, neither served on the main listener. With headless Chromium (``chromium`` or
``chromium-browser`` on PATH): the rendered DOM (read with html.parser from ``--dump-dom``)
shows the same numbers as the API, follows new traffic, logs nothing to the console, and
screenshots at desktop and phone size land in build/test-logs/. Without Chromium the browser
tests are skipped, or fail when $CI is set or PHOTON_REQUIRE_BROWSER=1.

Every test runs photon with two workers, backend "api" (a test Backend) behind route
``/api/**`` and backend "missing" (an upstream on a closed port, passive ejection off) behind
route ``/missing/**``; any other path has no route (404).
"""

import hashlib
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from harness import (REPO_ROOT, IntegrationTest, base_config, free_port, http_request, timeout,
                     wait_until)

LOG_DIR = os.path.join(REPO_ROOT, "build", "test-logs")
PAGE_SOURCE = os.path.join(REPO_ROOT, "src", "modules", "metrics", "dashboard.html")
CHROMIUM_TIMEOUT = 60.0
VIRTUAL_TIME_MS = 5000

API_KEYS = ("version", "generation", "uptime_s", "now_ms", "workers", "reloads", "requests",
            "errors", "status", "in_flight", "connections", "duration", "routes", "backends",
            "cache", "rate_limit", "websocket")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
DOM_IDS = ("version", "generation", "requests-total", "errors-total", "rps", "eps", "inflight",
           "conn-active", "conn-idle", "ws-active", "p50", "p90", "p99", "status-2xx",
           "status-4xx", "status-5xx", "workers-running", "routes", "backends", "updated",
           "status-indicator")

# The traffic the tests send before the first look: /api/x (200), an unrouted path (404),
# /missing/x (5xx); then MORE_REQUESTS to /api/x.
API_REQUESTS = 30
UNROUTED_REQUESTS = 5
MISSING_REQUESTS = 3
MORE_REQUESTS = 50

# A console message in Chromium's log: "[pid:tid:date:INFO:CONSOLE(12)] ..." (older) or
# "...:INFO:CONSOLE:12] ..." (newer). Pages' messages are logged at INFO whatever their level.
CONSOLE_RE = re.compile(r":(?P<level>[A-Z]+):CONSOLE[(:]")


def dashboard_config(tmpdir, port, metrics_port, backend, dead_address):
    cfg = base_config(port, [backend], metrics_port=metrics_port)
    cfg["server"]["worker_processes"] = 2
    cfg["server"]["pid_file"] = os.path.join(str(tmpdir), "photon.pid")
    cfg["health_check"]["enabled"] = False
    cfg["load_balancing"]["backends"] = {
        "api": {"upstreams": [{"address": backend.address}], "max_fails": 0},
        "missing": {"upstreams": [{"address": dead_address}], "max_fails": 0},
    }
    cfg["routes"] = [{"id": "api", "path": "/api/**", "backend": "api"},
                     {"id": "missing", "path": "/missing/**", "backend": "missing"}]
    return cfg


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    return free_port()


# --------------------------------------------------------------------------------------------
# A small DOM from html.parser


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}


class Node:
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, attrs, [], parent

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def find_all(self, pred):
        return [n for n in self.iter() if pred(n)]

    def find(self, pred):
        for n in self.iter():
            if pred(n):
                return n
        return None

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def by_class(self, name):
        return self.find(lambda n: name in n.classes())

    def by_attr(self, attr, value):
        return self.find(lambda n: n.attrs.get(attr) == value)

    def __repr__(self):
        return "<%s %r>" % (self.tag, self.attrs)


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: (v if v is not None else "") for k, v in attrs},
                                      self.cur))

    def handle_endtag(self, tag):
        # Close up to the nearest open element with this tag; ignore stray end tags.
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    b = _TreeBuilder()
    b.feed(text)
    b.close()
    return b.root


class Dom:
    """The dumped DOM with helpers that fail with a readable message."""

    def __init__(self, text):
        self.text = text
        self.root = parse_dom(text)
        self.ids = {}
        for n in self.root.iter():
            if "id" in n.attrs:
                self.ids.setdefault(n.attrs["id"], n)

    def node(self, element_id):
        n = self.ids.get(element_id)
        if n is None:
            raise AssertionError("the rendered page has no #%s" % element_id)
        return n

    def value(self, element_id):
        return self.node(element_id).text().strip()

    def integer(self, element_id):
        v = self.value(element_id)
        if not re.fullmatch(r"\d+", v):
            raise AssertionError("#%s holds %r, not a plain integer" % (element_id, v))
        return int(v)


# --------------------------------------------------------------------------------------------
# Chromium


def find_chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_required():
    ci = os.environ.get("CI", "")
    return (ci not in ("", "0", "false", "False")
            or os.environ.get("PHOTON_REQUIRE_BROWSER") == "1")


class ChromiumRun:
    __slots__ = ("args", "status", "stdout", "stderr", "timed_out")

    def __init__(self, args, status, stdout, stderr, timed_out):
        self.args, self.status, self.stdout, self.stderr, self.timed_out = (
            args, status, stdout, stderr, timed_out)


class Chromium:
    """Runs headless Chromium once per call, each time with a fresh profile under ``workdir``,
    bounded by CHROMIUM_TIMEOUT (its whole process group is killed then, and after every run).
    ``--headless=new`` is tried first; if it exits non-zero, plain ``--headless`` (and that
    choice is kept for the later runs)."""

    modes = ("--headless=new", "--headless")

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.mode = None
        self.runs = []

    def base_args(self, mode, profile):
        return [self.binary, mode, "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--user-data-dir=" + profile,
                "--virtual-time-budget=%d" % VIRTUAL_TIME_MS, "--enable-logging=stderr",
                "--v=0"]

    def _once(self, mode, extra, url):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.workdir)
        args = self.base_args(mode, profile) + list(extra) + [url]
        n = len(self.runs)
        out_path = os.path.join(self.workdir, "chromium-%d.stdout" % n)
        err_path = os.path.join(self.workdir, "chromium-%d.stderr" % n)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            timed_out = False
            try:
                status = proc.wait(timeout=CHROMIUM_TIMEOUT)
            except subprocess.TimeoutExpired:
                timed_out = True
                status = None
            finally:
                # Helpers (zygote, crashpad) may outlive the browser process: end the group.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if timed_out:
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
        with open(out_path, "rb") as f:
            stdout = f.read().decode("utf-8", "replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        run = ChromiumRun(args, status, stdout, stderr, timed_out)
        self.runs.append(run)
        return run

    def run(self, url, extra=()):
        modes = [self.mode] if self.mode else list(self.modes)
        run = None
        for mode in modes:
            run = self._once(mode, extra, url)
            if run.timed_out:
                raise AssertionError("chromium did not finish within %g s: %s\n%s"
                                     % (CHROMIUM_TIMEOUT, " ".join(run.args),
                                        run.stderr[-3000:]))
            if run.status == 0:
                self.mode = mode
                return run
        raise AssertionError("chromium exited with status %s: %s\n%s"
                             % (run.status, " ".join(run.args), run.stderr[-3000:]))

    def dump_dom(self, url):
        run = self.run(url, ["--dump-dom"])
        if "<html" not in run.stdout.lower():
            raise AssertionError("chromium --dump-dom printed no document:\n%r\n%s"
                                 % (run.stdout[:500], run.stderr[-3000:]))
        return run

    def screenshot(self, url, path, width, height):
        if os.path.exists(path):
            os.unlink(path)
        return self.run(url, ["--hide-scrollbars", "--window-size=%d,%d" % (width, height),
                              "--screenshot=" + path])


def console_problems(stderr, origin):
    """Lines of Chromium's log that report a script error or any console message of the page
    (the dashboard writes nothing to the console, so any such message is a problem)."""
    bad = []
    for line in stderr.splitlines():
        if "Uncaught" in line or "Failed to load resource" in line:
            bad.append(line)
            continue
        m = CONSOLE_RE.search(line)
        if m and (m.group("level") in ("ERROR", "FATAL") or origin in line):
            bad.append(line)
    return bad


# --------------------------------------------------------------------------------------------
# Tests


class DashboardBase(IntegrationTest):

    def start_gateway(self):
        self.b1 = self.backend(name="b1")
        self.port = free_port()
        self.mport = free_port()
        self.dead = "127.0.0.1:%d" % closed_port()
        self.cfg = dashboard_config(self.tmpdir, self.port, self.mport, self.b1, self.dead)
        self.p = self.photon(self.cfg)
        wait_until(lambda: self.api()["workers"]["running"] == 2, timeout=10,
                   msg="/dashboard/api never reported 2 running workers")
        return self.p

    def api(self):
        r = http_request(self.mport, "GET", "/dashboard/api")
        self.assertEqual(r.status, 200, r.text[:500])
        try:
            doc = json.loads(r.body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("/dashboard/api is not JSON (%s): %r" % (e, r.body[:500]))
        self.assertIsInstance(doc, dict)
        return doc

    def send(self, path, count, check):
        for i in range(count):
            r = http_request(self.port, "GET", path)
            self.assertTrue(check(r.status), "GET %s #%d answered %d: %r"
                            % (path, i + 1, r.status, r.body[:200]))

    def send_traffic(self):
        self.send("/api/x", API_REQUESTS, lambda s: s == 200)
        self.send("/nowhere/x", UNROUTED_REQUESTS, lambda s: s == 404)
        self.send("/missing/x", MISSING_REQUESTS, lambda s: s >= 500)

    def wait_requests(self, n):
        """Waits until the API counts ``n`` requests (workers publish after answering)."""
        return wait_until(lambda: (lambda d: d["requests"] >= n and d)(self.api()), timeout=5,
                          msg="/dashboard/api never counted %d requests" % n)


class DashboardEndpointsTest(DashboardBase):
    """No browser needed."""

    def test_page_is_self_contained_and_served_on_the_metrics_listener_only(self):
        self.start_gateway()
        r = http_request(self.mport, "GET", "/dashboard")
        self.assertEqual(r.status, 200, r.text[:300])
        self.assertEqual((r.header("content-type") or "").lower().replace(" ", ""),
                         "text/html;charset=utf-8", r.header("content-type"))
        with open(PAGE_SOURCE, "rb") as f:
            source = f.read()
        if r.body != source:
            self.fail("GET /dashboard (%d bytes, sha256 %s) is not %s verbatim (%d bytes, sha256 "
                      "%s): a binary built before the page last changed?"
                      % (len(r.body), hashlib.sha256(r.body).hexdigest()[:16], PAGE_SOURCE,
                         len(source), hashlib.sha256(source).hexdigest()[:16]))
        page = r.body.decode("utf-8")
        root = parse_dom(page)
        external = []
        for n in root.iter():
            for attr in ("src", "href", "srcset", "action", "data", "poster"):
                v = (n.attrs.get(attr) or "").strip().lower()
                if v.startswith(("http://", "https://", "//")):
                    external.append("<%s %s=%r>" % (n.tag, attr, n.attrs[attr]))
            if n.tag == "script" and "src" in n.attrs:
                external.append("<script src=%r> (scripts must be inline)" % n.attrs["src"])
            if n.tag == "link" and "stylesheet" in (n.attrs.get("rel") or "").lower():
                external.append("<link rel=stylesheet> (styles must be inline)")
        for css in (n.text() for n in root.iter() if n.tag == "style"):
            for m in re.finditer(r"(?:url\(\s*['\"]?|@import\s+['\"]?)(?:https?:)?//[^)'\"\s]*",
                                 css, re.I):
                external.append("CSS " + m.group(0))
        self.assertEqual(external, [], "the page references other hosts or files")
        for element_id in DOM_IDS:
            self.assertIn('id="%s"' % element_id, page)

        doc = self.api()
        r = http_request(self.mport, "GET", "/dashboard/api")
        self.assertIn("json", (r.header("content-type") or "").lower())
        missing = [k for k in API_KEYS if k not in doc]
        self.assertEqual(missing, [], "top-level keys missing from /dashboard/api")
        self.assertEqual(len(doc["duration"]["counts"]), len(doc["duration"]["bounds"]) + 1)
        self.assertEqual([x["id"] for x in doc["routes"]], ["api", "missing"])
        self.assertEqual(sorted(b["name"] for b in doc["backends"]), ["api", "missing"])
        for key in ("requests", "errors", "in_flight", "now_ms", "generation"):
            self.assertIsInstance(doc[key], int, key)
        self.assertEqual(sorted(doc["status"]), list(CLASSES))

        # The API counts requests on the main listener only (not its own or the page's).
        before = doc["requests"]
        for _ in range(3):
            self.assertEqual(http_request(self.mport, "GET", "/dashboard").status, 200)
        self.send("/api/x", 4, lambda s: s == 200)
        self.send("/nowhere", 2, lambda s: s == 404)
        doc = self.wait_requests(before + 6)
        self.assertEqual(doc["requests"], before + 6)
        self.assertEqual(doc["routes"][0]["requests"], 4)
        self.assertEqual(doc["status"]["2xx"], 4)
        self.assertEqual(doc["status"]["4xx"], 2)
        self.assertEqual(sum(doc["duration"]["counts"]), doc["requests"])

        # Not served on the main listener (no route matches, so photon answers 404 itself).
        for path in ("/dashboard", "/dashboard/api"):
            r = http_request(self.port, "GET", path)
            self.assertEqual(r.status, 404, "%s on the main listener: %d" % (path, r.status))
            self.assertIsNone(r.header("x-backend"))


class DashboardBrowserTest(DashboardBase):
    """Headless Chromium against the page; values read from the dumped DOM."""

    def setUp(self):
        super().setUp()
        self.chromium = None
        self.require_photon()
        binary = find_chromium()
        if binary is None:
            msg = ("chromium not found on PATH (neither chromium nor chromium-browser; "
                   "install the Debian package chromium)")
            if browser_required():
                self.fail(msg + "; required because CI or PHOTON_REQUIRE_BROWSER=1 is set")
            self.skipTest(msg)
        self.chromium = Chromium(binary, self.tmpdir)
        os.makedirs(LOG_DIR, exist_ok=True)

    def diagnostics(self):
        text = super().diagnostics()
        if self.chromium and self.chromium.runs:
            last = self.chromium.runs[-1]
            text += ("\n--- last chromium run (status %s): %s\n%s"
                     % (last.status, " ".join(last.args), last.stderr[-4000:]))
        return text

    @property
    def url(self):
        return "http://127.0.0.1:%d/dashboard" % self.mport

    def render(self, name):
        """Dumps the DOM after VIRTUAL_TIME_MS of virtual time; keeps it in build/test-logs."""
        run = self.chromium.dump_dom(self.url)
        with open(os.path.join(LOG_DIR, name), "w") as f:
            f.write(run.stdout)
        problems = console_problems(run.stderr, "127.0.0.1:%d" % self.mport)
        self.assertEqual(problems, [], "the page logged errors or console messages")
        return Dom(run.stdout)

    def assert_matches_api(self, dom, doc):
        for element_id in DOM_IDS:
            dom.node(element_id)
        self.assertEqual(dom.value("status-indicator"), "live")
        self.assertGreaterEqual(dom.integer("updated"), 2,
                                "fewer than two refreshes in %d ms of virtual time"
                                % VIRTUAL_TIME_MS)
        self.assertEqual(dom.value("version"), doc["version"])
        self.assertEqual(dom.integer("generation"), doc["generation"])
        self.assertEqual(dom.integer("workers-running"), doc["workers"]["running"])
        self.assertEqual(dom.integer("requests-total"), doc["requests"])
        self.assertEqual(dom.integer("errors-total"), doc["errors"])
        for cls in ("2xx", "4xx", "5xx"):
            self.assertEqual(dom.integer("status-" + cls), doc["status"][cls], cls)
        p = [dom.value(q) for q in ("p50", "p90", "p99")]
        for q, v in zip(("p50", "p90", "p99"), p):
            self.assertRegex(v, r"^\d+(\.\d+)?$", "#%s is %r" % (q, v))
        self.assertLessEqual(float(p[0]), float(p[1]))
        self.assertLessEqual(float(p[1]), float(p[2]))

        routes = dom.node("routes")
        for route in doc["routes"]:
            row = routes.by_attr("data-route", route["id"])
            self.assertIsNotNone(row, "no row for route %s" % route["id"])
            cell = row.by_class("requests")
            self.assertIsNotNone(cell, "route %s row has no td.requests" % route["id"])
            self.assertEqual(cell.text().strip(), str(route["requests"]), route["id"])

        backends = dom.node("backends")
        for backend in doc["backends"]:
            box = backends.by_attr("data-backend", backend["name"])
            self.assertIsNotNone(box, "no element for backend %s" % backend["name"])
            healthy = box.by_class("healthy")
            self.assertIsNotNone(healthy, "backend %s has no .healthy" % backend["name"])
            self.assertEqual(healthy.text().strip(),
                             "%d/%d" % (backend["healthy"], backend["total"]))
            for up in backend["upstreams"]:
                el = box.by_attr("data-upstream", up["address"])
                self.assertIsNotNone(el, "no element for upstream %s" % up["address"])
                state = el.by_class("state")
                self.assertIsNotNone(state, "upstream %s has no .state" % up["address"])
                self.assertEqual(state.text().strip(), up["state"], up["address"])

    @timeout(300)
    def test_rendered_numbers_match_the_api_and_follow_new_traffic(self):
        self.start_gateway()
        self.send_traffic()
        total = API_REQUESTS + UNROUTED_REQUESTS + MISSING_REQUESTS
        self.wait_requests(total)

        dom = self.render("dashboard-dom.html")
        doc = self.api()
        self.assertEqual(doc["requests"], total)
        self.assertEqual(doc["status"]["2xx"], API_REQUESTS)
        self.assertEqual(doc["status"]["4xx"], UNROUTED_REQUESTS)
        self.assertEqual(doc["status"]["5xx"], MISSING_REQUESTS)
        self.assertEqual(doc["errors"], MISSING_REQUESTS)
        by_route = {x["id"]: x for x in doc["routes"]}
        self.assertEqual(by_route["api"]["requests"], API_REQUESTS)
        self.assertEqual(by_route["missing"]["requests"], MISSING_REQUESTS)
        self.assert_matches_api(dom, doc)
        by_backend = {b["name"]: b for b in doc["backends"]}
        self.assertEqual((by_backend["api"]["healthy"], by_backend["api"]["total"]), (1, 1))
        api_box = dom.node("backends").by_attr("data-backend", "api")
        self.assertEqual(api_box.by_class("healthy").text().strip(), "1/1")
        self.assertEqual(api_box.by_attr("data-upstream", self.b1.address)
                         .by_class("state").text().strip(), "healthy")
        self.assertIsNotNone(dom.node("backends").by_attr("data-backend", "missing")
                             .by_attr("data-upstream", self.dead))

        first = dom.integer("requests-total")
        self.send("/api/x", MORE_REQUESTS, lambda s: s == 200)
        self.wait_requests(total + MORE_REQUESTS)
        dom2 = self.render("dashboard-dom-2.html")
        doc2 = self.api()
        self.assertEqual(dom2.integer("requests-total") - first, MORE_REQUESTS)
        self.assertEqual(doc2["requests"], total + MORE_REQUESTS)
        self.assert_matches_api(dom2, doc2)
        api_row = dom2.node("routes").by_attr("data-route", "api")
        self.assertEqual(api_row.by_class("requests").text().strip(),
                         str(API_REQUESTS + MORE_REQUESTS))

    @timeout(300)
    def test_screenshots_at_desktop_and_phone_size(self):
        self.start_gateway()
        self.send_traffic()
        self.wait_requests(API_REQUESTS + UNROUTED_REQUESTS + MISSING_REQUESTS)
        for name, (w, h) in (("dashboard.png", (1280, 1000)),
                             ("dashboard-phone.png", (390, 844))):
            path = os.path.join(LOG_DIR, name)
            run = self.chromium.screenshot(self.url, path, w, h)
            self.assertTrue(os.path.exists(path), "no screenshot %s:\n%s"
                            % (path, run.stderr[-3000:]))
            with open(path, "rb") as f:
                head = f.read(8)
            self.assertEqual(head, b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path)
            size = os.path.getsize(path)
            self.assertGreater(size, 10 * 1024, "%s is only %d bytes (blank page?)" % (path, size))
            problems = console_problems(run.stderr, "127.0.0.1:%d" % self.mport)
            self.assertEqual(problems, [], "the page logged errors or console messages")
