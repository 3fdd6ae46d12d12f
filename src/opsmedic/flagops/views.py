"""The public JSON of a flag and of one change, as the API answers and `--json` prints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue

from opsmedic.flags.changes import FlagChange, FlagListing, FlagRecord, UnreadableFlag


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


class FlagProblemView(BaseModel):
    """A flag row whose document is not a valid flag: why, and the document as stored."""

    model_config = ConfigDict(frozen=True)

    key: str
    version: int
    updated_at: float
    updated_by: str
    problem: str
    doc: JsonValue

    @classmethod
    def of(cls, found: UnreadableFlag) -> FlagProblemView:
        return cls(key=found.key, version=found.version, updated_at=found.updated_at,
                   updated_by=found.updated_by, problem=found.problem,
                   doc=found.doc)  # fmt: skip


class FlagListView(BaseModel):
    """`GET /api/v1/flags` and `flags list --json`: the valid flags, and apart the rows that
    are not valid flags (empty when all are)."""

    model_config = ConfigDict(frozen=True)

    flags: list[FlagView]
    problems: list[FlagProblemView]

    @classmethod
    def of(cls, listing: FlagListing) -> FlagListView:
        return cls(flags=[FlagView.of(r) for r in listing.records],
                   problems=[FlagProblemView.of(u) for u in listing.unreadable])  # fmt: skip


class FlagChangeView(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    version: int
    at: float
    by: str
    run_id: str | None
    before: dict[str, Any] | None  # None: this change created the flag (or see below)
    after: dict[str, Any]
    before_problem: str | None = None  # it replaced a document that was not a valid flag

    @classmethod
    def of(cls, change: FlagChange) -> FlagChangeView:
        before = change.before.model_dump(mode="json") if change.before is not None else None
        return cls(key=change.key, version=change.version, at=change.at, by=str(change.by),
                   run_id=change.by.run_id, before=before,
                   after=change.after.model_dump(mode="json"),
                   before_problem=change.before_problem)  # fmt: skip
