# SPDX-License-Identifier: Apache-2.0
"""Authentication (`middleware.authentication`, named instances `auth:NAME`): JWTs minted by
python3-jwt (independent of our code) with keys made by the openssl CLI at test time, JWKS
files, API keys, Basic against htpasswd files made by Apache's `htpasswd` and `openssl passwd`,
the 401/403 answers and their challenges, forwarded claims clients try to forge, credentials
removed before forwarding, and secrets kept out of the logs."""

import base64
import json
import os
import shutil
import subprocess
import time

import signal

from harness import (IntegrationTest, base_config, free_port, http_request, run_photon,
                     wait_until, write_config)

import jwt  # Debian's python3-jwt (the tests run under /usr/bin/python3)
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SECRET = "it-hs256-secret-0123456789-abcdefghij"
ISSUER = "https://idp.test/"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class AuthBase(IntegrationTest):
    """photon with one backend; `start(auth, routes=None)` installs the authentication block
    on route `api` (/api/**); route `open` (/**) runs nothing."""

    def keypair(self, kind):
        """(private PEM path, public PEM path) made by the openssl CLI."""
        key = os.path.join(self.tmpdir, kind + ".key")
        pub = os.path.join(self.tmpdir, kind + ".pub")
        if not os.path.exists(pub):
            if kind == "rsa":
                openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", key)
            elif kind == "p256":
                openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", key)
            elif kind == "p384":
                openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                        "-out", key)
            elif kind == "ed25519":
                openssl("genpkey", "-algorithm", "ED25519", "-out", key)
            else:
                raise ValueError(kind)
            openssl("pkey", "-in", key, "-pubout", "-out", pub)
        return key, pub

    def private(self, kind):
        with open(self.keypair(kind)[0]) as f:
            return f.read()

    def start(self, auth, middleware=None, routes=None, named=None):
        if not hasattr(self, "b"):
            self.b = self.backend()
        self.port = free_port()
        cfg = base_config(self.port, [self.b])
        cfg["server"]["worker_processes"] = 2
        cfg["server"]["pid_file"] = os.path.join(self.tmpdir, "photon.pid")
        cfg["health_check"]["enabled"] = False
        cfg["middleware"] = {"authentication": auth}
        if named:
            cfg["middleware"].update(named)
        cfg["routes"] = routes if routes is not None else [
            {"id": "api", "path": "/api/**", "backend": "default",
             "middleware": middleware or ["auth"]},
            {"id": "open", "path": "/**", "backend": "default"},
        ]
        self.proxy = self.photon(cfg)
        return self.proxy

    def get(self, path="/api/x", token=None, headers=None, scheme="Bearer"):
        h = list(headers or [])
        if token is not None:
            h.append(("Authorization", "%s %s" % (scheme, token)))
        return http_request(self.port, "GET", path, headers=h)

    def last(self):
        log = self.b.request_log()
        return log[-1] if log else None

    def assert_refused(self, resp, status, challenge_prefix, error_part=None):
        self.assertEqual(resp.status, status, resp.text)
        self.assertTrue((resp.header("www-authenticate") or "").startswith(challenge_prefix),
                        resp.header("www-authenticate"))
        body = resp.json()
        self.assertEqual(body["status"], status)
        if error_part is not None:
            self.assertIn(error_part, body["error"])

    def logs(self):
        out = ""
        for p in (self.proxy.stdout_path, self.proxy.stderr_path):
            if p and os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out


def now():
    return int(time.time())


