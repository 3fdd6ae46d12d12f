"""opsmedic.yaml: defaults, environment overrides, secrets, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.actions.annotate_accounts import AnnotateConfig
from opsmedic.actions.notify_targets import NotifyTargets
from opsmedic.config.loader import load_config, read_config
from opsmedic.config.types import Secret, parse_duration
from opsmedic.dns.rfc2136 import TsigKeys
from opsmedic.errors import ConfigError
from opsmedic.runtime import build_registry
from opsmedic.sources.webhooks import pagerduty

SECTIONS = build_registry(load_entry_points=False).settings()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config, _ = load_config(None, SECTIONS, environ={})
    assert config.store.startswith("sqlite:///")
    assert config.actions.retry.max_attempts == 3
    assert config.dry_run is False


def test_rules_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path, "rules_dir: my-rules\n"), SECTIONS, environ={})
    assert config.rules_dir == tmp_path / "my-rules"
    assert config.state_dir == tmp_path / "state"  # the default, beside the config too


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "store: sqlite:///a.db\nactions: {timeout: 10s}\n")
    config, _ = load_config(path, SECTIONS, environ={
        "OPSMEDIC_STORE": "postgresql://db/opsmedic", "OPSMEDIC_DRY_RUN": "true",
        "OPSMEDIC_ACTIONS__TIMEOUT": "5s", "OPSMEDIC_ACTIONS__RETRY__MAX_ATTEMPTS": "7",
        "OPSMEDIC_CONFIG": "ignored", "OTHER": "x",
    })  # fmt: skip
    assert config.store == "postgresql://db/opsmedic"
    assert config.dry_run is True
    assert config.actions.timeout == 5.0
    assert config.actions.retry.max_attempts == 7


def test_a_bad_environment_override_is_named(tmp_path: Path) -> None:
    """A bad value set by a variable is blamed on the variable, not on the file."""
    with pytest.raises(ConfigError, match=r"^\$OPSMEDIC_ACTIONS__TIMEOUT:1:1: actions\.timeout"):
        load_config(
            write(tmp_path, "{}\n"), SECTIONS, environ={"OPSMEDIC_ACTIONS__TIMEOUT": "soon"}
        )
    with pytest.raises(ConfigError, match=r"\$OPSMEDIC_STORE__X:1:1: store: is not a section"):
        load_config(
            write(tmp_path, "store: sqlite:///x\n"), SECTIONS, environ={"OPSMEDIC_STORE__X": "1"}
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "actions:\n  timout: 5s\n",
            "opsmedic.yaml:2:3: actions.timout: unknown field 'timout' (did you mean timeout?)",
        ),
        (
            "store: foo://bar\n",
            "opsmedic.yaml:1:8: store: Value error, unsupported store scheme 'foo' (supported: "
            "sqlite, sqlite+pysqlite, postgresql, postgres, postgresql+psycopg)",
        ),
        ("store: opsmedic.db\n", "opsmedic.yaml:1:8: store: Value error, not a database URL"),
        (
            "xyz: 1\n",  # base_dir is set by opsmedic and refused in a file: never suggested
            "opsmedic.yaml:1:1: xyz: unknown field 'xyz' (known: actions, annotate, api, cleanup,"
            " dry_run, flag_store, flags, incidents, inhibit, log, maintenance, notify, openslo,"
            " pollers, probes, processes, record_suppressed, rules_dir, services, slos, ssh_hosts,"
            " state_dir, store, tsig_keys, webhooks)",
        ),
        (
            "actions:\n  timeout: soon\n",
            "opsmedic.yaml:2:12: actions.timeout: Value error, not a duration",
        ),
        (
            "ssh_hosts:\n  web1: {host: h}\n",
            "opsmedic.yaml:2:9: ssh_hosts.web1.user: required field is missing",
        ),
        (
            "notify:\n  oncall:\n    url_secrets: [{env: A, file: /b}]\n",
            "opsmedic.yaml:3:19: notify.oncall.url_secrets[0]: Value error, give exactly one of env",
        ),
        (
            "probes:\n  - {name: a, type: http, interval: 0s}\n",
            "opsmedic.yaml:2:37: probes[0].interval: Input should be greater than 0",
        ),
        ("store: a\nstore: b\n", "opsmedic.yaml:2:1: store: duplicate key 'store'"),
        ("- a\n", "opsmedic.yaml:1:1: the config must be a mapping of sections"),
        ("base_dir: /x\n", "opsmedic.yaml:1:1: base_dir: unknown field 'base_dir'"),
        (
            "actions:\n  concurrency:\n    per_action: {run_command: 0}\n",
            "opsmedic.yaml:3:31: actions.concurrency.per_action.run_command: Input should be greater than or equal to 1",
        ),
        ("store: [\n", "invalid YAML"),
        (
            "actions:\n  lease: {duration: 10s, renew_every: 10s}\n",
            "opsmedic.yaml:2:10: actions.lease: Value error, renew_every (10s) must be shorter"
            " than duration (10s), or a live engine's runs lapse between renewals",
        ),
        (
            "actions:\n  lease: {duration: 0s}\n",
            "opsmedic.yaml:2:21: actions.lease.duration: Input should be greater than 0",
        ),
    ],
)
def test_each_config_error_names_file_line_column_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    lines = [str(p) for p in info.value.problems]
    assert any(expected in line for line in lines), lines


def test_secrets_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSMEDIC_TEST_SECRET", "s3cret")
    (tmp_path / "token").write_text("from-file\n")
    assert Secret(env="OPSMEDIC_TEST_SECRET").reveal() == "s3cret"
    read = read_config(
        write(tmp_path, "notify:\n  oncall:\n    url_secrets: [{file: token}]\n"),
        SECTIONS,
        environ={},
    )
    notify = read.settings["notify"]
    assert isinstance(notify, NotifyTargets)
    assert notify.root["oncall"].url_secrets[0].reveal() == "from-file"  # beside the config
    assert Secret(file=tmp_path / "token").reveal() == "from-file"
    assert "s3cret" not in repr(Secret(env="OPSMEDIC_TEST_SECRET"))
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE is not set"):
        Secret(env="NOT_SET_ANYWHERE").reveal()


def test_every_relative_secret_file_is_read_beside_the_config(tmp_path: Path) -> None:
    """Each section's secrets, found by walking the whole config, not by a list to keep."""
    (tmp_path / "s").write_text("beside\n")
    text = (
        "tsig_keys: {k: {secret: {file: s}}}\n"
        "webhooks: {pagerduty_signing_secrets: [{file: s}]}\n"
        "annotate: {opsgenie: {api_key: {file: s}}}\n"
        "pollers: [{name: p, url: 'http://127.0.0.1:9/x', map: {kind: k},\n"
        "           secret_headers: {Authorization: {file: s}}}]\n"
    )
    read = read_config(write(tmp_path, text), SECTIONS, environ={})
    config, annotate, tsig_keys = read.config, read.settings["annotate"], read.settings["tsig_keys"]
    webhooks = read.settings["webhooks"]
    assert isinstance(webhooks, pagerduty.Settings)
    assert config is not None and isinstance(annotate, AnnotateConfig)
    assert isinstance(tsig_keys, TsigKeys) and annotate.opsgenie is not None
    secrets = [tsig_keys.root["k"].secret, webhooks.pagerduty_signing_secrets[0],
               annotate.opsgenie.api_key, config.pollers[0].secret_headers["Authorization"]]  # fmt: skip
    assert [s.reveal() for s in secrets] == ["beside"] * 4


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800), (5, 5),
     ("1.5s", 1.5), ("10", 10), ("0", 0), (" 2.5 ", 2.5), (0, 0)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["soon", "5x", "", "-1s", -1, True, "1h soon", "-1", "nan", "inf", "1e3", "10 5", ".5"]
)
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "log:\n  level: info\n   extra: 1\n",
            "opsmedic.yaml:3:9: invalid YAML: mapping values are not allowed in this context"
            " (check the indentation of line 3, or quote a value that holds ': ')",
        ),
        (
            "actions:\n    timeout: 5s\n  output_limit: 1024\n",
            "opsmedic.yaml:3:3: invalid YAML: did not find expected key"
            " (check the indentation of line 3)",
        ),
        (
            "probes:\n  - name: a\n - name: b\n",
            "(check the indentation of line 3)",
        ),
        (
            "log:\n\tlevel: info\n",
            "opsmedic.yaml:2:1: invalid YAML: found character that cannot start any token"
            " (line 2 is indented with a tab: YAML indents with spaces only)",
        ),
        (
            "store: [\n",
            "opsmedic.yaml:2:1: invalid YAML: did not find expected node content",
        ),
    ],
)
def test_yaml_syntax_errors_get_a_hint_where_one_helps(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    (problem,) = info.value.problems
    assert expected in str(problem), problem
    if "store" in text:  # a plain syntax error: no hint that would mislead
        assert "(" not in str(problem).split("invalid YAML")[1]


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "true", "False"])
def test_an_unquoted_yaml_boolean_where_text_is_expected_says_quote_it(
    tmp_path: Path, word: str
) -> None:
    text = f"probes:\n  - name: a\n    type: command\n    labels: {{flag: {word}}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={})
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{tmp_path / 'opsmedic.yaml'}:4:20: probes[0].labels.flag: Input should be a valid"
        f' string: YAML reads an unquoted {word} as a boolean, quote it ("{word}")'
    )
    config, _ = load_config(write(tmp_path, text.replace(word, f'"{word}"')), SECTIONS, environ={})
    assert config.probes[0].labels == {"flag": word}


