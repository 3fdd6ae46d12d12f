"""The load-time check of a `shell:` template: every value must land as one quoted shell word.

The check is deliberately plain, so that it can be argued sound rather than hoped clever:

1. The template is only text and `{{ expression | shquote }}` (no `{% %}` blocks, so there
   is one path through it, and no other filter after `shquote`).
2. Its text, with each value replaced by a sentinel word, contains none of the constructs
   in which a shell reads quotes differently from Python's `shlex`: backticks, `$(`, `${`,
   `$'`, `$[`, `((`, `[[`, here-documents (`<<`) and line continuations (a backslash at the
   end of a line). Without them, `shlex` in POSIX mode tracks quotes, escapes and comments
   as dash and bash do.
3. `shlex` then splits that text, and each sentinel must come out as a token of its own
   (not in a comment, which `shlex` drops; not glued to other characters or quotes), and
   stand between blanks or operators in the text itself (not `"S"`, `\\S` or `'…'S`).

Where all three hold, the always-quoted value (`'…'`) is exactly one word of a command, on
the only path through the template, whatever it contains. Anything else is refused.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes

from opsmedic.templating import UnsafeTemplate, is_template, new_environment, parse

# Shell constructs whose quoting rules `shlex` does not model (nested quotes in `$(…)` and
# `${…}` inside "…", backtick re-parsing, here-document bodies, arithmetic, `$'…'` escapes,
# bash's `[[ … ]]` operands): a value anywhere near them could be read as code.
_REFUSED = {
    "`": "a backtick",
    "$(": "'$(' (command substitution)",
    "${": "'${' (use $NAME)",
    "$'": "$'…'",
    "$[": "'$['",
    "((": "'((' (arithmetic)",
    "[[": "'[['",
    "<<": "a here-document",
    "\\\n": "a line continuation",
}
# What may stand right before and after a value: a blank or an operator character.
_BLANKS = " \t\n"
_AROUND = _BLANKS + ";&|<>"


@dataclass(frozen=True, slots=True)
class _Slot:
    """One `{{ … | shquote }}`: its sentinel word and where it is in the template."""

    sentinel: str
    line: int
    col: int


def check_shell_template(source: str) -> None:
    """Raise UnsafeTemplate (naming template line and column) unless every value in the
    `shell:` template `source` provably lands as one whole shell word."""
    if not is_template(source):
        return
    try:
        tree = parse(source)
        starts = _tag_starts(source, new_environment().lexer.tokeniter(source, None))
    except TemplateSyntaxError as exc:
        raise UnsafeTemplate(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    text, slots = _with_sentinels(source, tree, starts)
    if not slots:
        return
    for construct, name in _REFUSED.items():
        if construct in text:
            raise UnsafeTemplate(
                f"a shell template with {{{{ … | shquote }}}} values cannot also hold {name}: "
                'pass values through `env:` and use "$NAME" in the script, or use argv'
            )
    tokens = _tokens(text)
    for slot in slots:
        at = text.index(slot.sentinel)
        before = text[at - 1] if at else " "
        after_at = at + len(slot.sentinel)
        after = text[after_at] if after_at < len(text) else " "
        if tokens.count(slot.sentinel) != 1 or before not in _AROUND or after not in _AROUND:
            raise UnsafeTemplate(
                f"line {slot.line}, col {slot.col}: {{{{ … | shquote }}}} must be a whole "
                "shell word: between blanks or ; & | < >, not in a comment, not inside or "
                "next to quotes, not after '\\'"
            )


def _tag_starts(
    source: str, tokens: Iterator[tuple[int, str, str]]
) -> dict[str, list[tuple[int, int]]]:
    """(line, column) of every `{{` and `{%` in the template, found through Jinja's own lexer
    (so one in a comment or a raw block does not count)."""
    starts: dict[str, list[tuple[int, int]]] = {"variable_begin": [], "block_begin": []}
    cursor = 0
    for _, kind, value in tokens:
        # Every token's text sits in the source in order; only whitespace that `-` strips
        # lies between them, so searching forward finds each one where it is.
        # (Jinja turns "\r\n" into "\n" in text: such a token is not found, and stays put.)
        cursor = max(source.find(value, cursor), cursor)
        if kind in starts:
            line_start = source.rfind("\n", 0, cursor) + 1
            starts[kind].append((source.count("\n", 0, cursor) + 1, cursor - line_start + 1))
        cursor += len(value)
    return starts


def _with_sentinels(
    source: str, tree: nodes.Template, starts: dict[str, list[tuple[int, int]]]
) -> tuple[str, list[_Slot]]:
    """The template's text with each value replaced by a sentinel word, and the slots."""
    parts: list[str] = []
    slots: list[_Slot] = []
    # A base the template's own text does not hold, and none of whose later letters is its
    # first: so each sentinel occurs in the text exactly where its value stood.
    base = "opsmedicvalue"
    while base in source:
        base += "q"
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            # The first statement that is not output text is the first `{%` tag.
            line, col = starts["block_begin"][0]
            raise UnsafeTemplate(
                f"line {line}, col {col}: {{% … %}} blocks are not allowed in shell (each "
                "path through them would need its own check): use argv, or one rule per case"
            )
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
                continue
            line, col = starts["variable_begin"][len(slots)]
            if not _is_shquote(node):
                raise UnsafeTemplate(
                    f"line {line}, col {col}: in shell every {{{{ … }}}} must end in "
                    "'| shquote' (event values are data, never shell syntax); or use argv"
                )
            sentinel = f"{base}{len(slots)}x"
            slots.append(_Slot(sentinel, line, col))
            parts.append(sentinel)
    return "".join(parts), slots


def _is_shquote(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Filter)
        and node.name == "shquote"
        and not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
    )


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace = _BLANKS  # not '\r': the shell does not split on it either
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise UnsafeTemplate(f"the shell script does not parse: {exc}") from None
