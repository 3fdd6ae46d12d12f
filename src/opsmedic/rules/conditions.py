"""Compile a rule's `when:` mapping once into fast checks that can also say which one failed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from opsmedic.config.located import boolean_hint, unknown_name
from opsmedic.model import Event, Status

Getter = Callable[[Event], Any]
Test = Callable[[Event], bool]
Loc = tuple[str | int, ...]
# Where the rule file holds an unquoted YAML boolean, and its text (`yes`, `off`…).
Booleans = Mapping[Loc, str]

EVENT_FIELDS = ("source", "kind", "resource", "host", "severity", "status", "fingerprint",
                "value", "target", "id")  # fmt: skip
STATUSES = tuple(s.value for s in Status)
INDEXED_FIELDS = ("source", "kind", "resource", "host", "severity", "fingerprint", "target")
# Event fields that always hold text (labels.* too): a boolean can never equal one of them.
TEXT_FIELDS = (*INDEXED_FIELDS, "status", "id")
COMBINATORS = ("all", "any", "not")
OPERATORS = (
    "eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "regex", "not_regex", "exists", "contains",
)  # fmt: skip
# Longest first, so '>=' is not read as '>' followed by '= 5'.
_PREFIXES = (("=~", "regex"), ("!~", "not_regex"), (">=", "ge"), ("<=", "le"), ("==", "eq"),
             ("!=", "ne"), (">", "gt"), ("<", "lt"))  # fmt: skip


class ConditionError(ValueError):
    """A `when:` problem at a path inside the rule, e.g. ('when', 'labels', 'x', 'regex')."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(slots=True)
class Check:
    """One compiled condition: a test, how to describe it, and how to read the tested value."""

    describe: str
    test: Test
    actual: Getter


@dataclass(slots=True)
class Condition:
    """A conjunction of checks.

    `exact` holds the field == string pairs a hash index can decide; `rest` holds the checks
    that are left once the index has matched those, so an indexed rule never tests them twice.
    """

    checks: list[Check]
    exact: dict[str, str] = field(default_factory=dict)
    rest: list[Check] = field(default_factory=list)

    def __call__(self, event: Event) -> bool:
        return _all(self.checks, event)

    def rest_holds(self, event: Event) -> bool:
        """The condition, given that every `exact` pair already matched."""
        return _all(self.rest, event)

    def first_failure(self, event: Event) -> Check | None:
        for check in self.checks:
            if not check.test(event):
                return check
        return None


def _all(checks: list[Check], event: Event) -> bool:
    # A plain loop: all() over a generator costs ~2x on this hot path.
    for check in checks:  # noqa: SIM110
        if not check.test(event):
            return False
    return True


def compile_when(
    when: dict[str, Any],
    loc: tuple[str | int, ...] = ("when",),
    nested: bool = False,
    errors: list[ConditionError] | None = None,
    booleans: Booleans | None = None,  # the file's unquoted YAML booleans: refuses `kind: yes`
) -> Condition:
    """Compile a `when:` mapping (without its `for:`) into a Condition; raises ConditionError,
    or, given `errors`, collects one per top-level key there and compiles the rest.

    Only the top level adds the implicit `status: firing`: inside all/any/not it would
    change what the operator wrote (`not: {host: a}` must not mean "not firing").
    """
    checks: list[Check] = []
    rest: list[Check] = []
    exact: dict[str, str] = {}
    for key, spec in when.items():
        try:
            compiled = _key_checks(str(key), spec, (*loc, key), booleans or {})
        except ConditionError as exc:
            if errors is None:
                raise
            errors.append(exc)
            continue
        for check, name, value in compiled:
            checks.append(check)
            if value is not None and _indexable(name) and name not in exact:
                exact[name] = value
            else:
                rest.append(check)
    if not nested and not _mentions_status(when):
        # A resolved alert must never start a remediation unless the rule asks for it.
        checks.append(Check("status == 'firing' (implicit)", _eq_test(_getter("status"), "firing"),
                            _getter("status")))  # fmt: skip
        rest.append(checks[-1])
    return Condition(checks, exact, rest)


def _key_checks(
    key: str, spec: Any, loc: tuple[str | int, ...], booleans: Booleans
) -> list[tuple[Check, str, str | None]]:
    """The checks of one key of a `when:` mapping (a combinator is one check, never indexed)."""
    if key in COMBINATORS:
        return [(_combinator(key, spec, loc, booleans), key, None)]
    return _field_checks(key, spec, loc, booleans)


