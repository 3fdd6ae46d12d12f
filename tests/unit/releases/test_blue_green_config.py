"""A blue_green service's settings: each bad one named at file:line:col; `check` shows them."""

from __future__ import annotations

from pathlib import Path

if __package__:
    from ...cli_process import ROUTER_YAML, opsmedic, service_site
else:
    from cli_process import ROUTER_YAML, opsmedic, service_site

BAD = f"""\
services:
  shop:
    versions: releases
    strategy: blue_green
    blue_green:
{ROUTER_YAML}      slots: {{blue: "127.0.0.1:8001", green: "127.0.0.1"}}
      start: [{{run_comand: {{argv: ["true"]}}}}]
      warm_timeout: 0s
      version_path: version
  same:
    versions: releases
    strategy: blue_green
    blue_green:
{ROUTER_YAML}      slots: {{blue: "127.0.0.1:8001", green: "127.0.0.1:8001"}}
      start: []
  three:
    versions: releases
    strategy: blue_green
    blue_green:
{ROUTER_YAML}      slots: {{blue: "127.0.0.1:8001", green: "127.0.0.1:8002", red: "127.0.0.1:8003"}}
      start: [{{run_command: {{argv: ["true"]}}}}]
  unasked:
    versions: releases
    strategy: blue_green
    blue_green:
{ROUTER_YAML}      slots: {{blue: "127.0.0.1:8001", green: "127.0.0.1:8002"}}
      start: [{{run_command: {{argv: ["true", "{{{{ slott }}}}"]}}}}]
  cart:
    versions: releases
    strategy: blue_green
  plain:
    versions: releases
"""
GOOD = f"""\
services:
  shop:
    versions: releases
    version_url: http://127.0.0.1:8080/version
    strategy: blue_green
    verify:
      - {{name: home, http: {{url: "http://127.0.0.1:8080/"}}, on_no_data: fail}}
    blue_green:
{ROUTER_YAML}      slots: {{blue: "127.0.0.1:8001", green: "127.0.0.1:8002"}}
      start: [{{run_command: {{argv: [start-slot, "{{{{ slot }}}}", "{{{{ version }}}}"]}}}}]
      warm_timeout: 20s
"""


def test_bad_blue_green_settings_are_named_at_their_place(tmp_path: Path) -> None:
    found = opsmedic("check", cwd=service_site(tmp_path, BAD))
    assert found.returncode == 2
    for expected in (
        "opsmedic.yaml:8:14: services.shop.blue_green.slots: Value error, slot 'green': "
        "'127.0.0.1' is not host:port",
        "opsmedic.yaml:9:16: services.shop.blue_green.start[0].run_comand: unknown action "
        "'run_comand' (did you mean run_command?)",
        "opsmedic.yaml:10:21: services.shop.blue_green.warm_timeout: Input should be greater "
        "than 0",
        "opsmedic.yaml:11:21: services.shop.blue_green.version_path: Value error, 'version': a "
        "path from / (with a query if need be), e.g. /version",
        "opsmedic.yaml:18:14: services.same.blue_green.slots: Value error, the two slots share "
        "one address '127.0.0.1:8001': each slot needs its own",
        "opsmedic.yaml:19:14: services.same.blue_green.start: List should have at least 1 item",
        "opsmedic.yaml:26:14: services.three.blue_green.slots: Value error, exactly two slots, "
        "e.g. {blue: host:port, green: host:port}; got 3",
        "opsmedic.yaml:29:5: services.unasked: Value error, strategy blue_green asks each slot "
        "which version it runs: give blue_green.version_path or the service's version_url",
        "opsmedic.yaml:35:45: services.unasked.blue_green.start[0].run_command.argv[1]: unknown "
        "template variable 'slott' (did you mean slot?)",
        "opsmedic.yaml:37:5: services.cart: Value error, strategy blue_green and a blue_green: "
        "section go together",
        "opsmedic.yaml:40:5: services.plain: Value error, strategy switch needs switch: steps "
        "(at least one)",
    ):
        assert expected in found.stderr, (expected, found.stderr)


def test_check_shows_the_slots_and_what_the_preview_checks(tmp_path: Path) -> None:
    found = opsmedic("check", cwd=service_site(tmp_path, GOOD))
    assert found.returncode == 0, found.stderr
    assert "service shop (production): blue_green, bake 30s, verify_timeout 600s; home every " in (
        found.stdout
    )
    assert (
        "service shop: blue_green slots blue 127.0.0.1:8001, green 127.0.0.1:8002; 1 start "
        "step(s), warm_timeout 20s; the idle slot previewed with the http checks, every check "
        "on live traffic"
    ) in found.stdout
