"""The sdist and wheel build, carry the package data, and install with pipx into a clean venv
where `opsmedic` works (init, check, a migrated store); the Containerfile passes hadolint."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from opsmedic.config.loader import load_config
from opsmedic.runtime import build_registry
from opsmedic.store.migrate import HEAD_REVISION

SECTIONS = build_registry(load_entry_points=False).settings()

REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# Inside the installed wheel: what `init`, the store and the demo read at run time.
PACKAGE_DATA = [
    "opsmedic/starter/opsmedic.yaml",
    "opsmedic/starter/rules.yaml",
    "opsmedic/store/migrations/env.py",
    "opsmedic/store/migrations/script.py.mako",
    "opsmedic/store/migrations/versions/v0001_initial.py",
    "opsmedic/cli/demo/webapp.py",
    "opsmedic/py.typed",
    "opsmedic/ui/templates/now.html",  # the dashboard's pages and static files
    "opsmedic/ui/static/ui.css",
    "opsmedic/ui/static/ui.js",
    f"opsmedic-{VERSION}.dist-info/licenses/LICENSE",
]


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, check=False)  # fmt: skip
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built by hatchling (the locked build backend) from this tree."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "hatchling", "build", "-d", str(out)], cwd=REPO)
    return {
        "wheel": next(out.glob(f"opsmedic-{VERSION}-py3-none-any.whl")),
        "sdist": next(out.glob(f"opsmedic-{VERSION}.tar.gz")),
    }


def test_the_wheel_carries_the_package_data(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    assert [n for n in PACKAGE_DATA if n not in names] == []
    assert (
        "opsmedic = opsmedic.entry:main"
        in zipfile.ZipFile(dist["wheel"])
        .read(f"opsmedic-{VERSION}.dist-info/entry_points.txt")
        .decode()
    )


def test_the_sdist_holds_the_tree_and_nothing_a_test_run_left(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as tar:
        top = {Path(n).parts[1] for n in tar.getnames() if len(Path(n).parts) > 1}
    assert top >= {"src", "tests", "docs", "examples", "LICENSE", "Containerfile", "pyproject.toml"}
    assert not top & {".hypothesis", ".venv", ".ci", "dist"}


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_pipx_installs_it_into_a_clean_venv_and_it_works(
    kind: str, dist: dict[str, Path], tmp_path: Path
) -> None:
    home, bin_dir = tmp_path / "pipx", tmp_path / "bin"
    # The versions the tests ran with (the lock, less its hashes): pipx fetches them.
    pins = tmp_path / "pins.txt"
    pins.write_text("".join(f"{m[1]}\n" for m in re.finditer(
        r"^([A-Za-z0-9_.-]+(?:\[[^\]]*\])?==[^\s\\]+)", (REPO / "requirements/run.txt").read_text(),
        re.M)))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSMEDIC_", "VIRTUAL_ENV"))}
    env.update(PIPX_HOME=str(home), PIPX_BIN_DIR=str(bin_dir), PIPX_MAN_DIR=str(tmp_path / "man"),
               PATH=f"{bin_dir}:/usr/bin:/bin")  # fmt: skip
    run([str(BIN / "pipx"), "install", "--python", sys.executable, "--pip-args", f"-c {pins}",
         str(dist[kind])], env=env, timeout=900)  # fmt: skip
    installed = bin_dir / "opsmedic"
    assert installed.resolve().is_relative_to(home), "pipx's own venv, not the test venv"

    assert run([str(installed), "--version"], env=env).stdout == f"opsmedic {VERSION}\n"
    example = REPO / "examples" / "01-restart-web-service" / "opsmedic.yaml"
    assert "rules" in run([str(installed), "check", str(example)], env=env).stdout
    # The starter files and the migrations come from the installed package, not this tree.
    run([str(installed), "init", str(tmp_path / "site")], env=env, cwd=tmp_path)
    config = tmp_path / "site" / "opsmedic.yaml"
    run([str(installed), "check", str(config)], env=env, cwd=tmp_path)
    events = tmp_path / "events.jsonl"
    events.write_text('{"source": "pkg", "kind": "test", "host": "h1"}\n')
    run([str(installed), "replay", "-c", str(config), str(events)], env=env, cwd=tmp_path)
    db = load_config(config, SECTIONS, environ={})[0].store.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        version = con.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == (HEAD_REVISION,)
        assert con.execute("SELECT count(*) FROM events").fetchone() == (1,)


def test_the_containerfile_passes_hadolint() -> None:
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(REPO / "Containerfile")],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_containerfile_environment_is_a_valid_config_override(tmp_path: Path) -> None:
    """The image's OPSMEDIC_* variables, applied to a starter config, give the layout it
    promises: API on every interface, store and intents in the volume."""
    text = (REPO / "Containerfile").read_text().replace("\\\n", " ")
    env_line = next(line for line in text.splitlines() if line.startswith("ENV PATH="))
    environ = dict(re.findall(r"(OPSMEDIC_\w+)=(\S+)", env_line))
    config_file = tmp_path / "opsmedic.yaml"
    config_file.write_text("rules_dir: rules\n")
    config, _ = load_config(config_file, SECTIONS, environ=environ)
    assert config.api.host == "0.0.0.0" and config.api.port == 8787
    assert config.store == "sqlite:////var/lib/opsmedic/opsmedic.db"
    assert config.state_dir == Path("/var/lib/opsmedic/state")
    assert environ["OPSMEDIC_CONFIG"] == "/etc/opsmedic/opsmedic.yaml"


def test_the_containerfile_healthcheck_asks_the_port_the_environment_sets(tmp_path: Path) -> None:
    """It reads OPSMEDIC_API__PORT at run time (8787 when unset)."""
    import http.server
    import threading

    text = (REPO / "Containerfile").read_text().replace("\\\n", " ")
    check = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert "or 8787" in argv[-1]
    (tmp_path / "python").symlink_to(sys.executable)  # the image's `python`

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet: the test reads exit codes, not the log."""

    server = http.server.HTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def healthcheck(port_env: int) -> int:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "OPSMEDIC_API__PORT": str(port_env)}
        return subprocess.run(argv, env=env, capture_output=True,
                              timeout=30, check=False).returncode  # fmt: skip

    try:
        assert healthcheck(port) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert healthcheck(port) != 0  # nothing listens there any more
