"""The systemd unit derived from a config and its rules, and what a given unit would forbid."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.loader import load_config, read_config
from opsmedic.config.types import Secret, credential_name
from opsmedic.deploy.systemd import Unit, systemd_unit
from opsmedic.deploy.unit_check import UnitGrants, unit_problems
from opsmedic.errors import Problem
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

REGISTRY = build_registry()

SECTIONS = build_registry(load_entry_points=False).settings()

KILL = """\
- name: stop-hog
  when: {source: process}
  do:
    - kill_process: {pid: "{{ event.labels.pid }}", start_time: "{{ event.labels.start }}"%s}
"""
ARCHIVE = """\
- name: archive
  when: {source: disk}
  do:
    - archive_logs:
        dir: [/var/log/app, /var/log/app/old, "/srv/{{ event.labels.app }}/logs"]
        include: ["*.gz"]
        to: /backup/logs
"""


def world(tmp_path: Path, rules: str, config: str = "api: {enabled: false}\n") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(rules)
    path = tmp_path / "opsmedic.yaml"
    # The store and the intents in the state directory, which needs no grant of its own.
    state = "" if "state_dir" in config else "state_dir: /var/lib/opsmedic/state\n"
    path.write_text(f"store: sqlite:////var/lib/opsmedic/o.db\n{state}{config}")
    return path


def unit_for(path: Path) -> Unit:
    read = read_config(path, SECTIONS, environ={})
    assert read.config is not None, read.problems
    return systemd_unit(read.config, read.located, load_rules(read.config.rules_dir, REGISTRY),
                        "/usr/bin/opsmedic", settings=read.settings)  # fmt: skip


def directive(unit: Unit, name: str) -> list[str]:
    prefix = f"{name}="
    return [line[len(prefix) :] for line in unit.text.splitlines() if line.startswith(prefix)]


def problems(path: Path, unit_text: str) -> list[Problem]:
    read = read_config(path, SECTIONS, environ={})
    assert read.config is not None, read.problems
    unit = path.parent / "hand.service"
    unit.write_text(unit_text)
    return unit_problems(read.config, str(path), load_rules(read.config.rules_dir, REGISTRY), unit,
                         read.located, settings=read.settings)  # fmt: skip


def test_the_fixed_hardening_is_there(tmp_path: Path) -> None:
    unit = unit_for(world(tmp_path, "- {name: n, when: {source: x}, do: [noop]}\n"))
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure",
                 "StateDirectory=opsmedic", "User=opsmedic", "ExecReload=/bin/kill -HUP $MAINPID",
                 f"ExecStart=/usr/bin/opsmedic run -c {tmp_path / 'opsmedic.yaml'}"):  # fmt: skip
        assert line in unit.text.splitlines()
    # The store is in the state directory: nothing else to write, no capability, no network.
    assert directive(unit, "ReadWritePaths") == []
    assert directive(unit, "CapabilityBoundingSet") == [""]
    assert directive(unit, "AmbientCapabilities") == []
    assert directive(unit, "PrivateNetwork") == ["yes"]
    assert directive(unit, "RestrictAddressFamilies") == ["AF_UNIX"]


def test_an_enforced_kill_rule_gets_cap_kill(tmp_path: Path) -> None:
    unit = unit_for(world(tmp_path, KILL % ", enforce: true"))
    assert directive(unit, "AmbientCapabilities") == ["CAP_KILL"]
    assert directive(unit, "CapabilityBoundingSet") == ["CAP_KILL"]
    assert "# stop-hog: do[0].kill_process enforce: true" in unit.text


def test_a_leashed_kill_rule_gets_no_capability(tmp_path: Path) -> None:
    for leash in ("", ", enforce: false"):
        unit = unit_for(world(tmp_path, KILL % leash))
        assert directive(unit, "AmbientCapabilities") == []
        assert directive(unit, "CapabilityBoundingSet") == [""]


def test_archive_dirs_and_destination_become_read_write_paths(tmp_path: Path) -> None:
    unit = unit_for(world(tmp_path, ARCHIVE, "api: {enabled: false}\nstate_dir: /srv/state\n"))
    # /var/log/app/old is inside /var/log/app: one bind mount covers both. A templated
    # directory grants its fixed leading part. The intents journal lives in state_dir.
    assert directive(unit, "ReadWritePaths") == ["-/var/log/app", "-/srv", "-/backup/logs"]
    assert unit.warnings == []


def test_cleanup_dirs_become_read_write_paths(tmp_path: Path) -> None:
    rules = """\
- name: clean
  when: {source: disk}
  do:
    - cleanup: {dir: ["/var/tmp/app", "/srv/cache/{{ event.labels.app }}"], include: ["*"]}
