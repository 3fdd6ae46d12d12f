"""The `flag_store:` section: absent means the store only; a Redis is validated at
file:line:col, a password in its URL never shown."""

from __future__ import annotations

from pathlib import Path

from opsmedic.config.loader import read_config
from opsmedic.flags.redis_wire import DEFAULT_PREFIX


def _read(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    read = read_config(path, [], environ={})
    return read.config, [str(p).removeprefix(str(path)) for p in read.problems]


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
        ":6:5: flag_store.redis.check_evry: unknown field 'check_evry' (did you mean "
        "check_every?)",
    ]
    assert not any("s3cret" in p for p in problems)
    _, problems = _read(tmp_path, "flag_store: {redis: {}}\n")
    assert problems == [":1:21: flag_store.redis.url: required field is missing"]
