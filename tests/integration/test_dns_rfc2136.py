"""The rfc2136 backend against two real BIND 9 servers: compare-and-swap updates and refusals."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.tsig
import dns.update
import pytest

from action_context import make_action_context
from opsmedic.actions.dns_failover import Params as ActionParams
from opsmedic.actions.dns_failover import run
from opsmedic.dns.rfc2136 import Rfc2136Backend, Rfc2136Params, TsigKeys
from opsmedic.dns.switch import Direction, Switched, SwitchFailed
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome, Status
from services_dns import DnsPair

FAILOVER, FAILBACK = Direction.FAILOVER, Direction.FAILBACK
RESOLVER = "resolver.svc.test."


def config_for(pair: DnsPair, secret_file: Path | None = None, key_name: str = "") -> TsigKeys:
    secret = {"file": str(secret_file or pair.key_file)}
    return TsigKeys.model_validate({key_name or pair.key_name: {"secret": secret}})


def backend(pair: DnsPair, config: TsigKeys | None = None, **params: Any) -> Rfc2136Backend:
    values = {
        "server": pair.secondary.address,
        "zone": pair.dynamic_zone,
        "name": "resolver",
        "primary": pair.primary.address,
        "secondary": pair.secondary.address,
        "tsig_key": pair.key_name,
        **params,
    }
    return Rfc2136Backend(Rfc2136Params.model_validate(values), config or config_for(pair))


async def switch(b: Rfc2136Backend, direction: Direction, budget: float = 10.0) -> Switched:
    return await b.switch(direction, time.monotonic() + budget)


async def failed(b: Rfc2136Backend, direction: Direction = FAILOVER, budget: float = 10.0) -> str:
    with pytest.raises(SwitchFailed) as caught:
        await switch(b, direction, budget)
    return str(caught.value)


async def retried(b: Rfc2136Backend, budget: float = 10.0) -> str:
    """The message of a failure left for the engine to retry (a failover must not be lost)."""
    with pytest.raises(RetryableError) as caught:
        await switch(b, FAILOVER, budget)
    return str(caught.value)


def resolver(pair: DnsPair) -> list[str]:
    return pair.lookup(RESOLVER, "A", pair.secondary)


def set_record(pair: DnsPair, name: str, rdtype: str, value: str) -> None:
    """Change a record behind the backend's back, as another operator would."""
    update = dns.update.UpdateMessage(pair.dynamic_zone, keyring=signing_key(pair))
    update.replace(name, 30, rdtype, value)
    response = dns.query.tcp(update, pair.secondary.address, timeout=5.0)
    assert response.rcode() == 0


def signing_key(pair: DnsPair) -> dns.tsig.Key:
    return dns.tsig.Key(pair.key_name, pair.key_secret)


def dig(pair: DnsPair, name: str, rdtype: str) -> list[str]:
    argv = ["dig", "+tcp", "+short", f"@{pair.secondary.address}", name, rdtype]
    return subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()


def ttl_of(pair: DnsPair, name: str, rdtype: str) -> int:
    response = dns.query.tcp(dns.message.make_query(name, rdtype), pair.secondary.address, 5.0)
    return int(response.answer[0].ttl)


async def test_failover_then_failback_moves_the_record_and_reads_it_back(
    dns_pair: DnsPair,
) -> None:
    """Each way is one signed update; the record is read back from the server."""
    b = backend(dns_pair)
    assert b.subject == f"{RESOLVER} A @ {dns_pair.secondary.address}:53"
    done = await switch(b, FAILOVER)
    assert done.changed
    assert done.message == (
        f"{RESOLVER} A {dns_pair.primary.address} -> {dns_pair.secondary.address} (TTL 30) on "
        f"{dns_pair.secondary.address}:53"
    )
    assert done.details | {"took_ms": 0} == {
        "server": f"{dns_pair.secondary.address}:53",
        "zone": "svc.test.",
        "name": RESOLVER,
        "type": "A",
        "from": dns_pair.primary.address,
        "to": dns_pair.secondary.address,
        "ttl": 30,
        "rcode": "NOERROR",
        "took_ms": 0,
    }
    assert resolver(dns_pair) == [dns_pair.secondary.address]
    assert dig(dns_pair, RESOLVER, "A") == [dns_pair.secondary.address]  # another client

    back = await switch(b, FAILBACK)
    assert back.changed
    assert (back.details["from"], back.details["to"]) == (
        dns_pair.secondary.address,
        dns_pair.primary.address,
    )
    assert resolver(dns_pair) == [dns_pair.primary.address]


