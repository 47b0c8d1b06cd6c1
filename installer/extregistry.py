"""Your own registry (Harbor, distribution, ...) instead of the bundled one: its address, CA and credentials
as the operator gives them, checked before any host changes (reachable, TLS trusted, credentials allowed to
push), and the push of the bundle's images into it.

The address is HOST[:PORT][/PREFIX]: the images go to PREFIX/<upstream host>/<repository> (PREFIX is a
Harbor project, or any path), and the hosts' runtime config sends pulls of the upstream names there.
Credentials are read from a file (one line `user:password`, or a Docker config.json with an `auths` entry for
the host) and are never printed, logged or recorded; the cluster record keeps the address and the CA's
SHA-256 fingerprint only.
"""

import base64
import hashlib
import json
import os
import re

from installer.errors import InstallerError

HTTPS_PORT = 443
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(\d{1,5}))?$")
_PREFIX = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
PREFLIGHT_REPO = "airgap-bundler-preflight"


class Target(object):
    """HOST[:PORT][/PREFIX] parsed: `address` is host[:port] (as the runtime names it), `prefix` the path."""

    def __init__(self, address, prefix=""):
        self.address = address
        self.prefix = prefix

    @property
    def path(self):
        """address/prefix: what image references start with in this registry."""
        return "%s/%s" % (self.address, self.prefix) if self.prefix else self.address

    def __str__(self):
        return self.path


def parse_target(text, option="--registry"):
    """HOST[:PORT][/PREFIX] -> Target; one clear error for anything else (a scheme, a bad port, a bad path)."""
    raw = (text or "").strip()
    if raw.lower().startswith("https://"):
        raw = raw[len("https://"):]
    if "://" in raw or not raw:
        raise InstallerError("%s %r is not HOST[:PORT][/PREFIX]" % (option, text),
                             hint="Give the registry as e.g. harbor.example.com/k8s or 10.0.0.5:8443 (HTTPS only)")
    host, _, prefix = raw.partition("/")
    prefix = prefix.strip("/")
    m = _HOST.match(host)
    if not m or (m.group(4) and not 0 < int(m.group(4)) < 65536):
        raise InstallerError("%s %r: %r is not a host name or address with an optional port" % (option, text, host),
                             hint="Give the registry as e.g. harbor.example.com/k8s or 10.0.0.5:8443")
    if prefix and not _PREFIX.match(prefix):
        raise InstallerError("%s %r: the path %r is not a valid repository prefix (lower-case letters, digits, "
                             "'.', '_', '-' and '/')" % (option, text, prefix),
                             hint="Give the Harbor project (or path) in lower case, e.g. harbor.example.com/k8s")
    if m.group(4) and int(m.group(4)) == HTTPS_PORT:
        host = m.group(1)  # containerd and docker name the registry without the default port
    return Target(host, prefix)


def _read(path, what, option):
    try:
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the read
            raise IOError(0, "not a regular file")
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError) as e:
        raise InstallerError("%s %s: cannot read the %s: %s" % (option, path, what, e.strerror or e),
                             hint="Give a readable file") from None


def load_credentials(path, address, option="--registry-credentials"):
    """(user, password) from `path`: a line `user:password`, or a Docker config.json with an `auths` entry for
    the registry. The error never contains the file's content."""
    data = _read(path, "credentials", option).decode("utf-8", "replace")
    text = data.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            raise InstallerError("%s %s: not valid JSON (a Docker config.json was expected)" % (option, path),
                                 hint="Give `user:password` on one line, or a config.json written by docker "
                                      "login") from None
        auths = doc.get("auths") if isinstance(doc, dict) else None
        auths = auths if isinstance(auths, dict) else {}
        host = address.split(":")[0] if address.endswith(":%d" % HTTPS_PORT) else address
        for key in (address, host, "https://" + address, "https://%s/v2/" % address, "http://" + address):
            entry = (auths or {}).get(key)
            if not isinstance(entry, dict):
                continue
            user, password = entry.get("username"), entry.get("password")
            if entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
                except (ValueError, TypeError, UnicodeDecodeError):
                    raise InstallerError("%s %s: auths[%r].auth is not base64 of user:password"
                                         % (option, path, key), hint="Run docker login again") from None
            if user and isinstance(user, str) and isinstance(password or "", str):
                return user, password or ""
        raise InstallerError("%s %s: no auths entry for %s (entries: %s)" % (
            option, path, address, ", ".join(sorted(auths or {})) or "none"),
            hint="Run docker login %s, or give a file with `user:password` on one line" % address)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1 or ":" not in lines[0] or lines[0].startswith(":"):
        raise InstallerError("%s %s: expected one line `user:password` or a Docker config.json" % (option, path),
                             hint="Write the user and password as user:password on one line (mode 0600)")
    user, _, password = lines[0].partition(":")
    return user.strip(), password


