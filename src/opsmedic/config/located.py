"""YAML loading that remembers where every value came from, so errors can say file:line:col."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from opsmedic.errors import ConfigError, Problem

Loc = tuple[str | int, ...]

# The C loader composes ~10x faster; fall back where PyYAML was built without libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class Located:
    """A parsed YAML document plus the 1-based (line, col) of every key and value in it."""

    file: str
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Loc, at_key: bool = False) -> tuple[int, int]:
        """Position of the deepest part of `loc` in the document: its value, or its key."""
        if at_key and (pos := self.key_marks.get(tuple(loc))) is not None:
            return pos
        for n in range(len(loc), -1, -1):
            if (pos := self.marks.get(tuple(loc[:n]))) is not None:
                return pos
        return (1, 1)

    def problem(self, loc: Loc, message: str, prefix: Loc = (), at_key: bool = False) -> Problem:
        """A Problem at `prefix + loc`; `at_key` points at the key (unknown names, duplicates)."""
        line, col = self.where(prefix + loc, at_key)
        return Problem(self.file, line, col, dotted(prefix + loc), message)


def dotted(loc: Loc) -> str:
    """('do', 0, 'run_command', 'argv') → 'do[0].run_command.argv'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors and duplicate keys raise a located ConfigError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = f"invalid YAML: {exc.problem or exc.context}"
        raise ConfigError([Problem(file, line, col, "", msg)]) from None
    finally:
        loader.dispose()
    located = Located(file, None)
    if node is not None:
        located.data = _build(node, (), located, loader)
    return located


def load_yaml_file(path: Path) -> Located:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), 1, 1, "", f"cannot read: {exc}")]) from None
    return load_yaml(text, str(path))


def _build(node: yaml.Node, loc: Loc, out: Located, loader: yaml.SafeLoader) -> Any:
    out.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                raise ConfigError([_at(out.file, key_node, dotted(loc), "keys must be scalars")])
            if key in result:
                # PyYAML keeps the last duplicate silently; StackStorm users lost criteria to that
                msg = f"duplicate key {key!r}"
                raise ConfigError([_at(out.file, key_node, dotted((*loc, str(key))), msg)])
            mark = key_node.start_mark
            out.key_marks[(*loc, str(key))] = (mark.line + 1, mark.column + 1)
            result[key] = _build(value_node, (*loc, str(key)), out, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), out, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _at(file: str, node: yaml.Node, field_name: str, message: str) -> Problem:
    return Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, field_name, message)


def validation_problems(
    exc: ValidationError, located: Located, model: type[BaseModel], prefix: Loc = ()
) -> list[Problem]:
    """Turn pydantic's errors into located Problems, with close matches for unknown keys."""
    problems = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        message = err["msg"]
        unknown = err["type"] == "extra_forbidden"
        if unknown:
            known = _field_names(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=3, cutoff=0.6)
            message = f"unknown field {loc[-1]!r}" + (
                f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(known)})"
            )
        elif err["type"] == "missing":
            message = "required field is missing"
        problems.append(located.problem(loc, message, prefix, at_key=unknown))
    return problems


def _field_names(model: Any, loc: Loc) -> list[str]:
    """Field names of the model reached by walking `loc` through nested models, dicts, lists."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = tp.model_fields.get(str(part))
            if fld is None:
                return []
            tp = fld.annotation
        else:
            args = typing.get_args(tp)
            tp = args[-1] if args else None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(tp.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """Optional[X] / X | None → X, so the walk can continue through optional sections."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
