"""Sandboxed Jinja2 rendering of action parameters: event values go in as data, never as syntax."""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypedDict

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from opsmedic.errors import TemplateError
from opsmedic.model import Event

# `{#` counts too: Jinja would strip a comment, so a string holding one is a template.
MARKERS = ("{{", "{%", "{#")
_GLOB = re.compile(r"[*?\[]")  # fnmatch's special characters


class Rendered(str):
    """Text produced by rendering a template, carrying the template it came from.

    Parameter models that vet templates (run_command's `shell`) check `source`, not the
    text: the text is data (an event value may hold `{{`), the source is what was written.
    `pattern` is the text as a glob: each value the template inserted escaped (glob.escape),
    so only the glob characters written in the rule match more than themselves.
    """

    source: str
    pattern: str

    def __new__(cls, text: str, source: str, pattern: str | None = None) -> Rendered:
        self = super().__new__(cls, text)
        self.source = source
        self.pattern = text if pattern is None else pattern
        return self

    def __getnewargs__(self) -> tuple[str, str, str]:  # type: ignore[override]  # copy, pickle
        return str(self), self.source, self.pattern


class _MissingValue(UndefinedError):
    """An undefined lookup that remembers on what object and which name it failed."""

    def __init__(self, obj: Any, name: str | None, message: str | None = None) -> None:
        super().__init__(message)
        self.obj = obj
        self.name = name


class _Undefined(StrictUndefined):
    """StrictUndefined whose error carries the looked-up object, to name its path in messages."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[UndefinedError] = UndefinedError,
    ) -> None:
        # The sandbox passes exc=SecurityError for unsafe attributes: keep that one as it is.
        factory: Any = partial(_MissingValue, obj, name) if exc is UndefinedError else exc
        super().__init__(hint, obj, name, factory)


class UnsafeTemplate(ValueError):
    """A template that could splice event data in as syntax; refused when rules load."""


class StepVars(TypedDict):
    """What a template sees of one finished step in `steps` (the executor fills it in)."""

    action: str
    state: str
    message: str
    details: dict[str, Any]


def template_context(
    event: Event, rule: str, run_id: str, steps: list[StepVars] | None = None
) -> dict[str, Any]:
    """The variables a parameter template sees: `event` (with `target`), `rule`, `run_id`, and
    `steps`, what the run's earlier steps reported (filled in as they finish)."""
    event_vars = event.as_dict()
    event_vars["target"] = event.target
    return {
        "event": event_vars,
        "rule": rule,
        "run_id": run_id,
        "steps": [] if steps is None else steps,
    }


def is_template(text: str) -> bool:
    """True when the string holds Jinja syntax; anything else is used exactly as written."""
    return any(marker in text for marker in MARKERS)


def new_environment(finalize: Callable[[Any], Any] | None = None) -> ImmutableSandboxedEnvironment:
    """The one environment configuration: sandboxed, immutable, strict, no autoescape
    (`finalize`: what each `{{ }}` output goes through, for Rendered.pattern)."""
    env = ImmutableSandboxedEnvironment(
        undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=finalize
    )
    env.filters["shquote"] = shell_word
    return env


def shell_word(value: Any) -> str:
    """`value` as one single-quoted POSIX shell word (the `shquote` filter).

    Always quoted, unlike `shlex.quote`: a bare `if`, `x=1` or `~` would be a reserved word,
    an assignment or a tilde expansion where a shell expects a command.
    """
    return "'" + str(value).replace("'", "'\\''") + "'"


def parse(source: str) -> nodes.Template:
    """Parse a template without compiling it (used by validators that inspect its shape)."""
    return new_environment().parse(source)


