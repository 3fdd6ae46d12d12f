"""The tls_cert probe against a real nginx serving generated certificates, one case per port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives import serialization

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config
from opsmedic.model import Event, Observation, Status
from opsmedic.plugins import ProbeContext, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner
from opsmedic.probes.tls_cert import Params as TlsCertParams
from opsmedic.probes.tls_cert import check as check_tls_cert
from services import free_port
from services_tls import TLSServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _context(server: TLSServer, timeout: float = 10.0) -> ProbeContext:
    # The clock stands at the instant the certificates were made: day counts come out exact.
    clock = ManualClock(server.issued_at.timestamp())
    return ProbeContext(clock, structlog.get_logger(), timeout=timeout)


async def _probe(server: TLSServer, case: str, server_name: str, **params: Any) -> Observation:
    params = {
        "host": server.host,
        "port": server.ports[case],
        "server_name": server_name,
        "ca_file": str(server.ca_file),
        **params,
    }
    [obs] = await check_tls_cert(TlsCertParams.model_validate(params), _context(server))
    return obs


def _chain_subjects(obs: Observation) -> list[str]:
    return [link["subject"] for link in obs.details["chain"]]


async def test_a_valid_full_chain_reads_ok_with_every_link_of_the_verified_chain(
    tls_server: TLSServer,
) -> None:
    obs = await _probe(tls_server, "sni", "shop.test")
    port = tls_server.ports["sni"]

    assert obs.ok and obs.severity is None
    assert obs.value == 90.0
    assert obs.resource == ""  # the runner's: the host, for readings and timeouts alike
    assert obs.message.startswith(f"shop.test at 127.0.0.1:{port} expires in 90.0 days (")
    d = obs.details
    assert d["subject"] == "CN=shop.test"
    assert d["issuer"] == "CN=opsmedic test intermediate"
    assert d["serial"] == format(tls_server.leaves["shop.test"].serial_number, "x")
    assert d["sans"] == ["shop.test"]
    assert [link["days_left"] for link in d["chain"]] == [90.0, 1825.0, 3650.0]
    assert _chain_subjects(obs)[1:] == ["CN=opsmedic test intermediate", "CN=opsmedic test root"]
    assert d["presented_chain_length"] == 2
    assert d["tls_version"] == "TLSv1.3"
    assert (d["server_name"], d["port"]) == ("shop.test", port)
    assert (d["hostname_match"], d["chain_valid"], d["self_signed"]) == (True, True, False)
    assert (d["expired"], d["not_yet_valid"], d["chain_error"]) == (False, False, None)


async def test_sni_picks_the_certificate_of_the_name_asked_for(tls_server: TLSServer) -> None:
    shop = await _probe(tls_server, "sni", "shop.test")
    blog = await _probe(tls_server, "sni", "blog.test")

    assert (shop.details["subject"], shop.value) == ("CN=shop.test", 90.0)
    assert (blog.details["subject"], blog.value) == ("CN=blog.test", 60.0)
    assert blog.ok


async def test_ten_days_left_is_critical(tls_server: TLSServer) -> None:
    obs = await _probe(tls_server, "days10", "soon.test")

    assert not obs.ok and obs.severity == "critical"
    assert obs.value == 10.0
    expires = tls_server.leaves["soon.test"].not_valid_after_utc.date().isoformat()
    port = tls_server.ports["days10"]
    assert obs.message == (
        f"soon.test at 127.0.0.1:{port} expires in 10.0 days ({expires}) — critical ≤ 14 d"
    )


async def test_twenty_days_left_is_a_warning(tls_server: TLSServer) -> None:
    obs = await _probe(tls_server, "days20", "later.test")

    assert not obs.ok and obs.severity == "warning"
    assert obs.value == 20.0
    assert obs.message.endswith("— warning ≤ 30 d")


async def test_thresholds_are_configurable(tls_server: TLSServer) -> None:
    relaxed = await _probe(tls_server, "days20", "later.test", warn_days=15, critical_days=5)
    strict = await _probe(tls_server, "days20", "later.test", warn_days=60, critical_days=21)

    assert relaxed.ok and relaxed.severity is None
    assert strict.severity == "critical" and strict.message.endswith("— critical ≤ 21 d")


async def test_an_expired_certificate_still_gets_a_verdict_on_its_chain(
    tls_server: TLSServer,
) -> None:
    obs = await _probe(tls_server, "expired", "expired.test")

    assert not obs.ok and obs.severity == "critical"
    assert obs.value == -3.0
    assert "expired.test at 127.0.0.1" in obs.message
    assert "expired 3.0 days ago" in obs.message
    assert obs.details["expired"] is True
    # Judged at an instant when the leaf was valid, its chain verifies: the cause is the date.
    assert obs.details["chain_valid"] is True
    assert len(obs.details["chain"]) == 3


async def test_a_wrong_hostname_is_named_with_the_names_the_certificate_has(
    tls_server: TLSServer,
) -> None:
    obs = await _probe(tls_server, "wrong_name", "wrong.test")

    assert not obs.ok and obs.severity == "critical"
    assert obs.message.endswith("hostname mismatch: wrong.test not in [a.test, b.test]")
    assert obs.details["hostname_match"] is False
    assert obs.details["chain_valid"] is True  # the chain is sound; only the name is wrong
    assert obs.value == 90.0


async def test_hostname_overrides_the_name_checked_but_not_the_sni_sent(
    tls_server: TLSServer,
) -> None:
    obs = await _probe(tls_server, "wrong_name", "wrong.test", hostname="b.test")

    assert obs.ok
    assert (obs.details["server_name"], obs.details["hostname"]) == ("wrong.test", "b.test")


async def test_a_self_signed_certificate_is_critical_unless_trusted(
    tls_server: TLSServer, tmp_path: Path
) -> None:
    untrusted = await _probe(tls_server, "self_signed", "self.test")
    pinned = tmp_path / "self.pem"
    pinned.write_bytes(tls_server.leaves["self.test"].public_bytes(serialization.Encoding.PEM))
    trusted = await _probe(tls_server, "self_signed", "self.test", ca_file=str(pinned))

    assert not untrusted.ok and untrusted.severity == "critical"
    assert untrusted.message.endswith(": self-signed certificate, not trusted")
    assert untrusted.details["self_signed"] is True
    assert untrusted.details["chain"] == []
    assert untrusted.value == 90.0  # no chain verifies: the leaf alone
    assert trusted.ok and trusted.details["self_signed"] is True


async def test_an_incomplete_chain_names_the_missing_issuer(tls_server: TLSServer) -> None:
    obs = await _probe(tls_server, "incomplete", "lonely.test")

    assert not obs.ok and obs.severity == "critical"
    assert obs.details["chain_valid"] is False
    assert obs.details["presented_chain_length"] == 1
    assert obs.details["chain_error"] == (
        "incomplete chain or unknown issuer: 'CN=opsmedic test intermediate', which issued "
        "'CN=lonely.test', was neither presented nor trusted"
    )
    assert obs.details["chain_error"] in obs.message


async def test_a_certificate_not_yet_valid_is_critical(tls_server: TLSServer) -> None:
    obs = await _probe(tls_server, "not_yet_valid", "future.test")

    assert not obs.ok and obs.severity == "critical"
    assert obs.details["not_yet_valid"] is True
    assert obs.details["chain_valid"] is True
    assert "future.test at 127.0.0.1" in obs.message and "is not valid before" in obs.message


async def test_an_extra_expiring_cross_signed_cert_does_not_count(tls_server: TLSServer) -> None:
    # blackbox_exporter#340: the server also sends the root cross-signed by an old root,
    # expiring in 3 days, that no client uses since the root itself is trusted.
    obs = await _probe(tls_server, "cross_signed", "cross.test")

    assert obs.ok
    assert obs.details["presented_chain_length"] == 3
    assert obs.value == 90.0
    assert min(link["days_left"] for link in obs.details["chain"]) == 90.0
    assert _chain_subjects(obs)[-1] == "CN=opsmedic test root"


async def test_without_ca_file_the_system_cas_are_used(tls_server: TLSServer) -> None:
    params = {"host": tls_server.host, "port": tls_server.ports["sni"], "server_name": "shop.test"}
    [obs] = await check_tls_cert(TlsCertParams.model_validate(params), _context(tls_server))

    assert not obs.ok and obs.severity == "critical"
    assert obs.details["chain_valid"] is False
    assert "'CN=opsmedic test root'" in obs.details["chain_error"]


async def test_a_plain_http_port_is_reported_as_not_tls(tls_server: TLSServer) -> None:
    obs = await _probe(tls_server, "plain", "shop.test")

    assert not obs.ok and obs.severity == "critical" and obs.value is None
    assert obs.labels == {"error": "handshake"}
    assert "TLS handshake failed" in obs.message and "(not a TLS port?)" in obs.message


async def test_a_refused_connection_is_reported(tls_server: TLSServer) -> None:
    params = TlsCertParams(host="127.0.0.1", port=free_port())
    [obs] = await check_tls_cert(params, _context(tls_server))

    assert not obs.ok and obs.severity == "critical" and obs.value is None
    assert obs.message == f"127.0.0.1:{params.port}: connection refused"
    assert obs.labels == {"error": "connect"}


@contextlib.asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on a free loopback port, for what nginx will not do: misbehave."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def hangs_up() -> AsyncIterator[int]:
    """A port whose server reads the ClientHello, then closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(5)
        writer.close()
        await writer.wait_closed()

    async with _serve(handle) as port:
        yield port


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """A port whose server accepts and never says a word."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    async with _serve(handle) as port:
        yield port
        release.set()


async def test_a_server_closing_mid_handshake_is_reported(
    tls_server: TLSServer, hangs_up: int
) -> None:
    params = TlsCertParams(host="127.0.0.1", port=hangs_up, server_name="shop.test")
    [obs] = await check_tls_cert(params, _context(tls_server))

    assert not obs.ok and obs.value is None
    assert obs.message == (
        f"shop.test at 127.0.0.1:{hangs_up}: connection closed during the TLS handshake"
    )
    assert obs.labels == {"error": "handshake"}


async def test_a_silent_server_is_bounded_by_the_timeout(
    tls_server: TLSServer, silent: int
) -> None:
    params = TlsCertParams(host="127.0.0.1", port=silent)
    [obs] = await check_tls_cert(params, _context(tls_server, timeout=0.1))

    assert not obs.ok and obs.value is None
    assert obs.message == f"127.0.0.1:{silent}: no TLS handshake within 1.1s"
    assert obs.labels == {"error": "timeout"}


async def _run_configured(server: TLSServer, probes: list[dict[str, Any]]) -> list[Event]:
    config = Config.model_validate({"probes": probes})

    async def emit(events: list[Event]) -> None:
        return None

    runner = ProbeRunner(
        config.probes,
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        config.base_dir,
        ManualClock(server.issued_at.timestamp()),
        emit,
        structlog.get_logger(),
        settings={},
        host="watcher",
    )
    return await runner.run_once()


async def test_configured_probes_become_events_with_graded_severity(
    tls_server: TLSServer,
) -> None:
    def site(name: str, case: str, server_name: str) -> dict[str, Any]:
        params = {
            "host": "127.0.0.1",
            "port": tls_server.ports[case],
            "server_name": server_name,
            "ca_file": str(tls_server.ca_file),
        }
        return {"name": name, "type": "tls_cert", "params": params}

    events = await _run_configured(
        tls_server,
        [
            site("shop-cert", "sni", "shop.test"),
            site("soon-cert", "days10", "soon.test"),
            site("later-cert", "days20", "later.test"),
        ],
    )

    shop, soon, later = events
    assert (shop.source, shop.kind) == ("tls_cert", "shop-cert")
    assert shop.resource == "127.0.0.1"
    assert (shop.status, shop.severity, shop.value) == (Status.RESOLVED, "info", 90.0)
    assert (soon.status, soon.severity, soon.value) == (Status.FIRING, "critical", 10.0)
    assert (later.status, later.severity, later.value) == (Status.FIRING, "warning", 20.0)
    assert soon.payload["message"].endswith("— critical ≤ 14 d")
    assert soon.payload["details"]["chain"][0]["subject"] == "CN=soon.test"


async def test_the_runner_deadline_stops_a_probe_of_a_silent_server(
    tls_server: TLSServer, silent: int
) -> None:
    probe = {
        "name": "stuck",
        "type": "tls_cert",
        "timeout": 0.1,
        "params": {"host": "127.0.0.1", "port": silent},
    }
    [event] = await _run_configured(tls_server, [probe])

    assert (event.status, event.severity) == (Status.FIRING, "critical")
    assert event.labels == {"probe_error": "timeout"}
    assert event.resource == "127.0.0.1"  # as its readings: one fingerprint for both
