# SPDX-License-Identifier: Apache-2.0
"""The TLS listener (server.https_addr): certificates made at test time with the openssl tool,
chosen by SNI (exact and wildcard names, RSA and ECDSA side by side, a default), TLS 1.2/1.3
only with forward-secret suites, ALPN http/1.1, session resumption on any worker (shared ticket
keys), client certificates, plain HTTP sent to the TLS port, the handshake timeout, certificates
re-read on reload without a failed request, and bad certificates refused by `photon -t` and by
a reload."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

from backend import Backend, pattern
from harness import (REPO_ROOT, Conn, IntegrationTest, PeerClosed, _Reader, accepting_pid, base_config, free_port,
                     http_request, run_photon, wait_until, write_config)
from pki import Pki


class TlsConn(Conn):
    """A Conn over TLS: ``TlsConn(port, context, server_hostname=None, session=None)``."""

    def __init__(self, port, context, server_hostname=None, session=None, timeout=5.0):
        self.port = port
        self.host = "127.0.0.1"
        self.timeout = timeout
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname=server_hostname, session=session)
        self._r = _Reader(self.sock)
        self.last_close = None

    def common_name(self):
        for rdn in self.sock.getpeercert()["subject"]:
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None


def subject_cn(sock):
    """The leaf's CN without verification (a context with CERT_NONE returns no dict)."""
    der = sock.getpeercert(binary_form=True)
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                        "-nameopt", "multiline"], input=der, capture_output=True, timeout=10)
    for line in r.stdout.decode().splitlines():
        if "commonName" in line:
            return line.split("=", 1)[1].strip()
    return None


class TlsTestBase(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.tmpdir, "pki"))

    def client(self, verify=True, cert=None, max_version=None, ciphers=None):
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(*cert)
        if max_version:
            ctx.maximum_version = max_version
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx

    def tls_config(self, backend, certs, workers=1, extra_tls=None, first=None):
        port, tport = free_port(), free_port()
        cfg = base_config(port, [backend])
        cfg["server"].update(https_addr="127.0.0.1:%d" % tport, worker_processes=workers,
                             pid_file=os.path.join(self.tmpdir, "photon.pid"))
        if first:
            cfg["server"].update(tls_cert=first[0], tls_key=first[1])
        tls = {"certificates": [{"cert": c, "key": k} for c, k in certs]}
        tls.update(extra_tls or {})
        cfg["server"]["tls"] = tls
        return cfg, tport


