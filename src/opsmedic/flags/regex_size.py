"""A regex's multiplied-out size, estimated before compiling: nested counted repeats are bombs."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The `regex` module multiplies nested counted repeats out when it compiles: the 24 characters
# `(?:(?:a{100}){100}){100}` took 0.9 s and 280 MB, and `a{4294967294}` was killed for memory.
# The estimate counts every character once and multiplies a group (or atom) by its count, so
# it is never below the pattern's length. Just under the budget, `(?:a{96}){96}` (9,988)
# compiled in 1.2-18 ms (7 runs, regex.purge() before each, 2 busy cores).
MAX_REGEX_SIZE = 10_000
MAX_REPEAT = 1_000  # of one {m,n}: `\d{1,5000}` is no condition anyone means

# Exactly what `regex` reads as a repeat: `{m}`, `{m,}`, `{,n}`, `{m,n}`, `{,}` (a `{` with
# anything else, even a space, is a literal brace).
_REPEAT = re.compile(r"\{(\d*)(?:,(\d*))?\}")
# Inline flags: `(?i)`, `(?x:…)`, `(?s-x)`… (the letters, then `)` or `:`).
_FLAGS = re.compile(r"\(\?([A-Za-z0-9]*)(?:-[A-Za-z0-9]*)?[):]")
# A POSIX class inside a set, `[:alpha:]`: `regex` takes it as one (or refuses the name).
_POSIX = re.compile(r"\[:\^?\w+:\]")


class RegexTooBig(ValueError):
    """A pattern refused before it was compiled; the message says why, for the flag's author."""


@dataclass(slots=True)
class _Group:
    done: int = 0  # the alternatives closed by a `|`
    branch: int = 0  # the alternative being read
    last: int = 0  # the weight the next repeat multiplies (0: nothing to repeat)


def regex_size(pattern: str, budget: int = MAX_REGEX_SIZE) -> int:
    """The estimate (at least len(pattern)); RegexTooBig as soon as it passes `budget`, for a
    count above MAX_REPEAT, and for the verbose (x) and VERSION1 (V1) modes, whose comments
    and nested sets this scanner does not follow (so could not see a bomb behind them)."""
    stack = [_Group()]
    i, n = 0, len(pattern)
    while i < n:
        top = stack[-1]
        char = pattern[i]
        if char == "(":
            if pattern.startswith("(?#", i):
                end = _comment_end(pattern, i)
                _atom(top, end - i, budget)
                i = end
                continue
            _check_flags(pattern, i)
            stack.append(_Group())
            i += 1
        elif char == ")" and len(stack) > 1:
            stack.pop()
            _atom(stack[-1], _close(top) + 2, budget)  # the two parentheses
            i += 1
        elif char == "|":
            top.done, top.branch, top.last = top.done + top.branch + 1, 0, 0
            i += 1
        elif char in "*+?":  # any number, lazy or possessive: nothing multiplied out
            top.branch += 1
            _check(top, budget)
            i += 1
        elif char == "{" and (repeat := _REPEAT.match(pattern, i)):
            count = _count(repeat)
            top.branch += top.last * (count - 1) + len(repeat.group())
            top.last *= count
            _check(top, budget)
            i = repeat.end()
        else:
            end = _set_end(pattern, i) if char == "[" else _atom_end(pattern, i)
            _atom(top, end - i, budget)
            i = end
    while len(stack) > 1:  # an unclosed group: `regex` refuses it, counted all the same
        top = stack.pop()
        _atom(stack[-1], _close(top) + 1, budget)
    return _close(stack[0])


def _atom(group: _Group, weight: int, budget: int) -> None:
    group.branch += weight
    group.last = weight
    _check(group, budget)


def _close(group: _Group) -> int:
    return group.done + group.branch


def _check(group: _Group, budget: int) -> None:
    # Every repeat multiplies by at least one: what one group holds so far, the whole holds.
    if _close(group) > budget:
        raise RegexTooBig(f"a regex of at most {budget} characters multiplied out (this one "
                          "has more: nested {m,n} repeats multiply; + and * do not)")  # fmt: skip


def _count(repeat: re.Match[str]) -> int:
    texts = [text for text in repeat.groups() if text]  # `{,}` has none: any number
    if any(len(text) > 6 or int(text) > MAX_REPEAT for text in texts):
        raise RegexTooBig(f"a repeat count of at most {MAX_REPEAT} ({repeat.group()} is more)")
    return max([int(text) for text in texts], default=1) or 1  # {0}: the atom is still read


def _check_flags(pattern: str, i: int) -> None:
    flags = _FLAGS.match(pattern, i)
    if flags is None:
        return
    on = flags.group(1)
    if "x" in on or "V1" in on:
        mode = "verbose (?x)" if "x" in on else "VERSION1 (?V1)"
        raise RegexTooBig(f"a flag's regex cannot turn on {mode} mode")


def _comment_end(pattern: str, i: int) -> int:
    # `regex` ends a comment at the first `)` not escaped by a backslash.
    j = i + 3
    while j < len(pattern) and pattern[j] != ")":
        j += 2 if pattern[j] == "\\" else 1
    return min(j + 1, len(pattern))


def _atom_end(pattern: str, i: int) -> int:
    """Past one literal or escape: `\\p{…}`, `\\P{…}` and `\\N{…}` take their braces along."""
    if pattern[i] != "\\":
        return i + 1
    if pattern[i + 1 : i + 2] in ("p", "P", "N") and pattern[i + 2 : i + 3] == "{":
        close = pattern.find("}", i + 3)
        if close != -1:
            return close + 1
    return min(i + 2, len(pattern))


def _set_end(pattern: str, i: int) -> int:
    """Past a set `[…]`: a `]` first (after `^`) is a member; escapes and `[:name:]` inside."""
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        j += 1
    while j < len(pattern):
        if pattern[j] == "]":
            return j + 1
        posix = _POSIX.match(pattern, j)
        j = posix.end() if posix else _atom_end(pattern, j)
    return len(pattern)  # unterminated: `regex` refuses it
