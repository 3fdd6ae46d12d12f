"""`gates:` and `requires:` in opsmedic.yaml: each bad one named at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.loader import load_config
from opsmedic.errors import ConfigError
from opsmedic.runtime import build_registry

SECTIONS = build_registry(load_entry_points=False).settings()

SERVICE = """services:
  shop:
    versions: /tmp
    switch:
      - run_command: {argv: [echo]}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "    gates:\n      - name: tests\n        command: {argv: []}\n",
            "opsmedic.yaml:8:25: services.shop.gates[0].command.argv: List should have at least 1",
        ),
        (
            '    gates:\n      - name: two\n        ci: {url: "http://127.0.0.1:1/"}\n'
            "        command: {argv: [make]}\n",
            "opsmedic.yaml:7:9: services.shop.gates[0]: Value error, give exactly one of ci, "
            "command or load",
        ),
        (
            "    gates:\n      - name: none\n",
            "opsmedic.yaml:7:9: services.shop.gates[0]: Value error, give exactly one of",
        ),
        (
            '    gates:\n      - name: load\n        load: {url: "http://127.0.0.1:1/", '
            "requests: 1000, expected_rate: 10, max_p95: 200ms}\n",
            "opsmedic.yaml:8:15: services.shop.gates[0].load: Value error, 1000 requests at "
            "15/s take 66.6667s, longer than timeout 60s",
        ),
        (
            '    gates:\n      - name: load\n        load: {url: "http://127.0.0.1:1/", '
            "requests: 10, expected_rate: 4000, max_p95: 1s}\n",
            "services.shop.gates[0].load: Value error, expected_rate * multiple is 6000/s, over",
        ),
        (
            '    gates:\n      - name: ci\n        ci: {url: "http://127.0.0.1:1/", field: state}\n',
            "opsmedic.yaml:8:13: services.shop.gates[0].ci: Value error, give field and value",
        ),
        (
            '    gates:\n      - name: ci\n        ci: {url: "ftp://x/"}\n',
            "opsmedic.yaml:8:19: services.shop.gates[0].ci.url",
        ),
        (
            "    environments:\n      staging: {requires: [qa]}\n      production: {}\n",
            "opsmedic.yaml:3:5: services.shop: Value error, environment 'staging' requires 'qa', "
            "not another environment (production)",
        ),
        (
            "    environments:\n      staging: {requires: [staging]}\n",
            "services.shop: Value error, environment 'staging' requires 'staging', not another",
        ),
        (
            "    environments:\n      production:\n        gates: [{name: t, command: {argv: "
            "[make], timeout: 0s}}]\n",
            "opsmedic.yaml:8:60: services.shop.environments.production.gates[0].command.timeout",
        ),
    ],
)
def test_bad_gates_are_named_where(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(SERVICE + text)
    with pytest.raises(ConfigError) as info:
        load_config(path, SECTIONS, environ={})
    lines = [str(p) for p in info.value.problems]
    assert any(expected in line for line in lines), lines


def test_an_environment_inherits_the_service_gates_unless_it_has_its_own(tmp_path: Path) -> None:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(
        SERVICE + "    gates: [{name: t, command: {argv: [make, test]}}]\n    environments:\n"
        "      staging: {}\n      production: {requires: [staging], gates: []}\n"
    )
    config, _ = load_config(path, SECTIONS, environ={})
    shop = config.services["shop"]
    assert [g.name for g in shop.gates_of("staging")] == ["t"]
    assert shop.gates_of("production") == []
    assert (shop.requires_of("staging"), shop.requires_of("production")) == ([], ["staging"])
