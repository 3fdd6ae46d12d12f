"""A condition's regex is sized before it is compiled: nested counted repeats, which the `regex`
module multiplies out (0.9 s and 280 MB for 24 characters), are refused by a linear scan."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmedic.flags.model import Flag
from opsmedic.flags.regex_size import MAX_REGEX_SIZE, MAX_REPEAT, RegexTooBig, regex_size


def _flag(pattern: str) -> dict[str, Any]:
    return {"key": "k", "rules": [{"when": [{"attribute": "a", "op": "regex", "value": pattern}],
                                   "serve": "off"}]}  # fmt: skip


def _refusal(pattern: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Flag.model_validate(_flag(pattern))
    [error] = caught.value.errors()
    assert error["loc"] == ("rules", 0, "when", 0, "value")
    return str(error["msg"])


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(?:(?:a{100}){100}){100}", f"a regex of at most {MAX_REGEX_SIZE} characters multiplied"),
        ("(?:a{100}){100}", "nested {m,n} repeats multiply; + and * do not"),
        ("(?:(?:a{10}){10}|b){101}", f"at most {MAX_REGEX_SIZE}"),
        ("[a-z]{65535}", f"a repeat count of at most {MAX_REPEAT} ({{65535}} is more)"),
        ("a{4294967294}", "a repeat count of at most 1000 ({4294967294} is more)"),
        ("a{1," + "9" * 900 + "}", "a repeat count of at most 1000"),
        ("x{,5000}", "({,5000} is more)"),
        # Verbose mode's comments and VERSION1's nested sets could hide a bomb from the scan:
        # `#[` opens no set there, and the set the scan saw would swallow the repeats.
        ("(?x)# [\n(?:(?:a{99}){99}){99}]", "cannot turn on verbose (?x) mode"),
        ("a(?ix:b)", "verbose (?x)"),
        ("(?V1)[[a](](?:(?:a{99}){99}){99})", "cannot turn on VERSION1 (?V1) mode"),
    ],
)
def test_a_regex_that_multiplies_out_is_refused_at_its_value(pattern: str, says: str) -> None:
    assert says in _refusal(pattern)


@pytest.mark.parametrize(
    "pattern",
    ["@example\\.com$", "^[a-z]{2,8}$", "^(x+x+)+y$", "\\p{Greek}{3}", "[]a]{5}", "(?-x)a",
     "(?#a\\)b)c", "[[:alpha:](]{9}", "(?:a{9}){99}", "a{,}b{}", "\\d{1000}", "(?i)(?P<n>a)"],
)  # fmt: skip
def test_an_ordinary_regex_passes(pattern: str) -> None:
    Flag.model_validate(_flag(pattern))


def test_what_a_set_a_comment_or_an_escape_holds_is_not_a_repeat_of_the_pattern() -> None:
    # The scan reads these as the `regex` module does: the braces are no repeat of a group.
    assert regex_size("[(?:a{100}){100}]") == len("[(?:a{100}){100}]")
    assert regex_size("(?#[(a{100})(?:a{2}){2}") == len("(?#[(a{100})") + 2 * 9 + 3
    assert regex_size("\\p{L}{2}") == 2 * len("\\p{L}") + len("{2}")
    # …but a `]` first in a set is a member, and `\]` too: the set goes on.
    assert regex_size("[]a](?:b{50}){50}") > 2500
    assert regex_size("[\\](?:b{50}){50}]") == len("[\\](?:b{50}){50}]")


_ATOM = st.sampled_from(["a", "\\d", "[a-z]", "\\p{L}", ".", "(?:ab)", "[]x]", "\\)"])
_REPEAT = st.sampled_from(["", "*", "+?", "{2}", "{0}", "{3,}", "{,4}", "{2,9}", "{,}"])


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 3) -> str:
    parts = draw(st.lists(st.tuples(_ATOM, _REPEAT), min_size=1, max_size=4))
    text = "".join(atom + repeat for atom, repeat in parts)
    if depth and draw(st.booleans()):
        inner = draw(_patterns(depth - 1))
        count = draw(st.integers(1, 30))
        text += f"(?:{inner}|{draw(_patterns(0))}){{{count}}}"
    return text


@given(st.text(alphabet="ab(?:)|[]^\\{},0123456789*+#xp-", max_size=60))
def test_the_estimate_is_never_below_the_plain_length(pattern: str) -> None:
    size, refused = 0, ""
    try:
        size = regex_size(pattern, budget=10**15)
    except RegexTooBig as exc:
        refused = str(exc)
    if refused:  # only for a count past MAX_REPEAT, or verbose mode
        assert "repeat count" in refused or "(?x)" in refused, refused
    else:
        assert size >= len(pattern)


@given(_patterns())
def test_every_group_is_multiplied_by_its_count(pattern: str) -> None:
    size = regex_size(pattern, budget=10**15)
    assert size >= len(pattern)
    # A group of n characters repeated c times is never estimated below n·c.
    for count in range(1, 31):
        assert regex_size(f"(?:{pattern}){{{count}}}", budget=10**15) >= size * count


@given(st.lists(st.integers(2, MAX_REPEAT), min_size=1, max_size=6))
def test_nested_repeats_past_the_budget_are_refused_by_the_scan(counts: list[int]) -> None:
    pattern = "a"
    for count in counts:
        pattern = f"(?:{pattern}){{{count}}}"
    assert regex_size(pattern, budget=10**30) >= math.prod(counts)
    if math.prod(counts) > MAX_REGEX_SIZE:
        # Refused by the linear scan, so quickly: before `regex` could spend seconds compiling.
        with pytest.raises(RegexTooBig, match="multiplied out"):
            regex_size(pattern)
