"""Evaluate a flag for one context: pure, in OpenFeature's vocabulary, and never raising."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from opsmedic.flags.bucket import in_rollout
from opsmedic.flags.model import Condition, Flag, Rollout
from opsmedic.flags.operators import ContextTypeError


class Reason(StrEnum):
    """Why a value was served: OpenFeature's reasons, spelled as its SDKs spell them."""

    STATIC = "STATIC"  # a flag without rules or rollout: nothing was evaluated
    TARGETING_MATCH = "TARGETING_MATCH"  # a rule's conditions held
    SPLIT = "SPLIT"  # a percentage rollout put the context in
    DISABLED = "DISABLED"  # the flag is switched off: its off variant
    DEFAULT = "DEFAULT"  # rules or a rollout exist, none served: the default variant
    ERROR = "ERROR"  # see the error code; the default variant is served


class ErrorCode(StrEnum):
    """OpenFeature's error codes. evaluate() reports INVALID_CONTEXT, TARGETING_KEY_MISSING
    and GENERAL; the others belong to whoever finds the flag, checks the type asked for and
    parses the stored document (FLAG_NOT_FOUND, TYPE_MISMATCH, PARSE_ERROR), and to the
    provider (PROVIDER_NOT_READY, PROVIDER_FATAL)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PROVIDER_NOT_READY = "PROVIDER_NOT_READY"
    PROVIDER_FATAL = "PROVIDER_FATAL"
    GENERAL = "GENERAL"


class Resolution(NamedTuple):
    """What evaluate() served: the value, its variant's name, why, and what went wrong.
    A NamedTuple: immutable, and built in a third of a frozen dataclass's time."""

    value: object
    variant: str
    reason: Reason
    error_code: ErrorCode | None = None
    error_message: str | None = None


class _Refused(Exception):
    """An evaluation that must end with reason ERROR and the default variant."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def evaluate(flag: Flag, context: Mapping[str, object]) -> Resolution:
    """The variant `flag` serves `context`: off while disabled, else the first rule whose
    conditions all hold (a rule's rollout may pass to the next), then the flag's rollout,
    then the default. A context it cannot read is a Resolution with reason ERROR and the
    default variant, never an exception: this runs in applications' request paths."""
    try:
        if not flag.enabled:
            return _served(flag, flag.off_variant, Reason.DISABLED)
        # type() first: the ABC check costs 0.13 µs, and nearly every context is a dict.
        if type(context) is not dict and not isinstance(context, Mapping):
            raise _Refused(ErrorCode.INVALID_CONTEXT, f"the context is a {type(context).__name__}"
                           ", not a mapping of attributes")  # fmt: skip
        for rule in flag.rules:
            # A loop, not all(generator): the generator cost a tenth of an evaluation.
            for condition in rule.when:
                if not _holds(condition, context):
                    break
            else:
                if rule.serve is not None:
                    return _served(flag, rule.serve, Reason.TARGETING_MATCH)
                if rule.rollout is not None and _rolled_in(flag, rule.rollout, context):
                    return _served(flag, flag.served(rule.rollout), Reason.SPLIT)
        if flag.rollout is not None and _rolled_in(flag, flag.rollout, context):
            return _served(flag, flag.served(flag.rollout), Reason.SPLIT)
        static = not flag.rules and flag.rollout is None
        return _served(flag, flag.default, Reason.STATIC if static else Reason.DEFAULT)
    except _Refused as exc:
        return _error(flag, exc.code, str(exc))
    except TimeoutError:
        return _error(flag, ErrorCode.GENERAL, "a regex search ran past its time limit")
    except Exception as exc:  # an application's request must get its default, whatever broke
        return _error(flag, ErrorCode.GENERAL, f"{type(exc).__name__}: {exc}")


def _holds(condition: Condition, context: Mapping[str, object]) -> bool:
    value = context.get(condition.attribute)
    if value is None:
        return False
    try:
        return condition.matches(value)
    except ContextTypeError as exc:
        raise _Refused(
            ErrorCode.INVALID_CONTEXT, f"attribute {condition.attribute!r} {exc}"
        ) from None


def _rolled_in(flag: Flag, rollout: Rollout, context: Mapping[str, object]) -> bool:
    key = context.get(rollout.stickiness)
    if key is None:
        raise _Refused(ErrorCode.TARGETING_KEY_MISSING,
                       f"a rollout needs the attribute {rollout.stickiness!r}")  # fmt: skip
    if isinstance(key, bool) or not isinstance(key, str | int):
        kind = type(key).__name__
        raise _Refused(ErrorCode.INVALID_CONTEXT, f"attribute {rollout.stickiness!r} is {kind};"
                       " a rollout hashes a string or an integer")  # fmt: skip
    # Unleash hashes the text of the stickiness value: user 42 and "42" share a bucket.
    return in_rollout(rollout.percentage, str(key), rollout.group or flag.key)


def _served(flag: Flag, variant: str, reason: Reason) -> Resolution:
    value = flag.variants[variant]
    if isinstance(value, dict | list):
        # Copied: an application that changes the object it got must not change what every
        # other request reads.
        value = copy.deepcopy(value)
    return Resolution(value, variant, reason)


def _error(flag: Flag, code: ErrorCode, message: str) -> Resolution:
    served = _served(flag, flag.default, Reason.ERROR)
    return Resolution(served.value, served.variant, Reason.ERROR, code, message)
