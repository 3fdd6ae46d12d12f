"""The load-time check of a `shell:` template: every value must land as data, one quoted word.

The check is deliberately plain, so that it can be argued sound rather than hoped clever:

1. The template is only text and `{{ expression | shquote }}` (no `{% %}` blocks, so there
   is one path through it, and no other filter after `shquote`).
2. Its text, with each value replaced by a sentinel word, contains none of the constructs
   in which a shell reads quotes differently from a plain tokenizer: backticks, `$(`, `${`,
   `$'`, `$[`, `((`, `[[`, here-documents (`<<`) and line continuations.
3. Without them the text is split into words and operators as dash and bash split it (a
   small reader of exactly that subset), and Python's `shlex` must split it the same way;
   each sentinel must come out as a whole unquoted word (not in a comment, not glued to
   other characters or quotes).
4. The words are grouped into simple commands. An allow-list decides: a value may only be
   an argument of a command whose name is a plain word naming an external program or a
   builtin that treats its arguments as data (`echo`, `printf` after a literal format,
   `true`, `false`, `:`, `cd`), or the file of a `<`, `>` or `>>` redirection. And nothing
   in such a script may change how later text is parsed or evaluate text as code, names or
   arithmetic: no `alias`, `eval`, `source`, `shopt`, `read`, `test`, `declare`, ...
   anywhere, and every command name is a plain word (never `$x`, quoted or globbed), so no
   alias or function can be made to stand for one of them.

Where all hold, the always-quoted value (`'…'`) is exactly one word, which the shell hands
on unevaluated, on the only path through the template, whatever it contains. Anything else
is refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

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
_BLANKS = " \t\n"
_OPERATOR_CHARS = ";&|<>()"
# The shells' operators, longest first (bash's among them; `<<` is refused before this).
_OPERATORS = sorted(
    [";;&", ";;", ";&", ";", "&&", "&>>", "&>", "&", "||", "|&", "|", "<&", "<>", "<",
     ">>", ">&", ">|", ">", "(", ")", "\n"],
    key=len, reverse=True,
)  # fmt: skip
# A value may be the file of these redirections only: bash reads the word after `>&` again
# as shell text when it is not a number (`>&'$(…)'` runs it).
_VALUE_REDIRECTS = {"<", ">", ">>"}
# Characters of a plain word: one that means itself, with nothing to expand or quote.
# (Not `%`: bash reads `%1` as a job to resume.)
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,-]+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
# Reserved words after which the next word is again a command's name.
_OPENING = {
    "!",
    "{",
    "}",
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "do",
    "done",
    "while",
    "until",
    "esac",
}
# Reserved words that hide a command's name where the reader above would see an argument.
_REFUSED_WORDS = {"function", "coproc", "time", "select"}
_KEYWORDS = _OPENING | _REFUSED_WORDS | {"case", "for", "in", "[[", "]]"}
# The builtins of bash and dash.
_BUILTINS = {
    ".", ":", "[", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "chdir",
    "command", "compgen", "complete", "compopt", "continue", "declare", "dirs", "disown",
    "echo", "enable", "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts",
    "hash", "help", "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd",
    "printf", "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift",
    "shopt", "source", "suspend", "test", "times", "trap", "true", "type", "typeset",
    "ulimit", "umask", "unalias", "unset", "wait",
}  # fmt: skip
# Builtins that treat their arguments as data (printf: after a literal format): the only
# builtins a value may be an argument of; any other command name is an external program.
_DATA_BUILTINS = {"echo", "printf", "true", "false", ":", "cd"}
# Builtins that change how later text is parsed or what a name runs (hash -p), run text as
# code, or take a name or an arithmetic expression (bash evaluates `x[$(…)]` in both):
# refused anywhere in a script that holds a value, where an argument of theirs could come
# from one (or from "$1").
_NEVER = {
    "alias", "unalias", "shopt", "enable", "source", ".", "eval", "exec", "trap", "command",
    "builtin", "fc", "bind", "compgen", "complete", "compopt", "jobs", "let", "declare",
    "typeset", "local", "export", "readonly", "unset", "read", "mapfile", "readarray",
    "getopts", "wait", "test", "[", "hash",
}  # fmt: skip
# `set` may only switch these options (the others change parsing or evaluate prompts).
_SET_OPTIONS = re.compile(r"[-+][eu]*o?|errexit|nounset|pipefail")


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
    words = _read(text)
    _agree_with_shlex(text, words)
    sentinels = {slot.sentinel: slot for slot in slots}
    for slot in slots:
        if not any(w.raw == slot.sentinel for w in words):
            raise UnsafeTemplate(
                f"line {slot.line}, col {slot.col}: {{{{ … | shquote }}}} must be a whole "
                "shell word: between blanks or ; & | < >, not in a comment, not inside or "
                "next to quotes, not after '\\'"
            )
    for command in _commands(words):
        _judge(command, sentinels)


@dataclass(frozen=True, slots=True)
class _Word:
    """A word or an operator of the script, as the shell splits it."""

    raw: str  # as written
    text: str  # after quote removal
    start: int
    operator: bool = False
    literal: bool = True  # nothing in it expands ($, globs, braces, a tilde)

    @property
    def end(self) -> int:
        """Where the word ends in the text."""
        return self.start + len(self.raw)


def _read(text: str) -> list[_Word]:
    """Split `text` into words and operators as dash and bash do, dropping comments."""
    # Only for the subset left after the refusals: no substitutions, here-documents,
    # continuations; in it a shell's reading is this short.
    words: list[_Word] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in " \t":
            i += 1
        elif char == "#":  # a comment only where a word would start; up to the newline
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
        elif char in _OPERATOR_CHARS or char == "\n":
            operator = next(op for op in _OPERATORS if text.startswith(op, i))
            words.append(_Word(operator, operator, i, operator=True))
            i += len(operator)
        else:
            words.append(_word(text, i))
            i = words[-1].end
    return words


def _word(text: str, start: int) -> _Word:
    """The word that starts at `start`: up to a blank or an operator outside quotes."""
    value: list[str] = []
    literal = True
    i = start
    while i < len(text) and text[i] not in " \t\n" + _OPERATOR_CHARS:
        char = text[i]
        if char == "\\":
            if i + 1 == len(text):
                raise UnsafeTemplate("the shell script does not parse: No escaped character")
            value.append(text[i + 1])
            i += 2
        elif char == "'":
            close = text.find("'", i + 1)
            if close < 0:
                raise UnsafeTemplate("the shell script does not parse: No closing quotation")
            value.append(text[i + 1 : close])
            i = close + 1
        elif char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\':
                    i += 1
                elif text[i] == "$":
                    literal = False
                value.append(text[i])
                i += 1
            if i == len(text):
                raise UnsafeTemplate("the shell script does not parse: No closing quotation")
            i += 1
        else:
            literal = literal and char not in "$*?[{~"
            value.append(char)
            i += 1
    return _Word(text[start:i], "".join(value), start, literal=literal)


@dataclass(slots=True)
class _Command:
    """One simple command: name (None if there is none), arguments, assignments, redirections."""

    name: _Word | None = None
    args: list[_Word] = field(default_factory=list)
    assignments: list[_Word] = field(default_factory=list)
    redirects: list[tuple[str, _Word]] = field(default_factory=list)


def _commands(words: list[_Word]) -> Iterator[_Command]:
    """The simple commands of the script, each named where dash and bash see its name."""
    # Reserved words that open a command are stepped over; those after which bash reads a
    # name where this sees an argument (function, coproc, time, select) are refused later.
    command = _Command()
    i = 0
    while i < len(words):
        word = words[i]
        if word.operator and ("<" in word.raw or ">" in word.raw):
            target = words[i + 1] if i + 1 < len(words) else None
            if target is None or target.operator:
                raise UnsafeTemplate(f"{word.raw!r} must be followed by a file name")
            command.redirects.append((word.raw, target))
            i += 2
            continue
        i += 1
        if word.operator:
            yield command
            command = _Command()
        elif (
            i < len(words)
            and words[i].operator
            and words[i].start == word.end
            and (word.raw.isdigit() and words[i].raw[0] in "<>")
        ):
            continue  # a file descriptor's number: `2>`
        elif command.name is not None:
            command.args.append(word)
            # `for NAME do`: `do` is a reserved word here, and opens a command.
            if command.name.raw == "for" and len(command.args) == 2 and word.raw == "do":
                yield command
                command = _Command()
        elif word.raw in _OPENING:
            continue
        elif _ASSIGNMENT.match(word.raw):
            command.assignments.append(word)
        else:
            command.name = word
    yield command


def _judge(command: _Command, sentinels: dict[str, _Slot]) -> None:
    """Refuse `command` unless it evaluates none of its words and holds values only as data."""
    # Data: an argument of an external program or a data builtin, or a plain redirection's
    # file.
    for operator, target in command.redirects:
        if target.raw in sentinels and operator.lstrip("0123456789") not in _VALUE_REDIRECTS:
            slot = sentinels[target.raw]
            raise UnsafeTemplate(
                f"line {slot.line}, col {slot.col}: a value may only be the file of a <, > "
                f"or >> redirection, not of {operator!r} (bash reads that word again as code)"
            )
    assigned = [w.raw.partition("=")[0] for w in command.assignments]
    if command.name and command.name.raw == "for" and command.args:
        assigned.append(command.args[0].raw)
    for variable in assigned:
        if variable.startswith("BASH"):
            raise UnsafeTemplate(
                f"a shell template with {{{{ … | shquote }}}} values cannot assign {variable}: "
                "bash's BASH_* variables define aliases (BASH_ALIASES), pick the program a "
                "name runs (BASH_CMDS) or change how the script is read"
            )
    name = command.name
    if name is None:
        return
    if name.raw in sentinels:
        slot = sentinels[name.raw]
        raise UnsafeTemplate(
            f"line {slot.line}, col {slot.col}: a value cannot be a command's name (it would "
            "name the program to run): give it as an argument, or use argv"
        )
    why = _never(command, sentinels)
    if why:
        raise UnsafeTemplate(
            f"a shell template with {{{{ … | shquote }}}} values cannot use {why}: it "
            "changes how the script is parsed or evaluates its arguments as code, names "
            'or arithmetic; pass values through `env:` and use "$NAME", or use argv'
        )
    if not _PLAIN.fullmatch(name.raw):
        raise UnsafeTemplate(
            f"the command name {name.raw!r} is not a plain word: in a shell template with "
            "{{ … | shquote }} values every command is named plainly (a $variable, quoted "
            "or globbed name could be `eval`, `alias` or another that reads code)"
        )
    values = [sentinels[w.raw] for w in command.args if w.raw in sentinels]
    if not values:
        return
    data = name.raw not in _BUILTINS | _KEYWORDS or name.raw in _DATA_BUILTINS
    if not data:
        raise UnsafeTemplate(
            f"line {values[0].line}, col {values[0].col}: a value may only be an argument "
            f"of an external program or of a builtin that treats it as data (echo, printf, "
            f"true, false, :, cd), not of {name.raw!r}"
        )


def _never(command: _Command, sentinels: dict[str, _Slot]) -> str:
    """Why `command` may not stand in a script that holds a value ('' if it may)."""
    assert command.name is not None
    name, args = command.name.raw, command.args
    if name in _NEVER:
        return f"`{name}`"
    if name in _REFUSED_WORDS:
        return f"`{name}` (bash reads a command's name after it)"
    if name == "set" and not all(
        _SET_OPTIONS.fullmatch(a.raw) and a.raw not in sentinels for a in args
    ):
        return "`set` except -e, -u and -o errexit/nounset/pipefail"
    if name == "printf" and not (
        args and args[0].literal and args[0].raw not in sentinels
        and not args[0].text.startswith("-")
    ):  # fmt: skip
        return "`printf` without a literal format first (printf -v assigns to a name)"
    return ""


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


def _shlex_tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace = _BLANKS  # not '\r': the shell does not split on it either
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise UnsafeTemplate(f"the shell script does not parse: {exc}") from None


def _agree_with_shlex(text: str, words: list[_Word]) -> None:
    """Refuse a script that `shlex` splits otherwise than `_read`."""
    # A second, independent reading: where the two differ, neither is trusted.
    ours: list[str] = []
    previous: _Word | None = None
    for word in words:
        if word.raw == "\n":
            continue
        # shlex joins a run of operator characters into one token, and knows no newline.
        if word.operator and previous and previous.operator and previous.end == word.start:
            ours[-1] += word.raw
        else:
            ours.append(word.raw if word.operator else word.text)
        previous = word
    if ours != _shlex_tokens(text):
        raise UnsafeTemplate(
            "the shell script is not split the same way by the shell's rules and by Python's "
            "shlex (e.g. '#' inside a word, or '\\$' inside double quotes): write it plainly"
        )
