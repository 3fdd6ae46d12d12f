"""The compiled condition tests: SemVer order by key, equal to the `semver` package's own."""

from __future__ import annotations

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from opsmedic.flags.operators import version_key

_NUMBER = st.integers(0, 30).map(str)
_WORD = st.sampled_from(["alpha", "beta", "rc", "a1", "0a", "x-y", "A", "Z"])
_PRE = st.lists(_NUMBER | _WORD, min_size=1, max_size=4).map(".".join)
_VERSION = st.builds(
    lambda core, pre, build: core + (f"-{pre}" if pre else "") + (f"+{build}" if build else ""),
    st.tuples(_NUMBER, _NUMBER, _NUMBER).map(".".join),
    st.none() | _PRE,
    st.none() | st.sampled_from(["b7", "exp.sha.5114f85", "001"]),
)


@given(_VERSION, _VERSION)
def test_version_keys_order_as_semver_compares(a: str, b: str) -> None:
    by_key = (version_key(a) > version_key(b)) - (version_key(a) < version_key(b))
    assert by_key == semver.Version.parse(a).compare(b)


def test_the_spec_s_own_example_order() -> None:
    """SemVer 2.0.0 §11: 1.0.0-alpha < 1.0.0-alpha.1 < … < 1.0.0-rc.1 < 1.0.0."""
    spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
            "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]  # fmt: skip
    assert sorted(reversed(spec), key=version_key) == spec


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "1.0.0-", "01.0.0", "1.0.0-01", ""])
def test_what_is_not_a_semantic_version_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not valid SemVer"):
        version_key(text)
