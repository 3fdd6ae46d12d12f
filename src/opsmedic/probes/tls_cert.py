"""The `tls_cert` probe: days until a certificate expires, and whether clients will trust it."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from pydantic import Field, field_validator, model_validator

from opsmedic.config.types import Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec
from opsmedic.probes.x509_facts import (
    Diagnosis,
    Trust,
    TrustStoreError,
    days_left,
    describe,
    diagnose,
    load_der_chain,
    load_pem_chain,
    subject_alt_names,
    trust_store,
)

CERT_SUFFIXES = (".pem", ".crt", ".cer")
_Severity = Literal["critical", "warning"]
# OpenSSL's reasons when the other end does not speak TLS at all (an HTTP or SSH port).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


class Params(Strict):
    host: str | None = Field(None, description="server to connect to: a DNS name or IP address")
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = Field(None, description="SNI name to send; omitted: host")
    path: Path | None = Field(
        None,
        description="PEM file, or directory of *.pem/*.crt/*.cer files (not recursive); "
        "relative to the config file",
    )
    ca_file: Path | None = Field(
        None, description="PEM bundle of trusted CAs; omitted: the system's CAs"
    )
    hostname: str | None = Field(
        None,
        description="name the certificate must be valid for; omitted: server_name or host "
        "(for files: not checked)",
    )
    warn_days: float = Field(30.0, ge=0, description="warning at or below this many days left")
    critical_days: float = Field(14.0, ge=0, description="critical at or below this many")

    @field_validator("host", "server_name", "hostname")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().rstrip(".")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
        if not text or any(c.isspace() or c in "/:@" for c in text):
            raise ValueError(f"expected a host name or IP address, got {value!r}")
        return text.lower()

    @model_validator(mode="after")
    def _one_target(self) -> Params:
        if (self.host is None) == (self.path is None):
            raise ValueError("give exactly one of host (a TLS server) or path (PEM files)")
        if self.path is not None:
            extra = sorted({"port", "server_name"} & self.model_fields_set)
            if extra:
                raise ValueError(f"{' and '.join(extra)}: only for host, not for path")
        if self.critical_days >= self.warn_days:
            raise ValueError(
                f"critical_days ({self.critical_days:g}) must be below "
                f"warn_days ({self.warn_days:g})"
            )
        return self


class _Failed(Exception):
    """No certificate to judge; the message says why, `kind` labels the event."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """One observation per server, or per certificate file; the value is the fewest days left.

    The resource is left to the runner (host, or path) so that readings, timeouts and crashes
    of one probe share a fingerprint; only the files of a directory get one each.
    """
    now = datetime.fromtimestamp(ctx.clock.now(), UTC)
    base = ctx.base_dir
    try:
        trust = trust_store(base / params.ca_file if params.ca_file else None)
    except TrustStoreError as exc:
        return [_failure("", str(exc), "ca_file")]
    if params.host is not None:
        return [await _check_host(params, params.host, ctx.timeout, trust, now)]
    assert params.path is not None  # the model allows exactly one of host and path
    return _check_path(base, params.path, params, trust, now)


async def _check_host(
    params: Params, host: str, budget: float, trust: Trust, now: datetime
) -> Observation:
    sni = params.server_name or host
    endpoint = f"[{host}]:{params.port}" if ":" in host else f"{host}:{params.port}"
    label = endpoint if sni == host else f"{sni} at {endpoint}"
    try:
        # The runner owns the deadline (it cancels us); ours sits just past it, a backstop
        # for callers without a runner that never races the runner's report.
        chain, version = await _handshake(host, params.port, sni, budget + 1.0)
        presented = load_der_chain(chain)
    except _Failed as exc:
        return _failure("", f"{label}: {exc}", exc.kind)
    except ValueError as exc:
        return _failure("", f"{label}: {exc}", "parse")
    if not presented:
        return _failure("", f"{label}: the server presented no certificate", "parse")
    obs = _judge(presented, params.hostname or sni, trust, now, params, label)
    obs.details.update(port=params.port, server_name=sni, tls_version=version)
    return obs


async def _handshake(host: str, port: int, sni: str, within: float) -> tuple[list[bytes], str]:
    """The DER chain the server presents for `sni`, leaf first, and the TLS version."""
    try:
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(
                host, port, ssl=_client_context(), server_hostname=sni
            )
    except TimeoutError:
        raise _Failed(f"no TLS handshake within {within:g}s", "timeout") from None
    except ConnectionRefusedError:
        raise _Failed("connection refused", "connect") from None
    except (ssl.SSLEOFError, ConnectionResetError, asyncio.IncompleteReadError):
        raise _Failed("connection closed during the TLS handshake", "handshake") from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        hint = " (not a TLS port?)" if reason in _NOT_TLS else ""
        raise _Failed(f"TLS handshake failed: {reason}{hint}", "handshake") from None
    except OSError as exc:
        raise _Failed(f"cannot connect: {exc.strerror or exc}", "connect") from None
    ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")
    try:
        return _presented_chain(ssl_object), ssl_object.version() or ""
    finally:
        # Only the certificates were wanted: no close_notify round trip a server may not answer.
        writer.transport.abort()


def _presented_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python ≥ 3.13
        return list(public())
    # 3.11 and 3.12 have the same call on the private _ssl object; getpeercert() only gives
    # the leaf, and the chain is what tells an incomplete chain from a trusted one.
    chain = getattr(ssl_object, "_sslobj").get_unverified_chain()  # noqa: B009
    return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain or ()]  # type: ignore[attr-defined]


@functools.cache
def _client_context() -> ssl.SSLContext:
    # Accept any certificate: the verdict is ours (x509_facts), made after the handshake, so
    # an expired, misnamed or untrusted certificate can still be read and described.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _check_path(
    base: Path, path: Path, params: Params, trust: Trust, now: datetime
) -> list[Observation]:
    full = base / path
    if not full.is_dir():
        return [_check_file(full, "", params, trust, now)]
    try:
        found = sorted(p for p in full.iterdir() if p.suffix.lower() in CERT_SUFFIXES)
        files = [p for p in found if p.is_file()]
    except OSError as exc:
        return [_failure("", f"cannot list {full}: {exc.strerror or exc}", "read")]
    if not files:
        return [_failure("", f"no *.pem, *.crt or *.cer file in {full}", "read")]
    # Each file is its own resource, named as the config names its directory.
    return [_check_file(file, str(path / file.name), params, trust, now) for file in files]


def _check_file(
    file: Path, resource: str, params: Params, trust: Trust, now: datetime
) -> Observation:
    try:
        presented = load_pem_chain(file.read_bytes())
    except OSError as exc:
        return _failure(resource, f"cannot read {file}: {exc.strerror or exc}", "read")
    except ValueError as exc:
        return _failure(resource, f"{file}: {exc}", "parse")
    obs = _judge(presented, params.hostname, trust, now, params, str(file))
    obs.resource = resource
    return obs


def _judge(
    presented: list[x509.Certificate],
    name: str | None,
    trust: Trust,
    now: datetime,
    params: Params,
    label: str,
) -> Observation:
    """Grade one presented chain: the problems found, the severity, the fewest days left."""
    found = diagnose(presented, name, trust, now)
    # The chain a client validates, not every certificate sent (blackbox_exporter#340).
    soonest = min([found.leaf, *found.verified], key=lambda c: c.not_valid_after_utc)
    severity, message = _grade(found, soonest, now, params, label)
    chain = [
        {
            "subject": c.subject.rfc4514_string(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "days_left": days_left(c, now),
        }
        for c in found.verified
    ]
    details = {
        **describe(found.leaf, now),
        "chain": chain,
        "presented_chain_length": len(presented),
        "expired": found.expired,
        "not_yet_valid": found.not_yet_valid,
        "hostname": found.hostname,
        "hostname_match": found.hostname_match,
        "self_signed": found.self_signed,
        "is_ca": found.is_ca,
        "chain_valid": found.chain_valid,
        "chain_error": found.chain_error or None,
        "warn_days": params.warn_days,
        "critical_days": params.critical_days,
    }
    return Observation(
        ok=severity is None,
        value=days_left(soonest, now),
        message=message,
        details=details,
        severity=severity,
    )


def _grade(
    found: Diagnosis, soonest: x509.Certificate, now: datetime, params: Params, label: str
) -> tuple[_Severity | None, str]:
    """The severity and the line an on-call human reads: dates first, then any other fault."""
    leaf = found.leaf
    left = days_left(soonest, now)
    faults: list[str] = []
    if found.hostname_match is False:
        sans = ", ".join(subject_alt_names(leaf))
        faults.append(f"hostname mismatch: {found.hostname} not in [{sans}]")
    if found.chain_valid is False:
        faults.append(found.chain_error)
    severity: _Severity | None = "critical" if faults else None
    if found.expired:
        dates = f"{label} expired {-left:.1f} days ago ({_day(leaf.not_valid_after_utc)})"
        severity = "critical"
    elif found.not_yet_valid:
        dates = f"{label} is not valid before {leaf.not_valid_before_utc.isoformat()}"
        severity = "critical"
    else:
        which = "" if soonest is leaf else f" (chain: {soonest.subject.rfc4514_string()})"
        dates = f"{label} expires in {left:.1f} days ({_day(soonest.not_valid_after_utc)}){which}"
        if left <= params.critical_days:
            severity = "critical"
            dates += f" — critical ≤ {params.critical_days:g} d"
        elif left <= params.warn_days:
            severity = severity or "warning"
            dates += f" — warning ≤ {params.warn_days:g} d"
        elif faults:
            # Far from expiry: the date is not news, the faults are.
            return severity, f"{label}: {'; '.join(faults)}"
    return severity, "; ".join([dates, *faults])


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def _failure(resource: str, message: str, kind: str) -> Observation:
    # The check itself failed (unreachable, unreadable, not a certificate): as loud as an
    # expired certificate, since nobody can tell that it is not one.
    return Observation(
        ok=False,
        value=None,
        message=message,
        resource=resource,
        labels={"error": kind},
        details={"error": message},
        severity="critical",
    )


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="tls_cert",
    params=Params,
    check=check,
    summary="days until a TLS certificate (server or PEM files) expires; chain, name, dates",
    # Certificates change on deploys and renewals, not by the second; a handshake every five
    # minutes finds a bad deploy soon enough, and `recheck` confirms a renewal at once.
    default_interval=300.0,
)
