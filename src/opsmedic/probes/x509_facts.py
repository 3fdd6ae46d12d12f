"""What a certificate chain says: dates, names and trust, each diagnosed apart from the others."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import ssl
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

_DAY = 86400.0
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class TrustStoreError(Exception):
    """The CA bundle to validate against cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Trust:
    """The CAs to validate against, and their names (to tell a missing issuer from the rest)."""

    store: Store
    subjects: frozenset[x509.Name]


@dataclass(slots=True)
class Diagnosis:
    """One presented chain judged at one instant; None: not checked."""

    leaf: x509.Certificate
    hostname: str | None
    expired: bool
    not_yet_valid: bool
    hostname_match: bool | None
    self_signed: bool
    is_ca: bool
    chain_valid: bool | None
    chain_error: str = ""
    # The chain a client really builds, leaf first: what the presented extras do not change.
    verified: list[x509.Certificate] = field(default_factory=list)


def diagnose(
    presented: Sequence[x509.Certificate], name: str | None, trust: Trust, now: datetime
) -> Diagnosis:
    """Judge `presented` (leaf first) for `name` (None: any name) against `trust` at `now`.

    Each cause is found on its own: the chain is verified at an instant inside the leaf's
    validity and for a name the leaf carries, so an expired or misnamed certificate still
    gets a verdict on its chain. A CA certificate (a file of roots) has only its dates read.
    """
    leaf = presented[0]
    sans = subject_alt_names(leaf)
    is_ca = _is_ca(leaf)
    diagnosis = Diagnosis(
        leaf=leaf,
        hostname=name,
        expired=now > leaf.not_valid_after_utc,
        not_yet_valid=now < leaf.not_valid_before_utc,
        hostname_match=None if name is None or is_ca else name_matches(name, sans),
        self_signed=_issued_by(leaf, leaf),
        is_ca=is_ca,
        chain_valid=None,
    )
    if is_ca:
        return diagnosis
    subject = name if diagnosis.hostname_match else _name_carried(sans)
    if subject is None:
        diagnosis.chain_valid = False
        diagnosis.chain_error = "no subjectAltName (clients ignore the subject CN)"
        return diagnosis
    at = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    verifier = (
        PolicyBuilder().store(trust.store).time(at).build_server_verifier(_general_name(subject))
    )
    try:
        diagnosis.verified = verifier.verify(leaf, list(presented[1:]))
        diagnosis.chain_valid = True
    except VerificationError as exc:
        diagnosis.chain_valid = False
        diagnosis.chain_error = _why_untrusted(presented, trust, at, exc)
    return diagnosis


def days_left(cert: x509.Certificate, now: datetime) -> float:
    """Days from `now` to the certificate's notAfter; negative once it has expired."""
    return round((cert.not_valid_after_utc - now).total_seconds() / _DAY, 2)


def describe(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    """The facts an on-call human looks up first, as JSON-able values."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "sans": subject_alt_names(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": days_left(cert, now),
    }


def subject_alt_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses the certificate is for (its SAN extension)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return [*ext.get_values_for_type(x509.DNSName), *ips]


def name_matches(name: str, sans: Sequence[str]) -> bool:
    """RFC 6125 matching: exact, or a `*` as the whole left-most label; IPs only as IPs."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return any(_ip_equal(ip, san) for san in sans)
    host = name.lower().rstrip(".")
    _, dot, parent = host.partition(".")
    for san in (s.lower().rstrip(".") for s in sans):
        if san == host or (dot and san.startswith("*.") and san[2:] == parent):
            return True
    return False


def _ip_equal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, san: str) -> bool:
    try:
        return ipaddress.ip_address(san) == ip
    except ValueError:
        return False


def _name_carried(sans: Sequence[str]) -> str | None:
    """A name the certificate is valid for, to verify its chain apart from its naming."""
    for san in sans:
        # A wildcard is a pattern, not a name: any label stands in for its `*`.
        return "wildcard" + san[1:] if san.startswith("*.") else san
    return None


