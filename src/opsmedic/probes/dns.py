"""The `dns` probe: ask one server one question; down after `fall` failures, up after `rise`."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, field_validator, model_validator

from opsmedic.config.types import Duration, IPAddressText, Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec


class Params(Strict):
    server: IPAddressText = Field(description="the DNS server's IP address")
    port: int = Field(53, ge=1, le=65535)
    name: str = Field(description="the name to ask for, e.g. health.example.com")
    type: str = Field("A", description="record type: A, AAAA, CNAME, MX, TXT, SOA, …")
    expect: list[str] | None = Field(
        None, min_length=1, description="the exact answer set; omitted: any answer is OK"
    )
    timeout: Duration = Field(
        1.0, gt=0, description="per query (UDP, then TCP if truncated); capped at 90% of the "
        "probe's own timeout"
    )  # fmt: skip
    fall: int = Field(2, ge=1, le=100, description="failures in a row before it is down")
    rise: int = Field(5, ge=1, le=100, description="successes in a row before it is up again")
    hold_down: Duration = Field(
        30.0, ge=0, description="time since going down before it may count as up again"
    )

    @field_validator("name")
    @classmethod
    def _qname(cls, value: str) -> str:
        import dns.exception
        import dns.name

        try:
            dns.name.from_text(value)  # as dns.message.make_query will
        except dns.exception.DNSException as exc:
            raise ValueError(f"{value!r} is not a DNS name ({exc})") from None
        return value

    @field_validator("type")
    @classmethod
    def _rdtype(cls, value: str) -> str:
        import dns.rdatatype

        try:
            return dns.rdatatype.to_text(dns.rdatatype.from_text(value.upper()))
        except dns.rdatatype.UnknownRdatatype:
            raise ValueError(f"unknown record type {value!r}") from None

    @model_validator(mode="after")
    def _records(self) -> Params:
        for text in self.expect or ():
            _rdata(self.type, text)  # raises ValueError naming the bad record
        return self


def _rdata(rdtype: str, text: str) -> Any:
    """A record's canonical form, so `192.0.2.1` and `www.example.` compare as the server sends."""
    import dns.exception
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    try:
        return dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text, origin=dns.name.root
        )
    except dns.exception.DNSException as exc:
        raise ValueError(f"not a {rdtype} record: {text!r} ({exc})") from None


async def _query(params: Params, budget: float) -> tuple[set[Any], str]:
    """The answer's records of the asked type (after CNAMEs) and how it came (udp or tcp).

    Raises _Failed with the reason for a timeout, a refusal, a hang-up, an error rcode or
    garbage.
    """
    import dns.asyncquery
    import dns.exception
    import dns.message
    import dns.rcode

    query = dns.message.make_query(params.name, params.type)
    try:
        # dnspython's own timeout covers each of the two attempts; ours bounds them together.
        async with asyncio.timeout(budget):
            response, used_tcp = await dns.asyncquery.udp_with_fallback(
                query, params.server, timeout=budget, port=params.port
            )
    except TimeoutError:
        raise _Failed(f"no answer within {budget:g}s") from None
    except OSError as exc:
        raise _Failed(f"{exc.strerror or exc}") from None
    except EOFError:  # the TCP retry after a truncated UDP answer was hung up on
        raise _Failed("connection closed before an answer (TCP)") from None
    except dns.exception.DNSException as exc:
        raise _Failed(f"bad answer: {exc}") from None
    via = "tcp" if used_tcp else "udp"
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        raise _Failed(f"answered {dns.rcode.to_text(rcode)}")
    if not isinstance(response, dns.message.QueryMessage):
        raise _Failed("bad answer: not a response to a query")
    try:
        answer = response.resolve_chaining().answer
    except dns.exception.DNSException as exc:
        raise _Failed(f"bad answer: {exc}") from None
    return (set(answer) if answer is not None else set()), via


