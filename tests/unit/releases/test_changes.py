"""What changed between two versions, from a real git repository: v1 good, v2 with the seed's
`json.loads(f)` bug, and a traceback that points into the changed file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from opsmedic.releases.changes import DIFF_LIMIT, what_changed

APP = """import json


def handle(root):
    with open(root + "/data.json") as f:
        return json.dumps(json.{reader}(f))
"""

TRACEBACK = """Traceback (most recent call last):
  File "/usr/lib/python3.11/http/server.py", line 1, in handle_one_request
  File "/srv/shortener/releases/v2/shortener/app.py", line 6, in handle
    return json.dumps(json.loads(f))
TypeError: the JSON object must be str, bytes or bytearray, not TextIOWrapper
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "shortener").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    (repo / "shortener" / "app.py").write_text(APP.format(reader="load"))
    (repo / "README").write_text("a URL shortener\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1: the shortener")
    _git(repo, "tag", "v1")
    (repo / "shortener" / "app.py").write_text(APP.format(reader="loads"))
    _git(repo, "commit", "-qam", "read the data with loads")
    (repo / "README").write_text("a URL shortener, faster\n")
    _git(repo, "commit", "-qam", "docs: faster")
    _git(repo, "tag", "v2")
    return repo


async def test_commits_diff_and_the_traceback_files_are_marked(repo: Path) -> None:
    found = await what_changed(repo, "v1", "v2", TRACEBACK)
    assert "error" not in found
    assert [c.split(" ", 1)[1] for c in found["commits"]] == [
        "docs: faster", "read the data with loads"]  # fmt: skip
    assert found["files"] == [
        {"path": "README", "in_traceback": False, "traceback_lines": []},
        {"path": "shortener/app.py", "in_traceback": True, "traceback_lines": [6]},
    ]
    assert "-        return json.dumps(json.load(f))" in found["diff"]
    assert "+        return json.dumps(json.loads(f))" in found["diff"]
    assert not found["diff_cut"]
    assert "/srv/shortener/releases/v2/shortener/app.py" in found["traceback_files"]


async def test_without_a_traceback_nothing_is_marked(repo: Path) -> None:
    found = await what_changed(repo, "v1", "v2")
    assert [f["in_traceback"] for f in found["files"]] == [False, False]
    # A frame in a file of the same name elsewhere is not the changed file.
    other = await what_changed(repo, "v1", "v2", 'File "/srv/other/app.py", line 6')
    assert [f["in_traceback"] for f in other["files"]] == [False, False]


async def test_a_big_diff_is_cut_to_its_bound(repo: Path) -> None:
    (repo / "big.txt").write_text("x" * 100 + "\n" * 3 + "line\n" * 40_000)
    _git(repo, "add", "big.txt")
    _git(repo, "commit", "-qm", "big")
    _git(repo, "tag", "v3")
    found = await what_changed(repo, "v1", "v3", TRACEBACK)
    assert found["diff_cut"] and found["diff_bytes"] > DIFF_LIMIT
    assert len(found["diff"].encode()) < DIFF_LIMIT + 100
    assert found["diff"].startswith("diff --git")


@pytest.mark.parametrize(
    ("where", "good", "bad", "says"),
    [
        ("repo", "v1", "v9", "unknown ref 'v9' in "),
        ("repo", "nope", "v2", "unknown ref 'nope' in "),
        ("missing", "v1", "v2", "cannot change to"),
        ("plain", "v1", "v2", "not a git repository"),
    ],
)
async def test_a_missing_repository_or_unknown_ref_is_reported(
    repo: Path, where: str, good: str, bad: str, says: str
) -> None:
    path = {"repo": repo, "missing": repo.parent / "missing", "plain": repo.parent}[where]
    found = await what_changed(path, good, bad, TRACEBACK)
    assert says in found["error"]
    assert "commits" not in found
