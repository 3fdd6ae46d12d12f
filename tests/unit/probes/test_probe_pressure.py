"""Pressure stall files: this host's real ones, recorded kernels' shapes, and garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.probes import pressure
from opsmedic.probes.pressure import PressureError, parse

# As Linux 5.13+ writes them (the system-wide cpu `full` line is there, all zero).
MODERN_CPU = """\
some avg10=1.52 avg60=0.88 avg300=0.31 total=92645830
full avg10=0.00 avg60=0.00 avg300=0.00 total=0
"""
# As Linux 4.20 to 5.12 write the cpu file: no `full` line at all.
OLD_CPU = "some avg10=0.00 avg60=0.05 avg300=0.12 total=51324199\n"
MEMORY = """\
some avg10=12.50 avg60=4.10 avg300=1.00 total=367923360
full avg10=7.25 avg60=2.00 avg300=0.50 total=177345863
"""


@pytest.mark.skipif(not pressure.PSI_DIR.is_dir(), reason="this kernel has no /proc/pressure")
def test_this_hosts_real_files_parse() -> None:
    found = pressure.read()
    assert found.unavailable == {}
    assert set(found.resources) == {"cpu", "memory", "io"}
    for name in ("memory", "io"):
        assert set(found.resources[name].lines) == {"some", "full"}
    for p in found.resources.values():
        for line in p.lines.values():
            assert set(line) == {"avg10", "avg60", "avg300", "total"}
            assert all(0 <= line[a] <= 100 for a in ("avg10", "avg60", "avg300"))


def test_the_documented_format_parses_to_figures() -> None:
    p = parse(MEMORY)
    assert p.lines["some"] == {"avg10": 12.5, "avg60": 4.1, "avg300": 1.0, "total": 367923360}
    assert p.lines["full"]["avg10"] == 7.25
    assert isinstance(p.lines["full"]["total"], int)


def test_an_older_kernels_cpu_file_without_full_is_fine() -> None:
    assert set(parse(OLD_CPU).lines) == {"some"}
    assert set(parse(MODERN_CPU).lines) == {"some", "full"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no 'some' line"),
        ("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "no 'some' line"),
        ("half avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "line 1: 'half' is neither"),
        (OLD_CPU + OLD_CPU, "line 2: a second 'some' line"),
        ("some avg10=0.00 avg60=0.00 total=0\n", "line 1: no avg300"),
        ("some avg10=x avg60=0 avg300=0 total=0\n", "line 1: avg10='x' is not a number"),
        ("some avg10=nan avg60=0 avg300=0 total=0\n", "avg10=nan is out of range"),
        ("some avg10=100.5 avg60=0 avg300=0 total=0\n", "avg10=100.5 is out of range"),
        ("some avg10=1 avg60=0 avg300=0 total=-5\n", "total=-5 is out of range"),
        ("some avg10=1 avg60=0 avg300=0 total=1.5\n", "total='1.5' is not a number"),
        ("some avg10=1 avg10=2 avg60=0 avg300=0 total=0\n", "unexpected 'avg10=2'"),
        ("some avg10=1 avg60=0 avg300=0 total=0 avg900=1\n", "unexpected 'avg900=1'"),
        ("some avg10 avg60=0 avg300=0 total=0\n", "unexpected 'avg10'"),
    ],
)
def test_garbage_is_refused_naming_the_line(text: str, fragment: str) -> None:
    with pytest.raises(PressureError, match=fragment.replace("(", r"\(")):
        parse(text)


def test_a_kernel_without_psi_says_so_for_every_resource(tmp_path: Path) -> None:
    found = pressure.read(tmp_path / "pressure")
    assert found.resources == {}
    assert set(found.unavailable) == {"cpu", "memory", "io"}
    assert "no pressure stall information" in found.unavailable["memory"]
    assert found.figure("memory", "some", "avg10") is None


def test_one_bad_file_leaves_the_others_read(tmp_path: Path) -> None:
    (tmp_path / "cpu").write_text(OLD_CPU)
    (tmp_path / "memory").write_text(MEMORY)
    (tmp_path / "io").write_bytes(b"\xff\xfe garbage")
    found = pressure.read(tmp_path)
    assert set(found.resources) == {"cpu", "memory"}
    assert found.unavailable["io"].startswith(f"{tmp_path / 'io'} is not in the pressure format")
    assert found.figure("memory", "full", "avg10") == 7.25
    assert found.figure("cpu", "full", "avg10") is None  # an older kernel's cpu file


def test_a_file_too_long_or_unreadable_is_named(tmp_path: Path) -> None:
    (tmp_path / "cpu").write_text(OLD_CPU * 100)
    (tmp_path / "memory").mkdir()  # reading a directory fails with an OSError
    found = pressure.read(tmp_path)
    assert "longer than 4096 bytes" in found.unavailable["cpu"]
    assert found.unavailable["memory"].startswith(f"cannot read {tmp_path / 'memory'}: ")
    assert "No such file" in found.unavailable["io"]