async def test_a_repeat_changes_nothing_and_says_so(dns_pair: DnsPair) -> None:
    b = backend(dns_pair)
    assert (await switch(b, FAILOVER)).changed
    again = await switch(b, FAILOVER)
    assert not again.changed
    assert again.message == f"{RESOLVER} A already points at {dns_pair.secondary.address}"
    assert again.details["rcode"] == "NXRRSET"
    assert resolver(dns_pair) == [dns_pair.secondary.address]
    # Failing back when never failed over is just as quiet.
    assert (await switch(b, FAILBACK)).changed
    assert not (await switch(b, FAILBACK)).changed


async def test_aaaa_records_switch(dns_pair: DnsPair) -> None:
    b = backend(dns_pair, name="resolver6", type="AAAA", primary="::1", secondary="2001:db8::2")
    assert (await switch(b, FAILOVER)).changed
    assert dns_pair.lookup("resolver6.svc.test.", "AAAA", dns_pair.secondary) == ["2001:db8::2"]
    assert (await switch(b, FAILBACK)).changed
    assert dns_pair.lookup("resolver6.svc.test.", "AAAA", dns_pair.secondary) == ["::1"]


async def test_cname_records_switch_and_names_compare_without_case(dns_pair: DnsPair) -> None:
    b = backend(
        dns_pair, name="alias.svc.test.", type="CNAME",
        primary="primary.svc.test.", secondary="secondary.svc.test",
    )  # fmt: skip
    assert (await switch(b, FAILOVER)).changed
    assert dns_pair.lookup("alias.svc.test.", "CNAME", dns_pair.secondary) == [
        "secondary.svc.test."
    ]
    upper = backend(
        dns_pair, name="alias", type="CNAME",
        primary="PRIMARY.svc.test", secondary="Secondary.Svc.Test.",
    )  # fmt: skip
    assert not (await switch(upper, FAILOVER)).changed


async def test_the_ttl_is_written_with_the_new_value(dns_pair: DnsPair) -> None:
    done = await switch(backend(dns_pair, ttl=120), FAILOVER)
    assert done.details["ttl"] == 120
    assert ttl_of(dns_pair, RESOLVER, "A") == 120
    assert (await switch(backend(dns_pair, ttl=0), FAILBACK)).details["ttl"] == 0


async def test_a_record_changed_meanwhile_is_left_alone(dns_pair: DnsPair) -> None:
    set_record(dns_pair, RESOLVER, "A", "192.0.2.77")
    message = await failed(backend(dns_pair))
    assert message == (
        f"record changed meanwhile: {RESOLVER} A is now 192.0.2.77, expected "
        f"{dns_pair.primary.address}; nothing changed"
    )
    assert resolver(dns_pair) == ["192.0.2.77"]


async def test_an_extra_value_beside_the_old_one_fails_the_prerequisite(dns_pair: DnsPair) -> None:
    """The prerequisite is the whole record set, not "contains the old value"."""
    update = dns.update.UpdateMessage(dns_pair.dynamic_zone, keyring=signing_key(dns_pair))
    update.add(RESOLVER, 30, "A", "192.0.2.9")
    assert dns.query.tcp(update, dns_pair.secondary.address, timeout=5.0).rcode() == 0
    message = await failed(backend(dns_pair))
    assert f"is now {dns_pair.primary.address}, 192.0.2.9, expected" in message
    assert resolver(dns_pair) == sorted([dns_pair.primary.address, "192.0.2.9"])


async def test_a_missing_record_is_reported_absent(dns_pair: DnsPair) -> None:
    message = await failed(backend(dns_pair, name="nothing-here"))
    assert message == (
        f"record changed meanwhile: nothing-here.svc.test. A is now absent, expected "
        f"{dns_pair.primary.address}; nothing changed"
    )


