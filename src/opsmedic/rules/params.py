"""A step's parameters checked when rules load: the action's model, config names, templates."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from opsmedic.config.located import Loc, Located, unknown_name, unwrap, validation_problems
from opsmedic.config.refs import SSH_HOST_ADDRESSES, ConfigNames, ConfigRef
from opsmedic.errors import Problem, TemplateError
from opsmedic.templating import UnsafeTemplate, is_template, unknown_names


def param_problems(
    model: type[BaseModel],
    raw: Any,
    loc: Loc,
    located: Located,
    names: ConfigNames | None,
    variables: Collection[str] = (),
    warnings: list[Problem] | None = None,
) -> list[Problem]:
    """Every problem of one step's raw params; `names` None: no config to check names against;
    `variables`: template variables the caller adds to the usual ones; `warnings`, where
    given, gets the names of `ConfigRef(warn=True)` fields that `names` lacks."""
    problems = _model_problems(model, raw, loc, located)
    problems += _template_problems(raw, loc, located, variables)
    if names is not None:
        problems += _reference_problems(model, raw, loc, located, names, warnings)
    return problems


def _model_problems(model: type[BaseModel], raw: Any, loc: Loc, located: Located) -> list[Problem]:
    """Validate raw params now; a `{{ … }}` value of another type is judged once rendered."""
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        located_problems = validation_problems(exc, located, model, prefix=loc)
        for err, problem in zip(exc.errors(include_url=False), located_problems, strict=True):
            # A templated value is judged once rendered, except a verdict on the template
            # itself (run_command's `shell` quoting check): that one stands now.
            value = _dig(raw, tuple(err["loc"]))
            deferred = not isinstance(err.get("ctx", {}).get("error"), UnsafeTemplate)
            if not (deferred and isinstance(value, str) and is_template(value)):
                problems.append(problem)
        return problems
    return []


def _dig(raw: Any, loc: Loc) -> Any:
    for part in loc:
        in_dict = isinstance(raw, dict) and part in raw
        if in_dict or (isinstance(raw, list) and isinstance(part, int) and part < len(raw)):
            raw = raw[part]
        else:
            return None
    return raw


def _template_problems(
    raw: Any, loc: Loc, located: Located, variables: Collection[str]
) -> list[Problem]:
    """Syntax and names of every templated string (dict keys are never rendered)."""
    if isinstance(raw, dict):
        return [p for k, v in raw.items()
                for p in _template_problems(v, (*loc, str(k)), located, variables)]  # fmt: skip
    if isinstance(raw, list):
        return [p for i, v in enumerate(raw)
                for p in _template_problems(v, (*loc, i), located, variables)]  # fmt: skip
    if not (isinstance(raw, str) and is_template(raw)):
        return []
    try:
        found = unknown_names(raw, variables)
    except TemplateError as exc:
        return [located.problem(loc, str(exc))]
    return [located.problem(loc, unknown_name(kind, name, known)) for kind, name, known in found]


def _reference_problems(
    model: type[BaseModel], raw: Any, loc: Loc, located: Located, names: ConfigNames,
    warnings: list[Problem] | None,
) -> list[Problem]:  # fmt: skip
    """Values of fields marked ConfigRef that name no entry of their config section."""
    if not isinstance(raw, dict):
        return []
    problems = []
    for name, fld in model.model_fields.items():
        key = fld.alias or name
        if key not in raw:
            continue
        value, here = raw[key], (*loc, key)
        ref = next((m for m in fld.metadata if isinstance(m, ConfigRef)), None)
        nested = unwrap(fld.annotation)
        if ref is not None and ref.warn:
            if warnings is not None:
                warnings += _unknown(ref, value, here, located, names[ref.section])
        elif ref is not None and ref.scheme is not None:
            problems += _unknown_url_host(ref, value, here, located, names)
        elif ref is not None:
            problems += _unknown(ref, value, here, located, names[ref.section])
        elif isinstance(nested, type) and issubclass(nested, BaseModel):
            problems += _reference_problems(nested, value, here, located, names, warnings)
    return problems


def _unknown_url_host(
    ref: ConfigRef, value: Any, loc: Loc, located: Located, names: ConfigNames
) -> list[Problem]:
    """A `scheme://HOST/…` whose HOST is neither an entry's name nor an entry's `host`."""
    # Which entry a destination resolves to (by name; by host, user and port; one or
    # several) is judged when it connects; this only reports a host nothing can match.
    host = _url_host(value, ref.scheme or "")
    known = names[ref.section]
    if host is None or host in {k.lower() for k in known} | set(names.get(SSH_HOST_ADDRESSES, [])):
        return []
    message = (
        f"{unknown_name(ref.kind, host, known)}: neither a name nor the host of an "
        f"{ref.section} entry"
        if known
        else f"unknown {ref.kind} {host!r}: the config has no {ref.section} entries"
    )
    return [located.problem(loc, message)]


def _url_host(value: Any, scheme: str) -> str | None:
    """The host of a written-out `scheme://` URL; None for a path, a templated host, no host."""
    # A URL too broken to have a host is the step's own validation's to report.
    if not (isinstance(value, str) and value.startswith(f"{scheme}://")):
        return None
    if is_template(value[len(scheme) + 3 :].partition("/")[0]):
        return None
    try:
        return urlsplit(value).hostname
    except ValueError:
        return None


def _unknown(
    ref: ConfigRef, value: Any, loc: Loc, located: Located, known: list[str]
) -> list[Problem]:
    listed = isinstance(value, list)
    problems = []
    for i, item in enumerate(value if listed else [value]):
        # A templated name is only known once rendered; a wrong type is the model's error.
        if isinstance(item, str) and not is_template(item) and item not in known:
            if ref.warn:
                message = (f"{unknown_name(ref.kind, item, known)}: neither the config's "
                           f"{ref.section} nor the store has it, so the step fails when it "
                           "runs unless it is made first")  # fmt: skip
            elif known:
                message = unknown_name(ref.kind, item, known)
            else:
                message = f"unknown {ref.kind} {item!r}: the config has no {ref.section} entries"
            problems.append(located.problem((*loc, i) if listed else loc, message))
    return problems
