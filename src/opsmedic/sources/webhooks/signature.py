"""PagerDuty's webhook signature (`X-PagerDuty-Signature`): HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac


def verify_pagerduty_signature(body: bytes, header: str | None, secrets: list[bytes]) -> bool:
    """True when one `v1=<hex>` signature in the header is the body's HMAC under one secret.

    During a secret rotation PagerDuty sends one signature per secret, comma-separated;
    signatures of other versions are ignored. No header, or no secret, verifies nothing.
    """
    if not header or not secrets:
        return False
    expected = [hmac.new(secret, body, hashlib.sha256).hexdigest().encode() for secret in secrets]
    verified = False
    for part in header.split(","):
        version, _, signature = part.strip().partition("=")
        if version != "v1":
            continue
        given = signature.strip().lower().encode("utf-8", "surrogatepass")
        # Compare against every secret, match or not, so timing tells nothing of which one.
        for digest in expected:
            verified |= hmac.compare_digest(digest, given)
    return verified