def _indexable(name: str) -> bool:
    """Fields whose event values are plain hashable text (status is an enum: left out)."""
    return name in INDEXED_FIELDS or name.startswith("labels.")


def _mentions_status(when: dict[str, Any]) -> bool:
    """Whether the rule speaks of the event's status, at the top or inside all/any/not
    (a label or payload key called `status` is something else)."""
    for key, spec in when.items():
        if key == "status":
            return True
        if key == "not" and isinstance(spec, dict) and _mentions_status(spec):
            return True
        listed = spec if key in ("all", "any") and isinstance(spec, list) else []
        if any(isinstance(s, dict) and _mentions_status(s) for s in listed):
            return True
    return False


def _combinator(key: str, spec: Any, loc: tuple[str | int, ...], booleans: Booleans) -> Check:
    if key == "not":
        if not isinstance(spec, dict):
            raise ConditionError(loc, "`not` takes one condition mapping")
        inner = compile_when(spec, loc, nested=True, booleans=booleans)
        return Check(f"not {_describe(inner)}", lambda e: not inner(e), lambda e: None)
    if not isinstance(spec, list) or not spec or not all(isinstance(s, dict) for s in spec):
        raise ConditionError(loc, f"`{key}` takes a non-empty list of condition mappings")
    parts = [compile_when(s, (*loc, i), nested=True, booleans=booleans) for i, s in enumerate(spec)]
    if key == "all":
        return Check(f"all of {_describe_many(parts)}", lambda e: all(p(e) for p in parts),
                     lambda e: None)  # fmt: skip
    return Check(f"any of {_describe_many(parts)}", lambda e: any(p(e) for p in parts),
                 lambda e: None)  # fmt: skip


def _describe(cond: Condition) -> str:
    return " and ".join(c.describe for c in cond.checks if not c.describe.endswith("(implicit)"))


def _describe_many(conds: list[Condition]) -> str:
    return "[" + "; ".join(f"({_describe(c)})" for c in conds) + "]"


def _field_checks(
    key: str, spec: Any, loc: tuple[str | int, ...], booleans: Booleans
) -> list[tuple[Check, str, str | None]]:
    """(check, field, exact string or None) for one field; `labels: {team: x}` recurses."""
    if key in ("labels", "payload") and isinstance(spec, dict) and not _is_operator_map(spec):
        out = []
        for sub, sub_spec in spec.items():
            out.extend(_field_checks(f"{key}.{sub}", sub_spec, (*loc, sub), booleans))
        return out
    getter = _getter(key, loc)
    if key in TEXT_FIELDS or key.startswith("labels."):
        _refuse_booleans(key, spec, loc, booleans)
    if isinstance(spec, dict):
        if not spec:
            raise ConditionError(loc, "empty operator mapping")
        return [
            (_operator(key, getter, op, arg, (*loc, op)), key, _exact(op, arg))
            for op, arg in spec.items()
        ]
    if isinstance(spec, list):
        return [(_operator(key, getter, "in", spec, loc), key, None)]
    if isinstance(spec, str):
        op, arg = _split_prefix(spec)
        if op:
            return [(_operator(key, getter, op, arg, loc), key, _exact(op, arg))]
    return [(_operator(key, getter, "eq", spec, loc), key, _exact("eq", spec))]


def _refuse_booleans(key: str, spec: Any, loc: Loc, booleans: Booleans) -> None:
    """Raise where a text field is compared with an unquoted `yes`/`no`/`on`/`off`."""
    # YAML 1.1 made those True/False, which no text equals. An unquoted `true`/`false` is
    # left alone: a boolean is compared by its lowercase name, which is what was written
    # (`labels: {canary: true}` matches the label "true").
    if isinstance(spec, dict):
        for op, arg in spec.items():
            if op in OPERATORS and op != "exists":  # an unknown operator is its own error
                _refuse_booleans(key, arg, (*loc, op), booleans)
    elif isinstance(spec, list):
        for i, item in enumerate(spec):
            _refuse_booleans(key, item, (*loc, i), booleans)
    elif isinstance(spec, bool):
        text = booleans.get(tuple(p if isinstance(p, int) else str(p) for p in loc))
        if text is not None and text.lower() not in ("true", "false"):
            raise ConditionError(loc, f"{key} is text: {boolean_hint(text)}")


