"""The public JSON of a flag and of one change, as the API answers and `--json` prints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from opsmedic.flags.changes import FlagChange, FlagRecord


class FlagView(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    version: int
    updated_at: float
    updated_by: str
    flag: dict[str, Any]  # the whole document, as PUT takes it

    @classmethod
    def of(cls, record: FlagRecord) -> FlagView:
        flag = record.flag
        return cls(key=flag.key, version=record.version, updated_at=record.updated_at,
                   updated_by=str(record.updated_by),
                   flag=flag.model_dump(mode="json"))  # fmt: skip


class FlagChangeView(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    version: int
    at: float
    by: str
    run_id: str | None
    before: dict[str, Any] | None  # None: this change created the flag
    after: dict[str, Any]

    @classmethod
    def of(cls, change: FlagChange) -> FlagChangeView:
        before = change.before.model_dump(mode="json") if change.before is not None else None
        return cls(key=change.key, version=change.version, at=change.at, by=str(change.by),
                   run_id=change.by.run_id, before=before,
                   after=change.after.model_dump(mode="json"))  # fmt: skip
