"""The `flags:` section of opsmedic.yaml: each flag named by its key, every problem located
at file:line:col like the rest of the config; and the `flag_store:` section beside it."""

from __future__ import annotations

from pathlib import Path

from opsmedic.config.loader import read_config
from opsmedic.flags.model import MAX_FLAGS, FlagType
from opsmedic.flags.redis_wire import DEFAULT_PREFIX

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
        # At the name, once: not a second time for the key it would have given.
        ":20:3: flags.no spaces: a flag's name is its key: letters, digits, _ . - (pattern "
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$)",
    ]


def test_a_key_written_beside_the_name_must_be_the_name(tmp_path: Path) -> None:
    _, problems = _read(tmp_path, "flags:\n  other:\n    key: nope\n  same: {key: same}\n")
    assert problems == [":3:10: flags.other.key: the key is the flag's name, 'other'; leave it out"]


def test_coercions_and_non_finite_numbers_are_errors_at_file_line_col(tmp_path: Path) -> None:
    text = """\
flags:
  h2:
    enabled: 1
    rollout: {percentage: true}
  h3:
    enabled: "no"
    rollout: {percentage: "50"}
  size:
    type: number
    variants: {s: .nan, m: 2}
    default: m
  shape:
    type: string
    variants: {a: x}
    default: a
    rules: [{when: [{attribute: n, op: in, value: [1.5, .inf]}], serve: a}]
"""
    _, problems = _read(tmp_path, text)
    assert problems == [
        ":3:14: flags.h2.enabled: Input should be a valid boolean",
        ":4:27: flags.h2.rollout.percentage: Input should be a valid integer",
        ":6:14: flags.h3.enabled: Input should be a valid boolean",
        ":7:27: flags.h3.rollout.percentage: Input should be a valid integer",
        ":10:19: flags.size.variants.s: Input should be a finite number (not NaN or infinity)",
        ":16:57: flags.shape.rules[0].when[0].value[1]: Input should be a finite number (not "
        "NaN or infinity)",
    ]


def test_a_bad_name_is_one_error_at_the_name(tmp_path: Path) -> None:
    text = 'flags:\n  123:\n    default: on\n  "bad key!":\n    default: on\n  stream: {}\n'
    _, problems = _read(tmp_path, text)
    assert problems == [
        ":2:3: flags.123: a flag's name is its key, text: YAML read this one as int 123 (quote it)",
        ":4:3: flags.bad key!: a flag's name is its key: letters, digits, _ . - (pattern "
        "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$)",
        ":6:3: flags.stream: 'stream' is reserved: GET /api/v1/flags/stream is the change stream",
    ]


def test_more_flags_than_a_reader_takes_is_an_error(tmp_path: Path) -> None:
    text = "flags:\n" + "".join(f"  f{i}: {{}}\n" for i in range(MAX_FLAGS + 1))
    _, problems = _read(tmp_path, text)
    assert problems == [f":2:3: flags: Dictionary should have at most {MAX_FLAGS} items after "
                        "validation, not more"]  # fmt: skip


def test_a_flag_too_big_for_one_redis_message_is_an_error_at_the_flag(tmp_path: Path) -> None:
    emails = "".join(f"\n            - user{i}@example.com" for i in range(4000))
    text = (
        "flags:\n  small: {}\n  big:\n    rules:\n      - serve: on\n        when:\n"
        f"          - attribute: email\n            op: in\n            value:{emails}\n"
    )
    _, problems = _read(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith(
        ":4:5: flags.big: a flag of at most 65536 bytes as JSON (this one: "
    )


def test_the_example_of_docs_flags_md_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parents[3] / "docs" / "flags.md").read_text()
    example = text[text.index("```yaml\n") + 8 : text.index("```\n", text.index("```yaml\n"))]
    config, problems = _read(tmp_path, example)
    assert problems == []
    assert list(config.flags) == ["new_checkout", "checkout_theme"]  # type: ignore[attr-defined]


# The flag_store: section (where flags are shared besides the store).


def test_absent_is_the_store_only_and_a_redis_takes_its_defaults(tmp_path: Path) -> None:
    config, problems = _read(tmp_path, "rules_dir: .\n")
    assert problems == [] and config.flag_store.redis is None  # type: ignore[attr-defined]
    config, problems = _read(tmp_path, "flag_store:\n  redis: {url: 'redis://h:6379/2'}\n")
    redis = config.flag_store.redis  # type: ignore[attr-defined]
    assert problems == []
    assert (redis.url, redis.prefix, redis.timeout, redis.check_every) == (
        "redis://h:6379/2", DEFAULT_PREFIX, 2.0, 5.0,
    )  # fmt: skip


def test_every_bad_field_is_an_error_at_file_line_col(tmp_path: Path) -> None:
    text = """\
flag_store:
  redis:
    url: "http://:s3cret@h/0"
    prefix: "a b"
    timeout: 0s
    check_evry: 5s
"""
    _, problems = _read(tmp_path, text)
    assert problems == [
        ":3:10: flag_store.redis.url: Value error, not a Redis URL (scheme http; use redis://, "
        "rediss://, unix://)",
        ":4:13: flag_store.redis.prefix: String should match pattern '^[A-Za-z0-9_.:-]+$'",
        ":5:14: flag_store.redis.timeout: Input should be greater than 0",
        ":6:5: flag_store.redis.check_evry: unknown field 'check_evry' (did you mean check_every?)",
    ]
    assert not any("s3cret" in p for p in problems)
    _, problems = _read(tmp_path, "flag_store: {redis: {}}\n")
    assert problems == [":1:21: flag_store.redis.url: required field is missing"]
