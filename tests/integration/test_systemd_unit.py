"""`opsmedic systemd-unit` for every example passes `systemd-analyze verify`; `check --unit`
reports what a hand-written unit would forbid; bad input exits 2 with the place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(
    p.parent for p in (Path(__file__).parents[2] / "examples").glob("*/opsmedic.yaml")
)


def opsmedic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    return subprocess.run([sys.executable, "-m", "opsmedic", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_unit_of_each_example_verifies(example: Path, tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at a real program.
    result = opsmedic("systemd-unit", "-c", str(example / "opsmedic.yaml"), "--exec", "/bin/true",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "opsmedic.service"
    unit.write_text(result.stdout)
    verify = subprocess.run(
        [shutil.which("systemd-analyze") or "systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # verify exits 0 on unknown keys and bad values, only warning: any output is a failure.
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    # What it was derived for, it allows.
    check = opsmedic("check", str(example / "opsmedic.yaml"), "--unit", str(unit), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert f"unit {unit}: allows every remediation: ok" in check.stdout


def test_check_reports_what_a_hand_written_unit_forbids(tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.name.startswith("04-archive"))
    unit = tmp_path / "opsmedic.service"
    unit.write_text("[Service]\nExecStart=/usr/bin/opsmedic run\nUser=opsmedic\n"
                    "ProtectSystem=strict\nReadWritePaths=/var/lib/opsmedic\n")  # fmt: skip
    result = opsmedic("check", str(example / "opsmedic.yaml"), "--unit", str(unit), cwd=tmp_path)
    assert result.returncode == 2
    rules = example / "rules" / "disk.yaml"
    assert (f"error {rules}:9:1: archive-app-logs: do[0].archive_logs: dir: writes in /var/log/app, but ProtectSystem=strict keeps it "
            "read-only (add ReadWritePaths=/var/log/app)") in result.stderr  # fmt: skip
    assert "Traceback" not in result.stderr


def test_check_with_an_unreadable_unit_exits_2(tmp_path: Path) -> None:
    example = EXAMPLES[0]
    missing = tmp_path / "nope.service"
    result = opsmedic("check", str(example / "opsmedic.yaml"), "--unit", str(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert f"error {missing}:1:1: cannot read the unit" in result.stderr


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({}, [], "Invalid value for --config: no opsmedic.yaml here"),
        ({}, ["-c", "missing.yaml"], "error missing.yaml:1:1: cannot read"),
        ({"bad.yaml": "store: [\n"}, ["-c", "bad.yaml"], "error bad.yaml:2:1: invalid YAML"),
        ({"o.yaml": "rules_dir: r\n"}, ["-c", "o.yaml"], "r:1:1: rules path does not exist"),
        ({"o.yaml": "probes: 3\n", "rules/x.yaml": ""}, ["-c", "o.yaml"], "o.yaml:1:9: probes:"),
    ],
)
def test_a_bad_or_missing_config_exits_2_with_the_place(
    tmp_path: Path, files: dict[str, str], args: list[str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    result = opsmedic("systemd-unit", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_paths_with_spaces_and_percent_signs_are_escaped_for_systemd(tmp_path: Path) -> None:
    site = tmp_path / "my site 100%"
    (site / "rules").mkdir(parents=True)
    (site / "rules" / "a.yaml").write_text(
        '- {name: a, when: {source: disk}, do: [{archive_logs: {dir: "/var/log/my app", '
        'include: ["*.gz"], to: "/srv/archive 50%"}}]}\n'
    )
    (site / "opsmedic.yaml").write_text("rules_dir: rules\napi: {enabled: false}\n")
    result = opsmedic("systemd-unit", "-c", str(site / "opsmedic.yaml"), "--exec", "/bin/true",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert 'ReadWritePaths="-/var/log/my app"' in result.stdout
    assert 'ReadWritePaths="-/srv/archive 50%%"' in result.stdout
    unit = tmp_path / "opsmedic.service"
    unit.write_text(result.stdout)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
    check = opsmedic("check", str(site / "opsmedic.yaml"), "--unit", str(unit), cwd=tmp_path)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--exec", "relative/opsmedic", "give the absolute path of the opsmedic program"),
        ("--user", "bad user", "'bad user' is not a user name systemd accepts"),
        ("--user", "9lives", "is not a user name systemd accepts"),
        ("--user", "x" * 32, "is not a user name systemd accepts"),
    ],
)
def test_a_bad_exec_or_user_exits_2_with_the_option(
    option: str, value: str, said: str, tmp_path: Path
) -> None:
    result = opsmedic("systemd-unit", "-c", str(EXAMPLES[0] / "opsmedic.yaml"), option, value,
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stdout
    assert option in result.stderr and said in " ".join(result.stderr.split())
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_the_init_starter_gets_no_write_to_its_own_config_and_says_so(tmp_path: Path) -> None:
    assert opsmedic("init", str(tmp_path / "etc"), cwd=tmp_path).returncode == 0
    config = tmp_path / "etc" / "opsmedic.yaml"
    result = opsmedic("systemd-unit", "-c", str(config), "--exec", "/bin/true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"ReadWritePaths=-{tmp_path / 'etc'}" not in result.stdout
    assert "Environment=OPSMEDIC_STORE=sqlite:////var/lib/opsmedic/opsmedic.db" in result.stdout
    assert f"warning the SQLite store ({config}:9) is in {tmp_path / 'etc'}" in " ".join(
        result.stderr.split()
    )
    unit = tmp_path / "opsmedic.service"
    unit.write_text(result.stdout)
    check = opsmedic("check", str(config), "--unit", str(unit), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