def unknown_names(source: str, extra: Collection[str] = ()) -> list[tuple[str, str, list[str]]]:
    """(kind, name, known names) of each name read that no run supplies; TemplateError on syntax.

    `extra`: variables the caller adds to the context (a deployment's `service`, `version`)."""
    # Checked: variables, event and step fields, attributes of text (`rule.nam`), filters
    # and tests. Labels, payload and a step's details are free-form: left to the rendering.
    env = new_environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    context = template_context(Event(source=""), "", "")
    # Names the template binds itself (`{% set %}`, loop variables, macro parameters).
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    variables = sorted({*context, *env.globals, "loop", *extra} | bound)
    found: list[tuple[str, str, list[str]]] = []
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in variables:
            found.append(("template variable", node.name, variables))
    lookups: list[nodes.Getattr | nodes.Getitem] = [
        *tree.find_all(nodes.Getattr),
        *tree.find_all(nodes.Getitem),
    ]
    for lookup in lookups:
        if (problem := _lookup_problem(lookup, bound)) is not None:
            found.append(problem)
    # Jinja only looks a filter or a test up when it compiles or runs the template.
    for flt in tree.find_all(nodes.Filter):
        if flt.name not in env.filters:
            found.append(("filter", flt.name, sorted(env.filters)))
    for test in tree.find_all(nodes.Test):
        if test.name not in env.tests:
            found.append(("test", test.name, sorted(env.tests)))
    return found


@dataclass(frozen=True, slots=True)
class _Fields:
    """A mapping of the context whose keys are known: an event, a step."""

    kind: str  # how a problem names one of its keys: "event field"
    fields: Mapping[str, Any]  # key → shape: _Fields, _Items, str (text) or None (free-form)


@dataclass(frozen=True, slots=True)
class _Items:
    """A list of the context (`steps`) and the shape of its items."""

    item: Any


def _event_fields() -> dict[str, Any]:
    """Each event field a template reads: text fields as text, the others free-form."""
    event = template_context(Event(source=""), "", "")["event"]
    return {name: str if isinstance(value, str) else None for name, value in event.items()}


_STEP = _Fields("step field", {**{k: str for k in StepVars.__annotations__}, "details": None})
_SHAPES: dict[str, Any] = {
    "event": _Fields("event field", _event_fields()),
    "rule": str,
    "run_id": str,
    "steps": _Items(_STEP),
}


def _lookup_problem(
    lookup: nodes.Getattr | nodes.Getitem, bound: set[str]
) -> tuple[str, str, list[str]] | None:
    """The problem of one `x.name` / `x['name']` whose `x` has a known shape, else None."""
    parent = _resolve(lookup.node, bound)
    if parent is None:
        return None
    shape, path = parent
    name = lookup.attr if isinstance(lookup, nodes.Getattr) else _constant(lookup.arg)
    if isinstance(shape, _Fields) and name is not None and name not in shape.fields:
        return (shape.kind, f"{path}.{name}", [f"{path}.{k}" for k in shape.fields])
    # A string's own methods (`rule.upper()`) work; any other name on text is undefined.
    if shape is not str or name is None:
        return None
    if isinstance(lookup, nodes.Getitem) or not _is_text_method(name):
        return ("text attribute", f"{path}.{name}", [path])
    return None


def _resolve(node: nodes.Node, bound: set[str]) -> tuple[Any, str] | None:
    """The shape and written path of an expression over the context, None when unknown."""
    if isinstance(node, nodes.Name):
        known = node.ctx == "load" and node.name not in bound and node.name in _SHAPES
        return (_SHAPES[node.name], node.name) if known else None
    if isinstance(node, nodes.Filter) and node.name in ("first", "last") and node.node:
        parent = _resolve(node.node, bound)
        if parent is not None and isinstance(parent[0], _Items):
            return parent[0].item, f"({parent[1]} | {node.name})"
        return None
    if not isinstance(node, nodes.Getattr | nodes.Getitem):
        return None
    parent = _resolve(node.node, bound)
    if parent is None:
        return None
    shape, path = parent
    name = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
    if isinstance(shape, _Fields) and name is not None and name in shape.fields:
        return shape.fields[name], f"{path}.{name}"
    if isinstance(shape, _Items) and isinstance(node, nodes.Getitem) and name is None:
        index = node.arg.value if isinstance(node.arg, nodes.Const) else "…"
        return shape.item, f"{path}[{index}]"
    return None


def _is_text_method(name: str) -> bool:
    return not name.startswith("_") and callable(getattr(str, name, None))