class _Failed(Exception):
    """One check failed; the message says how."""


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """One query; the reading is debounced: `fall` failures make it down, `rise` + hold-down up."""
    started = ctx.clock.monotonic()
    details: dict[str, Any] = {"server": params.server, "port": params.port,
                               "name": params.name, "type": params.type}  # fmt: skip
    problem = ""
    latency_ms: float | None = None
    # Inside the runner's limit for the whole check: a slow server must be a failed check
    # that counts toward `fall`, not a "probe timed out" reading that bypasses fall/rise.
    budget = min(params.timeout, ctx.timeout * 0.9)
    try:
        records, via = await _query(params, budget)
        latency_ms = round((ctx.clock.monotonic() - started) * 1000, 3)
        details.update(via=via, answer=sorted(r.to_text() for r in records))
        if params.expect is not None and records != {_rdata(params.type, e) for e in params.expect}:
            problem = f"wrong answer {details['answer']} (expected {sorted(params.expect)})"
        elif not records:
            problem = f"no {params.type} record for {params.name}"
    except _Failed as exc:
        problem = str(exc)
    except Exception as exc:  # a library's surprise: still a reading that fall/rise count
        ctx.log.warning("dns_check_error", server=params.server, exc_info=True)
        problem = f"check failed: {type(exc).__name__}: {exc}"
    passed = not problem
    health = _Hysteresis.of(ctx.state, params).record(passed, ctx.clock.monotonic())
    details.update(health.details())
    if passed:
        message = f"answered in {latency_ms:.1f} ms: {', '.join(details['answer'])}"
    else:
        details["error"] = problem
        message = problem
    labels = {"state": health.state, "check": "ok" if passed else "failed"}
    if health.transition:
        labels["transition"] = health.transition
    return [
        Observation(
            # Until a state is established each reading stands alone (a recheck, a restart).
            ok=passed if health.state == "unknown" else health.state == "up",
            value=latency_ms,
            message=f"{health.summary()}: {message}",
            resource=params.server if params.port == 53 else f"{params.server}:{params.port}",
            labels=labels,
            details=details,
        )
    ]


class _Hysteresis:
    """keepalived's fall/rise plus a hold-down, kept in the probe's state between checks.

    The state starts `unknown` (each reading stands alone) and becomes `down` after `fall`
    failures in a row, `up` after `rise` successes in a row; from `down`, also not before
    `hold_down` has passed since it went down, so a flapping server causes at most one
    failover per hold-down. The reading that changes the state carries `transition`.
    """

    def __init__(self, store: dict[str, Any], params: Params) -> None:
        self._s = store
        self._p = params
        self._now = 0.0
        self.transition = ""

    @classmethod
    def of(cls, store: dict[str, Any], params: Params) -> _Hysteresis:
        store.setdefault("state", "unknown")
        store.setdefault("fails", 0)
        store.setdefault("passes", 0)
        store.setdefault("down_at", None)
        return cls(store, params)

    @property
    def state(self) -> str:
        return str(self._s["state"])

    def record(self, passed: bool, now: float) -> _Hysteresis:
        s, p = self._s, self._p
        s["passes"], s["fails"] = (s["passes"] + 1, 0) if passed else (0, s["fails"] + 1)
        self._now = now
        if s["state"] != "down" and s["fails"] >= p.fall:
            s["state"], s["down_at"], self.transition = "down", now, "down"
        elif s["state"] != "up" and s["passes"] >= p.rise and self._hold_left() <= 0:
            s["state"], s["down_at"], self.transition = "up", None, "up"
        return self

    def _hold_left(self) -> float:
        down_at = self._s["down_at"]
        return 0.0 if down_at is None else down_at + self._p.hold_down - self._now

    def summary(self) -> str:
        s, p = self._s, self._p
        if self.transition:
            return f"now {s['state']}"
        if s["state"] == "down":
            wait = f", hold-down {self._hold_left():.0f}s left" if self._hold_left() > 0 else ""
            return f"down ({s['passes']}/{p.rise} successes toward up{wait})"
        if s["fails"]:
            return f"{s['state']} ({s['fails']}/{p.fall} failures toward down)"
        return str(s["state"])

    def details(self) -> dict[str, Any]:
        s = self._s
        return {"state": s["state"], "failures_in_a_row": s["fails"],
                "successes_in_a_row": s["passes"],
                "hold_down_left_s": round(max(0.0, self._hold_left()), 3)}  # fmt: skip


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="dns",
    params=Params,
    check=check,
    summary="query a DNS server; down after `fall` failures, up after `rise` and a hold-down",
    default_interval=1.0,
    # No jitter: one tiny query per second loads nothing, and jitter would only add to the
    # time a dead server goes unnoticed (bench/dns_failover.py).
    default_jitter=0.0,
)
