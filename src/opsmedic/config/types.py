"""Small value types shared by config, rules and API bodies: durations, secrets, plain text."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opsmedic.utf8 import hiding

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# A plain number of seconds; not float()'s syntax, which also takes "nan", "inf" and "1e3".
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: Any) -> float:
    """'90s', '1h30m', '500ms', '2d' or a number of seconds → seconds (float, ≥ 0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 10m, 1h, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):  # YAML's .nan and .inf are floats
            raise ValueError(f"a duration is a finite number: {value!r}")
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        if _SECONDS.fullmatch(value.strip()):  # as given on a command line: `--min-age 0`
            return float(value)
        text = value.strip().replace(" ", "")
        pos, total = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return total
    raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 10m, 1h30m, 2d)")


Duration = Annotated[float, BeforeValidator(parse_duration)]
# An HTTP method, in any case as written ("get" is GET).
HttpMethod = Annotated[
    Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]
# A time budget: zero would mean "give up before starting".
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"expected an IP address, got {value!r}") from None


def http_url(url: str) -> str:
    """An http(s) URL with a host and a valid port, and no password (URLs get recorded)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
    if parts.password:
        raise ValueError("no password in the URL: use secret_headers (e.g. Authorization)")
    try:
        parts.port  # noqa: B018 - parsed on access: a bad port fails here, not at each use
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    return url


HttpUrlText = Annotated[str, AfterValidator(http_url)]
# An IPv4 or IPv6 address, kept as text in its canonical form (`::1`, not `0:0::1`).
IPAddressText = Annotated[str, AfterValidator(_ip_address)]


def plain_text(value: str) -> str:
    """`value` unchanged if it shows as written: no control character, lone surrogate or bidi
    override (utf8.hiding); else ValueError."""
    problem = hiding(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Names and identifiers that a request stores and people read back: one line of printable text.
PlainText = Annotated[str, AfterValidator(plain_text)]


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors (with close matches), not ignored."""

    model_config = ConfigDict(extra="forbid")


def credential_name(path: Path) -> str:
    """The name a secret file gets as a systemd credential (`LoadCredential=NAME:PATH`): its
    absolute path with `/` as `_`, so two files never share a name and either side derives it."""
    return str(path).strip("/").replace("/", "_")


def credential_path(path: Path) -> Path:
    """Where to read the secret file `path`: its copy in $CREDENTIALS_DIRECTORY when systemd
    passed it (the service user need not be able to read the original), else the file."""
    if directory := os.environ.get("CREDENTIALS_DIRECTORY"):
        passed = Path(directory) / credential_name(path)
        if passed.is_file():
            return passed
    return path


class Secret(BaseModel):
    """A secret taken from an environment variable or a file, never written in a rule file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: NAME or file: PATH")
        return self

    def reveal(self) -> str:
        """The secret's value, read at the moment it is needed (so rotation needs no restart)."""
        if self.env is not None:
            try:
                return os.environ[self.env]
            except KeyError:
                raise ValueError(f"environment variable {self.env} is not set") from None
        assert self.file is not None
        return credential_path(self.file).read_text().strip()

    def __repr__(self) -> str:
        return f"Secret(env={self.env!r})" if self.env else f"Secret(file={str(self.file)!r})"
