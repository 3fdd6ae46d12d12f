"""A service's `scale:` settings and the `scale` action's parameters: each bad one named at
file:line:col; `check` shows the good ones; a systemd unit's argv as run."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.scale import ScaleConfig, SystemdUnit
from opsmedic.releases.scale_instances import systemd_argv

if __package__:
    from ...cli_process import ROUTER_YAML, opsmedic, service_site
    from ...rule_steps import load_problem
else:
    from cli_process import ROUTER_YAML, opsmedic, service_site
    from rule_steps import load_problem

BAD = f"""\
services:
  api:
    versions: releases
    switch: [noop]
    scale:
{ROUTER_YAML}      command: {{argv: [serve, --port, "{{{{ prot }}}}"]}}
      base_port: 8100
      max: 2
  both:
    versions: releases
    switch: [noop]
    scale:
{ROUTER_YAML}      command: {{argv: [serve]}}
      systemd: {{unit: both}}
      base_port: 8100
      max: 2
  inverted:
    versions: releases
    switch: [noop]
    scale:
{ROUTER_YAML}      systemd: {{unit: inverted}}
      base_port: 8100
      min: 3
      max: 2
  rolled:
    versions: releases
    switch: [noop]
    strategy: canary
    canary:
{ROUTER_YAML}      backends: {{v1: "127.0.0.1:8001"}}
      analysis: {{on_no_data: fail}}
    scale:
{ROUTER_YAML}      systemd: {{unit: rolled}}
      base_port: 8100
      max: 2
  unit:
    versions: releases
    switch: [noop]
    scale:
{ROUTER_YAML}      systemd: {{unit: "api@"}}
      base_port: 8100
      max: 2
"""
GOOD = f"""\
services:
  api:
    versions: releases
    switch: [noop]
    scale:
{ROUTER_YAML}      systemd: {{unit: api}}
      base_port: 8100
      max: 4
      cooldown: 2m
      health: {{path: /health, timeout: 15s}}
"""


def test_bad_scale_settings_are_named_at_their_place(tmp_path: Path) -> None:
    found = opsmedic("check", cwd=service_site(tmp_path, BAD))
    assert found.returncode == 2
    for expected in (
        "opsmedic.yaml:8:23: services.api.scale.command.argv: Value error, {{ prot }} is not "
        "known here: n, port, address, service are",
        "opsmedic.yaml:15:7: services.both.scale: Value error, give exactly one of command or "
        "systemd",
        "opsmedic.yaml:25:7: services.inverted.scale: Value error, min 3 is above max 2",
        "opsmedic.yaml:32:5: services.rolled: Value error, scale: goes with strategy switch, "
        "not canary: both would write the router's upstream",
        "opsmedic.yaml:52:23: services.unit.scale.systemd.unit: Value error, unit 'api@': a "
        "template's name without '@' or '.service'",
    ):
        assert expected in found.stderr, (expected, found.stderr)


def test_check_shows_what_scaling_does(tmp_path: Path) -> None:
    found = opsmedic("check", cwd=service_site(tmp_path, GOOD))
    assert found.returncode == 0, found.stderr
    assert (
        "service api: scale 1..4 instances at 127.0.0.1:8100+N (systemd api@N.service), "
        "cooldown 120s, health /health within 15s, drain_timeout 30s"
    ) in found.stdout


def test_instance_ports_stay_in_range() -> None:
    router = {"nginx": {"upstream": "app", "include": "u", "access_log": "a", "prefix": ".",
                        "conf": "c", "pid_file": "p"}}  # fmt: skip
    with pytest.raises(ValueError, match="base_port 65530 \\+ max 10 is past port 65535"):
        ScaleConfig.model_validate(
            {"router": router, "systemd": {"unit": "x"}, "base_port": 65530, "max": 10}
        )


def test_a_systemd_unit_is_started_and_stopped_by_its_instance_name() -> None:
    unit = SystemdUnit(unit="api.service", systemctl="/bin/systemctl")
    assert systemd_argv(unit, "start", 3) == ["/bin/systemctl", "start", "api@3.service"]
    assert systemd_argv(SystemdUnit(unit="api"), "stop", 1) == [
        "systemctl",
        "stop",
        "api@1.service",
    ]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("scale: {service: api}", "Value error, give exactly one of by or to"),
        ("scale: {service: api, by: 1, to: 2}", "Value error, give exactly one of by or to"),
        ("scale: {service: api, by: 0}", "Value error, by: 0 changes nothing; give +N or -N"),
        ("scale: {service: api, to: -1}", "Input should be greater than or equal to 0"),
        ("scale: {service: api, by: +1, step: 2}", "unknown field 'step' (known: by, service"),
    ],
)
def test_bad_scale_steps_are_refused_where_they_are(
    tmp_path: Path, step: str, message: str
) -> None:
    problem = load_problem(tmp_path, step)
    assert problem.line == 4
    assert message in str(problem), str(problem)
