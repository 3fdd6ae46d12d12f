"""The `when:` compiler: every operator, the implicit firing guard, and located errors."""

from __future__ import annotations

import pytest

from opsmedic.model import Event, Status
from opsmedic.rules.conditions import ConditionError, compile_when


def ev(**kw: object) -> Event:
    base: dict[str, object] = {"source": "disk", "kind": "usage", "resource": "/var/log"}
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("when", "event", "expected"),
    [
        ({"source": "disk"}, ev(), True),
        ({"source": "http"}, ev(), False),
        ({"value": "> 85"}, ev(value=90.5), True),
        ({"value": "> 85"}, ev(value=85), False),
        ({"value": ">= 85"}, ev(value=85), True),
        ({"value": "< 10"}, ev(value="5"), True),  # numbers written as text still compare
        ({"value": "<= 10"}, ev(value="not a number"), False),
        ({"value": 5}, ev(value="5.0"), True),
        ({"value": {"gt": 1, "lt": 3}}, ev(value=2), True),
        ({"value": {"gt": 1, "lt": 3}}, ev(value=3), False),
        ({"kind": "=~ ^us"}, ev(), True),
        ({"kind": {"regex": "^x"}}, ev(), False),
        ({"kind": "!~ ^x"}, ev(), True),
        ({"kind": "!= usage"}, ev(), False),
        ({"kind": ["a", "usage"]}, ev(), True),
        ({"kind": {"not_in": ["a", "usage"]}}, ev(), False),
        ({"labels": {"team": "db"}}, ev(labels={"team": "db"}), True),
        ({"labels.team": "db"}, ev(labels={"team": "web"}), False),
        ({"labels": {"team": {"exists": False}}}, ev(), True),  # a missing label is not-exists
        ({"labels": {"team": {"exists": True}}}, ev(), False),
        ({"payload.a.b": 1}, ev(payload={"a": {"b": 1}}), True),
        ({"payload.a.b": 1}, ev(payload={"a": "flat"}), False),
        ({"payload.msg": {"contains": "oom"}}, ev(payload={"msg": "killed: oom"}), True),
        ({"target": "/var/log"}, ev(), True),
        ({"any": [{"kind": "x"}, {"source": "disk"}]}, ev(), True),
        ({"all": [{"kind": "usage"}, {"source": "x"}]}, ev(), False),
        ({"not": {"kind": "usage"}}, ev(), False),
        ({"source": "disk"}, ev(status=Status.RESOLVED), False),  # implicit status: firing
        ({"status": "resolved"}, ev(status=Status.RESOLVED), True),
        ({"status": ["firing", "resolved"]}, ev(status=Status.RESOLVED), True),
        ({"labels": {"on": True}}, ev(labels={"on": "true"}), True),
        # all/any/not keep their meaning next to a status condition (no implicit status inside)
        ({"status": "resolved", "not": {"host": "a"}}, ev(host="a", status=Status.RESOLVED), False),
        ({"status": "resolved", "any": [{"kind": "usage"}]}, ev(status=Status.RESOLVED), True),
        ({"any": [{"status": "resolved"}, {"kind": "x"}]}, ev(status=Status.RESOLVED), True),
        ({"labels": {"status": "x"}}, ev(labels={"status": "x"}, status=Status.RESOLVED), False),
    ],
)
def test_it_evaluates_each_operator(when: dict[str, object], event: Event, expected: bool) -> None:
    """Each documented form of condition gives the documented answer."""
    assert compile_when(when)(event) is expected


def test_it_names_the_first_failed_check_and_its_value() -> None:
    """`rules test` relies on the first failure and the value that made it fail."""
    cond = compile_when({"source": "disk", "value": "> 85", "labels": {"team": "db"}})
    failed = cond.first_failure(ev(value=70, labels={"team": "db"}))
    assert failed is not None
    assert failed.describe == "value > 85"
    assert failed.actual(ev(value=70)) == 70


def test_it_collects_exact_fields_for_the_index() -> None:
    """Only plain string equality is indexable; numbers and operators are not."""
    cond = compile_when(
        {
            "source": "disk",
            "kind": {"eq": "usage"},
            "value": 5,
            "labels": {"team": "db"},
            "host": "=~ web",
        }
    )
    assert cond.exact == {"source": "disk", "kind": "usage", "labels.team": "db"}


@pytest.mark.parametrize(
    ("when", "loc", "text"),
    [
        ({"kind": {"regex": "("}}, ("when", "kind", "regex"), "does not compile"),
        ({"knd": "x"}, ("when", "knd"), "did you mean kind"),
        ({"kind": {"regx": "x"}}, ("when", "kind", "regx"), "did you mean regex"),
        ({"value": {"gt": "lots"}}, ("when", "value", "gt"), "needs a number"),
        ({"any": []}, ("when", "any"), "non-empty list"),
        ({"not": ["x"]}, ("when", "not"), "one condition mapping"),
        ({"labels": {"a": {"exists": "yes"}}}, ("when", "labels", "a", "exists"), "true or false"),
        ({"kind": {"in": []}}, ("when", "kind", "in"), "non-empty list"),
        ({"all": [{"kind": {"regex": "["}}]}, ("when", "all", 0, "kind", "regex"), "compile"),
    ],
)
def test_it_reports_bad_conditions_where_they_are(
    when: dict[str, object], loc: tuple[object, ...], text: str
) -> None:
    """A bad condition names its path (the loader turns it into file:line:col)."""
    with pytest.raises(ConditionError) as info:
        compile_when(when)
    assert info.value.loc == loc
    assert text in info.value.message