async def test_a_wrong_secret_is_a_bad_signature(dns_pair: DnsPair, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text(base64.b64encode(os.urandom(32)).decode())
    message = await failed(backend(dns_pair, config_for(dns_pair, wrong)))
    assert message == (
        f"update: {dns_pair.secondary.address}:53 rejected the signature of TSIG key "
        f"{dns_pair.key_name} (BADSIG: is the secret the server's?); nothing changed"
    )
    assert resolver(dns_pair) == [dns_pair.primary.address]


async def test_a_key_the_server_does_not_know(dns_pair: DnsPair) -> None:
    config = config_for(dns_pair, key_name="stranger.")
    message = await failed(backend(dns_pair, config, tsig_key="stranger."))
    assert "does not know the TSIG key stranger. (BADKEY); nothing changed" in message
    assert resolver(dns_pair) == [dns_pair.primary.address]


async def test_an_unsigned_update_is_refused(dns_pair: DnsPair) -> None:
    message = await failed(backend(dns_pair, tsig_key=None))
    assert message == (
        f"{dns_pair.secondary.address}:53 refused the update: REFUSED (an unsigned update is "
        "not allowed (set tsig_key)); nothing changed"
    )
    assert resolver(dns_pair) == [dns_pair.primary.address]


async def test_a_zone_without_an_update_policy_is_refused(dns_pair: DnsPair) -> None:
    b = backend(dns_pair, zone="example.test.", name="health", primary="192.0.2.53",
                secondary="192.0.2.54")  # fmt: skip
    message = await failed(b)
    assert f"REFUSED (the key {dns_pair.key_name} may not update health.example.test.)" in message
    assert dns_pair.lookup("health.example.test.", "A", dns_pair.secondary) == ["192.0.2.53"]


async def test_a_zone_the_server_does_not_serve(dns_pair: DnsPair) -> None:
    message = await failed(backend(dns_pair, zone="elsewhere.test."))
    assert "NOTAUTH (the server is not authoritative for elsewhere.test.); nothing changed" in (
        message
    )


async def test_a_stopped_server_refuses_the_connection(dns_pair: DnsPair) -> None:
    dns_pair.secondary.stop()
    message = await retried(backend(dns_pair))
    assert message == (
        f"update: {dns_pair.secondary.address}:53 refused the connection (no DNS server on "
        "it); nothing changed"
    )


async def test_a_silent_server_costs_no_more_than_the_deadline(dns_pair: DnsPair) -> None:
    """The budget is min(timeout, deadline - now); a repeat after the silence is safe."""
    dns_pair.secondary.pause()
    b = backend(dns_pair, timeout="30s")
    message = await retried(b, budget=0.5)
    assert message.startswith(
        f"update: no answer from {dns_pair.secondary.address}:53 within 0.5 s (if it arrived "
        "it was applied; a repeat is safe"
    )
    dns_pair.secondary.resume()
    # The update sat in the paused server's socket: it may have been applied or not.
    await switch(b, FAILOVER)
    assert resolver(dns_pair) == [dns_pair.secondary.address]


async def test_no_time_left_sends_nothing(dns_pair: DnsPair) -> None:
    message = await retried(backend(dns_pair), budget=-1.0)
    assert message == (
        f"update: out of time before asking {dns_pair.secondary.address}:53; nothing changed"
    )


async def test_a_hostname_is_resolved(dns_pair: DnsPair) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    message = await retried(backend(dns_pair, server=f"localhost:{port}"))
    assert f"localhost:{port} refused the connection" in message


async def test_an_unknown_key_name_lists_the_known_ones(dns_pair: DnsPair) -> None:
    with pytest.raises(SwitchFailed) as caught:
        backend(dns_pair, tsig_key="typo.")
    assert str(caught.value) == (
        f"tsig_key 'typo.' is not one of the config's tsig_keys (known: {dns_pair.key_name}); "
        "nothing changed"
    )


async def test_an_unreadable_secret_fails_cleanly(dns_pair: DnsPair, tmp_path: Path) -> None:
    with pytest.raises(SwitchFailed) as caught:
        backend(dns_pair, config_for(dns_pair, tmp_path / "missing"))
    assert str(caught.value) == (
        f"TSIG key {dns_pair.key_name}: cannot use its secret: No such file or directory; "
        "nothing changed"
    )


@asynccontextmanager
async def serve(reply: bytes) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers any request with `reply`, then hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(2)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("reply", "error", "expected"),
    [
        (struct.pack("!H", 12) + b"\xff" * 12, SwitchFailed, "sent a bad answer"),
        (b"", RetryableError, "talking to 127.0.0.1:{port} failed: connection closed"),
    ],
    ids=["garbage", "hang-up"],
)
async def test_garbage_and_hang_ups_fail_cleanly(
    dns_pair: DnsPair, reply: bytes, error: type[Exception], expected: str
) -> None:
    async with serve(reply) as port:
        with pytest.raises(error) as caught:
            await switch(backend(dns_pair, server=f"127.0.0.1:{port}"), FAILOVER)
        message = str(caught.value)
        assert expected.format(port=port) in message
        assert message.endswith("; nothing changed")