"""
    unit = unit_for(world(tmp_path, rules))
    # Its unlinks under ProtectSystem=strict need the directories writable; a templated
    # one grants its fixed leading part.
    assert directive(unit, "ReadWritePaths") == ["-/var/tmp/app", "-/srv/cache"]


def test_a_resolv_conf_rewrite_gets_its_directory_and_dac_override_only(tmp_path: Path) -> None:
    rules = """\
- name: failover
  when: {source: dns}
  do:
    - dns_failover:
        direction: failover
        resolv_conf: {path: /etc/resolv.conf, primary: 10.0.0.53, secondary: 10.0.0.54}
"""
    unit = unit_for(world(tmp_path, rules))
    # The directory: the file is replaced by a rename from a new file beside it.
    assert directive(unit, "ReadWritePaths") == ["-/etc"]
    # No CAP_CHOWN: as User=opsmedic the new file is never given back to root.
    assert directive(unit, "AmbientCapabilities") == ["CAP_DAC_OVERRIDE"]
    assert directive(unit, "CapabilityBoundingSet") == ["CAP_DAC_OVERRIDE"]
    (warning,) = unit.warnings
    assert (
        "CAP_DAC_OVERRIDE lets the service write every file in what it may write (/etc)" in warning
    )


def test_the_store_beside_the_config_moves_to_the_state_directory_not_a_grant(
    tmp_path: Path,
) -> None:
    path = world(tmp_path, KILL % "")
    path.write_text(path.read_text().replace("sqlite:////var/lib/opsmedic/o.db", "sqlite:///o.db"))
    unit = unit_for(path)
    assert directive(unit, "ReadWritePaths") == []  # not the config's or the rules' directory
    assert directive(unit, "Environment") == ["OPSMEDIC_STORE=sqlite:////var/lib/opsmedic/o.db"]
    (warning,) = unit.warnings
    assert f"the SQLite store ({path}:1) is in {tmp_path}: the unit sets OPSMEDIC_STORE=" in warning
    # check --unit judges the config as the service runs it: with the unit's Environment=.
    assert UnitGrants.parse(unit.text).environment() == {
        "OPSMEDIC_STORE": "sqlite:////var/lib/opsmedic/o.db"
    }


def test_a_rule_writing_in_the_rules_directory_is_granted_with_a_warning(tmp_path: Path) -> None:
    rules = ARCHIVE.replace("to: /backup/logs", f"to: {tmp_path / 'rules' / 'old'}")
    unit = unit_for(world(tmp_path, rules))
    assert f"-{tmp_path / 'rules' / 'old'}" in directive(unit, "ReadWritePaths")
    (warning,) = unit.warnings
    assert f"may then rewrite its own config and rules in {tmp_path / 'rules'}" in warning


def test_secret_files_are_passed_as_credentials_and_env_secrets_by_environment_file(
    tmp_path: Path,
) -> None:
    config = """\
api: {enabled: false}
ssh_hosts:
  backup: {host: 10.0.0.5, user: archive, key_file: keys/id_ed25519}
tsig_keys:
  k1: {secret: {file: /etc/opsmedic/tsig.key}}
webhooks:
  pagerduty_signing_secrets: [{env: PD_SECRET}]