class TlsListenerTest(TlsTestBase):
    def setUp(self):
        super().setUp()
        self.b = self.backend()
        self.default = self.pki.issue("default", "default", ["default.test"])
        self.a_rsa = self.pki.issue("a-rsa", "a-rsa", ["a.test"], kind="rsa")
        self.a_ec = self.pki.issue("a-ec", "a-ec", ["a.test"])
        self.wild = self.pki.issue("wild", "wild", ["*.wild.test"])
        self.cfg, self.tport = self.tls_config(self.b, [self.a_rsa, self.a_ec, self.wild],
                                               workers=2, first=self.default)
        self.p = self.photon(self.cfg)

    def test_sni_chooses_the_certificate(self):
        tls12 = ssl.TLSVersion.TLSv1_2
        cases = [
            # (server name, client settings, expected CN)
            ("a.test", dict(max_version=tls12, ciphers="ECDHE-RSA-AES128-GCM-SHA256"), "a-rsa"),
            ("a.test", dict(max_version=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"), "a-ec"),
            ("A.TEST", {}, None),  # names compare case-insensitively: a.test's certificates
            ("x.wild.test", {}, "wild"),
            ("default.test", {}, "default"),
        ]
        for name, opts, cn in cases:
            with TlsConn(self.tport, self.client(**opts), server_hostname=name) as c:
                got = c.common_name()
                if cn is None:
                    self.assertIn(got, ("a-rsa", "a-ec"), name)
                else:
                    self.assertEqual(got, cn, name)
                self.assertEqual(c.sock.selected_alpn_protocol(), None)
                r = c.request("GET", "/name")
                self.assertEqual((r.status, r.body), (200, b"b1"))
        # No name, and names no certificate covers (a wildcard is one label deep): the default.
        for name in (None, "a.b.wild.test", "other.test"):
            ctx = self.client(verify=False)
            with TlsConn(self.tport, ctx, server_hostname=name) as c:
                self.assertEqual(subject_cn(c.sock), "default", name)

    def test_alpn_and_protocol_versions(self):
        ctx = self.client()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with TlsConn(self.tport, ctx, server_hostname="a.test") as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            self.assertEqual(c.sock.version(), "TLSv1.3")
        ctx = self.client()
        ctx.set_alpn_protocols(["h2"])  # nothing in common: no ALPN, HTTP/1.1 still served
        with TlsConn(self.tport, ctx, server_hostname="a.test") as c:
            self.assertIsNone(c.sock.selected_alpn_protocol())
            self.assertEqual(c.request("GET", "/name").status, 200)
        with TlsConn(self.tport, self.client(max_version=ssl.TLSVersion.TLSv1_2),
                     server_hostname="a.test") as c:
            self.assertEqual(c.sock.version(), "TLSv1.2")
        # The openssl tool (its security level lowered so that it offers them at all): TLS 1.0
        # and 1.1 and suites without forward secrecy or with CBC are refused.
        def s_client(*args):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.tport,
                                "-servername", "a.test"] + list(args),
                               input="", capture_output=True, text=True, timeout=20)
            return r.returncode, r.stdout + r.stderr
        for args in (["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
                     ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                     ["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
                     ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"],
                     ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"]):
            rc, out = s_client(*args)
            self.assertNotEqual(rc, 0, "%s was accepted:\n%s" % (args, out))
        rc, out = s_client("-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305")
        self.assertEqual(rc, 0, out)
        self.assertIn("ECDHE-RSA-CHACHA20-POLY1305", out)

    def test_requests_bodies_and_forwarded_proto(self):
        with TlsConn(self.tport, self.client(), server_hostname="a.test") as c:
            for _ in range(3):  # keep-alive
                r = c.request("GET", "/echo")
                self.assertEqual(r.status, 200)
                headers = {k.lower(): v for k, v in json.loads(r.body)["headers"]}
                self.assertEqual(headers["x-forwarded-proto"], "https")
            # Large bodies both ways: no splice(2) on a TLS connection, every byte through TLS.
            r = c.request("GET", "/fixed?size=3000000")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, pattern(3000000))
            r = c.request("GET", "/chunked?size=200000&chunk=7000")
            self.assertEqual(r.body, pattern(200000))
            body = os.urandom(1 << 20)
            r = c.request("POST", "/echo", body=body)
            self.assertEqual(json.loads(r.body)["body_length"], len(body))
        # The plain listener still says http.
        with Conn(int(self.cfg["server"]["http_addr"].rsplit(":", 1)[1])) as c:
            headers = {k.lower(): v for k, v in json.loads(c.request("GET", "/echo").body)["headers"]}
            self.assertEqual(headers["x-forwarded-proto"], "http")

    def test_resumption_on_another_worker(self):
        ctx = self.client()
        with TlsConn(self.tport, ctx, server_hostname="a.test") as c:
            self.assertEqual(c.request("GET", "/name").status, 200)  # the ticket comes after
            session = c.sock.session
            first = accepting_pid(self.p.worker_pids(), self.tport, c.sock)
        self.assertTrue(session is not None and session.has_ticket)
        workers = set()
        for _ in range(40):
            with TlsConn(self.tport, ctx, server_hostname="a.test", session=session) as c:
                self.assertTrue(c.sock.session_reused)
                self.assertEqual(c.request("GET", "/name").status, 200)
                workers.add(accepting_pid(self.p.worker_pids(), self.tport, c.sock))
            if len(workers - {first, None}) >= 1:
                break
        self.assertTrue(workers - {first, None},
                        "every resumed connection landed on the first worker")

    def test_plain_http_to_the_tls_port(self):
        with Conn(self.tport) as c:
            r = c.request("GET", "/name")
            self.assertEqual(r.status, 400)
            self.assertIn(b"plain HTTP request sent to the HTTPS port", r.body)
            self.assertEqual(r.headers.get("connection"), "close")
        # The listener goes on serving TLS.
        with TlsConn(self.tport, self.client(), server_hostname="a.test") as c:
            self.assertEqual(c.request("GET", "/name").status, 200)


class TlsConfigTest(TlsTestBase):
    def test_photon_t_refuses_bad_certificates(self):
        good = self.pki.issue("good", "good", ["good.test"])
        other = self.pki.issue("other", "other", ["other.test"])
        garbage = os.path.join(self.tmpdir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        cases = [
            ([(good[0], other[1])], "does not match certificate"),
            ([(garbage, good[1])], "cannot load it"),
            ([(good[0], garbage)], "cannot load it"),
        ]
        for certs, message in cases:
            cfg, _ = self.tls_config("127.0.0.1:1", certs)
            path = write_config(self.tmpdir, cfg)
            rc, out, err = run_photon(["-t", "-c", path])
            self.assertEqual(rc, 1, err)
            self.assertIn(message, err)
            self.assertNotIn("PRIVATE KEY", err)
        # A key readable by everyone and an expired certificate: warnings, not errors.
        expired = self.pki.issue("expired", "expired", ["expired.test"], expired=True)
        os.chmod(good[1], 0o644)
        cfg, _ = self.tls_config("127.0.0.1:1", [good, expired])
        path = write_config(self.tmpdir, cfg)
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertEqual(rc, 0, err)
        self.assertIn("is readable by every user", err)
        self.assertIn("has expired", err)
        # Settings: unknown protocol, verify_client without a CA, a cipher list with nothing.
        for tls, message in (({"protocols": ["TLSv1.1"]}, "unsupported protocol 'TLSv1.1'"),
                             ({"verify_client": "on"}, "needs server.tls.client_ca"),
                             ({"ciphers": "NOPE"}, "no usable cipher")):
            cfg, _ = self.tls_config("127.0.0.1:1", [good], extra_tls=tls)
            path = write_config(self.tmpdir, cfg)
            rc, out, err = run_photon(["-t", "-c", path])
            self.assertEqual(rc, 1, err)
            self.assertIn(message, err)

    def test_client_certificates(self):
        b = self.backend()
        server = self.pki.issue("srv", "srv", ["srv.test"])
        client = self.pki.issue("client", "client-1", client=True)
        other_ca = Pki(os.path.join(self.tmpdir, "other-ca"), name="Other CA")
        stranger = other_ca.issue("stranger", "stranger", client=True)
        for mode in ("on", "optional"):
            cfg, tport = self.tls_config(b, [server], extra_tls={
                "client_ca": self.pki.ca, "verify_client": mode})
            p = self.photon(cfg)
            with TlsConn(tport, self.client(cert=client), server_hostname="srv.test") as c:
                self.assertEqual(c.request("GET", "/name").status, 200)
            # A certificate from another CA is refused in both modes.
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                with TlsConn(tport, self.client(cert=stranger), server_hostname="srv.test") as c:
                    c.request("GET", "/name")
            if mode == "on":
                # TLS 1.3 reports the refusal on the first read after the handshake.
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    with TlsConn(tport, self.client(), server_hostname="srv.test") as c:
                        c.request("GET", "/name")
            else:
                with TlsConn(tport, self.client(), server_hostname="srv.test") as c:
                    self.assertEqual(c.request("GET", "/name").status, 200)
            p.close()

    def test_tls_variables_in_header_transforms(self):
        b = self.backend()
        server = self.pki.issue("srv", "srv", ["srv.test"])
        client = self.pki.issue("client", "client-7", client=True)
        cfg, tport = self.tls_config(b, [server], extra_tls={
            "client_ca": self.pki.ca, "verify_client": "optional"})
        cfg["middleware"] = {"transform": {"request_headers": {"set": {
            "X-TLS": "${tls_protocol} ${tls_cipher} ${tls_sni}",
            "X-Client-Verify": "${tls_client_verify}",
            "X-Client-Subject": "${tls_client_subject}"}}}}
        cfg["routes"][0]["middleware"] = ["transform"]
        self.photon(cfg)
        port = int(cfg["server"]["http_addr"].rsplit(":", 1)[1])

        def seen(conn):
            r = conn.request("GET", "/echo", headers={"X-Client-Subject": "CN=forged"})
            return {k.lower(): v for k, v in json.loads(r.body)["headers"]}
        with TlsConn(tport, self.client(cert=client), server_hostname="srv.test") as c:
            h = seen(c)
            self.assertEqual(h["x-tls"], "TLSv1.3 %s srv.test" % c.sock.cipher()[0])
            self.assertEqual(h["x-client-verify"], "SUCCESS")
            self.assertEqual(h["x-client-subject"], "CN=client-7")
        with TlsConn(tport, self.client(), server_hostname="srv.test") as c:
            h = seen(c)
            self.assertEqual(h["x-client-verify"], "NONE")
            self.assertEqual(h["x-client-subject"], "")
        with Conn(port) as c:  # plain text: empty values, the client's field replaced
            h = seen(c)
            self.assertEqual((h["x-tls"].strip(), h["x-client-verify"], h["x-client-subject"]),
                             ("", "", ""))

    def test_ticket_keys_rotate_and_expire(self):
        b = self.backend()
        server = self.pki.issue("srv", "srv", ["srv.test"])
        cfg, tport = self.tls_config(b, [server], workers=2, extra_tls={
            "ticket_key_rotation": "1s", "session_timeout": "2s"})
        p = self.photon(cfg)
        ctx = self.client()

        def connect(session=None):
            with TlsConn(tport, ctx, server_hostname="srv.test", session=session) as c:
                self.assertEqual(c.request("GET", "/name").status, 200)
                return c.sock.session, c.sock.session_reused
        session, _ = connect()
        issued = time.monotonic()
        self.assertTrue(connect(session)[1])
        # A reload keeps the keys: the ticket still resumes, on any worker.
        p.signal(signal.SIGHUP)
        wait_until(lambda: "generation 2 active" in p.stderr_text(), timeout=10)
        self.assertTrue(connect(session)[1])
        # Past session_timeout plus a rotation the key is gone: a full handshake, still served.
        time.sleep(max(0.0, issued + 4.2 - time.monotonic()))
        new_session, reused = connect(session)
        self.assertFalse(reused)
        self.assertTrue(connect(new_session)[1])

    def test_ocsp_stapling(self):
        b = self.backend()
        stapled = self.pki.issue("stapled", "stapled", ["stapled.test"])
        plain = self.pki.issue("plain", "plain", ["plain.test"])
        resp = self.pki.ocsp_response("stapled")
        cfg, tport = self.tls_config(b, [plain])
        cfg["server"]["tls"]["certificates"].append(
            {"cert": stapled[0], "key": stapled[1], "ocsp_response": resp})
        self.photon(cfg)

        def status(name):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tport,
                                "-servername", name, "-status"],
                               input="", capture_output=True, text=True, timeout=20)
            return r.stdout
        out = status("stapled.test")
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        self.assertIn("OCSP response: no response sent", status("plain.test"))
        # Not an OCSP response: a configuration error.
        with open(resp, "wb") as f:
            f.write(b"garbage")
        path = write_config(self.tmpdir, cfg, name="bad")
        rc, out, err = run_photon(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn("not a DER OCSP response", err)

    def test_handshake_timeout(self):
        b = self.backend()
        server = self.pki.issue("srv", "srv", ["srv.test"])
        cfg, tport = self.tls_config(b, [server], extra_tls={"handshake_timeout": "1s"})
        self.photon(cfg)
        for hello in (b"", b"\x16\x03\x01\x00"):  # nothing, and a ClientHello cut short
            s = socket.create_connection(("127.0.0.1", tport), timeout=5)
            s.sendall(hello)
            start = time.monotonic()
            self.assertEqual(s.recv(100), b"")  # closed by the gateway
            self.assertLess(time.monotonic() - start, 4)
            s.close()

    def test_reload_renews_the_certificate_under_load(self):
        b = self.backend()
        cert, key = self.pki.issue("srv", "v1", ["srv.test"])
        cfg, tport = self.tls_config(b, [(cert, key)], workers=2)
        path = write_config(self.tmpdir, cfg)
        p = self.photon(path)
        ctx = self.client()
        stop = threading.Event()
        failures, done = [], [0]

        def load():
            # Keep-alive connections, reopened when the server closed one while it was idle
            # (a close before any byte of a response is not a failed request, as HTTP clients
            # treat it), and new connections.
            c = None
            while not stop.is_set():
                try:
                    for attempt in (1, 2):
                        reused = c is not None
                        if c is None:
                            c = TlsConn(tport, ctx, server_hostname="srv.test")
                        try:
                            r = c.request("GET", "/name")
                            break
                        except (PeerClosed, ConnectionResetError, BrokenPipeError):
                            c.close()
                            c = None
                            if attempt == 2 or not reused:
                                raise
                    if r.status != 200:
                        failures.append(r.status)
                    done[0] += 1
                    if r.header("connection") == "close" or done[0] % 3 == 0:
                        c.close()
                        c = None
                except Exception as e:  # noqa: BLE001 - every failure counts
                    failures.append(repr(e))
                    c = None
            if c is not None:
                c.close()
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: done[0] > 30, timeout=10)
            # Renewed files in place (as certbot does), then a reload.
            new_cert, new_key = self.pki.issue("srv2", "v2", ["srv.test"])
            os.replace(new_cert, cert)
            os.replace(new_key, key)
            p.signal(signal.SIGHUP)

            def serves_v2():
                with TlsConn(tport, ctx, server_hostname="srv.test") as c:
                    return c.common_name() == "v2"
            wait_until(serves_v2, timeout=10, msg="the renewed certificate is not served")
            # A broken renewal: the reload fails and the running certificate stays.
            with open(key, "w") as f:
                f.write("broken\n")
            rc, out, err = run_photon(["-s", "reload", "-c", path])
            self.assertEqual(rc, 1, err)
            self.assertIn("server.tls", err)
            p.signal(signal.SIGHUP)
            time.sleep(0.5)
            before = done[0]
            wait_until(lambda: done[0] > before + 30, timeout=10)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(failures, [])
        self.assertTrue(serves_v2())
        self.assertIn("reload failed", p.stderr_text())


class TestsslTest(TlsTestBase):
    """testssl.sh against the listener: nothing flagged for protocols, ciphers, forward secrecy
    and known vulnerabilities (the certificate section only judges the test's own CA). The
    report is kept in build/test-artifacts/."""

    def test_testssl_finds_nothing(self):
        if shutil.which("testssl") is None:
            if os.environ.get("CI"):
                self.fail("testssl (Debian package testssl.sh) is not installed")
            self.skipTest("testssl (Debian package testssl.sh) is not installed")
        b = self.backend()
        rsa = self.pki.issue("rsa", "rsa", ["tls.test"], kind="rsa")
        ec = self.pki.issue("ec", "ec", ["tls.test"])
        cfg, tport = self.tls_config(b, [ec, rsa])
        self.photon(cfg)
        out_dir = os.path.join(REPO_ROOT, "build", "test-artifacts")
        os.makedirs(out_dir, exist_ok=True)
        report = os.path.join(out_dir, "testssl.json")
        if os.path.exists(report):
            os.unlink(report)
        r = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off",
                            "--ip", "one", "-p", "-s", "-f", "-U", "--sneaky",
                            "--jsonfile-pretty", report, "127.0.0.1:%d" % tport],
                           capture_output=True, text=True, timeout=600)
        with open(os.path.join(out_dir, "testssl.txt"), "w") as f:
            f.write(r.stdout + r.stderr)
        with open(report) as f:
            scan = json.load(f)["scanResult"][0]
        checked = 0
        flagged = []
        for section in ("protocols", "ciphers", "pfs", "vulnerabilities"):
            for e in scan.get(section, []):
                checked += 1
                if e.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN") or \
                        "NOT ok" in e.get("finding", ""):
                    flagged.append((section, e["id"], e["severity"], e["finding"]))
        self.assertGreater(checked, 20, r.stdout[-2000:])
        self.assertEqual(flagged, [])
        ids = {e["id"]: e["finding"] for e in scan["protocols"]}
        self.assertIn("not offered", ids["TLS1"])
        self.assertIn("not offered", ids["TLS1_1"])
        self.assertIn("offered", ids["TLS1_3"])


