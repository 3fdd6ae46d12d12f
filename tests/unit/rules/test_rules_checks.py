"""Rules checked whole when they load: enum values, names of config entries, template names."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.refs import ConfigRef, config_names
from opsmedic.errors import ConfigError, Problem
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

CONFIG = {
    "notify": {"oncall": {"urls": ["mailto://a@example.com"]}},
    "ssh_hosts": {"web1": {"host": "10.0.0.5", "user": "u"}},
    "probes": [{"name": "web", "type": "http"}, {"name": "api"}],
    "tsig_keys": {"ddns": {"secret": {"env": "K"}}},
    "annotate": {"webhooks": {"status-page": {"url": "http://127.0.0.1:1/"}}},
    "flags": {"new_checkout": {}},
}
NAMES = config_names(CONFIG)


def problems(tmp_path: Path, steps: str, when: str = "{source: x}") -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(f"- name: a\n  when: {when}\n  do:\n{steps}")
    with pytest.raises(ConfigError) as info:
        load_rules(path, build_registry(), NAMES)
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


def loads(tmp_path: Path, steps: str, when: str = "{source: x}") -> None:
    path = tmp_path / "r.yaml"
    path.write_text(f"- name: a\n  when: {when}\n  do:\n{steps}")
    assert len(load_rules(path, build_registry(), NAMES)) == 1


def test_an_unknown_flag_is_a_warning_only_where_warnings_are_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do:\n"
                    "    - set_flag: {flag: new_chekout, enabled: false}\n"
                    "    - set_flag: {flag: new_checkout, enabled: false}\n")  # fmt: skip
    warnings: list[Problem] = []
    assert len(load_rules(path, build_registry(), NAMES, warnings)) == 1
    assert [str(w).removeprefix(f"{path}:") for w in warnings] == [
        "4:24: [0].do[0].set_flag.flag: unknown flag 'new_chekout' (did you mean new_checkout?)"
        ": neither the config's flags nor the store has it, so the step fails when it runs "
        "unless it is made first"
    ]
    loads(tmp_path, "    - set_flag: {flag: new_chekout, enabled: false}\n")


def test_config_names_are_read_from_every_section_that_holds_entries() -> None:
    assert NAMES == {"notify": ["oncall"], "ssh_hosts": ["web1"], "probes": ["web", "api"],
                     "tsig_keys": ["ddns"], "annotate.webhooks": ["status-page"],
                     "services": [], "flags": ["new_checkout"],
                     "ssh_hosts.host": ["10.0.0.5"]}  # fmt: skip
    assert config_names("not a mapping") == {section: [] for section in NAMES}
    with pytest.raises(ValueError, match="no config section 'notfy'"):
        ConfigRef("notfy")


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "    - notify: {to: oncal, title: t}\n",
            "4:20: [0].do[0].notify.to: unknown notify target 'oncal' (did you mean oncall?)",
        ),
        (
            "    - notify: {to: [oncall, pager], title: t}\n",
            "4:29: [0].do[0].notify.to[1]: unknown notify target 'pager' (known: oncall)",
        ),
        (
            "    - run_command: {argv: [uptime], host: web2}\n",
            "4:43: [0].do[0].run_command.host: unknown ssh host 'web2' (did you mean web1?)",
        ),
        (
            "    - recheck: {probe: wbe}\n",
            "4:24: [0].do[0].recheck.probe: unknown probe 'wbe' (did you mean web?)",
        ),
        (
            "    - annotate: {webhook: status}\n",
            "4:27: [0].do[0].annotate.webhook: unknown annotate webhook 'status'"
            " (did you mean status-page?)",
        ),
        (
            "    - dns_failover:\n        direction: failover\n        rfc2136: {server: 127.0.0.1,"
            " zone: z., name: www, primary: 10.0.0.1, secondary: 10.0.0.2, tsig_key: dds}\n",
            "[0].do[0].dns_failover.rfc2136.tsig_key: unknown TSIG key 'dds' (did you mean ddns?)",
        ),
        (
            "    - archive_logs: {dir: /var/log/x, include: [a], to: 'sftp://bkp/x'}\n",
            "4:57: [0].do[0].archive_logs.to: unknown ssh host 'bkp' (known: web1): neither a "
            "name nor the host of an ssh_hosts entry",
        ),
        (
            "    - archive_logs: {dir: /var/log/x, include: [a], to: 'sftp://u@web2:22/{{ event.host }}'}\n",
            "[0].do[0].archive_logs.to: unknown ssh host 'web2' (did you mean web1?)"
            ": neither a name nor the host of an ssh_hosts entry",
        ),
    ],
)
def test_a_name_the_config_does_not_define_is_located_with_close_matches(
    tmp_path: Path, steps: str, expected: str
) -> None:
    found = problems(tmp_path, steps)
    assert any(p.endswith(expected) for p in found), found


def test_names_that_exist_or_are_templated_load(tmp_path: Path) -> None:
    loads(tmp_path, "    - notify: {to: [oncall], title: t}\n"
                    "    - run_command: {argv: [uptime], host: '{{ event.host }}'}\n"
                    "    - recheck: {probe: api}\n"
                    "    - archive_logs: {dir: /var/log/x, include: [a], to: 'sftp://web1/~/a'}\n"
                    "    - archive_logs: {dir: /var/log/x, include: [a], to: 'sftp://u@10.0.0.5:22/a'}\n"
                    "    - archive_logs: {dir: /var/log/x, include: [a], to: 'sftp://{{ event.host }}/a'}\n"
                    "    - archive_logs: {dir: /var/log/x, include: [a], to: /srv/archive}\n")  # fmt: skip


def test_without_a_config_names_are_left_to_run_time(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do:\n    - recheck: {probe: nope}\n")
    assert len(load_rules(path, build_registry())) == 1


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (
            "{status: fireing}",
            "2:18: [0].when.status: unknown status 'fireing' (did you mean firing?)",
        ),
        ("{status: [firing, resolvd]}", "unknown status 'resolvd' (did you mean resolved?)"),
        ("{status: '!= reslved'}", "unknown status 'reslved' (did you mean resolved?)"),
        ("{status: {in: [up]}}", "unknown status 'up' (known: firing, resolved)"),
    ],
)
def test_a_status_that_does_not_exist_is_refused(tmp_path: Path, when: str, expected: str) -> None:
    found = problems(tmp_path, "    - noop\n", when)
    assert any(p.endswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("{kind: yes}", '2:16: [0].when.kind: kind is text: YAML reads an unquoted yes as a '
                        'boolean, quote it ("yes")'),
        ("{labels: {env: on}}", "[0].when.labels.env: labels.env is text: YAML reads an "
                                "unquoted on as a boolean"),
        ("{host: [a, No]}", "[0].when.host[1]: host is text: YAML reads an unquoted No"),
        ("{any: [{source: {ne: off}}]}", "[0].when.any[0].source.ne: source is text"),
        ("{status: yes}", "[0].when.status: status is text: YAML reads an unquoted yes"),
    ],
)  # fmt: skip
def test_a_text_field_compared_with_an_unquoted_yaml_boolean_is_refused(
    tmp_path: Path, when: str, expected: str
) -> None:
    found = problems(tmp_path, "    - noop\n", when)
    assert any(expected in p for p in found), found


def test_quoted_words_and_unquoted_true_compare_as_text(tmp_path: Path) -> None:
    """`true` is compared by the name written; `exists` and payload take real booleans."""
    loads(tmp_path, "    - noop\n", "{kind: 'yes', labels: {canary: true, env: {exists: yes}}, "
                                     "payload.flag: on}")  # fmt: skip


def test_enum_fields_of_a_rule_and_of_an_action_suggest_the_close_value(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do:\n"
                    "    - notify: {to: oncall, title: t, type: warnng}\n  queue: remedation\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_rules(path, build_registry(), NAMES)
    found = [str(p) for p in info.value.problems]
    assert any(p.endswith("[0].queue: Input should be 'remediation' or 'investigation'"
                          " (did you mean remediation?)") for p in found), found  # fmt: skip
    assert any("notify.type" in p and "(did you mean warning?)" in p for p in found), found


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ event.hots }}", "unknown event field 'event.hots' (did you mean event.host"),
        (
            "{{ event['sevrity'] }}",
            "unknown event field 'event.sevrity' (did you mean event.severity",
        ),
        ("{{ evnt.host }}", "unknown template variable 'evnt' (did you mean event?)"),
        ("{{ event.host ", "template syntax error at line 1: unexpected end of template"),
        (
            "{{ steps[0].mesage }}",
            "unknown step field 'steps[0].mesage' (did you mean steps[0].message",
        ),
        (
            "{{ (steps | last)['stat'] }}",
            "unknown step field '(steps | last).stat' (did you mean (steps | last).state",
        ),
        ("{{ rule.nam }}", "unknown text attribute 'rule.nam' (did you mean rule?)"),
        (
            "{{ event.host.name }}",
            "unknown text attribute 'event.host.name' (did you mean event.host?)",
        ),
        ("{{ event.host | bogusfilter }}", "unknown filter 'bogusfilter' (known: abs, "),
        ("{{ event.host | shqoute }}", "unknown filter 'shqoute' (did you mean shquote?)"),
        (
            "{% if event.value is nmber %}x{% endif %}",
            "unknown test 'nmber' (did you mean number?)",
        ),
    ],
)
def test_template_names_are_checked_against_the_event(
    tmp_path: Path, template: str, expected: str
) -> None:
    found = problems(tmp_path, f'    - noop: {{message: "{template}"}}\n')
    assert any("[0].do[0].noop.message: " + expected in p for p in found), found


def test_free_form_and_bound_names_in_templates_load(tmp_path: Path) -> None:
    """Labels and payload hold anything; loop variables, `set`, `steps` and filters are known."""
    loads(tmp_path, "    - noop: {message: \"{{ event.labels.anything }} {{ event.payload.x.y }}"
                    " {{ event.target | shquote }} {{ rule }} {{ run_id }}\"}\n"
                    "    - noop: {message: \"{% for k in event.labels %}{{ k }}{{ loop.index }}"
                    "{% endfor %}{% set n = 1 %}{{ n }} {{ steps[0].message }}\"}\n"
                    "    - noop: {message: \"{{ rule.upper() }} {{ steps[-1].details.pid.x }}"
                    " {{ (steps | first).state }} {% for s in steps %}{{ s.anything }}"
                    "{% endfor %} {{ event.value is number }}\"}\n")  # fmt: skip


def test_every_problem_of_a_rule_is_reported_even_when_one_field_is_wrong(tmp_path: Path) -> None:
    """A bad `queue` no longer hides the conditions and the steps, nor one key the next."""
    found = problems(
        tmp_path,
        "    - notify: {to: oncal, title: t}\n    - run_comand: {argv: [x]}\n  queue: nope\n",
        "{sorce: x, status: fireing, kind: {regex: '('}}",
    )
    fields = sorted(p.split(": ")[1] for p in found)
    assert fields == ["[0].do[0].notify.to", "[0].do[1].run_comand", "[0].queue",
                      "[0].when.kind.regex", "[0].when.sorce", "[0].when.status"], found  # fmt: skip


@pytest.mark.parametrize("name", ["BASH_ENV", "ENV", "PS4", "IFS", "PATH", "LD_PRELOAD",
                                  "BASH_FUNC_X", "PYTHONSTARTUP", "GIT_SSH_COMMAND"])  # fmt: skip
def test_an_event_never_chooses_a_variable_read_as_code(tmp_path: Path, name: str) -> None:
    """`env: {BASH_ENV: …}` names a file bash runs before the script; PS4 is expanded under
    `set -x`: a value from an event there would run as code whatever the script quotes."""
    step = '    - run_command: {argv: ["true"], env: {%s: %s}}\n'
    (found,) = problems(tmp_path, step % (name, "'{{ event.host }}'"))
    assert f"env {name} is read as code" in found and "cannot come from an event" in found
    loads(tmp_path, step % (name, "/fixed"))
    loads(tmp_path, step % ("APP_HOST", "'{{ event.host }}'"))
