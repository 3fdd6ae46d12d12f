"""The `pollers:` config section: defaults, and each bad setting named where it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsmedic.config.loader import load_config
from opsmedic.config.poller import PollerConfig, parse_path
from opsmedic.errors import ConfigError
from opsmedic.model import Status
from opsmedic.runtime import build_registry

SECTIONS = build_registry(load_entry_points=False).settings()

GOOD = """\
pollers:
  - name: legacy-nms
    url: https://nms.internal/api/alerts
    interval: 1m
    secret_headers: {Authorization: {env: NMS_TOKEN}}
    items: data.alerts
    map: {kind: name, resource: target.service, status: state, labels.team: owner.team}
    status_map: {open: firing, closed: resolved}
    cursor: {field: updated_at, param: since}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    return path


def test_a_full_poller_section_loads(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path, GOOD), SECTIONS, environ={})
    [poller] = config.pollers
    assert poller.name == "legacy-nms"
    assert poller.interval == 60.0
    assert poller.timeout == 10.0
    assert poller.status_map == {"open": Status.FIRING, "closed": Status.RESOLVED}
    assert poller.map["labels.team"] == "owner.team"
    assert poller.cursor is not None
    assert (poller.cursor.field, poller.cursor.param) == ("updated_at", "since")
    assert poller.source is None
    assert poller.secret_headers["Authorization"].env == "NMS_TOKEN"


def test_no_pollers_by_default() -> None:
    config, _ = load_config(None, SECTIONS, environ={})
    assert config.pollers == []


def test_minimal_poller_takes_defaults() -> None:
    cfg = PollerConfig.model_validate({"name": "p", "url": "http://h/x", "map": {"kind": "k"}})
    assert (cfg.items, cfg.cursor, cfg.verify_tls, cfg.jitter) == ("", None, True, 0.1)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("data.alerts", ("data", "alerts")),
        ("data.alerts[0].id", ("data", "alerts", 0, "id")),
        ("[2][10]", (2, 10)),
        ("a b.c-d", ("a b", "c-d")),
        ("", ()),
    ],
)
def test_paths_parse_into_keys_and_indexes(text: str, path: tuple[str | int, ...]) -> None:
    assert parse_path(text) == path


@pytest.mark.parametrize("text", ["a..b", ".a", "a.", "a[x]", "a[-1]", "a[0", "a]", "a.[0]"])
def test_malformed_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a JSON path"):
        parse_path(text)


BAD = [
    ("    map: {sevrity: level}\n", "pollers[0].map: Value error, unknown event field 'sevrity' (did you mean severity?)"),
    ("    map: {id: id}\n", "pollers[0].map: Value error, unknown event field 'id'"),
    ("    map: {labels.: x}\n", "pollers[0].map: Value error, unknown event field 'labels.'"),
    ("    map: {kind: 'a..b'}\n", "pollers[0].map.kind: Value error, not a JSON path: 'a..b'"),
    ("    map: {kind: ''}\n", "pollers[0].map.kind: Value error, an empty path would take the whole item"),
    ("    map: {}\n", "pollers[0].map: Dictionary should have at least 1 item"),
    ("    map: {kind: k}\n    items: 'x[y]'\n", "pollers[0].items: Value error, not a JSON path"),
    ("    map: {kind: k}\n    status_map: {open: firing}\n", "status_map needs map.status"),
    ("    map: {status: s}\n    status_map: {open: burning}\n", "pollers[0].status_map.open: Input should be 'firing' or 'resolved'"),
    ("    map: {kind: k}\n    interval: 0s\n", "pollers[0].interval: Input should be greater than 0"),
    ("    map: {kind: k}\n    intervall: 5s\n", "pollers[0].intervall: unknown field 'intervall' (did you mean interval?)"),
    ("    map: {kind: k}\n    cursor: {param: since}\n", "pollers[0].cursor.field: required field is missing"),
    ("    map: {kind: k}\n    cursor: {field: t, parm: since}\n", "pollers[0].cursor.parm: unknown field 'parm' (did you mean param?)"),
    ("    map: {kind: k}\n    secret_headers: {X-Token: {env: A, file: /b}}\n", "pollers[0].secret_headers.X-Token: Value error, give exactly one of env"),
    ("    map: {kind: k}\n    headers: {authorization: x}\n    secret_headers: {Authorization: {env: A}}\n", "header 'Authorization' is in both headers and secret_headers"),
    ("    map: {kind: k}\n    jitter: 2\n", "pollers[0].jitter: Input should be less than or equal to 1"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "expected"), BAD)
def test_each_bad_setting_is_named(tmp_path: Path, extra: str, expected: str) -> None:
    text = "pollers:\n  - name: nms\n    url: http://127.0.0.1/feed\n" + extra
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    lines = [str(p) for p in info.value.problems]
    assert any(expected in line for line in lines), lines
    assert all(re.search(r"opsmedic\.yaml:\d+:\d+: pollers", line) for line in lines), lines


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://h/x", "expected an http:// or https:// URL with a host"),
        ("http:///x", "expected an http:// or https:// URL with a host"),
        ("https://u:pw@h/x", "no password in the URL"),
        ("http://h:99999/x", "bad port in 'http://h:99999/x'"),
    ],
)
def test_bad_urls_are_refused(tmp_path: Path, url: str, expected: str) -> None:
    text = f"pollers:\n  - {{name: nms, url: '{url}', map: {{kind: k}}}}\n"
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    assert "pollers[0].url" in str(info.value.problems[0])


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 201])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    text = f"pollers:\n  - {{name: '{name}', url: 'http://h/x', map: {{kind: k}}}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    assert "pollers[0].name" in str(info.value.problems[0])


def test_two_pollers_with_one_name_are_refused(tmp_path: Path) -> None:
    """They would share one saved cursor and skip each other's items."""
    one = "  - {name: nms, url: 'http://h/x', map: {kind: k}}\n"
    with pytest.raises(ConfigError, match="duplicate poller name 'nms'") as info:
        load_config(write(tmp_path, "pollers:\n" + one + one), SECTIONS, environ={})
    assert "pollers" in str(info.value.problems[0])