class UpstreamTlsTest(TlsTestBase):
    """Upstreams with `tls: true`: the name sent and verified, CA files, verification refusals
    (unknown CA, expired, wrong name) and `tls_verify: false`, client certificates, connection
    pooling and session resumption, bodies both ways through TLS on both sides."""

    def tls_backend(self, cert, client_ca=None, name="tb"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        names = []
        ctx.sni_callback = lambda sock, server_name, _ctx: names.append(server_name)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        b = Backend(name=name, tls=ctx).start()
        self.addCleanup(b.stop)
        b.sni_names = names
        return b

    def gateway(self, backend, **upstream):
        port = free_port()
        cfg = base_config(port, [backend])
        up = cfg["load_balancing"]["backends"]["default"]["upstreams"][0]
        up.update(tls=True, **upstream)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["interval"] = "1h"
        return cfg, port

    def test_verified_upstream_pooled_and_resumed(self):
        b = self.tls_backend(self.pki.issue("up", "up", ["up.test"]))
        cfg, port = self.gateway(b, sni_hostname="up.test", ca_file=self.pki.ca)
        cfg["server"]["worker_processes"] = 1  # sessions are kept per worker
        self.photon(cfg)
        with Conn(port) as c:
            for _ in range(5):
                r = c.request("GET", "/name")
                self.assertEqual((r.status, r.body), (200, b"tb"))
            r = c.request("GET", "/fixed?size=2000000")
            self.assertEqual(r.body, pattern(2000000))
            body = os.urandom(700000)
            r = c.request("POST", "/echo", body=body)
            self.assertEqual(json.loads(r.body)["body_length"], len(body))
            headers = {k.lower(): v for k, v in json.loads(c.request("GET", "/echo").body)["headers"]}
            self.assertEqual(headers["host"], "127.0.0.1:%d" % port)
        self.assertEqual(b.sni_names[0], "up.test")
        self.assertEqual(b.tls_handshakes, 1, "the pooled connection was not reused")
        # A new connection (the backend closed the pooled one) resumes the session.
        b.stop()
        b.start()
        with Conn(port) as c:
            self.assertEqual(c.request("GET", "/name").status, 200)
        self.assertGreaterEqual(b.tls_resumed, 1, "no session resumption")

    def test_verification_refusals_and_tls_verify_false(self):
        self_signed_dir = os.path.join(self.tmpdir, "other")
        other = Pki(self_signed_dir, name="Unknown CA")
        cases = [
            (other.issue("x", "x", ["up.test"]), {"sni_hostname": "up.test"},
             "self-signed certificate in certificate chain"),
            (self.pki.issue("exp", "exp", ["up.test"], expired=True), {"sni_hostname": "up.test"},
             "certificate has expired"),
            (self.pki.issue("wrong", "wrong", ["other.test"]), {"sni_hostname": "up.test"},
             "hostname mismatch"),
        ]
        for cert, opts, reason in cases:
            b = self.tls_backend(cert)
            cfg, port = self.gateway(b, ca_file=self.pki.ca, **opts)
            p = self.photon(cfg)
            r = http_request(port, "GET", "/name")
            self.assertEqual(r.status, 502, reason)
            wait_until(lambda: reason in p.stderr_text(), timeout=5, msg=reason)
            p.close()
            # Not verified, on purpose: served, and warned about at load.
            cfg, port = self.gateway(b, tls_verify=False, **opts)
            path = write_config(self.tmpdir, cfg, name="noverify")
            rc, out, err = run_photon(["-t", "-c", path])
            self.assertEqual(rc, 0, err)
            self.assertIn("is not verified", err)
            p = self.photon(path)
            self.assertEqual(http_request(port, "GET", "/name").status, 200)
            p.close()

    def test_client_certificate_to_the_upstream(self):
        b = self.tls_backend(self.pki.issue("up", "up", ["up.test"]), client_ca=self.pki.ca)
        client = self.pki.issue("gw", "gateway", client=True)
        cfg, port = self.gateway(b, sni_hostname="up.test", ca_file=self.pki.ca)
        p = self.photon(cfg)
        self.assertEqual(http_request(port, "GET", "/name").status, 502)
        p.close()
        cfg, port = self.gateway(b, sni_hostname="up.test", ca_file=self.pki.ca,
                                 tls_cert=client[0], tls_key=client[1])
        self.photon(cfg)
        self.assertEqual(http_request(port, "GET", "/name").status, 200)
        # A key that does not match, and a missing half: configuration errors.
        for extra, message in (({"tls_cert": client[0], "tls_key": self.pki.ca_key},
                                "does not match"),
                               ({"tls_cert": client[0]}, "tls_key is missing")):
            cfg, _ = self.gateway(b, sni_hostname="up.test", **extra)
            path = write_config(self.tmpdir, cfg, name="bad")
            rc, out, err = run_photon(["-t", "-c", path])
            self.assertEqual(rc, 1, err)
            self.assertIn(message, err)

    def test_tls_on_both_sides(self):
        b = self.tls_backend(self.pki.issue("up", "up", ["up.test"]))
        front = self.pki.issue("front", "front", ["front.test"])
        cfg, tport = self.tls_config(b, [front])
        up = cfg["load_balancing"]["backends"]["default"]["upstreams"][0]
        up.update(tls=True, sni_hostname="up.test", ca_file=self.pki.ca)
        self.photon(cfg)
        with TlsConn(tport, self.client(), server_hostname="front.test") as c:
            r = c.request("GET", "/fixed?size=1000000")
            self.assertEqual(r.body, pattern(1000000))
            body = os.urandom(300000)
            r = c.request("POST", "/echo", body=body)
            self.assertEqual(json.loads(r.body)["body_length"], len(body))

    def test_https_health_checks_use_the_upstream_tls_settings(self):
        # The upstream trusts only the test CA and wants a client certificate: a check that
        # used the system store or no certificate would fail.
        b = self.tls_backend(self.pki.issue("up", "up", ["up.test"]), client_ca=self.pki.ca)
        client = self.pki.issue("gw", "gateway", client=True)
        port, mport = free_port(), free_port()
        cfg = base_config(port, [b], metrics_port=mport)
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"] = {"interval": "300ms", "timeout": "2s", "failure_threshold": 1,
                               "success_threshold": 1}
        default = cfg["load_balancing"]["backends"]["default"]
        default["health_check"] = {"check_type": "https", "path": "/health"}
        default["upstreams"][0].update(tls=True, sni_hostname="up.test", ca_file=self.pki.ca,
                                       tls_cert=client[0], tls_key=client[1])
        self.photon(cfg)

        def state():
            r = http_request(mport, "GET", "/health")
            u = r.json()["backends"]["default"]["upstreams"][0]
            return u["state"] if u["last_check_ms_ago"] >= 0 else None
        wait_until(lambda: state() == "healthy", timeout=10, msg="https check not healthy")
        wait_until(lambda: b.tls_handshakes >= 2, timeout=10)
        self.assertEqual(b.tls_failures, 0)
        self.assertEqual(http_request(port, "GET", "/name").status, 200)

    def test_websocket_over_tls_on_both_sides(self):
        from test_websocket import WsClient
        b = self.tls_backend(self.pki.issue("up", "up", ["up.test"]))
        front = self.pki.issue("front", "front", ["front.test"])
        cfg, tport = self.tls_config(b, [front])
        up = cfg["load_balancing"]["backends"]["default"]["upstreams"][0]
        up.update(tls=True, sni_hostname="up.test", ca_file=self.pki.ca)
        cfg["routes"][0]["websocket"] = {"enabled": True, "max_message_size": 4 << 20}
        self.photon(cfg)
        ws = WsClient(tport)
        ws.conn.close()
        ws.conn = TlsConn(tport, self.client(), server_hostname="front.test")
        self.addCleanup(ws.conn.close)
        r = ws.handshake("/ws")
        self.assertEqual(r.status, 101, r.body)
        # Small and large messages (larger than a TLS record, so both relays meet bytes TLS
        # read ahead), binary and text, in both directions.
        for payload, opcode in ((b"hello", 1), (os.urandom(70000), 2), (os.urandom(1 << 20), 2)):
            ws.send_frame(opcode, payload)
            f = ws.recv(timeout=10)
            self.assertEqual((f.opcode, f.payload), (opcode, payload))
        for i in range(20):  # many small ones in a row
            ws.send_frame(1, b"m%d" % i)
        for i in range(20):
            self.assertEqual(ws.recv(timeout=10).payload, b"m%d" % i)
        ws.send_frame(8, b"\x03\xe8")
        close, _ = ws.expect_close()
        self.assertEqual(close.code, 1000)
