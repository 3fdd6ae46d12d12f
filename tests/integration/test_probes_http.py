"""The http probe against a real local HTTP(S) server whose answers the test switches."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Status
from opsmedic.plugins import Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner


@dataclass
class Behaviour:
    """What the server answers next; tests flip these between requests."""

    status: int = 200
    body: bytes = b'{"status": "ok"}'
    delay: float = 0.0
    seen_headers: list[dict[str, str]] = field(default_factory=list)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = Behaviour()
        # Slow answers wait on this instead of sleeping, so teardown frees them at once.
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout test) is expected, not worth a traceback


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        b = self.server.behaviour
        b.seen_headers.append(dict(self.headers))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if b.delay:
            self.server.release.wait(b.delay)
        self.send_response(b.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b.body)))
        self.end_headers()
        self.wfile.write(b.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Web:
    server: Server

    @property
    def behaviour(self) -> Behaviour:
        return self.server.behaviour

    def url(self, path: str = "/health", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}{path}"


def serve(server: Server) -> Iterator[Web]:
    # A short poll keeps shutdown() quick at teardown.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Web(server)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def web() -> Iterator[Web]:
    yield from serve(Server())


@pytest.fixture
def tls_web(tmp_path: Path) -> Iterator[Web]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = Server()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    yield from serve(server)


async def probe(params: dict[str, Any], probe_timeout: float = 5.0, name: str = "web") -> Event:
    async def emit(events: list[Event]) -> None:
        return None

    cfg = ProbeConfig(name=name, type="http", timeout=probe_timeout, params=params)
    runner = ProbeRunner(
        [cfg],
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        Config().base_dir,
        SystemClock(),
        emit,
        structlog.get_logger(),
        settings={},
    )
    [event] = await runner.run_once()
    return event


async def test_healthy_endpoint(web: Web) -> None:
    event = await probe({"url": web.url()})
    assert event.status is Status.RESOLVED
    assert event.severity == "info"
    assert (event.source, event.kind, event.resource) == ("http", "web", web.url())
    assert event.host == socket.gethostname()
    assert event.labels == {"status_code": "200"}
    assert isinstance(event.value, float)
    assert event.value >= 0
    assert event.payload["details"]["status_code"] == 200
    assert event.payload["details"]["latency_ms"] == event.value


async def test_server_error_is_firing(web: Web) -> None:
    web.behaviour.status = 500
    web.behaviour.body = b"database unreachable"
    event = await probe({"url": web.url()})
    assert event.status is Status.FIRING
    assert event.severity == "critical"
    assert event.labels == {"status_code": "500"}
    assert event.payload["message"] == "status 500 (expected 2xx)"
    assert event.payload["details"]["body_excerpt"] == "database unreachable"
    assert isinstance(event.value, float)  # a slow 500 is still worth charting


async def test_expected_status_list(web: Web) -> None:
    web.behaviour.status = 503
    assert (await probe({"url": web.url(), "expect_status": [503]})).status is Status.RESOLVED
    web.behaviour.status = 204
    web.behaviour.body = b""
    event = await probe({"url": web.url(), "expect_status": [200, 503]})
    assert event.status is Status.FIRING
    assert event.payload["message"] == "status 204 (expected 200, 503)"


async def test_body_match(web: Web) -> None:
    params = {"url": web.url(), "body_match": r'"status":\s*"ok"'}
    assert (await probe(params)).status is Status.RESOLVED
    web.behaviour.body = b'{"status": "degraded"}'
    event = await probe(params)
    assert event.status is Status.FIRING
    assert event.labels == {"status_code": "200"}
    assert "body does not match" in event.payload["message"]


async def test_latency_over_max_is_failing(web: Web) -> None:
    web.behaviour.delay = 0.3
    event = await probe({"url": web.url(), "max_latency": "100ms"})
    assert event.status is Status.FIRING
    assert isinstance(event.value, float)
    assert event.value >= 300  # the server held the answer at least this long
    assert "over 100 ms" in event.payload["message"]


async def test_latency_under_max_is_ok(web: Web) -> None:
    event = await probe({"url": web.url(), "max_latency": "30s"})
    assert event.status is Status.RESOLVED


async def test_no_answer_within_timeout(web: Web) -> None:
    web.behaviour.delay = 60  # released by the fixture's teardown
    event = await probe({"url": web.url()}, probe_timeout=0.2)
    assert event.status is Status.FIRING
    assert event.value is None
    assert event.resource == web.url()
    assert event.labels == {"probe_error": "timeout"}
    assert event.payload["message"] == "probe timed out after 0.2s"


async def test_connection_refused() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/health"
    event = await probe({"url": url})
    assert event.status is Status.FIRING
    assert event.value is None
    assert event.resource == url
    assert event.labels == {"error": "ConnectError"}
    assert event.payload["message"].startswith("request failed:")


async def test_failure_and_recovery_share_a_fingerprint(web: Web) -> None:
    web.behaviour.status = 500
    down = await probe({"url": web.url()})
    web.behaviour.delay = 60
    hung = await probe({"url": web.url()}, probe_timeout=0.2)
    web.behaviour.delay = 0
    web.behaviour.status = 200
    up = await probe({"url": web.url()})
    assert [e.status for e in (down, hung, up)] == [Status.FIRING, Status.FIRING, Status.RESOLVED]
    assert down.fingerprint == hung.fingerprint == up.fingerprint


async def test_redirects_are_not_followed_unless_asked(web: Web) -> None:
    event = await probe({"url": web.url("/redirect")})
    assert event.status is Status.FIRING
    assert event.labels == {"status_code": "302"}
    event = await probe({"url": web.url("/redirect"), "follow_redirects": True})
    assert event.status is Status.RESOLVED
    assert event.payload["details"]["url"] == web.url("/landed")
    assert event.resource == web.url("/redirect")  # identity is the configured URL


async def test_headers_are_sent(web: Web) -> None:
    await probe({"url": web.url(), "headers": {"X-Probe": "opsmedic"}})
    assert web.behaviour.seen_headers[-1]["X-Probe"] == "opsmedic"


async def test_self_signed_certificate_fails_verification(tls_web: Web) -> None:
    url = tls_web.url(scheme="https")
    event = await probe({"url": url})
    assert event.status is Status.FIRING
    assert "CERTIFICATE_VERIFY_FAILED" in event.payload["message"]
    event = await probe({"url": url, "verify_tls": False})
    assert event.status is Status.RESOLVED
