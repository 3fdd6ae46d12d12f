"""The run listing's filters: the times `since` and `until` accept, and those they refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsmedic.model import Queue, RunState
from opsmedic.store.run_query import RunFilter

T = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    "text",
    [str(T), "1800000000", "2027-01-15T08:00:00Z", "2027-01-15 08:00", "2027-01-15T09:00+01:00",
     " 2027-01-15T08:00:00 "],
)  # fmt: skip
def test_a_time_is_epoch_seconds_or_iso_8601_in_utc_without_a_zone(text: str) -> None:
    assert RunFilter.model_validate({"since": text, "until": text}).since == T


@pytest.mark.parametrize("text", ["yesterday", "", "nan", "inf", "-1e400", "2027-13-01"])
def test_what_is_no_time_is_refused_naming_the_field(text: str) -> None:
    for field in ("since", "until"):
        with pytest.raises(ValidationError) as refused:
            RunFilter.model_validate({field: text})
        assert refused.value.errors()[0]["loc"] == (field,)


def test_names_and_enums() -> None:
    parsed = RunFilter.model_validate({"state": "failed", "queue": "investigation", "rule": "r"})
    assert (parsed.state, parsed.queue, parsed.rule) == (RunState.FAILED, Queue.INVESTIGATION, "r")
    for field, text in (("rule", "a\x00b"), ("action", "\x00"), ("target", "x\x00"),
                        ("state", "lost"), ("queue", "later")):  # fmt: skip
        with pytest.raises(ValidationError) as refused:
            RunFilter.model_validate({field: text})
        assert refused.value.errors()[0]["loc"] == (field,)
