"""The http probe's TLS context: built once per verify setting, then shared by every check."""

from __future__ import annotations

import ssl

from opsmedic.probes.http import _ssl_context


def test_one_context_per_verify_setting_reused_across_checks() -> None:
    assert _ssl_context(True) is _ssl_context(True)
    assert _ssl_context(False) is _ssl_context(False)
    assert _ssl_context(True) is not _ssl_context(False)


def test_verifying_context_checks_certificates_and_hostnames() -> None:
    ctx = _ssl_context(True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded


def test_non_verifying_context_accepts_any_certificate() -> None:
    ctx = _ssl_context(False)
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname
