"""A real TLS server for the tls_cert tests: nginx on loopback serving generated certificates.

`issue` makes certificates with `cryptography` (trustme cannot backdate, expire, self-sign a
leaf or cross-sign a root). The session fixture `tls_server` starts Debian's nginx with one
`server {}` per case, each on its own port of 127.0.0.1, and stops it at teardown. Every
certificate's dates count from `TLSServer.issued_at`, so a test that reads with a clock set
to that instant gets exact day counts.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if __package__:
    from .services import HOST, START_TIMEOUT, _fail, _program, _stop, wait_for_port
else:
    from services import HOST, START_TIMEOUT, _fail, _program, _stop, wait_for_port

ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825
LEAF_DAYS = 90


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue(
    name: str,
    *,
    start: datetime,
    days: float,
    issuer: Issued | None = None,
    sans: Sequence[str] = (),
    ca: bool = False,
    valid_from: float = -1.0,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """A certificate for CN=`name`, valid from `start` + `valid_from` to `start` + `days` days.

    Without `issuer` it is self-signed. `sans` are DNS names or IP addresses; `key` reuses a
    subject's key (a cross-signed twin of an existing CA). The extensions are those a public
    CA sets, so the only flaws a certificate has are the ones a test asks for.
    """
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = issuer.cert.subject if issuer else subject
    issuer_key = issuer.key if issuer else key
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start + timedelta(days=valid_from))
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(_key_usage(ca=True), critical=True)
    else:
        builder = builder.add_extension(_key_usage(ca=False), critical=True).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(s) for s in sans]), critical=False
        )
    return Issued(builder.sign(issuer_key, hashes.SHA256()), key)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


@dataclass(frozen=True)
class Site:
    """One `server {}`: the case it serves, its SNI name and the chain it presents (leaf first)."""

    case: str
    server_name: str
    chain: Sequence[Issued]


@dataclass(frozen=True)
class TLSServer:
    """The running nginx: a port per case of `make_sites`, and what a probe needs to judge it."""

    host: str
    ports: dict[str, int]  # case → port; "plain" speaks HTTP without TLS
    ca_file: Path  # the root every complete chain leads to
    issued_at: datetime  # every certificate's dates count from here (whole seconds)
    leaves: dict[str, x509.Certificate]  # server_name → the leaf it presents


def make_sites(start: datetime) -> tuple[Issued, list[Site]]:
    """The root to trust and a site per case; every date counts from `start`."""
    root = issue("opsmedic test root", start=start, days=ROOT_DAYS, ca=True, valid_from=-365)
    inter = issue(
        "opsmedic test intermediate",
        start=start,
        days=INTERMEDIATE_DAYS,
        ca=True,
        issuer=root,
        valid_from=-365,
    )

    def leaf(name: str, days: float = LEAF_DAYS, valid_from: float = -1.0) -> Issued:
        return issue(name, start=start, days=days, issuer=inter, sans=[name], valid_from=valid_from)

    # The same root, cross-signed by an older one and expiring in 3 days: sent along like the
    # Let's Encrypt / DST Root CA X3 cross-sign, but never on the path a client verifies.
    old_root = issue("opsmedic old root", start=start, days=ROOT_DAYS, ca=True, valid_from=-365)
    cross = issue("opsmedic test root", start=start, days=3, ca=True, issuer=old_root, key=root.key)
    misnamed = issue("a.test", start=start, days=LEAF_DAYS, issuer=inter, sans=["a.test", "b.test"])
    sites = [
        Site("sni", "shop.test", [leaf("shop.test"), inter]),
        Site("sni", "blog.test", [leaf("blog.test", days=60), inter]),
        Site("expired", "expired.test", [leaf("expired.test", days=-3, valid_from=-93), inter]),
        Site("days10", "soon.test", [leaf("soon.test", days=10), inter]),
        Site("days20", "later.test", [leaf("later.test", days=20), inter]),
        Site("wrong_name", "a.test", [misnamed, inter]),
        Site(
            "self_signed",
            "self.test",
            [issue("self.test", start=start, days=90, sans=["self.test"])],
        ),
        Site("incomplete", "lonely.test", [leaf("lonely.test")]),
        Site("not_yet_valid", "future.test", [leaf("future.test", days=92, valid_from=2), inter]),
        Site("cross_signed", "cross.test", [leaf("cross.test"), inter, cross]),
    ]
    return root, sites


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """nginx on 127.0.0.1 with one TLS port per certificate case (see `make_sites`)."""
    nginx = _program("nginx", package="nginx")
    workdir = tmp_path_factory.mktemp("nginx")
    start = datetime.now(UTC).replace(microsecond=0)
    root, sites = make_sites(start)
    ca_file = workdir / "root.pem"
    ca_file.write_bytes(root.pem())
    cases = list(dict.fromkeys([site.case for site in sites] + ["plain"]))
    ports = dict(zip(cases, _free_ports(len(cases)), strict=True))
    servers = [_server_block(site, ports[site.case], workdir) for site in sites]
    servers.append(f"server {{ listen {HOST}:{ports['plain']}; return 200 'plain http'; }}")
    (workdir / "nginx.conf").write_text(_nginx_conf(workdir, servers))
    log = workdir / "error.log"
    with (workdir / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(workdir), "-c", "nginx.conf", "-e", str(log), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for port in ports.values():
            try:
                wait_for_port(HOST, port, deadline, proc)
            except (RuntimeError, TimeoutError) as exc:
                _fail(f"nginx did not start: {exc}", log)
        leaves = {site.server_name: site.chain[0].cert for site in sites}
        yield TLSServer(HOST, ports, ca_file, start, leaves)
    finally:
        _stop(proc)


def _free_ports(count: int) -> list[int]:
    """Distinct free ports: all held open at once, since one closed is the next one handed out."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _server_block(site: Site, port: int, workdir: Path) -> str:
    cert, key = workdir / f"{site.server_name}.pem", workdir / f"{site.server_name}.key"
    cert.write_bytes(b"".join(issued.pem() for issued in site.chain))
    key.write_bytes(site.chain[0].key_pem())
    key.chmod(0o600)
    return (
        f"server {{ listen {HOST}:{port} ssl; server_name {site.server_name}; "
        f"ssl_certificate {cert}; ssl_certificate_key {key}; return 200 '{site.case}'; }}"
    )


def _nginx_conf(
    workdir: Path, servers: list[str], *, logging: Sequence[str] = ("access_log off;",)
) -> str:
    temp = workdir / "temp"
    temp.mkdir()
    # Debian's build points these at /var/lib/nginx; a test server keeps to its own directory.
    temp_paths = [
        f"{kind}_temp_path {temp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    lines = [
        # As root nginx drops its workers to `nobody`, whose group Debian calls nogroup.
        _worker_user(),
        "worker_processes 1;",
        f"pid {workdir / 'nginx.pid'};",
        "events { worker_connections 64; }",
        "http {",
        *logging,
        "ssl_protocols TLSv1.2 TLSv1.3;",
        *temp_paths,
        *servers,
        "}",
    ]
    return "\n".join(filter(None, lines)) + "\n"


def _worker_user() -> str:
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user {nobody.pw_name} {grp.getgrgid(nobody.pw_gid).gr_name};"
