"""The flag model refuses every bad flag with an error at the very field, and fills in what a
boolean flag leaves out."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsmedic.flags.model import Flag, FlagType


def _errors(doc: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        Flag.model_validate(doc)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def _colors(**fields: Any) -> dict[str, Any]:
    return {"key": "color", "type": "string", "variants": {"red": "#f00", "blue": "#00f"},
            "default": "red", **fields}  # fmt: skip


def test_a_boolean_flag_needs_only_its_key() -> None:
    flag = Flag.model_validate({"key": "new_checkout"})
    assert (flag.type, flag.variants, flag.default, flag.off_variant, flag.enabled) == (
        FlagType.BOOLEAN, {"on": True, "off": False}, "on", "off", True
    )  # fmt: skip


def test_yaml_s_unquoted_on_and_off_name_the_variants() -> None:
    # `default: off` reaches pydantic as False; `serve: on` as True.
    flag = Flag.model_validate(
        {"key": "k", "default": False, "rules": [{"serve": True}], "rollout": {"percentage": 5}}
    )
    assert (flag.default, flag.rules[0].serve, flag.served(flag.rules and flag.rollout)) == (
        "off", "on", "on"
    )  # fmt: skip


def test_a_variant_flag_s_off_variant_is_its_default_unless_named() -> None:
    assert Flag.model_validate(_colors()).off_variant == "red"
    assert Flag.model_validate(_colors(off_variant="blue")).off_variant == "blue"


def test_a_flag_survives_its_json_round_trip() -> None:
    doc = _colors(
        rules=[{"name": "beta", "when": [
            {"attribute": "email", "op": "regex", "value": "@example\\.com$"},
            {"attribute": "version", "op": "semver_gte", "value": "2.1.0-rc.1"},
            {"attribute": "plan", "op": "in", "value": ["gold", "silver"], "negate": True},
        ], "rollout": {"percentage": 40, "variant": "blue", "stickiness": "orgId"}}],
        rollout={"percentage": 10, "variant": "blue", "group": "shared"},
    )  # fmt: skip
    flag = Flag.model_validate(doc)
    again = Flag.model_validate_json(flag.model_dump_json())
    assert again == flag
    assert again.rules[0].when[0].matches("bob@example.com")


@pytest.mark.parametrize(
    ("doc", "loc", "message"),
    [
        ({"key": "bad key"}, ("key",), "should match pattern"),
        ({"key": "k", "rollout": {"percentage": 101}}, ("rollout", "percentage"), "less than or"),
        ({"key": "k", "rollout": {"percentage": -1}}, ("rollout", "percentage"), "greater than"),
        ({"key": "k", "rollout": {"percentage": 12.5}}, ("rollout", "percentage"), "integer"),
        ({"key": "k", "default": "maybe"}, ("default",), "'maybe' is not a variant (known: on,"),
        ({"key": "k", "off_variant": "x"}, ("off_variant",), "'x' is not a variant"),
        ({"key": "k", "rules": [{"serve": "x"}]}, ("rules", 0, "serve"), "'x' is not a variant"),
        ({"key": "k", "rules": [{"when": []}]}, ("rules", 0), "exactly one of serve or rollout"),
        ({"key": "k", "rules": [{"serve": "on", "rollout": {"percentage": 1}}]}, ("rules", 0),
         "exactly one of serve or rollout"),
        ({"key": "k", "variants": {"on": 1, "off": False}}, ("variants", "on"),
         "a boolean flag's variant must be a boolean"),
        ({"key": "k", "type": "number", "variants": {"a": True}, "default": "a"},
         ("variants", "a"), "must be a number"),
        ({"key": "k", "type": "object", "variants": {"a": "x"}, "default": "a"},
         ("variants", "a"), "must be a object"),
        ({"key": "k", "type": "string", "variants": {"a": "x"}}, ("default",), "Field required"),
        ({"key": "k", "type": "string", "variants": {}, "default": "a"}, ("variants",),
         "at least 1 item"),
        ({"key": "k", "type": "string", "variants": {"a": "x"}, "default": "a",
          "rollout": {"percentage": 3}}, ("rollout", "variant"), "name the variant the rollout"),
        ({"key": "k", "type": "colour"}, ("type",), "Input should be"),
        ({"key": "k", "colour": 1}, ("colour",), "Extra inputs are not permitted"),
        ({"key": "k", "variants": {"not ok": True}}, ("variants", "not ok", "[key]"), "pattern"),
        # Strict: no coercion (docs/flags.md), on every path that validates a flag.
        ({"key": "k", "enabled": "no"}, ("enabled",), "valid boolean"),
        ({"key": "k", "enabled": 1}, ("enabled",), "valid boolean"),
        ({"key": "k", "rollout": {"percentage": True}}, ("rollout", "percentage"), "integer"),
        ({"key": "k", "rollout": {"percentage": "50"}}, ("rollout", "percentage"), "integer"),
        ({"key": "k", "rules": [{"when": [{"attribute": "a", "op": "equals", "value": 1,
          "negate": "yes"}], "serve": "on"}]}, ("rules", 0, "when", 0, "negate"), "boolean"),
        # NaN equals nothing, itself included; infinities have no JSON.
        ({"key": "k", "type": "number", "variants": {"a": float("nan"), "b": 1}, "default": "b"},
         ("variants", "a"), "finite number"),
        ({"key": "k", "type": "object", "variants": {"a": {"x": [1, float("-inf")]}},
          "default": "a"}, ("variants", "a", "x", 1), "finite number"),
        ({"key": "stream"}, ("key",), "'stream' is reserved: GET /api/v1/flags/stream is"),
    ],
)  # fmt: skip
def test_a_bad_flag_is_refused_at_the_field(
    doc: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    errors = _errors(doc)
    assert any(at == loc and message in msg for at, msg in errors), errors


def _condition(op: str, value: Any) -> dict[str, Any]:
    return {"key": "k", "rules": [{"when": [{"attribute": "a", "op": op, "value": value}],
                                   "serve": "off"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("regexp", "x", "Input should be 'equals', 'in', 'regex'"),
        ("regex", "(unclosed", "invalid regex: missing )"),
        ("regex", "a{2,1}", "invalid regex"),
        ("regex", "x" * 1001, "a regex of at most 1000 characters"),
        ("regex", 3, "`regex` takes a string"),
        ("semver_gte", "2.1", "'2.1' is not a semantic version"),
        ("semver_lt", "v1.0.0", "'v1.0.0' is not a semantic version"),
        ("semver_eq", ["1.0.0"], "`semver_eq` takes one value, not a list"),
        ("equals", ["a"], "`equals` takes one value, not a list"),
        ("in", "a", "`in` takes a list of values"),
        ("in", ["a", 1], "the values of `in` must all be of one type"),
        ("in", [], "at least 1 item"),
        ("equals", {"a": 1}, "Input should be"),
        ("equals", float("nan"), "Input should be a finite number (not NaN or infinity)"),
        ("in", [1.5, float("inf")], "finite number"),
    ],
)
def test_a_bad_condition_is_refused_at_its_value(op: str, value: Any, message: str) -> None:
    errors = _errors(_condition(op, value))
    where = ("rules", 0, "when", 0)
    assert any(at[:4] == where and message in msg for at, msg in errors), errors


def test_a_non_finite_value_is_one_error_at_the_value_not_one_per_type() -> None:
    doc = _condition("equals", float("nan"))
    assert [at for at, _ in _errors(doc)] == [("rules", 0, "when", 0, "value")]
    assert [at for at, _ in _errors(_condition("in", [1, float("inf")]))] == [
        ("rules", 0, "when", 0, "value", 1)
    ]


def test_every_wrong_reference_is_reported_at_once() -> None:
    errors = _errors({"key": "k", "default": "a", "rules": [{"serve": "b"}, {"serve": "on"}]})
    assert [at for at, _ in errors] == [("default",), ("rules", 0, "serve")]


def test_a_flag_cannot_be_changed_in_place() -> None:
    flag = Flag.model_validate({"key": "k"})
    with pytest.raises(ValidationError, match="frozen"):
        flag.enabled = False  # type: ignore[misc]
