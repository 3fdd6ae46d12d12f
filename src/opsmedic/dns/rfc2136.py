"""The `rfc2136` backend: repoint one record with a TSIG-signed compare-and-swap update."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, RootModel, field_validator, model_validator

from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import PositiveDuration, Secret, Strict
from opsmedic.dns.switch import Direction, Switched, SwitchFailed
from opsmedic.errors import RetryableError
from opsmedic.plugins import SettingsSpec

# dnspython takes ~150 ms to import: only configs and runs that use this backend pay for it.
if TYPE_CHECKING:
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdata
    import dns.rrset
    import dns.tsig

DNS_PORT = 53


class TsigKey(Strict):
    """A TSIG key for signed DNS updates, as `tsig-keygen -a hmac-sha256 NAME` makes one."""

    algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"] = (
        "hmac-sha256"
    )
    secret: Secret = Field(description="the key's base64 secret, from env: or file:")


class TsigKeys(RootModel[dict[str, TsigKey]]):
    """The config's `tsig_keys:` section (dns_failover's settings): key name, as the DNS
    server knows it → key."""

    root: dict[str, TsigKey] = Field(default_factory=dict)


# dns_failover's section of opsmedic.yaml (`tsig_keys:`).
SETTINGS = SettingsSpec("tsig_keys", TsigKeys)


class Rfc2136Params(Strict):
    server: str = Field(description="the authoritative server: HOST or HOST:PORT ([IPv6]:PORT)")
    zone: str = Field(description="the zone to update, e.g. svc.example.com")
    name: str = Field(description="the record: relative to the zone, or absolute (ending in .)")
    type: Literal["A", "AAAA", "CNAME"] = "A"
    primary: str = Field(description="the value pointing at the primary: an address, or a name")
    secondary: str = Field(description="the value pointing at the secondary")
    ttl: int = Field(30, ge=0, le=86400, description="the TTL written with the new value")
    tsig_key: Annotated[str | None, ConfigRef("tsig_keys")] = Field(
        None, description="a key of tsig_keys; omitted: unsigned"
    )
    timeout: PositiveDuration = Field(5.0, description="per DNS exchange")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        return _hostport(*split_server(value))

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _name(value, "zone").to_text()

    @model_validator(mode="after")
    def _record(self) -> Rfc2136Params:
        import dns.name

        zone = dns.name.from_text(self.zone)
        name = _name(self.name, "name")
        if not self.name.endswith(".") and not name.is_subdomain(zone):
            name = _name(self.name, "name", origin=zone)
        if not name.is_subdomain(zone):
            raise ValueError(f"name {name} is not inside the zone {zone}")
        self.name = name.to_text()
        self.primary = _value(self.type, self.primary, "primary")
        self.secondary = _value(self.type, self.secondary, "secondary")
        if self.primary == self.secondary:
            raise ValueError(f"primary and secondary are the same value ({self.primary})")
        return self


def split_server(text: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `IPv6` or `[IPv6]:PORT` → (host, port); ValueError if malformed."""
    host, port = text.strip(), str(DNS_PORT)
    ipv6 = host.startswith("[") or host.count(":") > 1
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or rest[:1] not in ("", ":"):
            host = ""
        port = rest[1:] if rest else port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        if ipv6:
            ipaddress.IPv6Address(host)
        if host and port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    except ValueError:
        pass
    raise ValueError(f"expected HOST, HOST:PORT or [IPv6]:PORT (port 1-65535), got {text!r}")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _name(text: str, what: str, origin: dns.name.Name | None = None) -> dns.name.Name:
    import dns.exception
    import dns.name

    try:
        return dns.name.from_text(text, origin=origin or dns.name.root)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{what}: {text!r} is not a DNS name ({exc})") from None


def _value(rdtype: str, text: str, what: str) -> str:
    """The value in the form the server reports it: a compressed address or an absolute name."""
    if rdtype == "CNAME":
        return _name(text, what).to_text()
    family = 4 if rdtype == "A" else 6
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{what}: expected an IPv{family} address, got {text!r}") from None
    if address.version != family:
        other = "AAAA" if rdtype == "A" else "A"
        raise ValueError(f"{what}: {address} is an IPv{address.version} address, but an "
                         f"{rdtype} record holds IPv{family} (use type {other})")  # fmt: skip
    return str(address)


