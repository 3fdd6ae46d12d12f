"""A rolling service's settings: its router, instances, batch size and each batch's analysis."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from opsmedic.config.canary import AnalysisConfig
from opsmedic.config.routers import RouterConfig, check_backend
from opsmedic.config.types import Strict


class RollingAnalysis(AnalysisConfig):
    """How a batch is judged once back in: the canary's analysis, each instance of the batch
    against the instances not yet replaced, plus an optional ceiling on its error ratio."""

    max_error_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="an instance's real-traffic error ratio above this "
        "(with min_samples requests) fails its batch; omitted: only the judge decides"
    )  # fmt: skip


class RollingConfig(Strict):
    """The instances behind the router, replaced `batch` at a time, each batch verified."""

    router: RouterConfig
    instances: list[str] = Field(
        min_length=2, description="host:port of each instance, in the order they are replaced"
    )
    batch: int = Field(1, ge=1, description="instances replaced at once")
    version_path: str | None = Field(
        None, pattern=r"^/[!-~]*$", description="each instance answers its version here"
    )
    analysis: RollingAnalysis

    @field_validator("instances")
    @classmethod
    def _instances(cls, instances: list[str]) -> list[str]:
        seen = set()
        for address in instances:
            check_backend("instance", address)
            if address in seen:
                raise ValueError(f"instance {address!r} is listed twice")
            seen.add(address)
        return instances

    @field_validator("batch")
    @classmethod
    def _batch(cls, batch: int, info: ValidationInfo) -> int:
        # Draining every instance at once would leave nothing to serve the users.
        count = len(info.data.get("instances") or [])
        if count and batch >= count:
            raise ValueError(f"batch {batch}: at most {count - 1} of the {count} instances, so "
                             "that some serve while a batch is replaced")  # fmt: skip
        return batch
