"""The demo's apps, run for real on loopback: the seed's URL shortener and the playground pair."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from opsmedic.cli.demo import playground, shortener
from opsmedic.cli.demo.stage import free_port


@contextmanager
def running(*args: str) -> Iterator[str]:
    """`python -m` one of the apps on a free port; its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", *args, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the app did not start"
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def switch(root: Path, version: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", shortener.MARKER, "switch", "--root", str(root), version]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_v1_shortens_v2_answers_500_with_the_traceback_logged_and_v1_comes_back(
    tmp_path: Path,
) -> None:
    shortener.install(tmp_path)
    with running(shortener.MARKER, "serve", "--root", str(tmp_path)) as url:
        assert httpx.get(url + "/version").text == "v1"
        found = httpx.get(url + "/seed")
        assert (found.status_code, found.headers["location"]) == (302, shortener.LINKS["seed"])
        assert httpx.get(url + "/nope").status_code == 404
        assert switch(tmp_path, "v2").returncode == 0
        _until(lambda: httpx.get(url + "/version").text == "v2")
        assert [httpx.get(url + path).status_code for path in ("/", "/abc")] == [500, 500]
        log = (tmp_path / "shortener.log").read_text()
        assert "Traceback" in log and "json.loads(f)" in log
        assert "TypeError: the JSON object must be str" in log
        assert switch(tmp_path, "v1").returncode == 0
        _until(lambda: httpx.get(url + "/version").text == "v1")
        assert httpx.get(url + "/").status_code == 200


def test_a_pinned_server_serves_its_version_whatever_current_says(tmp_path: Path) -> None:
    shortener.install(tmp_path)
    pinned = ("serve", "--root", str(tmp_path), "--version")
    with (
        running(shortener.MARKER, *pinned, "v2") as v2,
        running(shortener.MARKER, *pinned, "v1") as v1,
    ):
        assert [httpx.get(url + "/version").text for url in (v1, v2)] == ["v1", "v2"]
        assert [httpx.get(url + "/").status_code for url in (v1, v2)] == [200, 500]
    assert not (tmp_path / "shortener.pid").exists()  # nothing for `switch` to signal
    bad = subprocess.run([sys.executable, "-m", shortener.MARKER, *pinned, "../v1", "--port", "1"],
                         capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "no version '../v1'" in bad.stderr


def test_a_switch_to_an_unknown_version_names_it_and_leaves_current_alone(tmp_path: Path) -> None:
    shortener.install(tmp_path)
    for bad in ("v9", "../versions/v2", ""):
        result = switch(tmp_path, bad)
        assert result.returncode == 2, bad
        assert f"no version {bad!r}" in result.stderr
    assert (tmp_path / "current").readlink() == Path("versions/v1")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("current")) == ["current"]


def test_a_switch_with_no_server_running_says_so(tmp_path: Path) -> None:
    shortener.install(tmp_path)
    result = switch(tmp_path, "v2")
    assert result.returncode == 1
    assert "could not signal the server" in result.stderr


def test_info_calls_data_and_answers_502_once_data_is_gone() -> None:
    with running(playground.MARKER, "data") as data:
        items = httpx.get(data + "/api/items").json()["items"]
        assert [i["name"] for i in items] == ["disk", "dns", "release"]
        assert httpx.get(data + "/other").status_code == 404
        with running(playground.MARKER, "info", "--data", data) as info:
            page = httpx.get(info + "/")
            assert page.json() == {"items": 3, "names": ["disk", "dns", "release"]}
            assert httpx.get(info + "/api/items").status_code == 404
    # data stopped: info says which dependency failed, as a 502, not a 500.
    with running(playground.MARKER, "data") as data:
        pass
    with running(playground.MARKER, "info", "--data", data) as info:
        page = httpx.get(info + "/")
        assert page.status_code == 502
        assert f"data at {data} failed" in page.json()["error"]


def test_a_data_slower_than_infos_50ms_objective_fails_info() -> None:
    with (
        running(playground.MARKER, "data", "--delay", "0.2") as data,
        running(playground.MARKER, "info", "--data", data) as info,
    ):
        assert httpx.get(data + "/api/items", timeout=5).status_code == 200
        assert httpx.get(info + "/", timeout=5).status_code == 502


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
