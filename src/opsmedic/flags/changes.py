"""What the store keeps of a flag: its current version, and each change with who made it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from opsmedic.flags.model import Flag

AuthorKind = Literal["cli", "api", "rule", "config"]
AUTHOR_KINDS: tuple[str, ...] = get_args(AuthorKind)


@dataclass(frozen=True, slots=True)
class Author:
    """Who made a change: a person at the CLI (`cli alice`), an API token (`api deploy-bot`),
    a rule with the run that acted (`rule kill-checkout`), or the config file that declared
    the flag (`config /etc/opsmedic/opsmedic.yaml`)."""

    kind: AuthorKind
    name: str
    run_id: str | None = None  # a rule's run only

    def __post_init__(self) -> None:
        if self.kind not in AUTHOR_KINDS:
            raise ValueError(f"author kind {self.kind!r}: one of {', '.join(AUTHOR_KINDS)}")
        if not self.name.strip():
            raise ValueError(f"a {self.kind} author needs a name")
        if self.run_id is not None and self.kind != "rule":
            raise ValueError("only a rule's change has a run id")

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @classmethod
    def parse(cls, text: str, run_id: str | None = None) -> Author:
        """The Author str() wrote (the store's `by` column) and its run id."""
        kind, _, name = text.partition(" ")
        if kind not in AUTHOR_KINDS:
            raise ValueError(f"not an author: {text!r}")
        return cls(kind, name, run_id)  # type: ignore[arg-type]  # checked just above


@dataclass(frozen=True, slots=True)
class FlagRecord:
    """A flag as the store holds it now."""

    flag: Flag
    version: int  # 1 for a new flag, one more at each change
    updated_at: float
    updated_by: Author  # without the run id: the history row of the version has it


@dataclass(frozen=True, slots=True)
class UnreadableFlag:
    """A flag row whose document is not a valid flag (edited by hand, or written by another
    opsmedic version): listed apart from the flags, with why, until a valid one replaces it."""

    key: str
    version: int
    updated_at: float
    updated_by: str  # as stored: a hand-edited row may not name an Author
    problem: str  # every field that is wrong, `field: message; …`
    doc: Any  # the stored document, as it is


class FlagListing(NamedTuple):
    """Every flag row of the store, by key: the valid flags and, apart, the unreadable ones."""

    records: list[FlagRecord]
    unreadable: list[UnreadableFlag]


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One change of one flag: the document before (None: the change created it, or it
    replaced one that was not a valid flag, then `before_problem` says why) and after."""

    key: str
    version: int  # the version the change made
    before: Flag | None
    after: Flag
    by: Author
    at: float
    before_problem: str | None = None

    def what(self) -> str:
        """The fields the change moved, e.g. `enabled: true → false`; `created` for the first."""
        if self.before_problem is not None:
            return f"replaced a document that was not a valid flag ({self.before_problem})"
        if self.before is None:
            return "created"
        old, new = self.before.model_dump(mode="json"), self.after.model_dump(mode="json")
        moved = [f"{name}: {_json(old.get(name))} → {_json(new.get(name))}"
                 for name in new if old.get(name) != new.get(name)]  # fmt: skip
        return "; ".join(moved) or "no change"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
