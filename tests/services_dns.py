"""Two real BIND 9 servers for the DNS tests: a primary and a secondary, each on port 53.

Each server listens on its own loopback address 127.53.N.1 / 127.53.N.2 (N random per
session), because a resolv.conf cannot name a port. named listens only on addresses that an
interface carries, so the session fixture adds both to `lo` (root only, as port 53 is) and
removes them at teardown. Both serve the static zone example.test. from their own master
copy; the secondary is also the master of svc.test., which a TSIG key may update.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import psutil
import pytest

if __package__:
    from .services import START_TIMEOUT, _fail, _program, _run, _stop
else:
    from services import START_TIMEOUT, _fail, _program, _run, _stop

DNS_PORT = 53
KEY_NAME = "opsmedic-test."
RESET_TTL = 30
# Ten distinct 250-byte strings: an answer over 2,000 bytes, truncated over UDP without EDNS.
BIG_TXT = [f'"{i:02d}{"x" * 248}"' for i in range(10)]


@dataclass
class DnsServer:
    """One named process, started and stopped at will; its files live in `workdir`."""

    role: str
    address: str
    port: int
    workdir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> Path:
        return self.workdir / "named.log"

    def start(self) -> None:
        """Start named (a no-op if it runs) and return once it answers a query."""
        if self.running:
            return
        named = _program("named", package="bind9")
        conf = self.workdir / "named.conf"
        # -g: foreground, everything logged to stderr, which goes to the log file.
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [named, "-g", "-n", "1", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        query = dns.message.make_query("health.example.test.", "A")
        while True:
            if self._proc.poll() is not None:
                _fail(f"the {self.role} named exited with code {self._proc.returncode}", self.log)
            try:
                dns.query.udp(query, self.address, port=self.port, timeout=0.5)
                return
            except (dns.exception.DNSException, OSError):
                if time.monotonic() >= deadline:
                    _fail(f"the {self.role} named did not answer on {self.address}", self.log)
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM and wait: afterwards its port is closed."""
        if self._proc is not None:
            self.resume()  # a stopped process would act on SIGTERM only once continued
            _stop(self._proc)

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a black hole)."""
        self._signal(signal.SIGSTOP)
        process = psutil.Process(self._pid())
        deadline = time.monotonic() + START_TIMEOUT
        while process.status() != psutil.STATUS_STOPPED:
            if time.monotonic() >= deadline:
                _fail(f"the {self.role} named did not stop on SIGSTOP", self.log)
            time.sleep(0.01)

    def resume(self) -> None:
        """SIGCONT: a paused server answers again (a no-op when it is not paused)."""
        if self.running:
            self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        os.kill(self._pid(), sig)

    def _pid(self) -> int:
        if self._proc is None or not self.running:
            _fail(f"the {self.role} named is not running")
        return self._proc.pid


@dataclass
class DnsPair:
    primary: DnsServer
    secondary: DnsServer
    key_name: str
    key_secret: str
    key_file: Path
    static_zone: str = "example.test."
    dynamic_zone: str = "svc.test."

    def lookup(self, name: str, rdtype: str, server: DnsServer) -> list[str]:
        """The record's current values on `server` (over TCP), sorted; [] when it has none."""
        query = dns.message.make_query(name, rdtype)
        response = dns.query.tcp(query, server.address, port=server.port, timeout=5.0)
        wanted = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
        return sorted(
            rdata.to_text()
            for rrset in response.answer
            if (rrset.name, rrset.rdtype) == wanted
            for rdata in rrset
        )

    def reset(self) -> None:
        """Both servers running and answering, the dynamic zone's records as at the start."""
        for server in (self.primary, self.secondary):
            server.start()
            server.resume()
        update = dns.update.UpdateMessage(
            self.dynamic_zone, keyring=dns.tsig.Key(self.key_name, self.key_secret)
        )
        for name, rdtype, value in _dynamic_records(self.primary.address):
            update.replace(name, RESET_TTL, rdtype, value)
        response = dns.query.tcp(
            update, self.secondary.address, port=self.secondary.port, timeout=5.0
        )
        if response.rcode() != dns.rcode.NOERROR:
            _fail(f"resetting {self.dynamic_zone} failed: {dns.rcode.to_text(response.rcode())}",
                  self.secondary.log)  # fmt: skip


def _dynamic_records(primary_address: str) -> list[tuple[str, str, str]]:
    """The records of svc.test. that tests change, as (name, type, value)."""
    return [
        ("resolver.svc.test.", "A", primary_address),
        ("resolver6.svc.test.", "AAAA", "::1"),
        ("alias.svc.test.", "CNAME", "primary.svc.test."),
    ]


def _zone_file(zone: str, ns_address: str, records: list[str]) -> str:
    head = [
        f"$ORIGIN {zone}",
        f"$TTL {RESET_TTL}",
        f"@ SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 {RESET_TTL}",
        "@ NS ns",
        f"ns A {ns_address}",
    ]
    return "\n".join(head + records) + "\n"


