"""http_request against a real HTTP(S) server on loopback: status, retries, bodies, TLS."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from action_context import make_action_context
from opsmedic.actions import http_request
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext
from services import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Set at teardown so that handlers parked on /hang finish and the server can stop.
    release: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    """/status/NNN answers NNN; /big a 100 kB body; /hang never answers (until teardown)."""

    server: Any

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state: Server = self.server.state
        state.requests.append(Received(self.command, self.path, dict(self.headers), body))
        if self.path == "/hang":
            state.release.wait(60)
            return
        if self.path == "/big":
            payload = b"HEAD" + b"x" * 100_000 + b"TAIL"
            status = 200
        else:
            status = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
            payload = json.dumps({"status": status, "method": self.command}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def _serve(tls: ssl.SSLContext | None) -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls else "http"
    state = Server(url=f"{scheme}://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same server behind a self-signed certificate that no trust store knows."""
    workdir = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = workdir / "cert.pem", workdir / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    yield from _serve(context)


make_ctx = partial(make_action_context, "http_request")


async def call(ctx: ActionContext | None = None, **raw: Any) -> Outcome:
    params = http_request.Params.model_validate(raw)
    return await http_request.run(params, ctx or make_ctx())


async def test_a_2xx_is_ok_with_status_and_timing(server: Server) -> None:
    """200: ok, with status, URL, elapsed time and the response body as output."""
    outcome = await call(url=f"{server.url}/status/200")
    assert outcome.ok
    assert outcome.message == f"GET {server.url}/status/200: 200 OK"
    assert outcome.details["status"] == 200
    assert outcome.details["elapsed_ms"] >= 0
    assert json.loads(outcome.output) == {"status": 200, "method": "GET"}


async def test_a_500_fails_without_retry(server: Server) -> None:
    """A 500 is the server's answer: a failed outcome, not a retry."""
    outcome = await call(method="POST", url=f"{server.url}/status/500")
    assert not outcome.ok
    assert outcome.details["status"] == 500
    assert "500 Internal Server Error" in outcome.message


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_and_overload_statuses_are_retryable(server: Server, status: int) -> None:
    """502/503/504 mean "not processed": RetryableError, for any method."""
    with pytest.raises(RetryableError, match=str(status)):
        await call(method="POST", url=f"{server.url}/status/{status}")


async def test_ok_status_decides_what_success_is(server: Server) -> None:
    """ok_status replaces the 2xx default, and may even accept a 503."""
    assert (await call(url=f"{server.url}/status/404", ok_status=[404])).ok
    assert not (await call(url=f"{server.url}/status/200", ok_status=[201])).ok
    assert (await call(url=f"{server.url}/status/503", ok_status=[503])).ok


async def test_connection_refused_is_retryable() -> None:
    """Nothing listening: RetryableError."""
    with pytest.raises(RetryableError, match="cannot connect"):
        await call(method="POST", url=f"http://127.0.0.1:{free_port()}/hook")


async def test_a_json_body_and_headers_are_sent(server: Server) -> None:
    """json is serialised with its content type; headers go along."""
    payload = {"host": "web-1", "value": 91.5, "labels": {"a": "b"}}
    outcome = await call(
        method="post", url=f"{server.url}/status/201", json=payload, headers={"X-Run": "run-1"}
    )
    assert outcome.ok
    received = server.requests[-1]
    assert received.method == "POST"
    assert json.loads(received.body) == payload
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Run"] == "run-1"


async def test_a_text_body_is_sent_as_is(server: Server) -> None:
    """body is sent byte for byte."""
    await call(method="PUT", url=f"{server.url}/status/204", body="line 1\nline 2 é")
    assert server.requests[-1].body == "line 1\nline 2 é".encode()


async def test_secret_headers_are_sent_but_not_reported(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header read from the environment reaches the server and appears in no detail."""
    monkeypatch.setenv("OPSMEDIC_TEST_API_TOKEN", "Bearer t0ken-s3cret")
    outcome = await call(
        url=f"{server.url}/status/200",
        secret_headers={"Authorization": {"env": "OPSMEDIC_TEST_API_TOKEN"}},
    )
    assert server.requests[-1].headers["Authorization"] == "Bearer t0ken-s3cret"
    assert "t0ken-s3cret" not in repr(outcome)


async def test_an_unset_secret_header_fails_before_sending(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable's name is in the message; nothing is sent."""
    monkeypatch.delenv("OPSMEDIC_TEST_API_TOKEN", raising=False)
    before = len(server.requests)
    outcome = await call(
        url=f"{server.url}/status/200",
        secret_headers={"Authorization": {"env": "OPSMEDIC_TEST_API_TOKEN"}},
    )
    assert not outcome.ok
    assert "OPSMEDIC_TEST_API_TOKEN is not set" in outcome.message
    assert len(server.requests) == before


async def test_a_large_body_is_truncated_keeping_head_and_tail(server: Server) -> None:
    """The output is cut to output_limit; the byte count is the whole body's."""
    outcome = await call(make_ctx(actions={"output_limit": 256}), url=f"{server.url}/big")
    assert outcome.details["response_bytes"] == 100_008
    assert outcome.output.startswith("HEAD")
    assert outcome.output.endswith("TAIL")
    assert "bytes cut]" in outcome.output


async def test_a_timeout_retries_an_idempotent_request(server: Server) -> None:
    """A GET that gets no answer in time may be repeated: RetryableError."""
    with pytest.raises(RetryableError):
        await call(url=f"{server.url}/hang", timeout="300ms")


async def test_a_timeout_does_not_retry_a_post(server: Server) -> None:
    """A POST that got no answer may have been applied: failed, marked, not retried."""
    outcome = await call(method="POST", url=f"{server.url}/hang", timeout="300ms", json={"a": 1})
    assert not outcome.ok
    assert outcome.details["maybe_applied"] is True
    assert "not retried" in outcome.message


async def test_an_untrusted_certificate_fails_without_retry(tls_server: Server) -> None:
    """A certificate that does not verify is refused, and retrying would not help."""
    outcome = await call(url=f"{tls_server.url}/status/200")
    assert not outcome.ok
    assert "TLS verification failed" in outcome.message


async def test_verify_tls_false_accepts_a_self_signed_certificate(tls_server: Server) -> None:
    """verify_tls: false is the explicit opt-out."""
    outcome = await call(url=f"{tls_server.url}/status/200", verify_tls=False)
    assert outcome.ok


async def test_dry_run_sends_nothing(server: Server) -> None:
    """In dry-run the outcome describes the request, and the server sees nothing."""
    before = len(server.requests)
    outcome = await call(make_ctx(dry_run=True), method="DELETE", url=f"{server.url}/status/200")
    assert outcome.ok
    assert outcome.message == f"dry-run: would send DELETE {server.url}/status/200"
    assert len(server.requests) == before


def test_the_url_in_details_never_holds_credentials() -> None:
    """A user name in the URL (sometimes a token) is dropped from what is recorded."""
    assert (
        http_request._without_userinfo("https://tok3n@x.example/a?b=1") == "https://x.example/a?b=1"
    )
    assert http_request._without_userinfo("https://x.example/a") == "https://x.example/a"
