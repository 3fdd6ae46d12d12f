"""The `flags:` section of opsmedic.yaml: each flag named by its key, every problem located
at file:line:col like the rest of the config."""

from __future__ import annotations

from pathlib import Path

from opsmedic.config.loader import read_config
from opsmedic.flags.model import FlagType

VALID = """\
flags:
  new_checkout:
    default: off
    rollout: {percentage: 30}
  color:
    type: string
    variants: {red: "#f00", blue: "#00f"}
    default: red
    rules:
      - when: [{attribute: plan, op: in, value: [gold]}]
        serve: blue
"""

BAD = """\
flags:
  new_checkout:
    rollout: {percentage: 130}
  color:
    type: string
    variants: {red: "#f00"}
    default: red
    rules:
      - when:
          - {attribute: email, op: regexp, value: x}
          - {attribute: app, op: semver_gte, value: "2.1"}
          - {attribute: email, op: regex, value: "(unclosed"}
        serve: red
  size:
    type: number
    variants: {s: 1}
    default: m
  other:
    key: nope
  "no spaces": {}
"""


def _read(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    read = read_config(path, [], environ={})
    return read.config, [str(p).removeprefix(str(path)) for p in read.problems]


def test_declared_flags_are_validated_and_keyed_by_their_name(tmp_path: Path) -> None:
    config, problems = _read(tmp_path, VALID)
    assert problems == []
    flags = config.flags  # type: ignore[attr-defined]
    assert list(flags) == ["new_checkout", "color"]
    assert (flags["new_checkout"].key, flags["new_checkout"].default) == ("new_checkout", "off")
    assert flags["color"].type == FlagType.STRING


def test_every_bad_flag_is_an_error_at_file_line_col(tmp_path: Path) -> None:
    _, problems = _read(tmp_path, BAD)
    assert problems == [
        ":3:27: flags.new_checkout.rollout.percentage: Input should be less than or equal to 100",
        ":10:36: flags.color.rules[0].when[0].op: Input should be 'equals', 'in', 'regex', "
        "'semver_eq', 'semver_lt', 'semver_lte', 'semver_gt' or 'semver_gte' (did you mean "
        "regex?)",
        ":11:53: flags.color.rules[0].when[1].value: '2.1' is not a semantic version "
        "(MAJOR.MINOR.PATCH)",
        ":12:50: flags.color.rules[0].when[2].value: invalid regex: missing ) at position 9",
        ":17:14: flags.size.default: 'm' is not a variant (known: s)",
        ":20:16: flags.no spaces.key: String should match pattern "
        "'^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'",
    ]


def test_a_key_written_beside_the_name_must_be_the_name(tmp_path: Path) -> None:
    _, problems = _read(tmp_path, "flags:\n  other:\n    key: nope\n  same: {key: same}\n")
    assert problems == [":3:10: flags.other.key: the key is the flag's name, 'other'; leave it out"]


def test_the_example_of_docs_flags_md_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parents[3] / "docs" / "flags.md").read_text()
    example = text[text.index("```yaml\n") + 8 : text.index("```\n", text.index("```yaml\n"))]
    config, problems = _read(tmp_path, example)
    assert problems == []
    assert list(config.flags) == ["new_checkout", "checkout_theme"]  # type: ignore[attr-defined]
