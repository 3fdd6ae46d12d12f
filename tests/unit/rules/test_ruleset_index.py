"""The rule index never changes an answer: indexed matching equals testing every rule."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.model import Event, Status
from opsmedic.rules.conditions import compile_when
from opsmedic.rules.model import Rule, Step
from opsmedic.rules.ruleset import RuleSet

WORDS = st.sampled_from(["a", "b", "c"])
FIELDS = ["source", "kind", "resource", "host", "labels.env", "labels.team"]

STATUSES = st.sampled_from([s.value for s in Status])
conditions = st.builds(
    lambda fields, status: {**fields, **status},
    st.dictionaries(
        st.sampled_from([*FIELDS, "value"]),
        st.one_of(
            WORDS, st.sampled_from(["> 5", "<= 3", "=~ ^a", "!= b"]), st.lists(WORDS, min_size=1)
        ),
        max_size=4,
    ),
    # A status condition names a real status (others are refused when rules load).
    st.dictionaries(
        st.just("status"), st.one_of(STATUSES, st.lists(STATUSES, min_size=1)), max_size=1
    ),
)
events = st.builds(
    Event,
    source=WORDS, kind=WORDS, resource=WORDS, host=WORDS,
    labels=st.dictionaries(st.sampled_from(["env", "team"]), WORDS),
    value=st.one_of(st.none(), st.integers(0, 9), WORDS),
    status=st.sampled_from(list(Status)),
)  # fmt: skip


def rule(i: int, when: dict[str, Any]) -> Rule:
    fixed = {("labels" if k.startswith("labels.") else k): v for k, v in when.items()}
    if any(k.startswith("labels.") for k in when):
        fixed["labels"] = {k[7:]: v for k, v in when.items() if k.startswith("labels.")}
    return Rule(name=f"r{i}", index=i, condition=compile_when(fixed), steps=[Step("noop", {}, "")])


@settings(max_examples=300, deadline=None)
@given(st.lists(conditions, max_size=12), st.lists(events, min_size=1, max_size=8))
def test_indexed_match_equals_brute_force(whens: list[dict[str, Any]], evs: list[Event]) -> None:
    rules = [rule(i, w) for i, w in enumerate(whens)]
    ruleset = RuleSet(rules)
    for event in evs:
        expected = [r.name for r in rules if r.condition(event)]
        assert [r.name for r in ruleset.match(event)] == expected
