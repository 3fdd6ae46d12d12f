"""The HTTP client factory: one TLS context per verify setting, and a transport seam for tests."""

from __future__ import annotations

import ssl

import httpx

from opsmedic.transport.http import http_client, ssl_context


def test_one_context_per_verify_setting_reused_across_checks() -> None:
    assert ssl_context(True) is ssl_context(True)
    assert ssl_context(False) is ssl_context(False)
    assert ssl_context(True) is not ssl_context(False)


def test_verifying_context_checks_certificates_and_hostnames() -> None:
    ctx = ssl_context(True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded


def test_non_verifying_context_accepts_any_certificate() -> None:
    ctx = ssl_context(False)
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname


async def test_an_injected_transport_answers_instead_of_the_network() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    mock = httpx.MockTransport(handler)
    async with http_client(verify_tls=True, timeout=5.0, transport=mock) as client:
        response = await client.get("https://service.invalid/health")
    assert response.status_code == 204
    assert [str(r.url) for r in seen] == ["https://service.invalid/health"]


async def test_redirects_are_followed_only_when_asked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(301, headers={"location": "/new"})
        return httpx.Response(200)

    mock = httpx.MockTransport(handler)
    async with http_client(verify_tls=True, timeout=5.0, transport=mock) as client:
        assert (await client.get("http://service.invalid/old")).status_code == 301
    async with http_client(
        verify_tls=True, timeout=5.0, follow_redirects=True, transport=mock
    ) as client:
        assert (await client.get("http://service.invalid/old")).status_code == 200
