"""YAML loading that remembers where every value came from, so errors can say file:line:col."""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, RootModel, ValidationError

from opsmedic.errors import ConfigError, Problem

Loc = tuple[str | int, ...]

# The C loader composes ~10x faster; fall back where PyYAML was built without libyaml.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Levels of nesting a document may have: far past any config or event, and far short of the
# recursion limit that building (and anything walking the values after) would hit.
MAX_DEPTH = 100


@dataclass(slots=True)
class Located:
    """A parsed YAML document plus the 1-based (line, col) of every key and value in it."""

    file: str
    data: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    # The text of each unquoted scalar YAML 1.1 reads as a boolean (`yes`, `off`…), for hints.
    booleans: dict[Loc, str] = field(default_factory=dict)
    # Problems found while reading (duplicate keys…): the loaders report them with their own.
    problems: list[Problem] = field(default_factory=list)

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


def unknown_name(kind: str, name: str, known: Any) -> str:
    """'unknown action 'run_comand' (did you mean run_command?)' — shared by config and rules."""
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}"


def boolean_hint(text: str) -> str:
    """The hint for an unquoted `yes`/`off`… where text was meant: shared by config and rules."""
    return f'YAML reads an unquoted {text} as a boolean, quote it ("{text}")'


def did_you_mean(name: str, known: Any) -> str:
    """' (did you mean a, b?)' with the close matches, else ' (known: …)' with every name."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=3, cutoff=0.6)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    return f" (known: {', '.join(sorted(str(k) for k in known)) or 'none'})"


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document; a syntax error raises a located ConfigError (with a hint where
    one helps); duplicate keys are collected in `problems` and the first value kept."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    finally:
        loader.dispose()
    located = Located(file, None)
    if node is not None:
        located.data = _build(node, (), located, loader)
    return located


def load_yaml_documents(text: str, file: str) -> list[Located]:
    """Every document of a `---`-separated stream (OpenSLO files hold several), as load_yaml."""
    loader = _Loader(text)
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            located = Located(file, None)
            located.data = _build(node, (), located, loader)
            found.append(located)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    finally:
        loader.dispose()
    return found


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    msg = f"invalid YAML: {exc.problem or exc.context}{_syntax_hint(exc, text, line)}"
    return ConfigError([Problem(file, line, col, "", msg)])


def load_yaml_file(path: Path) -> Located:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), 1, 1, "", f"cannot read: {exc}")]) from None
    return load_yaml(text, str(path))


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and mappings in `value` nest more than `limit` levels (walked without
    recursion: the point is a value that would exhaust it)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= limit:
                return True
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return False


def _build(node: yaml.Node, loc: Loc, out: Located, loader: yaml.SafeLoader) -> Any:
    out.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if len(loc) >= MAX_DEPTH and isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        # Not built: the problem says where, and nothing below can recurse into it.
        out.problems.append(_at(out.file, node, dotted(loc), f"nested deeper than {MAX_DEPTH}"))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # A list or mapping as a key is refused unbuilt: building it could recurse as deep.
            key = (
                loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            )
            if not isinstance(key, str | int | float | bool):
                out.problems.append(_at(out.file, key_node, dotted(loc), "keys must be scalars"))
                continue
            if key in result:
                # PyYAML keeps the last duplicate silently; StackStorm users lost criteria to that
                msg = f"duplicate key {key!r}"
                out.problems.append(_at(out.file, key_node, dotted((*loc, str(key))), msg))
                continue
            mark = key_node.start_mark
            out.key_marks[(*loc, str(key))] = (mark.line + 1, mark.column + 1)
            result[key] = _build(value_node, (*loc, str(key)), out, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), out, loader) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bool) and isinstance(node, yaml.ScalarNode) and not node.style:
        out.booleans[loc] = node.value
    return value


# Parser errors that mean a line is indented more or less than its neighbours.
_INDENTATION = ("did not find expected key", "did not find expected '-'", "expected <block end>",
                "mapping values are not allowed")  # fmt: skip


def _syntax_hint(exc: yaml.MarkedYAMLError, text: str, line: int) -> str:
    problem = exc.problem or ""
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    if "\t" in source[: len(source) - len(source.lstrip())]:
        return f" (line {line} is indented with a tab: YAML indents with spaces only)"
    if problem.startswith("mapping values are not allowed"):
        return f" (check the indentation of line {line}, or quote a value that holds ': ')"
    if problem.startswith(_INDENTATION):
        return f" (check the indentation of line {line})"
    return ""


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
        at_key = unknown or loc[-1:] == ("[key]",)
        if loc[-1:] == ("[key]",):  # pydantic's place for a bad mapping key: point at the key
            loc = (*loc[:-2], str(loc[-2]))
        if unknown:
            message = unknown_name("field", str(loc[-1]), _field_names(model, loc[:-1]))
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] in ("literal_error", "enum") and isinstance(err["input"], str):
            # pydantic lists the allowed values as 'a', 'b' or 'c' in the message
            allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            message = f"{message}{did_you_mean(err['input'], allowed)}" if allowed else message
        elif err["type"] == "string_type" and (text := located.booleans.get(prefix + loc)):
            message = f"{message}: {boolean_hint(text)}"
        problems.append(located.problem(loc, message, prefix, at_key=at_key))
    return problems


def _field_names(model: Any, loc: Loc) -> list[str]:
    """Field names of the model reached by walking `loc` through nested models, dicts, lists."""
    tp: Any = model
    for part in loc:
        tp = unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, RootModel):
            # A name → entry section: its keys are the dict's, below pydantic's `root`.
            tp = unwrap(tp.model_fields["root"].annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = tp.model_fields.get(str(part))
            if fld is None:
                return []
            tp = fld.annotation
        else:
            args = typing.get_args(tp)
            tp = args[-1] if args else None
    tp = unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        # An excluded field (Config.base_dir) is set by opsmedic, and refused in a file.
        return sorted(name for name, fld in tp.model_fields.items() if not fld.exclude)
    return []


def unwrap(tp: Any) -> Any:
    """Optional[X] / X | None → X, so the walk can continue through optional sections."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