def _general_name(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name.rstrip("."))


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer` signed `cert`: names and signature only (dates and usage are the verifier's)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _why_untrusted(
    presented: Sequence[x509.Certificate], trust: Trust, at: datetime, exc: VerificationError
) -> str:
    """Why no chain verifies, named after the certificate at fault where we can tell.

    The verifier's own word for a missing issuer is "candidates exhausted", which tells an
    on-call human nothing; the presented certificates and the trusted names tell more.
    """
    path = [presented[0]]
    rest = list(presented[1:])
    while (parent := next((c for c in rest if _issued_by(path[-1], c)), None)) is not None:
        rest.remove(parent)
        path.append(parent)
    top = path[-1]
    if top.issuer not in trust.subjects:
        if top.issuer == top.subject:
            if top is presented[0]:
                return "self-signed certificate, not trusted"
            return f"untrusted root {top.subject.rfc4514_string()!r}"
        return (
            f"incomplete chain or unknown issuer: {top.issuer.rfc4514_string()!r}, which "
            f"issued {top.subject.rfc4514_string()!r}, was neither presented nor trusted"
        )
    for cert in path[1:]:
        name = cert.subject.rfc4514_string()
        if at > cert.not_valid_after_utc:
            return f"{name!r} in the chain expired on {cert.not_valid_after_utc.date()}"
        if at < cert.not_valid_before_utc:
            return f"{name!r} in the chain is not valid before {cert.not_valid_before_utc.date()}"
    return str(exc).removeprefix("validation failed: ").split(" (encountered processing")[0]


def trust_store(ca_file: Path | None) -> Trust:
    """The CAs to validate against: `ca_file`, else the system's bundle.

    Read again only when the file changes (a bundle update), so a probe every few seconds
    does not parse a few hundred roots each time. Raises TrustStoreError.
    """
    if ca_file is not None:
        return _cached_store(str(ca_file), *_stamp(ca_file))
    paths = ssl.get_default_verify_paths()
    location = paths.cafile or paths.capath
    if location is None:
        raise TrustStoreError("no system CA bundle found; give ca_file")
    return _cached_store(location, *_stamp(Path(location)))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise TrustStoreError(f"cannot read CA bundle {path}: {exc.strerror or exc}") from None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _cached_store(location: str, mtime_ns: int, size: int) -> Trust:
    path = Path(location)
    try:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        blobs = [file.read_bytes() for file in files]
    except OSError as exc:
        raise TrustStoreError(f"cannot read CA bundle {path}: {exc.strerror or exc}") from None
    # Any certificate may be trusted, a pinned self-signed leaf too; one that cannot be parsed
    # must not cost us the others (OpenSSL's hash links make duplicates: kept once).
    certs = (_parse_pem(block.group()) for blob in blobs for block in _PEM_BLOCK.finditer(blob))
    roots = list(dict.fromkeys(c for c in certs if c is not None))
    if not roots:
        raise TrustStoreError(f"no PEM certificate in CA bundle {path}")
    return Trust(Store(roots), frozenset(root.subject for root in roots))


def _parse_pem(block: bytes) -> x509.Certificate | None:
    with _tolerant():
        try:
            return x509.load_pem_x509_certificate(block)
        except ValueError:
            return None


@contextlib.contextmanager
def _tolerant() -> Iterator[None]:
    # Some long-lived roots break RFC 5280 in ways cryptography only warns about so far: such
    # a certificate is still worth reading, and the warning is not the probe's to raise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order; ValueError saying what is wrong."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("not a PEM certificate file (no BEGIN CERTIFICATE block)")
    with _tolerant():
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ValueError(f"a certificate in the file cannot be parsed: {exc}") from None


def load_der_chain(chain: Sequence[bytes]) -> list[x509.Certificate]:
    """The certificates a server presented, leaf first; ValueError when one cannot be parsed."""
    with _tolerant():
        try:
            return [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError as exc:
            raise ValueError(f"a presented certificate cannot be parsed: {exc}") from None
