"""The flag model: boolean and variant flags, targeting rules, sticky percentage rollouts."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, cast

import orjson
from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from opsmedic.flags.operators import Operator, Test, compile_test, detail, refuse
from opsmedic.flags.redis_wire import MAX_DOC_BYTES

# A flag key goes into Redis keys, URLs, log lines and the rollout's hash as it is.
FLAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_VARIANTS = 100
MAX_RULES = 100
MAX_CONDITIONS = 20
MAX_IN_VALUES = 10_000
# Of one flag set: readers take the whole set in one HGETALL (redis_cache.py), so the store
# refuses a flag past this many (store/flag_rows.py) and a reader refuses a bigger set.
MAX_FLAGS = 10_000
# `GET /api/v1/flags/stream` is the change stream (api/flag_stream.py), never a flag.
RESERVED_KEYS = frozenset({"stream"})
DEFAULT_STICKINESS = "targetingKey"  # OpenFeature's name for the evaluation context's key

# Strict everywhere (docs/flags.md): "50" is not 50, 1 is not true, true is not 1 %. And
# finite: NaN equals nothing, itself included, so a flag holding one never read back equal.
FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
Scalar = StrictBool | StrictInt | FiniteFloat | StrictStr
_FINITE = "Input should be a finite number (not NaN or infinity)"


def _variant_name(value: object) -> object:
    # YAML 1.1 reads an unquoted on/off (or true/false) as a boolean: `default: off` means the
    # variant `off`, and that is what every operator who writes it means.
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


VariantName = Annotated[str, BeforeValidator(_variant_name), Field(pattern=VARIANT_PATTERN)]
Loc = tuple[str | int, ...]
AttributeName = Annotated[str, Field(min_length=1, max_length=200)]


class FlagType(StrEnum):
    """The type of every variant's value, as OpenFeature resolves it."""

    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"  # OpenFeature's integer and float
    OBJECT = "object"  # a JSON object or array


class _Frozen(BaseModel):
    # Frozen: one flag object is shared by every thread that evaluates it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Frozen):
    """One test of a context attribute; an attribute the context lacks never matches, negated
    or not (a rule targets what the context says)."""

    attribute: AttributeName
    op: Operator
    value: Scalar | Annotated[list[Scalar], Field(min_length=1, max_length=MAX_IN_VALUES)]
    negate: StrictBool = False
    _test: Test = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        # One error at the value, not one for each type the union would have taken.
        value = data.get("value") if isinstance(data, dict) else None
        listed = isinstance(value, list)
        for at, x in _non_finite(value if listed else [value]):
            refuse(("value", *at) if listed else ("value",), _FINITE, x)
        return data

    @model_validator(mode="after")
    def _compile(self) -> Condition:
        self._test = compile_test(self.op, self.value)
        return self

    def __eq__(self, other: object) -> bool:
        # pydantic would compare the compiled tests too, and two compilations never are equal.
        if not isinstance(other, Condition):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # like any model with a list in it

    def matches(self, value: object) -> bool:
        """Whether a present attribute passes; ContextTypeError when it cannot be compared,
        TimeoutError when a regex search runs past REGEX_TIMEOUT_S."""
        # Read from pydantic's own slot: `self._test` goes through BaseModel.__getattr__, which
        # took 1.4 µs of a 5 µs budget (bench/flags.py).
        test: Test = cast(dict[str, Any], self.__pydantic_private__)["_test"]
        return test(value) is not self.negate


class Rollout(_Frozen):
    """Serve `variant` to `percentage` % of the values of the `stickiness` attribute, the same
    ones every time (Unleash's flexibleRollout: murmur3 of "group:value", flags/bucket.py)."""

    percentage: StrictInt = Field(ge=0, le=100)
    variant: VariantName | None = Field(None, description="omitted: `on` (boolean flags)")
    stickiness: AttributeName = DEFAULT_STICKINESS
    group: str | None = Field(
        None, min_length=1, max_length=200, description="the hash's salt; omitted: the flag key"
    )


class Rule(_Frozen):
    """When every condition holds: serve a variant, or let a rollout decide (outside it, the
    next rule is tried, as Unleash tries a toggle's next strategy)."""

    name: str = Field("", max_length=200)
    when: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    serve: VariantName | None = None
    rollout: Rollout | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Rule:
        if (self.serve is None) == (self.rollout is None):
            raise ValueError("give exactly one of serve or rollout")
        return self


