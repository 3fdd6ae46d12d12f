"""API tokens: minted once, shown once, kept only as a SHA-256 hash, each with its scopes."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

from opsmedic.model import TokenRecord, new_id
from opsmedic.utf8 import hiding

PREFIX = "om_"  # recognisable in a leaked-secret scan, like GitHub's ghp_


class Scope(StrEnum):
    """What a token may do; `admin` implies every other scope."""

    INGEST = "ingest"  # post events and webhooks
    READ = "read"  # read events, runs, incidents, rules, metrics
    OPERATE = "operate"  # change the running service: reload rules, resolve an incident
    ADMIN = "admin"  # manage tokens


def digest(secret: str) -> str:
    """The stored form of a token; 256 random bits need no slow hash against guessing."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def mint(name: str, scopes: list[Scope], now: float) -> tuple[TokenRecord, str]:
    """A new token record and its secret (to be shown to the user once)."""
    if not name.strip():
        raise ValueError("a token needs a name")
    if (problem := hiding(name)) is not None:  # its name is who acts over the API
        raise ValueError(f"the name holds a {problem}")
    if not scopes:
        raise ValueError("a token needs at least one scope")
    secret = PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(new_id(), name, tuple(sorted(set(scopes))), now, None)
    return record, secret


def allows(record: TokenRecord, scope: Scope) -> bool:
    return scope.value in record.scopes or Scope.ADMIN.value in record.scopes