def yescrypt(password):
    """A yescrypt hash made by the system's libcrypt (no Debian tool writes one for htpasswd
    files; `mkpasswd -m yescrypt` would)."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    h = lib.crypt(password.encode(), lib.crypt_gensalt(b"$y$", 0, None, 0)).decode()
    assert h.startswith("$y$"), h
    return h


class JwtAlgorithmsTest(AuthBase):

    def test_every_algorithm_from_pem_keys(self):
        cases = [("RS256", "rsa"), ("RS512", "rsa"), ("PS256", "rsa"), ("PS384", "rsa"),
                 ("ES256", "p256"), ("ES384", "p384"), ("EdDSA", "ed25519")]
        for alg, kind in cases:
            with self.subTest(alg=alg):
                self.start({"auth_type": "jwt",
                            "jwt": {"algorithm": alg, "public_key_file": self.keypair(kind)[1]}})
                good = jwt.encode({"sub": "u", "exp": now() + 60}, self.private(kind),
                                  algorithm=alg)
                r = self.get(token=good)
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(self.last().header("authorization"), "Bearer " + good)
                # Tampered signature, payload and header.
                h, p, s = good.split(".")
                flipped = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
                for bad in (".".join([h, p, flipped]),
                            ".".join([h, jwt.utils.base64url_encode(
                                b'{"sub":"admin","exp":9999999999}').decode(), s]),
                            ".".join([jwt.utils.base64url_encode(
                                ('{"alg":"%s","kid":"x"}' % alg).encode()).decode(), p, s])):
                    self.assert_refused(self.get(token=bad), 401, 'Bearer error="invalid_token"')
                self.proxy.stop()

    def test_hs256_and_hs512_secret(self):
        self.start({"auth_type": "jwt", "jwt": {"algorithms": ["HS256", "HS512"],
                                                "secret": SECRET}})
        for alg in ("HS256", "HS512"):
            t = jwt.encode({"sub": "u"}, SECRET, algorithm=alg)
            self.assertEqual(self.get(token=t).status, 200)
        wrong = jwt.encode({"sub": "u"}, SECRET + "x", algorithm="HS256")
        self.assert_refused(self.get(token=wrong), 401, 'Bearer error="invalid_token"',
                            "invalid signature")
        # HS384 is not in the list: refused whatever its signature.
        t384 = jwt.encode({"sub": "u"}, SECRET, algorithm="HS384")
        self.assert_refused(self.get(token=t384), 401, "Bearer", "algorithm not accepted")

    def test_alg_none_and_key_confusion_are_refused(self):
        key, pub = self.keypair("rsa")
        self.start({"auth_type": "jwt", "jwt": {"algorithms": ["RS256"],
                                                "public_key_file": pub}})
        none = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode() + "." + \
            jwt.utils.base64url_encode(b'{"sub":"admin"}').decode() + "."
        self.assert_refused(self.get(token=none), 401, "Bearer")
        lower = jwt.utils.base64url_encode(b'{"alg":"rs256"}').decode() + "." + \
            jwt.utils.base64url_encode(b'{"sub":"admin"}').decode() + ".c2ln"
        self.assert_refused(self.get(token=lower), 401, "Bearer", "algorithm not accepted")
        # HS256 signed with the RSA public key's PEM text as the HMAC secret.
        with open(pub, "rb") as f:
            pem = f.read()
        header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
        payload = jwt.utils.base64url_encode(b'{"sub":"admin"}')
        import hashlib
        import hmac
        sig = hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()
        confused = (header + b"." + payload + b"." + jwt.utils.base64url_encode(sig)).decode()
        self.assert_refused(self.get(token=confused), 401, "Bearer")
        # Header keys that would let the token choose its own key.
        for extra in ({"jku": "https://evil.test/jwks"}, {"jwk": {"kty": "oct", "k": "AA"}},
                      {"x5u": "https://evil.test/c"}, {"crit": ["exp"]}):
            t = jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256", headers=extra)
            self.assert_refused(self.get(token=t), 401, "Bearer", "token header not accepted")
        self.assertEqual(len(self.b.request_log()), 0)


class JwtClaimsTest(AuthBase):

    def start_claims(self, **extra):
        conf = {"algorithm": "HS256", "secret": SECRET}
        conf.update(extra)
        return self.start({"auth_type": "jwt", "jwt": conf})

    def test_exp_nbf_and_leeway(self):
        self.start_claims(leeway=5)
        t = now()
        self.assertEqual(self.get(token=jwt.encode({"exp": t - 2}, SECRET)).status, 200)
        self.assert_refused(self.get(token=jwt.encode({"exp": t - 30}, SECRET)), 401,
                            'Bearer error="invalid_token", error_description="token expired"',
                            "token expired")
        self.assertEqual(self.get(token=jwt.encode({"nbf": t + 2}, SECRET)).status, 200)
        self.assert_refused(self.get(token=jwt.encode({"nbf": t + 60}, SECRET)), 401,
                            'Bearer error="invalid_token"', "not yet valid")
        self.assert_refused(self.get(token=jwt.encode({"exp": "tomorrow"}, SECRET)), 401,
                            "Bearer", "invalid claim")

    def test_require_exp_issuer_audience(self):
        self.start_claims(require_exp=True, issuer=[ISSUER, "https://other.test/"],
                          audience="api")
        ok = {"exp": now() + 60, "iss": ISSUER, "aud": ["web", "api"]}
        self.assertEqual(self.get(token=jwt.encode(ok, SECRET)).status, 200)
        for bad, why in (({"iss": ISSUER, "aud": "api"}, "no expiry"),
                         (dict(ok, iss="https://evil.test/"), "issuer"),
                         (dict(ok, aud="web"), "audience")):
            with self.subTest(why=why):
                self.assert_refused(self.get(token=jwt.encode(bad, SECRET)), 401, "Bearer", why)

    def test_required_claims_are_403(self):
        self.start_claims(required_claims={"role": "admin"})
        self.assertEqual(self.get(token=jwt.encode({"role": ["user", "admin"]}, SECRET)).status,
                         200)
        r = self.get(token=jwt.encode({"role": "user"}, SECRET))
        self.assert_refused(r, 403, 'Bearer error="insufficient_scope"')

    def test_missing_and_malformed_credentials(self):
        self.start_claims()
        r = self.get()
        self.assert_refused(r, 401, "Bearer", "missing credentials")
        self.assertEqual(r.header("www-authenticate"), "Bearer")
        self.assert_refused(self.get(token="abc.def"), 401, "Bearer", "malformed")
        self.assert_refused(self.get(token="YWJj.e30=.c2ln"), 401, "Bearer", "malformed")
        self.assert_refused(self.get(token=jwt.encode({"a": 1}, SECRET), scheme="Basic"), 401,
                            "Bearer", "missing credentials")
        big = jwt.encode({"pad": "x" * 9000}, SECRET)
        self.assert_refused(self.get(token=big), 401, "Bearer", "too large")
        # The open route needs nothing; nothing refused reached the backend.
        self.assertEqual(http_request(self.port, "GET", "/open").status, 200)
        self.assertEqual(len(self.b.request_log()), 1)


class JwtForwardingTest(AuthBase):

    def test_forwarded_claims_cannot_be_forged(self):
        self.start({"auth_type": "jwt", "jwt": {
            "algorithm": "HS256", "secret": SECRET,
            "forward_claims": {"sub": "X-User-Id", "tier": "X-Tier"}}})
        t = jwt.encode({"sub": "alice", "tier": "gold"}, SECRET)
        for _ in range(2):  # verified, then from the cache
            r = self.get(token=t, headers=[("X-User-Id", "mallory"), ("x-tier", "platinum")])
            self.assertEqual(r.status, 200)
            req = self.last()
            self.assertEqual(req.header_all("x-user-id"), ["alice"])
            self.assertEqual(req.header_all("x-tier"), ["gold"])
        # A token without the claim: the client's field is still removed.
        r = self.get(token=jwt.encode({"tier": "gold"}, SECRET),
                     headers=[("X-User-Id", "mallory")])
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().header_all("x-user-id"), [])

    def test_query_and_cookie_tokens_and_forward_token_false(self):
        self.start({"auth_type": "jwt", "jwt": {
            "algorithm": "HS256", "secret": SECRET, "query": "access_token",
            "cookie": "session", "forward_token": False}})
        t = jwt.encode({"sub": "u"}, SECRET)
        r = http_request(self.port, "GET", "/api/x?a=1&access_token=%s&b=2" % t)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().target, "/api/x?a=1&b=2")
        r = http_request(self.port, "GET", "/api/x", headers=[("Cookie", "k=v; session=" + t)])
        self.assertEqual(r.status, 200)
        r = self.get(token=t)
        self.assertEqual(r.status, 200)
        self.assertIsNone(self.last().header("authorization"))


class JwtTransformTest(AuthBase):

    def test_claims_as_transform_variables(self):
        # A transform reading two claims, on both sides.
        cfg_transform = {"request_headers": {"set": {"X-Tenant": "${jwt.tenant}",
                                                     "X-Who": "${jwt.sub}@${jwt.tenant}"}},
                         "response_headers": {"add": {"X-Served-For": "${jwt.sub}"}}}
        self.start({"auth_type": "jwt", "jwt": {"algorithm": "HS256", "secret": SECRET}},
                   middleware=["auth", "transform"], named={"transform": cfg_transform})
        t = jwt.encode({"sub": "alice", "tenant": "acme"}, SECRET)
        for _ in range(2):  # verified, then from the cache
            r = self.get(token=t, headers=[("X-Tenant", "forged")])
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("x-served-for"), "alice")
            req = self.last()
            self.assertEqual(req.header_all("x-tenant"), ["acme"])
            self.assertEqual(req.header("x-who"), "alice@acme")
        # A token without the claim gives an empty value, never another request's.
        r = self.get(token=jwt.encode({"sub": "bob"}, SECRET))
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().header("x-who"), "bob@")


class JwksTest(AuthBase):

    def jwks(self, *keys):
        path = os.path.join(self.tmpdir, "jwks.json")
        with open(path, "w") as f:
            json.dump({"keys": list(keys)}, f)
        return path

    def jwk(self, kind, kid, alg):
        key = jwt.algorithms.get_default_algorithms()[alg].prepare_key(self.private(kind))
        cls = {"rsa": RSAAlgorithm, "p256": ECAlgorithm, "ed25519": OKPAlgorithm}[kind]
        d = json.loads(cls.to_jwk(key.public_key()))
        d.update({"kid": kid, "alg": alg, "use": "sig"})
        return d

    def test_ec_coordinates_without_their_leading_zero_bytes_are_accepted(self):
        # Some producers (PyJWT before 2.7) write x and y minimal-length: a P-256 coordinate
        # that starts with a zero byte comes as 31 bytes. Find such a key, publish it that way.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        for _ in range(5000):
            priv = ec.generate_private_key(ec.SECP256R1())
            nums = priv.public_key().public_numbers()
            if nums.x < (1 << 248):
                break
        else:
            self.fail("no key with a short x coordinate in 5000 tries")

        def b64(n):
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.assertLess(len(base64.urlsafe_b64decode(b64(nums.x) + "==")), 32)
        path = self.jwks({"kty": "EC", "crv": "P-256", "kid": "short", "alg": "ES256",
                          "use": "sig", "x": b64(nums.x), "y": b64(nums.y)})
        self.start({"auth_type": "jwt", "jwt": {"algorithms": ["ES256"], "jwks_file": path}})
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        t = jwt.encode({"sub": "u"}, pem, algorithm="ES256", headers={"kid": "short"})
        self.assertEqual(self.get(token=t).status, 200)

    def test_keys_selected_by_kid(self):
        path = self.jwks(self.jwk("rsa", "r1", "RS256"), self.jwk("p256", "e1", "ES256"),
                         self.jwk("ed25519", "o1", "EdDSA"),
                         {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"})
        self.start({"auth_type": "jwt", "jwt": {"algorithms": ["RS256", "ES256", "EdDSA"],
                                                "jwks_file": path}})
        for kind, kid, alg in (("rsa", "r1", "RS256"), ("p256", "e1", "ES256"),
                               ("ed25519", "o1", "EdDSA")):
            t = jwt.encode({"sub": "u"}, self.private(kind), algorithm=alg,
                           headers={"kid": kid})
            self.assertEqual(self.get(token=t).status, 200, alg)
        # A kid the set does not have, and a kid that names a key of another type.
        t = jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256",
                       headers={"kid": "nope"})
        self.assert_refused(self.get(token=t), 401, "Bearer", "unknown signing key")
        t = jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256",
                       headers={"kid": "e1"})
        self.assert_refused(self.get(token=t), 401, "Bearer", "unknown signing key")

    def test_rotation_through_a_reload(self):
        path = self.jwks(self.jwk("rsa", "old", "RS256"))
        self.start({"auth_type": "jwt", "jwt": {"algorithm": "RS256", "jwks_file": path}})
        old = jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256",
                         headers={"kid": "old"})
        new = jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256",
                         headers={"kid": "new"})
        self.assertEqual(self.get(token=old).status, 200)
        self.assertEqual(self.get(token=new).status, 401)
        self.jwks(self.jwk("rsa", "new", "RS256"))
        # A reload re-reads the document: the new key is accepted, the old one no longer.
        self.proxy.signal(signal.SIGHUP)
        wait_until(lambda: self.get(token=new).status == 200, timeout=10)
        wait_until(lambda: self.get(token=old).status == 401, timeout=10)


class JwksServer:
    """A local HTTPS server for /jwks.json (certificate from a CA made with the openssl CLI);
    `doc` is what it serves, `stop()` takes it down."""

    def __init__(self, tmpdir):
        import http.server
        import ssl
        import threading
        self.ca = os.path.join(tmpdir, "ca.pem")
        key, csr, crt = (os.path.join(tmpdir, n) for n in ("srv.key", "srv.csr", "srv.pem"))
        ext = os.path.join(tmpdir, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                os.path.join(tmpdir, "ca.key"), "-out", self.ca, "-days", "1", "-subj", "/CN=it-ca")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=127.0.0.1")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                os.path.join(tmpdir, "ca.key"), "-CAcreateserial", "-out", crt, "-days", "1",
                "-extfile", ext)
        self.doc = {"keys": []}
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = json.dumps(outer.doc).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "https://127.0.0.1:%d/jwks.json" % self.port

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


class JwksUrlTest(AuthBase):

    jwk = JwksTest.jwk

    def setUp(self):
        super().setUp()
        self.server = JwksServer(self.tmpdir)
        self.addCleanup(self.server.stop)

    def token(self, kid):
        return jwt.encode({"sub": "u"}, self.private("rsa"), algorithm="RS256",
                          headers={"kid": kid})

    def test_rotation_by_unknown_kid_and_failures_keep_the_keys(self):
        self.server.doc = {"keys": [self.jwk("rsa", "k1", "RS256")]}
        self.start({"auth_type": "jwt", "jwt": {
            "algorithm": "RS256", "jwks_url": self.server.url, "jwks_ca_file": self.server.ca,
            "jwks_refresh_interval": "1h", "jwks_timeout": "2s"}})
        self.assertEqual(self.get(token=self.token("k1")).status, 200)
        self.assert_refused(self.get(token=self.token("k2")), 401, "Bearer",
                            "unknown signing key")
        # The issuer rotates: a token naming the new kid makes the master fetch again (at most
        # every 5 s), without a reload.
        self.server.doc = {"keys": [self.jwk("rsa", "k2", "RS256")]}
        wait_until(lambda: self.get(token=self.token("k2")).status == 200, timeout=15,
                   interval=0.5)
        self.assertEqual(self.get(token=self.token("k1")).status, 401)
        # The server goes away: a failed fetch keeps the keys in service.
        fetches = self.server.fetches
        self.server.stop()
        self.get(token=self.token("k3"))
        wait_until(lambda: "fetch failed" in self.logs(), timeout=15, interval=0.5)
        self.assertEqual(self.server.fetches, fetches)
        self.assertEqual(self.get(token=self.token("k2")).status, 200)

    def test_an_untrusted_server_gives_no_keys(self):
        self.server.doc = {"keys": [self.jwk("rsa", "k1", "RS256")]}
        self.start({"auth_type": "jwt", "jwt": {
            "algorithm": "RS256", "jwks_url": self.server.url, "jwks_timeout": "2s"}})
        self.assert_refused(self.get(token=self.token("k1")), 401, "Bearer")
        self.assertIn("certificate verify failed", self.logs())
        self.assertEqual(self.server.fetches, 0)


class ApiKeyTest(AuthBase):

    def test_header_query_consumers_and_keys_file(self):
        keys_file = os.path.join(self.tmpdir, "keys.txt")
        with open(keys_file, "w") as f:
            f.write("# partners\nk-file-1 partner-b\n")
        self.start({"auth_type": "api_key", "api_key": {
            "keys": ["k-inline", {"key": "k-named", "name": "partner-a"}],
            "keys_file": keys_file, "query": "api_key"}})
        r = self.get(headers=[("X-API-Key", "k-named"), ("X-Consumer", "forged")])
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().header_all("x-consumer"), ["partner-a"])
        r = http_request(self.port, "GET", "/api/x?api_key=k-file-1&z=9")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().target, "/api/x?z=9")
        self.assertEqual(self.last().header_all("x-consumer"), ["partner-b"])
        r = self.get(headers=[("X-API-Key", "k-inline")])
        self.assertEqual(r.status, 200)
        self.assertEqual(self.last().header_all("x-consumer"), [])
        for bad in ("k-inlin", "k-inline2", "K-INLINE"):
            self.assert_refused(self.get(headers=[("X-API-Key", bad)]), 401, "ApiKey",
                                "invalid API key")
        self.assert_refused(self.get(), 401, "ApiKey", "missing credentials")


class BasicAuthTest(AuthBase):

    def htpasswd(self):
        path = os.path.join(self.tmpdir, "htpasswd")
        lines = []
        if shutil.which("htpasswd"):
            out = subprocess.run(["htpasswd", "-nbB", "-C", "5", "bee", "bcrypt-pass"],
                                 capture_output=True, text=True, check=True, timeout=30)
            lines.append(out.stdout.strip())
        for user, flag in (("sha5", "-5"), ("sha6", "-6")):
            out = subprocess.run(["openssl", "passwd", flag, "pw-" + user],
                                 capture_output=True, text=True, check=True, timeout=30)
            lines.append("%s:%s" % (user, out.stdout.strip()))
        lines.append("yes:%s" % yescrypt("pw-yes"))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def basic(self, user, password):
        return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def test_htpasswd_schemes(self):
        self.start({"auth_type": "basic", "basic": {"htpasswd_file": self.htpasswd(),
                                                    "realm": "staff"}})
        users = [("sha5", "pw-sha5"), ("sha6", "pw-sha6"), ("yes", "pw-yes")]
        if shutil.which("htpasswd"):
            users.append(("bee", "bcrypt-pass"))
        for user, pw in users:
            with self.subTest(user=user):
                r = self.get(headers=[("Authorization", self.basic(user, pw))])
                self.assertEqual(r.status, 200)
                self.assertEqual(self.last().header_all("x-consumer"), [user])
                r = self.get(headers=[("Authorization", self.basic(user, pw + "x"))])
                self.assert_refused(r, 401, 'Basic realm="staff"')
        self.assert_refused(self.get(headers=[("Authorization", self.basic("nobody", "x"))]),
                            401, "Basic")
        self.assert_refused(self.get(), 401, 'Basic realm="staff", charset="UTF-8"')

    def test_weak_hashes_are_refused_at_load(self):
        path = os.path.join(self.tmpdir, "weak")
        with open(path, "w") as f:
            f.write("old:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        b = self.backend()
        cfg = base_config(free_port(), [b])
        cfg["middleware"] = {"authentication": {"auth_type": "basic",
                                                "basic": {"htpasswd_file": path}}}
        cfg["routes"][0]["middleware"] = ["auth"]
        self.require_photon()
        rc, out, err = run_photon(["-t", "-c", write_config(self.tmpdir, cfg, name="check")])
        self.assertNotEqual(rc, 0)
        self.assertIn("MD5", err)
        self.assertNotIn("0123456789abcdefghijkl", err)


class NamedInstancesAndSecretsTest(AuthBase):

    def test_two_setups_and_no_secret_in_logs(self):
        self.start({"auth_type": "jwt", "jwt": {"algorithm": "HS256", "secret": SECRET}},
                   routes=[
                       {"id": "users", "path": "/api/**", "backend": "default",
                        "middleware": ["auth"]},
                       {"id": "partners", "path": "/partner/**", "backend": "default",
                        "middleware": ["auth:partners"]},
                   ],
                   named={"auth:partners": {"auth_type": "api_key",
                                            "api_key": {"keys": ["partner-key-xyz-123"]}}})
        t = jwt.encode({"sub": "u"}, SECRET)
        self.assertEqual(self.get(token=t).status, 200)
        self.assertEqual(self.get("/partner/x", token=t).status, 401)
        r = http_request(self.port, "GET", "/partner/x",
                         headers=[("X-API-Key", "partner-key-xyz-123")])
        self.assertEqual(r.status, 200)
        bad = jwt.encode({"sub": "u"}, "wrong-secret-but-long-enough-0123456789")
        self.assertEqual(self.get(token=bad).status, 401)
        self.proxy.stop()
        logs = self.logs()
        for secret in (SECRET, "partner-key-xyz-123", t, bad):
            self.assertNotIn(secret, logs)
