"""evaluate(): the first matching rule, rollouts, the off switch, OpenFeature's reasons, and
ERROR with the default variant for every context it cannot read, never an exception."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmedic.flags.bucket import in_rollout
from opsmedic.flags.evaluate import ErrorCode, Reason, Resolution, evaluate
from opsmedic.flags.model import Flag


def _flag(**fields: Any) -> Flag:
    return Flag.model_validate({"key": "new_checkout", **fields})


def _when(attribute: str, op: str, value: Any, negate: bool = False) -> dict[str, Any]:
    return {"attribute": attribute, "op": op, "value": value, "negate": negate}


CHECKOUT = _flag(
    default="off",
    rules=[
        {"name": "staff", "when": [_when("email", "regex", r"@example\.com$")], "serve": "on"},
        {"name": "old apps", "when": [_when("app", "semver_lt", "2.0.0")], "serve": "off"},
        {"name": "gold", "when": [_when("plan", "in", ["gold"])],
         "rollout": {"percentage": 50, "stickiness": "orgId"}},
    ],
    rollout={"percentage": 20},
)  # fmt: skip


def test_a_flag_without_rules_is_static() -> None:
    assert evaluate(_flag(), {}) == Resolution(True, "on", Reason.STATIC)


def test_a_disabled_flag_serves_its_off_variant_whatever_the_context() -> None:
    flag = _flag(enabled=False, rules=[{"serve": "on"}])
    assert evaluate(flag, {"targetingKey": "u"}) == Resolution(False, "off", Reason.DISABLED)
    assert evaluate(flag, None) == Resolution(False, "off", Reason.DISABLED)  # type: ignore[arg-type]


def test_the_first_rule_whose_conditions_all_hold_serves() -> None:
    staff = {"email": "ann@example.com", "app": "1.0.0", "targetingKey": "u1"}
    assert evaluate(CHECKOUT, staff) == Resolution(True, "on", Reason.TARGETING_MATCH)
    old = {"email": "bob@corp.org", "app": "1.9.9", "targetingKey": "u1"}
    assert evaluate(CHECKOUT, old) == Resolution(False, "off", Reason.TARGETING_MATCH)


def test_a_rule_s_rollout_lets_the_rest_fall_through_to_the_next() -> None:
    """Gold orgs in their 50 % get SPLIT; the others reach the flag's 20 % by targetingKey."""
    orgs = [f"org{i}" for i in range(200)]
    inside = next(o for o in orgs if in_rollout(50, o, "new_checkout"))
    outside = next(o for o in orgs if not in_rollout(50, o, "new_checkout"))
    users = [f"user{i}" for i in range(200)]
    user_out = next(u for u in users if not in_rollout(20, u, "new_checkout"))
    user_in = next(u for u in users if in_rollout(20, u, "new_checkout"))
    gold = {"plan": "gold", "targetingKey": user_out}
    assert evaluate(CHECKOUT, {**gold, "orgId": inside}).reason == Reason.SPLIT
    assert evaluate(CHECKOUT, {**gold, "orgId": outside}) == Resolution(
        False, "off", Reason.DEFAULT
    )
    assert evaluate(CHECKOUT, {"targetingKey": user_in}) == Resolution(True, "on", Reason.SPLIT)


def test_a_rollout_uses_its_group_as_salt_when_given() -> None:
    users = [f"user{i}" for i in range(400)]
    flag = _flag(default="off", rollout={"percentage": 30, "group": "shared"})
    served = [evaluate(flag, {"targetingKey": u}).value for u in users]
    assert served == [in_rollout(30, u, "shared") for u in users]
    assert served != [in_rollout(30, u, "new_checkout") for u in users]


def test_an_integer_key_hashes_as_its_text() -> None:
    flag = _flag(default="off", rollout={"percentage": 50})
    assert [evaluate(flag, {"targetingKey": i}) for i in range(50)] == [
        evaluate(flag, {"targetingKey": str(i)}) for i in range(50)
    ]