def ca_pem(path, option="--registry-ca"):
    """The CA file's text, refused unless it holds a PEM certificate."""
    data = _read(path, "CA certificate", option).decode("utf-8", "replace")
    if "-----BEGIN CERTIFICATE-----" not in data:
        raise InstallerError("%s %s is not a PEM certificate" % (option, path),
                             hint="Give the CA certificate that signed the registry's certificate, in PEM "
                                  "(-----BEGIN CERTIFICATE-----)")
    return data if data.endswith("\n") else data + "\n"


def fingerprint(pem):
    """SHA-256 of the first certificate's DER bytes, as `openssl x509 -fingerprint -sha256` prints it."""
    body = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    der = base64.b64decode("".join(body.split()))
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


class OwnRegistry(object):
    """The operator's registry: target, CA (PEM text or None for the system trust) and credentials."""

    def __init__(self, target, ca_file=None, credentials_file=None, options=("--registry", "--registry-ca",
                                                                              "--registry-credentials")):
        self.options = options
        self.target = target if isinstance(target, Target) else parse_target(target, options[0])
        self.ca_file = ca_file
        self.ca = ca_pem(ca_file, options[1]) if ca_file else None
        self.credentials_file = credentials_file
        self.credentials = load_credentials(credentials_file, self.target.address, options[2]) \
            if credentials_file else None

    @property
    def ca_fingerprint(self):
        return fingerprint(self.ca) if self.ca else None

    def client(self):
        from installer.registry_push import Registry
        user, password = self.credentials or (None, None)
        hint_ca = ("The CA file %s did not sign the certificate of %s: give the right CA with %s FILE (PEM)"
                   % (self.ca_file, self.target.address, self.options[1]) if self.ca_file else
                   "Give the CA that signed the registry's certificate with %s FILE (PEM)" % self.options[1])
        hint_cred = ("Check the user and password in %s (%s FILE), and that the account may push under %s/ (a "
                     "token registry such as Harbor answers 401 when the project does not exist or the account "
                     "lacks the Developer role there)" % (self.credentials_file, self.options[2], self.target.path)
                     if self.credentials_file else
                     "The registry wants credentials: give them with %s FILE (user:password or a Docker "
                     "config.json)" % self.options[2])
        return Registry("https://%s" % self.target.address, user, password, cafile=self.ca_file, ca_hint=hint_ca,
                        cred_hint=hint_cred, timeout=60)

    def preflight(self, client=None, push=True):
        """Reachable, TLS trusted, credentials accepted with push permission under the prefix (push=False, for
        a plan: reachable and trusted only); raises a clear error naming the fix. Stores nothing (the test
        upload is cancelled)."""
        reg = client or self.client()
        status = reg.ping()
        if status not in (200, 401):
            raise InstallerError("https://%s/v2/ answered HTTP %d: not a container registry (Registry API v2)"
                                 % (self.target.address, status), phase="registry",
                                 hint="Check the address and port given with %s" % self.options[0])
        if push:
            repo = "%s/%s" % (self.target.prefix, PREFLIGHT_REPO) if self.target.prefix else PREFLIGHT_REPO
            reg.check_push(repo)
        return reg

    def check_anonymous_pull(self, repo, reference):
        """The hosts pull without credentials (containerd's hosts.toml and docker's mirrors carry none): a read
        of repo:reference without them must not be refused."""
        from installer.registry_push import Registry
        anon = Registry("https://%s" % self.target.address, cafile=self.ca_file, timeout=60)
        status, _, _ = anon.request("HEAD", "/v2/%s/manifests/%s" % (repo, reference),
                                    headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                                                       "application/vnd.oci.image.manifest.v1+json"})
        if status in (401, 403):
            raise InstallerError("your registry %s refuses reads without credentials (HTTP %d for %s), but the "
                                 "hosts pull anonymously (containerd's hosts.toml and docker's mirrors carry no "
                                 "credentials)" % (self.target.path, status, repo), phase="registry",
                                 hint="Allow anonymous pulls where the images go (Harbor: make the project public; "
                                      "distribution: a read-only instance without auth on the same storage), or "
                                      "use the bundled registry (no --registry). Nothing was changed on any host")

    def describe(self):
        """What is safe to show and record: address, prefix and the CA fingerprint (never credentials)."""
        return {"address": self.target.address, "prefix": self.target.prefix,
                "ca_sha256": self.ca_fingerprint}
