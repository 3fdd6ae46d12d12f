"""The instances the scaler started, kept in the state dir so a restarted opsmedic knows them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsmedic.errors import ScaleRefused
from opsmedic.files import flocked, write_atomic

_VERSION = 1
_LOCK_POLL_S = 0.05


@dataclass(slots=True)
class Instance:
    """Instance `n` as last recorded: `starting` (no traffic yet), `serving`, or `draining`
    (out of the upstream, not yet stopped). `pid` and `create_time` name a process the
    scaler ran itself (None: a systemd unit, or found in the upstream)."""

    n: int
    address: str
    state: str
    pid: int | None = None
    create_time: float | None = None
    started_at: float | None = None


@dataclass(slots=True)
class ScaledFleet:
    """A scaled service's record: its instances, when it was last scaled, and how many new
    instances never became healthy."""

    instances: dict[int, Instance] = field(default_factory=dict)
    last_scaled_at: float | None = None
    unhealthy: int = 0

    def serving(self) -> list[int]:
        return sorted(n for n, i in self.instances.items() if i.state == "serving")


class FleetFile:
    """`<state_dir>/scale/<service>.json`, written atomically; a lock file beside it keeps one
    scale of a service at a time, across processes."""

    def __init__(self, state_dir: Path, service: str) -> None:
        self.dir = state_dir / "scale"
        self.path = self.dir / f"{service}.json"
        self.logs = self.dir / service  # each instance's stdout and stderr, N.log

    def load(self) -> ScaledFleet | None:
        """The record, or None when there is none yet; ScaleRefused naming an unreadable one."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return ScaledFleet(
                instances={int(k): Instance(**v) for k, v in data["instances"].items()},
                last_scaled_at=data["last_scaled_at"],
                unhealthy=int(data["unhealthy"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ScaleRefused(f"{self.path}: unreadable, left for a human: {exc}") from None

    def save(self, fleet: ScaledFleet) -> None:
        data: dict[str, Any] = {
            "version": _VERSION,
            "instances": {str(n): asdict(i) for n, i in sorted(fleet.instances.items())},
            "last_scaled_at": fleet.last_scaled_at,
            "unhealthy": fleet.unhealthy,
        }
        write_atomic(self.path, json.dumps(data, indent=1))

    @contextlib.asynccontextmanager
    async def locked(self, deadline: float) -> AsyncIterator[None]:
        """Hold the service's scale lock (ScaleRefused once `deadline` passes)."""
        lock = self.dir / f".{self.path.stem}.lock"

        def busy() -> ScaleRefused:
            return ScaleRefused(f"another scale holds {lock}; try again later")

        async with flocked(lock, deadline, busy):
            yield
