"""The dns probe against a scriptable UDP responder: answers, bad answers, and fall/rise/hold-down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
import structlog
from pydantic import ValidationError

from opsmedic.clock import ManualClock
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext
from opsmedic.probes.dns import Params as DnsParams
from opsmedic.probes.dns import check as check_dns


class Responder(asyncio.DatagramProtocol):
    """Answers each query as `mode` says: ok, wrong, garbage, servfail, truncated or silent."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if self.mode == "silent":
            return
        if self.mode == "garbage":
            self.transport.sendto(data[:2] + b"\x81\x80\xff\xff garbage", addr)
            return
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        if self.mode == "servfail":
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif self.mode == "truncated":
            reply.flags |= dns.flags.TC  # "ask again over TCP"
        else:
            address = "192.0.2.1" if self.mode == "ok" else "192.0.2.99"
            reply.answer.append(dns.rrset.from_text(query.question[0].name, 30, "IN", "A", address))
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def responder() -> AsyncIterator[tuple[Responder, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def params(port: int, **kw: Any) -> DnsParams:
    base = {"server": "127.0.0.1", "port": port, "name": "health.example.test",
            "expect": ["192.0.2.1"], "timeout": 0.2, "hold_down": 0}  # fmt: skip
    return DnsParams.model_validate({**base, **kw})


@pytest.fixture
async def hang_up_over_tcp(responder: tuple[Responder, int]) -> AsyncIterator[int]:
    """The responder's port, where TCP reads a query and closes without an answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = await reader.readexactly(2)
        await reader.readexactly(int.from_bytes(size, "big"))
        writer.close()

    proto, port = responder
    proto.mode = "truncated"
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        yield port


class Prober:
    """Checks one probe config again and again with one state, like the runner does."""

    def __init__(self, p: DnsParams, timeout: float = 5.0) -> None:
        self.params = p
        self.clock = ManualClock()
        self.ctx = ProbeContext(self.clock, structlog.get_logger(), timeout=timeout)

    async def check(self, advance: float = 1.0) -> Observation:
        self.clock.advance(advance)
        [obs] = await check_dns(self.params, self.ctx)
        return obs


async def test_a_right_answer_is_ok_with_the_latency_as_value(
    responder: tuple[Responder, int],
) -> None:
    _, port = responder
    obs = await Prober(params(port)).check()
    assert obs.ok
    assert obs.labels == {"state": "unknown", "check": "ok"}
    assert obs.details["answer"] == ["192.0.2.1"]
    assert obs.details["via"] == "udp"
    assert isinstance(obs.value, float)
    assert obs.resource == f"127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong", "wrong answer ['192.0.2.99'] (expected ['192.0.2.1'])"),
        ("garbage", "bad answer"),
        ("servfail", "answered SERVFAIL"),
        ("silent", "no answer within 0.2s"),
    ],
)
async def test_bad_answers_fail_the_check_with_the_reason(
    responder: tuple[Responder, int], mode: str, reason: str
) -> None:
    proto, port = responder
    proto.mode = mode
    obs = await Prober(params(port)).check()
    assert not obs.ok
    assert (obs.value is not None) == (mode == "wrong")  # an answer, even wrong, has a latency
    assert reason in obs.message
    assert obs.details["error"].startswith(reason.split(" [")[0])


async def test_any_answer_is_ok_without_expect(responder: tuple[Responder, int]) -> None:
    proto, port = responder
    proto.mode = "wrong"
    assert (await Prober(params(port, expect=None)).check()).ok


async def test_a_closed_port_fails_the_check(responder: tuple[Responder, int]) -> None:
    obs = await Prober(params(9, server="127.0.0.1")).check()  # discard port: nobody answers
    assert not obs.ok


async def test_down_after_fall_failures_and_up_after_rise_and_hold_down(
    responder: tuple[Responder, int],
) -> None:
    proto, port = responder
    probe = Prober(params(port, fall=2, rise=3, hold_down=10))
    seen = [(await probe.check()).labels.get("transition") for _ in range(3)]
    assert seen == [None, None, "up"]  # established: 3 successes from unknown
    proto.mode = "silent"
    first = await probe.check()
    assert first.ok  # one failure is not down yet
    assert "1/2 failures toward down" in first.message
    second = await probe.check()
    assert (second.ok, second.labels["transition"], second.labels["state"]) == (
        False,
        "down",
        "down",
    )
    proto.mode = "ok"
    back = [await probe.check() for _ in range(3)]
    assert [o.ok for o in back] == [False, False, False]  # 3 successes, but 3 s < hold-down 10 s
    assert "hold-down 7s left" in back[-1].message
    waited = await probe.check(advance=7.0)
    assert (waited.ok, waited.labels["transition"]) == (True, "up")
    assert "transition" not in (await probe.check()).labels


async def test_a_server_flapping_every_check_never_goes_down(
    responder: tuple[Responder, int],
) -> None:
    proto, port = responder
    probe = Prober(params(port, fall=2, rise=5))
    transitions = []
    for i in range(20):
        proto.mode = "silent" if i % 2 else "ok"
        transitions.append((await probe.check()).labels.get("transition"))
    assert "down" not in transitions


async def test_flapping_in_pairs_fails_over_once_and_never_back_inside_hold_down(
    responder: tuple[Responder, int],
) -> None:
    proto, port = responder
    probe = Prober(params(port, fall=2, rise=5, hold_down=30))
    transitions = []
    for i in range(28):  # down 2 checks, up 2 checks, …: 28 s < the 30 s hold-down
        proto.mode = "silent" if i % 4 < 2 else "ok"
        transitions.append((await probe.check()).labels.get("transition"))
    assert [t for t in transitions if t] == ["down"]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"server": "ns1.example.test"}, "expected an IP address"),
        ({"type": "AAAAA"}, "unknown record type"),
        ({"expect": ["not-an-address"]}, "not a A record"),
        ({"fall": 0}, "greater than or equal to 1"),
        ({"name": "a..b"}, "'a..b' is not a DNS name"),
        ({"name": "x" * 64 + ".test"}, "is not a DNS name .*label is > 63 octets"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_bad_params_name_the_problem(values: dict[str, Any], where: str) -> None:
    base = {"server": "127.0.0.1", "name": "x.test"}
    with pytest.raises(ValidationError, match=where):
        DnsParams.model_validate({**base, **values})


async def test_a_hang_up_on_the_tcp_retry_is_a_failed_check(hang_up_over_tcp: int) -> None:
    obs = await Prober(params(hang_up_over_tcp)).check()
    assert not obs.ok
    assert obs.details["error"] == "connection closed before an answer (TCP)"
    assert obs.details["failures_in_a_row"] == 1


async def test_an_unexpected_error_is_a_failed_check_that_fall_counts(
    responder: tuple[Responder, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def surprise(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a library's bug")

    monkeypatch.setattr(dns.asyncquery, "udp_with_fallback", surprise)
    _, port = responder
    probe = Prober(params(port, fall=2))
    first = await probe.check()
    assert (first.ok, first.details["failures_in_a_row"]) == (False, 1)
    assert first.details["error"] == "check failed: RuntimeError: a library's bug"
    second = await probe.check()
    assert second.labels["transition"] == "down"


async def test_the_query_gives_up_inside_the_probes_own_timeout(
    responder: tuple[Responder, int],
) -> None:
    """Else the runner's limit cuts in first: "probe timed out", and fall never counts it."""
    proto, port = responder
    proto.mode = "silent"
    obs = await Prober(params(port, timeout=2.0), timeout=0.5).check()
    assert obs.details["error"] == "no answer within 0.45s"
    assert obs.details["failures_in_a_row"] == 1