"""
    unit = unit_for(world(tmp_path, "- {name: n, when: {source: x}, do: [noop]}\n", config))
    key = tmp_path / "keys" / "id_ed25519"
    assert directive(unit, "LoadCredential") == [
        f"{credential_name(key)}:{key}",
        "etc_opsmedic_tsig.key:/etc/opsmedic/tsig.key",
    ]
    assert directive(unit, "EnvironmentFile") == [f"-{tmp_path / 'opsmedic.env'}"]
    assert "# $PD_SECRET: webhooks.pagerduty_signing_secrets[0]" in unit.text


def test_paths_in_tmp_or_home_relax_private_tmp_and_protect_home(tmp_path: Path) -> None:
    rules = ARCHIVE.replace("[/var/log/app, /var/log/app/old, \"/srv/{{ event.labels.app }}/logs\"]",
                            "[/tmp/app, /home/app/logs]")  # fmt: skip
    unit = unit_for(world(tmp_path, rules))
    assert directive(unit, "PrivateTmp") == ["no"]
    assert directive(unit, "ProtectHome") == ["read-only"]


def test_a_write_in_the_root_is_refused_alike_by_the_unit_and_by_check(tmp_path: Path) -> None:
    # A template from `/` is refused when rules load (tests/unit/test_paths.py); `/` written
    # out is what remains: a warning, never ReadWritePaths=/.
    rules = ARCHIVE.replace("[/var/log/app, /var/log/app/old, \"/srv/{{ event.labels.app }}/logs\"]",
                            "/")  # fmt: skip
    path = world(tmp_path, rules)
    unit = unit_for(path)
    assert directive(unit, "ReadWritePaths") == ["-/backup/logs"]
    (warning,) = unit.warnings
    assert "archive: do[0].archive_logs dir" in warning
    assert "no unit can grant /: ReadWritePaths=/ undoes ProtectSystem=" in warning
    (found,) = problems(path, unit.text)
    assert (found.line, found.field) == (4, "archive: do[0].archive_logs")
    assert "no unit can grant /: ReadWritePaths=/ undoes ProtectSystem=" in found.message
    assert "add ReadWritePaths" not in found.message


def test_config_needs_are_reported_at_their_key(tmp_path: Path) -> None:
    path = world(tmp_path, KILL % "", "api: {enabled: true}\n")
    text = path.read_text().replace("/var/lib/opsmedic/o.db", "/srv/db/o.db")
    path.write_text("# the store, further down\n\n" + text)
    found = problems(path, HAND_WRITTEN.replace("ReadWritePaths=/var/log/app /backup\n", ""))
    where = {p.field: (p.file, p.line, p.col) for p in found}
    assert where["store"] == (str(path), 3, 1)
    assert where["api"] == (str(path), 5, 1)
    assert f"# the SQLite store ({path}:3)" in unit_for(path).text


@pytest.mark.parametrize(
    ("setting", "fix"),
    [
        ("PrivateTmp=yes", "(set PrivateTmp=no, or move it out of /tmp)"),
        ("ProtectHome=yes", "(set ProtectHome=read-only and add ReadWritePaths=/home/app/logs)"),
    ],
)
def test_a_path_hidden_by_private_tmp_or_protect_home_gets_the_fix_that_works(
    tmp_path: Path, setting: str, fix: str
) -> None:
    rules = ARCHIVE.replace("[/var/log/app, /var/log/app/old, \"/srv/{{ event.labels.app }}/logs\"]",
                            "[/tmp/app, /home/app/logs]")  # fmt: skip
    unit = "[Service]\nUser=opsmedic\nReadWritePaths=/backup\n" + setting + "\n"
    (found,) = problems(world(tmp_path, rules), unit)
    assert found.message.endswith(f"{fix} under {tmp_path / 'hand.service'}"), found.message


def test_the_generated_unit_forbids_nothing_it_was_derived_for(tmp_path: Path) -> None:
    path = world(tmp_path, ARCHIVE + KILL % ", enforce: true")
    assert problems(path, unit_for(path).text) == []


HAND_WRITTEN = """\
[Service]
ExecStart=/usr/bin/opsmedic run
User=opsmedic
StateDirectory=opsmedic
ProtectSystem=strict
ReadWritePaths=/var/log/app /backup
RestrictAddressFamilies=AF_UNIX
"""


def test_a_hand_written_unit_reports_what_it_forbids_at_the_rule(tmp_path: Path) -> None:
    path = world(tmp_path, ARCHIVE + KILL % ", enforce: true")
    found = problems(path, HAND_WRITTEN)
    messages = [f"{p.file}:{p.line} {p.field}: {p.message}" for p in found]
    rules = tmp_path / "rules" / "r.yaml"
    assert len(found) == 2, messages
    assert messages[0].startswith(f"{rules}:4 archive: do[0].archive_logs: dir")
    assert "writes in /srv, but ProtectSystem=strict keeps it read-only" in messages[0]
    assert messages[1].startswith(f"{rules}:11 stop-hog: do[0].kill_process: enforce")
    assert "needs CAP_KILL, which the unit does not grant" in messages[1]


def test_a_unit_without_network_forbids_notify_and_nnp_forbids_sudo(tmp_path: Path) -> None:
    rules = """\
- name: restart
  when: {source: http}
  do:
    - run_command: {argv: [sudo, systemctl, restart, shop]}
    - notify: {to: oncall, title: restarted}
