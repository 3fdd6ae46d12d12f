"""PagerDuty's X-PagerDuty-Signature: good, bad, rotated and malformed headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from opsmedic.sources.webhooks.signature import verify_pagerduty_signature

BODY = b'{"event":{"id":"5ac64822","event_type":"incident.triggered"}}'
OLD, NEW = b"old-secret", b"new-secret"


def sign(secret: bytes, body: bytes = BODY) -> str:
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_a_good_signature_verifies() -> None:
    assert verify_pagerduty_signature(BODY, sign(NEW), [NEW])


def test_a_signature_of_another_body_or_secret_does_not() -> None:
    assert not verify_pagerduty_signature(BODY + b" ", sign(NEW), [NEW])
    assert not verify_pagerduty_signature(BODY, sign(b"guess"), [NEW])


def test_during_a_rotation_any_one_pair_verifies() -> None:
    both = f"{sign(OLD)},{sign(NEW)}"
    assert verify_pagerduty_signature(BODY, both, [NEW])
    assert verify_pagerduty_signature(BODY, both, [OLD])
    assert verify_pagerduty_signature(BODY, sign(OLD), [NEW, OLD])
    assert verify_pagerduty_signature(BODY, f" {sign(b'x')} , {sign(NEW)} ", [NEW])
    assert not verify_pagerduty_signature(BODY, f"{sign(OLD)},{sign(NEW)}", [b"third"])


def test_upper_case_hex_verifies() -> None:
    assert verify_pagerduty_signature(BODY, "v1=" + sign(NEW)[3:].upper(), [NEW])


def test_unknown_versions_are_ignored() -> None:
    digest = sign(NEW)[3:]
    assert not verify_pagerduty_signature(BODY, f"v2={digest}", [NEW])
    assert not verify_pagerduty_signature(BODY, f"V1={digest}", [NEW])
    assert verify_pagerduty_signature(BODY, f"v2=zzz,v1={digest}", [NEW])


@pytest.mark.parametrize(
    "header",
    [None, "", "v1", "v1=", "=", ",", "v1=,", "garbage", "v1=zz", "v1=ÿé€", "v1=\udcff",
     "v1=" + chr(0xD800), "v1=" + "a" * 64, "v1=" + "0" * 10_000],
)  # fmt: skip
def test_malformed_headers_do_not_verify(header: str | None) -> None:
    assert not verify_pagerduty_signature(BODY, header, [NEW])


def test_without_secrets_nothing_verifies() -> None:
    assert not verify_pagerduty_signature(BODY, sign(NEW), [])