def _constant(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


class Templates:
    """Renders raw parameters; compiled templates are cached by source string.

    Sources come from rule files, never from events, so the cache is bounded by the rule set.
    """

    def __init__(self) -> None:
        self._env = new_environment()
        self._compiled: dict[str, Callable[[dict[str, Any]], Any]] = {}
        # Whole templates (not one `{{ expression }}`), compiled again with each output
        # glob-escaped: rendered so only when the text holds a glob character.
        self._globs = new_environment(finalize=lambda value: glob.escape(str(value)))
        self._as_glob: dict[str, Template] = {}

    def render(self, raw: Any, context: dict[str, Any], where: str = "") -> Any:
        """Render every string in `raw` (dict keys excepted); `where` prefixes error paths.

        A string that is exactly one `{{ expression }}` yields the expression's own value
        (a number stays a number, a list a list); other templates yield text.
        """
        if isinstance(raw, str):
            if not is_template(raw):
                return raw
            return self._render_one(raw, context, where)
        if isinstance(raw, Mapping):
            return {
                key: self.render(value, context, f"{where}.{key}" if where else str(key))
                for key, value in raw.items()
            }
        if isinstance(raw, list | tuple):
            return [self.render(item, context, f"{where}[{i}]") for i, item in enumerate(raw)]
        return raw

    def _render_one(self, source: str, context: dict[str, Any], where: str) -> Any:
        try:
            fn = self._compiled.get(source)
            if fn is None:
                fn = self._compile(source)
                self._compiled[source] = fn
            value = fn(context)
            _check_defined(value)
            as_glob = self._as_glob.get(source)
            if as_glob is not None and isinstance(value, str) and _GLOB.search(value):
                return Rendered(value, source, as_glob.render(context))
        except _MissingValue as exc:
            raise TemplateError(f"{where}: {_missing_message(exc, context)}") from None
        except SecurityError as exc:
            raise TemplateError(f"{where}: not allowed in a template: {exc}") from None
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"{where}: template syntax error at line {exc.lineno}: {exc.message}"
            ) from None
        except UndefinedError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        except Exception as exc:
            raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from None
        return _marked(value, source)

    def _compile(self, source: str) -> Callable[[dict[str, Any]], Any]:
        expression = _single_expression(self._env, source)
        if expression is not None:
            compiled = self._env.compile_expression(expression, undefined_to_none=False)
            return lambda context: compiled(**context)
        template: Template = self._env.from_string(source)
        self._as_glob[source] = self._globs.from_string(source)
        return template.render


def _single_expression(env: ImmutableSandboxedEnvironment, source: str) -> str | None:
    """The inner expression of a source that is exactly `{{ expr }}`, else None."""
    if not (source.startswith("{{") and source.endswith("}}")):
        return None
    body = env.parse(source).body
    # `{{ a }}{{ b }}` also starts and ends with braces: the parse tree tells them apart.
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    if isinstance(body[0].nodes[0], nodes.TemplateData):
        return None
    return source[2:-2].strip("-")


def _marked(value: Any, source: str) -> Any:
    """Every string in a rendered value as Rendered: `{{ payload.dirs }}`'s items came from
    an event just as much as a whole rendered string, and validators must be able to tell.
    A whole template's text without a glob character, or one `{{ expression }}`'s value:
    as a glob, every character of it is literal."""
    if isinstance(value, str):
        return Rendered(value, source, glob.escape(value))
    if isinstance(value, list):
        return [_marked(item, source) for item in value]
    if isinstance(value, tuple):
        return tuple(_marked(item, source) for item in value)
    if isinstance(value, dict):
        return {key: _marked(item, source) for key, item in value.items()}
    return value


def _check_defined(value: Any) -> None:
    """Raise for an undefined value, also inside a native list or dict (`{{ [event.x] }}`)."""
    if isinstance(value, _Undefined):
        str(value)  # raises the undefined error with its message
    elif isinstance(value, list | tuple):
        for item in value:
            _check_defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_defined(item)


def _missing_message(exc: _MissingValue, context: dict[str, Any]) -> str:
    """`'event.labels' has no attribute 'hots'` rather than Jinja's `'dict object' ...`."""
    if exc.obj is missing:
        return f"{exc.name!r} is undefined"
    path = _path_of(exc.obj, context)
    if path is None:
        return str(exc)
    return f"'{path}' has no attribute {exc.name!r}"


def _path_of(target: Any, context: dict[str, Any], depth: int = 4) -> str | None:
    """Where `target` sits in the context, found by identity (only on the error path)."""
    frontier: list[tuple[str, Any]] = list(context.items())
    for _ in range(depth):
        following: list[tuple[str, Any]] = []
        for path, value in frontier:
            if value is target:
                return path
            if isinstance(value, Mapping):
                following.extend((f"{path}.{key}", item) for key, item in value.items())
        frontier = following
    return None