_BOOLEAN_DEFAULTS = {"variants": {"on": True, "off": False}, "default": "on", "off_variant": "off"}
_VALUE_TYPES: dict[FlagType, tuple[type, ...]] = {
    FlagType.BOOLEAN: (bool,),
    FlagType.STRING: (str,),
    FlagType.NUMBER: (int, float),
    FlagType.OBJECT: (dict, list),
}


class Flag(_Frozen):
    """A flag: its variants, the one served by default, the one served when it is switched
    off, and the rules and rollout that may serve another. A boolean flag's variants are
    `on` (true) and `off` (false) unless it names its own."""

    key: str = Field(pattern=FLAG_KEY_PATTERN)
    type: FlagType = FlagType.BOOLEAN
    description: str = Field("", max_length=2000)
    enabled: StrictBool = Field(True, description="off: every evaluation serves off_variant")
    variants: dict[VariantName, JsonValue] = Field(min_length=1, max_length=MAX_VARIANTS)
    default: VariantName = Field(description="served when no rule or rollout serves another")
    off_variant: VariantName = Field(description="served while disabled; omitted: `off` or "
                                     "the default")  # fmt: skip
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)
    rollout: Rollout | None = Field(None, description="after the rules, for everyone else")

    @field_validator("key")
    @classmethod
    def _not_reserved(cls, key: str) -> str:
        if key in RESERVED_KEYS:
            refuse((), f"{key!r} is reserved: GET /api/v1/flags/{key} is the change stream", key)
        return key

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("type", FlagType.BOOLEAN) == FlagType.BOOLEAN:
            return {**_BOOLEAN_DEFAULTS, **data}
        if "off_variant" not in data and "default" in data:
            return {**data, "off_variant": data["default"]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Flag:
        details = []
        for variant, v in self.variants.items():
            if not _typed(self.type, v):
                message = f"a {self.type} flag's variant must be a {self.type}"
                details.append(detail(("variants", variant), message, v))
            details += [detail(("variants", variant, *at), _FINITE, x)
                        for at, x in _non_finite(v)]  # fmt: skip
        for loc, name in self._variant_refs():
            if name is None:
                details.append(detail(loc, "name the variant the rollout serves", name))
            elif name not in self.variants:
                known = ", ".join(self.variants)
                details.append(detail(loc, f"{name!r} is not a variant (known: {known})", name))
        if details:
            raise ValidationError.from_exception_data("Flag", details)
        # Readers take a flag in one message: one Redis cannot carry is refused here, on
        # every path (YAML, API, CLI), not found only when it fails to reach Redis.
        size = len(orjson.dumps(self.model_dump(mode="json")))
        if size > MAX_DOC_BYTES:
            refuse((), f"a flag of at most {MAX_DOC_BYTES} bytes as JSON (this one: {size})", "…")
        return self

    def served(self, rollout: Rollout) -> str:
        """The variant a rollout serves: its own, else `on` (validated: boolean flags only)."""
        return rollout.variant if rollout.variant is not None else "on"

    def _rollout_ref(self, rollout: Rollout) -> str | None:
        if rollout.variant is None and self.type != FlagType.BOOLEAN:
            return None
        return self.served(rollout)

    def _variant_refs(self) -> list[tuple[tuple[str | int, ...], str | None]]:
        """Where the flag names a variant, and the name (None: a rollout that names none)."""
        refs: list[tuple[tuple[str | int, ...], str | None]] = [(("default",), self.default)]
        if self.off_variant != self.default:  # else one wrong name would be reported twice
            refs.append((("off_variant",), self.off_variant))
        for i, rule in enumerate(self.rules):
            if rule.rollout is not None:
                refs.append((("rules", i, "rollout", "variant"), self._rollout_ref(rule.rollout)))
            else:
                refs.append((("rules", i, "serve"), rule.serve))
        if self.rollout is not None:
            refs.append((("rollout", "variant"), self._rollout_ref(self.rollout)))
        return refs


def _typed(kind: FlagType, value: object) -> bool:
    # bool is an int in Python; a number flag's variant must not be true or false.
    return isinstance(value, _VALUE_TYPES[kind]) and (
        kind == FlagType.BOOLEAN or not isinstance(value, bool)
    )


def _non_finite(value: object, at: Loc = ()) -> list[tuple[Loc, float]]:
    """Where a JSON value holds NaN or an infinity (YAML's .nan and .inf, JSON's NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [(at, value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _non_finite(v, (*at, k))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _non_finite(v, (*at, i))]
    return []


def refusals(exc: ValidationError, prefix: str = "") -> str:
    """Every problem of a flag document, as `field: message` joined by "; "."""
    found = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        found.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(found)
