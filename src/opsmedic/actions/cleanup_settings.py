"""cleanup's settings: the `cleanup:` section of opsmedic.yaml, its roots and protected paths."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from opsmedic.config.types import Strict
from opsmedic.plugins import SettingsSpec

# No root may be one of these or hold one (`/`, `/var`), nor lie inside one: the system's
# programs, configuration and kernel interfaces, and the databases' usual homes.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/sbin", "/sys", "/usr", "/var/lib/mysql", "/var/lib/postgresql", "/var/lib/redis",
)  # fmt: skip


def system_dir_of(path: str) -> str | None:
    """The system directory `path` (absolute) is, holds or lies in; None when it is clear."""
    norm = posixpath.normpath(path)
    if norm == "/":
        return "/"
    for system in SYSTEM_DIRS:
        if posixpath.commonpath([norm, system]) in (norm, system):
            return system
    return None


def _protected(pattern: str) -> str:
    """A pattern normalised (`/srv//keep/` → `/srv/keep`), or refused: as written it could
    never equal a real path, so it would protect nothing, silently."""
    if not pattern.strip() or "\0" in pattern:
        raise ValueError(f"empty or holds a NUL byte: {pattern!r}")
    if "/" not in pattern:
        return pattern
    if not pattern.startswith("/"):
        raise ValueError(
            f"{pattern!r} holds a '/' but is not an absolute path: it is matched on real paths "
            "(write /srv/cache/keep), or give a bare name (keep)"
        )
    if ".." in pattern.split("/"):
        raise ValueError(f"{pattern!r} has a '..' segment")
    return posixpath.normpath(re.sub("/+", "/", pattern))


class CleanupConfig(Strict):
    """The config's `cleanup:` section: where cleanup may delete, and what it never touches."""

    roots: list[str] = Field(
        default_factory=list,
        description="absolute directories cleanup may delete in; none: every run is refused",
    )
    protected: list[Annotated[str, AfterValidator(_protected)]] = Field(
        default_factory=list,
        description="globs never deleted (case-insensitive): with a '/', an absolute path "
        "matched on the file's real path and its parents; else the name",
    )

    @field_validator("roots")
    @classmethod
    def _safe_roots(cls, roots: list[str]) -> list[str]:
        for i, root in enumerate(roots):
            if not root.startswith("/") or "\0" in root:
                raise ValueError(f"roots[{i}] {root!r} is not an absolute path")
            if ".." in root.split("/"):
                raise ValueError(f"roots[{i}] {root!r} has a '..' segment")
            system = system_dir_of(root)
            if system is not None:
                raise ValueError(
                    f"roots[{i}] {root!r} is, holds or lies inside {system}: cleanup never "
                    "deletes there"
                )
        return roots


# cleanup's section of opsmedic.yaml (`cleanup:`).
SETTINGS = SettingsSpec("cleanup", CleanupConfig)