@pytest.mark.parametrize(
    ("op", "value", "attribute", "expected"),
    [
        ("equals", "fr", "fr", True),
        ("equals", "fr", "FR", False),
        ("equals", 3, 3.0, True),
        ("equals", True, True, True),
        ("in", [1, 2], 2, True),
        ("in", ["a", "b"], "c", False),
        ("regex", "^v[0-9]+$", "v12", True),
        ("regex", "beta", "a beta tester", True),  # a search, not a full match
        ("semver_eq", "1.2.3", "1.2.3+build.7", True),  # build metadata has no precedence
        ("semver_lt", "1.0.0", "1.0.0-rc.1", True),  # a pre-release comes before its release
        ("semver_lt", "1.0.0-rc.10", "1.0.0-rc.9", True),  # numeric identifiers, numerically
        ("semver_lte", "1.0.0", "1.0.0", True),
        ("semver_gt", "1.0.0", "1.0.0", False),
        ("semver_gte", "1.10.0", "1.9.0", False),
    ],
)
def test_each_operator(op: str, value: Any, attribute: object, expected: bool) -> None:
    for negate in (False, True):
        flag = _flag(
            default="off", rules=[{"when": [_when("a", op, value, negate)], "serve": "on"}]
        )
        assert evaluate(flag, {"a": attribute}).value is (expected is not negate)


def test_a_missing_attribute_never_matches_negated_or_not() -> None:
    flag = _flag(default="off", rules=[{"when": [_when("a", "equals", "x", True)], "serve": "on"}])
    assert evaluate(flag, {}) == Resolution(False, "off", Reason.DEFAULT)
    assert evaluate(flag, {"a": None}) == Resolution(False, "off", Reason.DEFAULT)


def test_object_variants_are_served_as_copies() -> None:
    flag = Flag.model_validate({"key": "limits", "type": "object",
                                "variants": {"std": {"max": [1, 2]}}, "default": "std"})  # fmt: skip
    served = evaluate(flag, {}).value
    assert isinstance(served, dict)
    served["max"].append(3)
    assert evaluate(flag, {}).value == {"max": [1, 2]}


@pytest.mark.parametrize(
    ("context", "code", "message"),
    [
        (None, ErrorCode.INVALID_CONTEXT, "the context is a NoneType, not a mapping"),
        (["email"], ErrorCode.INVALID_CONTEXT, "the context is a list"),
        ({"email": 3}, ErrorCode.INVALID_CONTEXT, "attribute 'email' is int, a regex needs"),
        ({"email": "x", "app": 2}, ErrorCode.INVALID_CONTEXT, "'app' is int, a semantic"),
        ({"email": "x", "app": "2.1"}, ErrorCode.INVALID_CONTEXT, "'2.1' is not a semantic"),
        ({"email": "x", "plan": True}, ErrorCode.INVALID_CONTEXT, "'plan' is bool, compared"),
        ({"plan": "gold"}, ErrorCode.TARGETING_KEY_MISSING, "needs the attribute 'orgId'"),
        ({"targetingKey": 1.5}, ErrorCode.INVALID_CONTEXT, "is float; a rollout hashes"),
        ({"targetingKey": False}, ErrorCode.INVALID_CONTEXT, "is bool; a rollout hashes"),
        ({}, ErrorCode.TARGETING_KEY_MISSING, "needs the attribute 'targetingKey'"),
    ],
)
def test_a_context_it_cannot_read_is_an_error_with_the_default(
    context: Any, code: ErrorCode, message: str
) -> None:
    got = evaluate(CHECKOUT, context)
    assert (got.value, got.variant, got.reason, got.error_code) == (
        False, "off", Reason.ERROR, code
    )  # fmt: skip
    assert message in (got.error_message or "")


def test_a_regex_that_runs_past_its_time_limit_is_a_general_error() -> None:
    flag = _flag(
        default="off", rules=[{"when": [_when("a", "regex", "^(x+x+)+y$")], "serve": "on"}]
    )
    got = evaluate(flag, {"a": "x" * 5000})
    assert (got.reason, got.error_code, got.value) == (Reason.ERROR, ErrorCode.GENERAL, False)
    assert "time limit" in (got.error_message or "")


class _Exploding(Mapping[str, object]):
    """A context whose every read fails: an application's own mapping type gone wrong."""

    def __getitem__(self, key: str) -> object:
        raise RuntimeError("boom")

    def __iter__(self) -> Any:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_a_context_that_raises_is_a_general_error() -> None:
    got = evaluate(CHECKOUT, _Exploding())
    assert (got.reason, got.error_code, got.error_message) == (
        Reason.ERROR, ErrorCode.GENERAL, "RuntimeError: boom"
    )  # fmt: skip


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_ATTRIBUTES = st.sampled_from(["email", "app", "plan", "orgId", "targetingKey", "other"])


@given(st.dictionaries(_ATTRIBUTES, _JSON, max_size=6) | _JSON)
def test_evaluate_never_raises_and_serves_a_variant(context: Any) -> None:
    got = evaluate(CHECKOUT, context)
    assert got.variant in CHECKOUT.variants
    assert got.value == CHECKOUT.variants[got.variant]
    assert (got.reason == Reason.ERROR) == (got.error_code is not None)
