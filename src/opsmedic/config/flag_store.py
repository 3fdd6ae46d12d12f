"""The `flag_store:` section: where flags are shared besides the store (absent: nowhere else)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from opsmedic.config.types import PositiveDuration, Strict
from opsmedic.flags.redis_wire import DEFAULT_PREFIX

REDIS_SCHEMES = ("redis", "rediss", "unix")


class RedisFlagStoreConfig(Strict):
    """The Redis every reader subscribes to; opsmedic writes each change there and in the
    store, or in neither."""

    url: str = Field(description="redis://[:password@]host:port/db, rediss://… or unix://…")
    prefix: str = Field(
        DEFAULT_PREFIX, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the names of the hash, counter and channel (docs/flags.md, Redis)",
    )  # fmt: skip
    timeout: PositiveDuration = Field(
        2.0, le=60, description="the longest a write waits for Redis (the store row waits too)"
    )
    check_every: PositiveDuration = Field(
        5.0, le=3600, description="how often opsmedic pings Redis and checks it kept its data"
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        # Only the scheme is named, so that a password in the URL never reaches a message.
        scheme = urlsplit(value).scheme
        if scheme not in REDIS_SCHEMES:
            raise ValueError(f"not a Redis URL (scheme {scheme or 'missing'}; use "
                             f"{', '.join(s + '://' for s in REDIS_SCHEMES)})")  # fmt: skip
        return value


class FlagStoreConfig(Strict):
    """`redis:` shares flags with other hosts and processes; without it flags live in the
    store only (the embedded default)."""

    redis: RedisFlagStoreConfig | None = None