def _static_records() -> list[str]:
    return [
        "health A 192.0.2.53",
        "www A 192.0.2.80",
        "www A 192.0.2.81",
        "alias CNAME www",
        *(f"big TXT {text}" for text in BIG_TXT),
    ]


def _named_conf(server: DnsServer, key_stanza: str, dynamic_zone: bool) -> str:
    w = server.workdir
    zones = 'zone "example.test." { type primary; file "example.test.zone"; };'
    if dynamic_zone:
        zones += (
            '\nzone "svc.test." { type primary; file "svc.test.zone"; '
            f"update-policy {{ grant {KEY_NAME} zonesub ANY; }}; }};"
        )
    return f"""options {{
    directory "{w}";
    pid-file "{w}/named.pid";
    session-keyfile "{w}/session.key";
    managed-keys-directory "{w}";
    listen-on port {server.port} {{ {server.address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{key_stanza}
{zones}
"""


def _claim_addresses(ip: str) -> tuple[str, str]:
    """Two loopback addresses 127.53.N.1/.2 that no interface has and whose port 53 is free."""
    taken = _run([ip, "-o", "-4", "addr", "show"], "listing addresses")
    for n in random.sample(range(1, 255), 20):
        pair = (f"127.53.{n}.1", f"127.53.{n}.2")
        if not any(f"inet {a}/" in taken for a in pair) and all(map(_port_53_free, pair)):
            return pair
    _fail("no free 127.53.N.1/.2 pair with port 53 free after 20 tries")


def _port_53_free(address: str) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((address, DNS_PORT))
            except OSError:
                return False
    return True


def _tsig_key() -> tuple[str, str]:
    """A fresh hmac-sha256 key from tsig-keygen: (named.conf stanza, base64 secret)."""
    stanza = _run([_program("tsig-keygen", package="bind9-utils"), "-a", "hmac-sha256", KEY_NAME],
                  "tsig-keygen")  # fmt: skip
    found = re.search(r'secret "([^"]+)"', stanza)
    if found is None:
        _fail(f"no secret in tsig-keygen's output:\n{stanza}")
    return stanza, found.group(1)


@pytest.fixture(scope="session")
def dns_pair_session() -> Iterator[DnsPair]:
    """The two servers for the whole session; tests use `dns_pair`, which resets them."""
    with running_pair() as pair:
        yield pair


@contextlib.contextmanager
def running_pair() -> Iterator[DnsPair]:
    """Two named on fresh loopback addresses until the block ends (tests and bench/)."""
    if os.geteuid() != 0:
        _fail("the BIND test servers need root (port 53, loopback addresses): run as root")
    ip = _program("ip", package="iproute2")
    # Ubuntu's AppArmor profile for named lets it write only below /var/cache/bind.
    bind_cache = Path("/var/cache/bind")
    base = Path(
        tempfile.mkdtemp(prefix="opsmedic-dns-", dir=bind_cache if bind_cache.is_dir() else None)
    )
    added: list[str] = []
    servers: list[DnsServer] = []
    try:
        stanza, secret = _tsig_key()
        key_file = base / "tsig.secret"
        key_file.write_text(secret + "\n")
        key_file.chmod(0o600)
        primary_address, secondary_address = _claim_addresses(ip)
        for role, address in (("primary", primary_address), ("secondary", secondary_address)):
            _run([ip, "addr", "add", f"{address}/32", "dev", "lo"], f"adding {address} to lo")
            added.append(address)
            server = DnsServer(role, address, DNS_PORT, base / role)
            server.workdir.mkdir()
            is_secondary = role == "secondary"
            (server.workdir / "named.conf").write_text(_named_conf(server, stanza, is_secondary))
            (server.workdir / "example.test.zone").write_text(
                _zone_file("example.test.", address, _static_records())
            )
            servers.append(server)
        dynamic = [f"{n} {t} {v}" for n, t, v in _dynamic_records(primary_address)]
        dynamic += [f"primary A {primary_address}", f"secondary A {secondary_address}"]
        (servers[1].workdir / "svc.test.zone").write_text(
            _zone_file("svc.test.", secondary_address, dynamic)
        )
        for server in servers:
            server.start()
        yield DnsPair(servers[0], servers[1], KEY_NAME, secret, key_file)
    finally:
        for server in servers:
            server.stop()
        for address in added:
            subprocess.run([ip, "addr", "del", f"{address}/32", "dev", "lo"], check=False,
                           capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dns_pair(dns_pair_session: DnsPair) -> Iterator[DnsPair]:
    """The two servers, running, resumed and with svc.test.'s records reset, before and after."""
    dns_pair_session.reset()
    yield dns_pair_session
    dns_pair_session.reset()
