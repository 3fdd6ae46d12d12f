"""The import contracts in pyproject.toml hold, and they bite: `lint-imports` fails on a copy of
the package with a back edge planted, naming the edge and the rule it breaks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def package_copy(tmp_path: Path) -> Path:
    """src/opsmedic and the contracts, copied under tmp_path (which is returned)."""
    shutil.copytree(
        ROOT / "src" / "opsmedic",
        tmp_path / "src" / "opsmedic",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the copy at root: its src/ comes first on the path, so the copy is the
    `opsmedic` analysed, not the installed one; no cache, wide lines, no colour."""
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def plant(root: Path, module: str, line: str) -> None:
    """A new module (dotted name under opsmedic) whose only line is the import given."""
    path = root / "src" / Path(*module.split(".")).with_suffix(".py")
    path.write_text(f'"""A back edge planted by tests/test_layers.py."""\n\n{line}\n')


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_imports(package_copy(tmp_path))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout, done.stdout[-2000:]


def test_a_planted_back_edge_breaks_its_contracts(tmp_path: Path) -> None:
    root = package_copy(tmp_path)
    plant(root, "opsmedic.store.planted", "import opsmedic.engine.loop")
    plant(root, "opsmedic.probes.planted", "import opsmedic.actions")
    done = lint_imports(root)
    out = done.stdout
    assert done.returncode == 1, out[-6000:] + done.stderr[-2000:]
    assert "opsmedic.store.planted -> opsmedic.engine.loop" in out, out[-6000:]
    assert "opsmedic.probes.planted -> opsmedic.actions" in out, out[-6000:]
    broken = {line.removesuffix(" BROKEN") for line in out.splitlines() if line.endswith(" BROKEN")}
    assert {
        "Layers: each imports only from the layers below it",
        "The store never imports the engine",
        "A plugin package never imports another plugin package",
    } <= broken, out[-6000:]
