# SPDX-License-Identifier: Apache-2.0
"""Certificates made at test time with the openssl command-line tool: a CA, server certificates
(RSA or ECDSA, any DNS names, optionally expired) and client certificates signed by it."""

import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


class Pki:
    """``Pki(dir)`` creates a CA in ``dir``; ``ca`` is its certificate file."""

    def __init__(self, directory, name="Photon Test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca = os.path.join(directory, "ca.pem")
        self._serial = 1
        self._key("ca", "ec")
        _run(["req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca, "-days", "3",
              "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)

    def _key(self, stem, kind):
        path = os.path.join(self.dir, stem + ".key")
        if kind == "rsa":
            _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", path], self.dir)
        else:
            _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", path], self.dir)
        os.chmod(path, 0o600)
        return path

    def issue(self, stem, cn, dns=(), kind="ec", client=False, expired=False, ips=(),
              both=False):
        """Signs a certificate; returns (cert_path, key_path). The cert file holds the leaf
        then the CA (a full chain). ``ips`` become IP subjectAltNames; ``both`` makes it good
        for servers and clients alike (a Redis Cluster node: its bus asks for a client
        certificate)."""
        key = self._key(stem, kind)
        csr = os.path.join(self.dir, stem + ".csr")
        leaf = os.path.join(self.dir, stem + ".leaf.pem")
        cert = os.path.join(self.dir, stem + ".pem")
        ext = os.path.join(self.dir, stem + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("extendedKeyUsage=%s\n" % ("serverAuth,clientAuth" if both else
                                               "clientAuth" if client else "serverAuth"))
            if dns or ips:
                f.write("subjectAltName=%s\n" % ",".join(["DNS:" + d for d in dns] +
                                                           ["IP:" + a for a in ips]))
        _run(["req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn], self.dir)
        self._serial += 1
        args = ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-set_serial", str(self._serial), "-extfile", ext, "-out", leaf]
        # An expired one ends a day before it starts (OpenSSL 3.0 takes a negative -days).
        args += ["-days", "-1" if expired else "2"]
        _run(args, self.dir)
        with open(cert, "w") as out:
            for part in (leaf, self.ca):
                with open(part) as f:
                    out.write(f.read())
        return cert, key

    def ocsp_response(self, stem):
        """A DER OCSP response ("good", valid a day) for the certificate issued as ``stem``,
        signed by the CA; returns its path."""
        import datetime
        leaf = os.path.join(self.dir, stem + ".leaf.pem")
        r = subprocess.run(["openssl", "x509", "-in", leaf, "-noout", "-serial", "-enddate",
                            "-subject", "-nameopt", "compat"],
                           capture_output=True, text=True, timeout=30, check=True)
        fields = dict(line.split("=", 1) for line in r.stdout.splitlines())
        end = datetime.datetime.strptime(fields["notAfter"].replace("  ", " "),
                                         "%b %d %H:%M:%S %Y GMT")
        index = os.path.join(self.dir, stem + ".index")
        with open(index, "w") as f:
            f.write("V\t%s\t\t%s\tunknown\t%s\n" % (end.strftime("%y%m%d%H%M%SZ"),
                                                    fields["serial"], fields["subject"]))
        out = os.path.join(self.dir, stem + ".ocsp.der")
        _run(["ocsp", "-index", index, "-rsigner", self.ca, "-rkey", self.ca_key, "-CA", self.ca,
              "-issuer", self.ca, "-cert", leaf, "-respout", out, "-ndays", "1"], self.dir)
        return out