def _exact(op: str, arg: Any) -> str | None:
    """The string an `eq` check needs, for the index; numbers are left out (5 == '5.0')."""
    return arg if op == "eq" and isinstance(arg, str) and _number(arg) is None else None


def _is_operator_map(spec: dict[str, Any]) -> bool:
    return bool(spec) and all(k in OPERATORS for k in spec)


def _split_prefix(text: str) -> tuple[str, str]:
    stripped = text.lstrip()
    for prefix, op in _PREFIXES:
        if stripped.startswith(prefix):
            return op, stripped[len(prefix) :].strip()
    return "", text


def _getter(key: str, loc: tuple[str | int, ...] = ()) -> Getter:
    head, _, rest = key.partition(".")
    if head == "labels" and rest:
        return lambda e: e.labels.get(rest)
    if head == "payload" and rest:
        parts = rest.split(".")

        def dig(e: Event) -> Any:
            node: Any = e.payload
            for p in parts:
                if not isinstance(node, dict):
                    return None
                node = node.get(p)
            return node

        return dig
    if key == "target":
        return lambda e: e.target
    if key in EVENT_FIELDS:
        return attrgetter(key)
    known = [*EVENT_FIELDS, "labels.NAME", "payload.PATH", *COMBINATORS]
    raise ConditionError(loc, unknown_name("event field", key, known))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _eq_test(get: Getter, expected: Any) -> Test:
    if isinstance(expected, bool):
        text = str(expected).lower()
        return lambda e: (v := get(e)) is expected or (isinstance(v, str) and v.lower() == text)
    num = _number(expected)
    text = str(expected)
    if num is None:
        return lambda e: get(e) == text
    # '5', 5 and 5.0 are the same value whether the event or the rule wrote it as text.
    return lambda e: (v := get(e)) == text or _number(v) == num


def _operator(key: str, get: Getter, op: str, arg: Any, loc: tuple[str | int, ...]) -> Check:
    desc = f"{key} {op} {arg!r}"
    if key == "status" and op in ("eq", "ne", "in", "not_in"):
        # An event's status is one of a closed set: `fireing` would silently never match.
        for value in arg if isinstance(arg, list) else [arg]:
            if str(value) not in STATUSES:
                raise ConditionError(loc, unknown_name("status", str(value), STATUSES))
    if op == "eq":
        return Check(f"{key} == {arg!r}", _eq_test(get, arg), get)
    if op == "ne":
        eq = _eq_test(get, arg)
        return Check(f"{key} != {arg!r}", lambda e: not eq(e), get)
    if op in ("gt", "ge", "lt", "le"):
        bound = _number(arg)
        if bound is None:
            raise ConditionError(loc, f"`{op}` needs a number, got {arg!r}")
        cmp: Callable[[float], bool] = {
            "gt": lambda n: n > bound, "ge": lambda n: n >= bound,
            "lt": lambda n: n < bound, "le": lambda n: n <= bound,
        }[op]  # fmt: skip
        sym = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[op]
        return Check(f"{key} {sym} {arg}", lambda e: (n := _number(get(e))) is not None and cmp(n),
                     get)  # fmt: skip
    if op in ("in", "not_in"):
        if not isinstance(arg, list) or not arg:
            raise ConditionError(loc, f"`{op}` needs a non-empty list")
        tests = [_eq_test(get, a) for a in arg]
        if op == "in":
            return Check(desc, lambda e: any(t(e) for t in tests), get)
        return Check(desc, lambda e: not any(t(e) for t in tests), get)
    if op in ("regex", "not_regex"):
        try:
            rx = re.compile(str(arg))
        except re.error as exc:
            raise ConditionError(loc, f"regex {arg!r} does not compile: {exc}") from None
        if op == "regex":
            return Check(f"{key} =~ {arg!r}", lambda e: (v := get(e)) is not None and
                         rx.search(str(v)) is not None, get)  # fmt: skip
        return Check(f"{key} !~ {arg!r}", lambda e: (v := get(e)) is None or
                     rx.search(str(v)) is None, get)  # fmt: skip
    if op == "exists":
        if not isinstance(arg, bool):
            raise ConditionError(loc, "`exists` takes true or false")
        return Check(desc, lambda e: (get(e) not in (None, "")) is arg, get)
    if op == "contains":
        return Check(desc, lambda e: (v := get(e)) is not None and str(arg) in
                     (v if isinstance(v, list | dict) else str(v)), get)  # fmt: skip
    raise ConditionError(loc, unknown_name("operator", op, OPERATORS))