class _Transient(SwitchFailed):
    """An exchange cut short: a timeout or a connection that failed. A retry may succeed."""


class _NoAnswer(_Transient):
    """The server said nothing in time: an update may or may not have arrived."""


class Rfc2136Backend:
    """One record on one authoritative server, switched between two values by RFC 2136."""

    def __init__(self, params: Rfc2136Params, tsig_keys: TsigKeys) -> None:
        self._p = params
        self._host, self._port = split_server(params.server)
        self._key = _tsig_key(params.tsig_key, tsig_keys.root)

    @property
    def subject(self) -> str:
        return f"{self._p.name} {self._p.type} @ {self._p.server}"

    async def switch(self, direction: Direction, deadline: float) -> Switched:
        import dns.rcode
        import dns.update

        p, started = self._p, time.monotonic()
        old, new = (p.primary, p.secondary) if direction is Direction.FAILOVER else (
            p.secondary, p.primary)  # fmt: skip
        details: dict[str, Any] = {"server": p.server, "zone": p.zone, "name": p.name,
                                   "type": p.type, "from": old, "to": new}  # fmt: skip
        update = dns.update.UpdateMessage(p.zone)
        if self._key is not None:
            update.use_tsig(self._key)
        # Compare-and-swap: the server applies it only if the record is exactly {old}.
        update.present(p.name, self._rdata(old))
        update.delete(p.name, p.type)
        update.add(p.name, p.ttl, self._rdata(new))
        try:
            address = await self._address(deadline)
            response = await self._exchange(update, address, deadline)
        except _NoAnswer as exc:
            # The engine retries a RetryableError with backoff: a failover is asked for once
            # (on the probe's transition), so a passing glitch must not lose it.
            raise RetryableError(f"update: {exc} (if it arrived it was applied; a repeat is "
                                 "safe as the update is conditional)") from None  # fmt: skip
        except SwitchFailed as exc:
            raise _retry_if_transient(exc, f"update: {exc}; nothing changed") from None
        rcode = response.rcode()
        details["rcode"] = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET):
            try:
                current = await self._current(address, deadline)
            except SwitchFailed as exc:
                raise _retry_if_transient(
                    exc,
                    f"{p.name} {p.type} is not {old} ({details['rcode']}), and "
                    f"reading it failed: {exc}; nothing changed",
                ) from None
            details.update(current=_texts(current), took_ms=_ms_since(started))
            if current is not None and set(current) == {self._rdata(new)}:
                return Switched(False, f"{p.name} {p.type} already points at {new}", details)
            raise SwitchFailed(f"record changed meanwhile: {p.name} {p.type} is now "
                               f"{_listing(current)}, expected {old}; nothing changed")  # fmt: skip
        if rcode != dns.rcode.NOERROR:
            raise SwitchFailed(f"{p.server} refused the update: {self._refusal(rcode)}; "
                               "nothing changed")  # fmt: skip
        # From here on the switch is made: whatever the read-back finds, it is reported (and
        # announced) as a change, never as a failure that would say nothing changed.
        done = f"{p.name} {p.type} {old} -> {new}"
        try:
            written = await self._current(address, deadline)
        except SwitchFailed as exc:
            warning = f"the update was applied, but reading it back failed: {exc}"
        else:
            if written is not None and set(written) == {self._rdata(new)}:
                details.update(ttl=written.ttl, took_ms=_ms_since(started))
                return Switched(True, f"{done} (TTL {written.ttl}) on {p.server}", details)
            warning = (f"the update was applied, but {p.server} now answers "
                       f"{_listing(written)} for {p.name} {p.type}")  # fmt: skip
        details.update(warning=warning, took_ms=_ms_since(started))
        return Switched(True, f"{done} on {p.server}; warning: {warning}", details)

    def _rdata(self, value: str) -> dns.rdata.Rdata:
        import dns.rdata

        return dns.rdata.from_text("IN", self._p.type, value)

    async def _address(self, deadline: float) -> str:
        """The server's IP address: a hostname is resolved once per switch."""
        try:
            return str(ipaddress.ip_address(self._host))
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._budget(deadline)):
                found = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else exc.strerror
            raise _Transient(f"cannot resolve {self._host}: {reason}") from None
        return str(found[0][4][0])

    def _budget(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Transient(f"out of time before asking {self._p.server}")
        return min(self._p.timeout, left)

    async def _exchange(
        self, message: dns.message.Message, address: str, deadline: float
    ) -> dns.message.Message:
        """One exchange over TCP (an update must never be resent blindly over UDP)."""
        import dns.asyncquery
        import dns.exception
        import dns.tsig

        budget, server, key = self._budget(deadline), self._p.server, self._p.tsig_key
        try:
            return await dns.asyncquery.tcp(message, address, timeout=budget, port=self._port)
        except dns.exception.Timeout:
            raise _NoAnswer(f"no answer from {server} within {budget:.2g} s") from None
        except dns.tsig.PeerBadSignature:
            raise SwitchFailed(f"{server} rejected the signature of TSIG key {key} (BADSIG: "
                               "is the secret the server's?)") from None  # fmt: skip
        except dns.tsig.PeerBadKey:
            raise SwitchFailed(f"{server} does not know the TSIG key {key} (BADKEY)") from None
        except dns.tsig.PeerError as exc:  # BADTIME (clocks apart), BADTRUNC
            raise SwitchFailed(f"{server} rejected TSIG key {key}: {exc}") from None
        except ConnectionRefusedError:
            raise _Transient(f"{server} refused the connection (no DNS server on it)") from None
        except (OSError, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or "connection closed"
            raise _Transient(f"talking to {server} failed: {reason}") from None
        except (dns.exception.DNSException, ValueError) as exc:
            raise SwitchFailed(f"{server} sent a bad answer: {exc}") from None

    async def _current(self, address: str, deadline: float) -> dns.rrset.RRset | None:
        """The record as the server holds it now; None when there is none."""
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype

        p = self._p
        query = dns.message.make_query(p.name, p.type)
        if self._key is not None:
            query.use_tsig(self._key)
        response = await self._exchange(query, address, deadline)
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise SwitchFailed(f"{p.server} answered {dns.rcode.to_text(response.rcode())} "
                               f"to a query for {p.name} {p.type}")  # fmt: skip
        rdtype = dns.rdatatype.from_text(p.type)
        return response.get_rrset(
            response.answer, query.question[0].name, dns.rdataclass.IN, rdtype
        )

    def _refusal(self, rcode: dns.rcode.Rcode) -> str:
        import dns.rcode

        p = self._p
        why = {
            dns.rcode.REFUSED: (f"the key {p.tsig_key} may not update {p.name}" if p.tsig_key
                                else "an unsigned update is not allowed (set tsig_key)"),
            dns.rcode.NOTAUTH: f"the server is not authoritative for {p.zone}",
            dns.rcode.NOTZONE: f"{p.name} is not in the zone {p.zone}",
            dns.rcode.SERVFAIL: "the server failed (see its log)",
        }.get(rcode)  # fmt: skip
        text = dns.rcode.to_text(rcode)
        return f"{text} ({why})" if why else text


def _tsig_key(name: str | None, keys: dict[str, TsigKey]) -> dns.tsig.Key | None:
    import dns.tsig

    if name is None:
        return None
    key = keys.get(name)
    if key is None:
        known = ", ".join(sorted(keys)) or "none"
        raise SwitchFailed(f"tsig_key {name!r} is not one of the config's tsig_keys (known: "
                           f"{known}); nothing changed")  # fmt: skip
    try:
        secret = key.secret.reveal()
        if not secret:
            raise ValueError("it is empty")
        return dns.tsig.Key(name, secret, key.algorithm)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SwitchFailed(
            f"TSIG key {name}: cannot use its secret: {reason}; nothing changed"
        ) from None


def _retry_if_transient(cause: SwitchFailed, message: str) -> Exception:
    """`message` as the error to raise: RetryableError when `cause` was a passing failure."""
    return RetryableError(message) if isinstance(cause, _Transient) else SwitchFailed(message)


def _texts(rrset: dns.rrset.RRset | None) -> list[str]:
    return sorted(rdata.to_text() for rdata in rrset) if rrset is not None else []


def _listing(rrset: dns.rrset.RRset | None) -> str:
    return ", ".join(_texts(rrset)) or "absent"


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