"""
    path = world(
        tmp_path, rules, "api: {enabled: false}\nnotify: {oncall: {urls: ['json://127.0.0.1']}}\n"
    )
    found = [p.message for p in problems(path, HAND_WRITTEN)]
    assert len(found) == 2, found
    assert "runs sudo, which cannot gain privileges" in found[0]
    assert "needs IPv4/IPv6, which the unit forbids" in found[1]


@pytest.mark.parametrize(
    ("unit", "cap_kill", "writable_etc", "inet", "nnp"),
    [
        ("[Service]\n", True, True, True, False),  # root, unconfined
        ("[Service]\nUser=app\nSystemCallFilter=@system-service\n", False, True, True, True),
        ("[Service]\nCapabilityBoundingSet=~CAP_KILL\nProtectSystem=full\n", False, False, True, False),
        ("[Service]\nUser=app\nAmbientCapabilities=CAP_KILL\nPrivateNetwork=yes\n", True, True, False, False),
        ("[Service]\nRestrictAddressFamilies=~AF_INET AF_INET6\nReadWritePaths=/x\nReadWritePaths=\n"
         "ProtectSystem=strict\n", True, False, False, False),
    ],
)  # fmt: skip
def test_unit_grants_read_systemd_semantics(
    unit: str, cap_kill: bool, writable_etc: bool, inet: bool, nnp: bool
) -> None:
    from pathlib import PurePosixPath

    grants = UnitGrants.parse(unit)
    assert grants.has_capability("CAP_KILL") is cap_kill
    assert (grants.writable(PurePosixPath("/etc")) is None) is writable_etc
    assert grants.inet is inet
    assert grants.no_new_privileges is nnp


def test_an_unreadable_unit_is_one_problem(tmp_path: Path) -> None:
    path = world(tmp_path, KILL % "")
    config, _ = load_config(path, SECTIONS, environ={})
    found = unit_problems(config, str(path), load_rules(config.rules_dir, REGISTRY), tmp_path / "nope",
                          settings={})  # fmt: skip
    assert [p.message.split(":")[0] for p in found] == ["cannot read the unit"]


def test_a_secret_file_is_read_from_the_credentials_directory_when_systemd_passed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "etc" / "token"
    original.parent.mkdir()
    original.write_text("from-the-file\n")
    secret = Secret(file=original)
    assert secret.reveal() == "from-the-file"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert secret.reveal() == "from-the-file"  # not passed: the file itself
    (credentials / credential_name(original)).write_text("from-systemd\n")
    assert secret.reveal() == "from-systemd"


@pytest.mark.parametrize(
    ("script", "program"),
    [
        ("sudo systemctl restart shop", "sudo"),
        ("systemctl is-active shop || /usr/bin/sudo -n systemctl restart shop", "/usr/bin/sudo"),
        ("sync; doas reboot", "doas"),
        ("echo restart | su -c sh", "su"),
        ("date\nLANG=C pkexec systemctl restart shop", "pkexec"),
        ("grep -r sudo /etc/sudoers.d; echo '&& sudo'", None),  # arguments, not commands
    ],
)
def test_an_elevating_program_in_a_shell_script_is_found_in_command_position(
    tmp_path: Path, script: str, program: str | None
) -> None:
    path = world(tmp_path, "- name: restart\n  when: {source: http}\n  do:\n    - run_command:\n"
                 f"        shell: |-\n          {script.replace(chr(10), chr(10) + ' ' * 10)}\n")  # fmt: skip
    found = [p.message for p in problems(path, HAND_WRITTEN)]
    warnings = unit_for(path).warnings
    if program is None:
        assert found == [] and warnings == []
    else:
        assert len(found) == 1 and f"shell: runs {program}, which cannot gain" in found[0], found
        assert len(warnings) == 1 and f"runs {program}" in warnings[0]


def test_the_stop_timeout_covers_the_longest_step_timeout_and_is_bounded(tmp_path: Path) -> None:
    step = "- name: slow\n  when: {source: x}\n  do:\n    - noop: {}\n      timeout: %s\n"
    config = "api: {enabled: false}\nactions: {timeout: 5m}\n"
    assert directive(unit_for(world(tmp_path, step % "1m", config)), "TimeoutStopSec") == ["330s"]
    unit = unit_for(world(tmp_path, step % "20m", config))
    assert directive(unit, "TimeoutStopSec") == ["1230s"]
    assert (
        f"# the longest step timeout: slow ({tmp_path / 'rules' / 'r.yaml'}:4) 1200s" in unit.text
    )
    assert unit.warnings == []
    unit = unit_for(world(tmp_path, step % "2h", config))
    assert directive(unit, "TimeoutStopSec") == ["3600s"]
    assert len(unit.warnings) == 1 and "outlasts TimeoutStopSec=3600s" in unit.warnings[0]


def test_a_scale_step_gets_the_state_dir_where_its_records_live(tmp_path: Path) -> None:
    rules = "- name: s\n  when: {source: http}\n  do:\n    - scale: {service: api, by: 1}\n"
    unit = unit_for(world(tmp_path, rules, "api: {enabled: false}\nstate_dir: /srv/state\n"))
    assert directive(unit, "ReadWritePaths") == ["-/srv/state"]