@asynccontextmanager
async def relay(pair: DnsPair, later: Callable[[], None] | None) -> AsyncIterator[int]:
    """A TCP hop on 127.0.0.1 to the secondary, one connection per exchange.

    The first exchange (the update) passes. Each later one (the read-back) first runs
    `later` and then passes too; with `later` None it is hung up on instead.
    """
    exchanges = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal exchanges
        exchanges += 1
        try:
            request = await read_framed(reader)
            if exchanges > 1 and later is None:
                return
            if exchanges > 1 and later is not None:
                await asyncio.to_thread(later)
            up_reader, up_writer = await asyncio.open_connection(pair.secondary.address, 53)
            up_writer.write(request)
            writer.write(await read_framed(up_reader))
            up_writer.close()
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def read_framed(reader: asyncio.StreamReader) -> bytes:
    """One DNS-over-TCP message with its two-byte length."""
    size = await reader.readexactly(2)
    return size + await reader.readexactly(struct.unpack("!H", size)[0])


async def failover_via(pair: DnsPair, server: str) -> Outcome:
    """The dns_failover action, as the engine runs it, updating on `server`."""
    params = ActionParams.model_validate({"direction": "failover", "rfc2136": {
        "server": server, "zone": pair.dynamic_zone, "name": "resolver",
        "primary": pair.primary.address, "secondary": pair.secondary.address,
        "tsig_key": pair.key_name}})  # fmt: skip
    ctx = make_action_context(
        "dns_failover", tsig_keys={pair.key_name: {"secret": {"file": str(pair.key_file)}}}
    )
    return await run(params, ctx)


async def test_an_applied_update_whose_read_back_fails_is_a_change_with_a_warning(
    dns_pair: DnsPair,
) -> None:
    """The switch is made: reporting it failed would say "nothing changed" and announce nothing."""
    async with relay(dns_pair, later=None) as port:
        outcome = await failover_via(dns_pair, f"127.0.0.1:{port}")
    assert outcome.ok, outcome.message
    warning = (
        f"the update was applied, but reading it back failed: talking to 127.0.0.1:{port} "
        "failed: connection closed"
    )
    assert outcome.details["warning"] == warning
    assert outcome.message.endswith(f"on 127.0.0.1:{port}; warning: {warning}")
    [announced] = outcome.events
    assert (announced.kind, announced.status) == ("dns_failover", Status.FIRING)
    assert resolver(dns_pair) == [dns_pair.secondary.address]


async def test_an_applied_update_read_back_as_another_value_is_a_change_with_a_warning(
    dns_pair: DnsPair,
) -> None:
    def another_operator() -> None:
        set_record(dns_pair, RESOLVER, "A", "192.0.2.77")

    async with relay(dns_pair, later=another_operator) as port:
        outcome = await failover_via(dns_pair, f"127.0.0.1:{port}")
    assert outcome.ok, outcome.message
    assert outcome.details["warning"] == (
        f"the update was applied, but 127.0.0.1:{port} now answers 192.0.2.77 for {RESOLVER} A"
    )
    assert len(outcome.events) == 1


async def test_a_passing_failure_reaches_the_engine_as_retryable(dns_pair: DnsPair) -> None:
    """Not a failed Outcome: the engine retries it with backoff, so the failover is not lost."""
    dns_pair.secondary.stop()
    with pytest.raises(RetryableError, match="refused the connection"):
        await failover_via(dns_pair, dns_pair.secondary.address)


def test_the_fixture_pause_silences_and_stop_closes(dns_pair: DnsPair) -> None:
    """The end-to-end tests rely on both: a black hole, then a closed port."""
    server = dns_pair.secondary
    query = dns.message.make_query("health.example.test.", "A")
    dns_pair.primary.pause()
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, dns_pair.primary.address, timeout=0.3)
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(query, dns_pair.primary.address, timeout=0.3)
    assert dns_pair.primary.running
    dns_pair.primary.resume()
    assert dns_pair.lookup("health.example.test.", "A", dns_pair.primary) == ["192.0.2.53"]

    server.stop()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.address, server.port), timeout=5.0).close()
    server.start()
    assert dns_pair.lookup("health.example.test.", "A", server) == ["192.0.2.53"]


def test_the_fixture_zones_hold_what_the_other_tests_expect(dns_pair: DnsPair) -> None:
    for server in (dns_pair.primary, dns_pair.secondary):
        assert dns_pair.lookup("www.example.test.", "A", server) == ["192.0.2.80", "192.0.2.81"]
        assert dns_pair.lookup("alias.example.test.", "CNAME", server) == ["www.example.test."]
        big = dns.message.make_query("big.example.test.", "TXT", use_edns=False)
        assert dns.query.udp(big, server.address, timeout=5.0).flags & dns.flags.TC
        assert sum(len(t) for t in dns_pair.lookup("big.example.test.", "TXT", server)) > 2000
    assert dns_pair.lookup("resolver6.svc.test.", "AAAA", dns_pair.secondary) == ["::1"]
    assert dns_pair.lookup(RESOLVER, "A", dns_pair.primary) == []  # svc.test. is not there