def test_every_problem_of_a_config_is_reported_in_one_load(tmp_path: Path) -> None:
    """Duplicate keys, a removed field, an environment override and the schema: one pass."""
    text = (
        "store: sqlite:///a.db\nstore: sqlite:///b.db\n"  # duplicate (the first value is kept, so validation goes on)
        "base_dir: /x\n"
        "log: {level: inf}\n"
        "notify:\n  oncall: {}\n  oncall: {}\n"
        "actions: {timout: 5s}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), SECTIONS, environ={"OPSMEDIC_DRY_RUN__X": "1"})
    found = sorted((p.file.rsplit("/", 1)[-1], p.line, p.field) for p in info.value.problems)
    assert found == [
        ("$OPSMEDIC_DRY_RUN__X", 1, "dry_run"),
        ("opsmedic.yaml", 2, "store"),
        ("opsmedic.yaml", 3, "base_dir"),
        ("opsmedic.yaml", 4, "log.level"),
        ("opsmedic.yaml", 7, "notify.oncall"),
        ("opsmedic.yaml", 8, "actions.timout"),
    ]


# A canary service (files relative to the config); each test adds what it is about.
CANARY_SHOP = """
services:
  shop:
    versions: releases
    strategy: canary
    switch: [{run_command: {argv: ["true"]}}]
    canary:
      router:
        nginx: {upstream: shop, include: nginx/shop.conf, access_log: logs/shop.log,
                prefix: nginx, conf: nginx/nginx.conf, pid_file: /run/nginx.pid}
      backends: {v1: "127.0.0.1:8001"}
      analysis: {on_no_data: fail}
"""


def test_a_services_router_and_traffic_log_are_relative_to_the_config_file(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        CANARY_SHOP
        + """    verify:
      - {name: routed, traffic: {access_log: logs/shop.log}, on_no_data: fail}
""",
    )
    shop = load_config(path, SECTIONS, environ={})[0].services["shop"]
    assert shop.verify[0].traffic is not None
    assert shop.verify[0].traffic.access_log == tmp_path / "logs/shop.log"
    assert shop.canary is not None
    nginx = shop.canary.router.nginx
    assert (nginx.include, nginx.conf) == (
        tmp_path / "nginx/shop.conf",
        tmp_path / "nginx/nginx.conf",
    )
    assert nginx.pid_file == Path("/run/nginx.pid")  # absolute stays as it is


def test_a_strategy_that_moves_traffic_is_refused_with_several_environments(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        CANARY_SHOP + "    environments: {staging: {}, production: {requires: [staging]}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, SECTIONS, environ={})
    assert "opsmedic.yaml:4:5: services.shop: Value error, strategy canary moves one " in str(
        caught.value
    )
    assert "a service per environment (e.g. shop-staging)" in str(caught.value)
