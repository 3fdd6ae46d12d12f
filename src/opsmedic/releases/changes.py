"""What changed between the last good and the bad version: commits, diff, traceback's files."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from opsmedic.transport.output import Captured, OutputBuffer
from opsmedic.transport.process import run_local

# Bounds on what a rollback attaches: it goes into the store and an event's payload.
DIFF_LIMIT = 64 * 1024
LOG_LIMIT = 16 * 1024
MAX_COMMITS = 200
# A traceback's last 64 KiB (its innermost frames) and at most this many files it names: a
# rule may pass a whole error page, and all of it would go into the store and an event.
TRACEBACK_KEPT = 64 * 1024
MAX_TRACEBACK_FILES = 100
GIT_TIMEOUT_S = 10.0
# A Python traceback frame: `File "/srv/app/releases/v2/app.py", line 5, in handle`.
FRAME = re.compile(r'File "([^"]+)", line (\d+)')
# The environment git runs in: no pager, no prompt for credentials, messages not translated.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}


class GitFailed(Exception):
    """git could not answer: the program, the repository or a ref is missing."""


async def what_changed(repo: Path, good: str, bad: str, traceback: str = "") -> dict[str, Any]:
    """The commits in `good..bad` and their diff (each bounded), and the changed files with
    those that `traceback`'s frames point into marked; {"error": ...} when git cannot tell."""
    found: dict[str, Any] = {"repo": str(repo), "good": good, "bad": bad}
    try:
        await _git(repo, "rev-parse", "--git-dir")  # git's own words for a missing repository
        for ref in (good, bad):
            await _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                       unknown=f"unknown ref {ref!r} in {repo}")  # fmt: skip
        span = f"{good}..{bad}"
        log = await _git(repo, "log", "--oneline", f"--max-count={MAX_COMMITS}", span,
                         limit=LOG_LIMIT)  # fmt: skip
        names = await _git(repo, "diff", "--name-only", span, limit=LOG_LIMIT)
        diff = await _git(repo, "diff", span, limit=DIFF_LIMIT, whole=False)
    except GitFailed as exc:
        return found | {"error": str(exc)}
    frames = _frames(traceback[-TRACEBACK_KEPT:])
    files = []
    for name in names.text().splitlines():
        lines = sorted({n for path, n in frames if _same_file(path, name)})
        files.append({"path": name, "in_traceback": bool(lines), "traceback_lines": lines})
    return found | {
        "commits": log.text().splitlines(), "files": files,
        "diff": diff.text(), "diff_bytes": diff.total, "diff_cut": diff.cut > 0,
        "traceback_files": sorted({path for path, _ in frames})[:MAX_TRACEBACK_FILES],
    }  # fmt: skip


async def _git(
    repo: Path, *args: str, limit: int = 4096, unknown: str = "", whole: bool = True
) -> OutputBuffer:
    """stdout of `git -C repo ARGS`; GitFailed with `unknown` (or git's own words) otherwise.
    `whole=False` keeps the head of a long output (a diff reads from its start)."""
    captured = Captured.bounded(limit)
    if not whole:
        captured.stdout = OutputBuffer(limit, keep_tail=False)
    try:
        await run_local(["git", "-C", str(repo), *args], env=os.environ | GIT_ENV, cwd=None,
                        stdin=None, time_limit=GIT_TIMEOUT_S, captured=captured)  # fmt: skip
    except OSError as exc:
        raise GitFailed(f"cannot run git: {exc}") from None
    if captured.timed_out:
        raise GitFailed(f"git {args[0]} ran over {GIT_TIMEOUT_S:g}s")
    if captured.exit_code != 0:
        said = captured.stderr.text().strip().splitlines()
        raise GitFailed(unknown or (said[0] if said else f"git {args[0]} failed"))
    return captured.stdout


def failing_body(checks: dict[str, Any]) -> str:
    """The last bad answer's body of the first failed verification check, if it kept one."""
    for tally in checks.get("verify", {}).values():
        # Another strategy may keep other shapes here: only a check's tally has a body.
        if (
            isinstance(tally, dict)
            and tally.get("verdict") == "failed"
            and tally.get("last_bad_body")
        ):
            return str(tally["last_bad_body"])
    return ""


def _frames(traceback: str) -> list[tuple[str, int]]:
    return [(path, int(line)) for path, line in FRAME.findall(traceback)]


def _same_file(frame: str, changed: str) -> bool:
    """Does a frame's path (where the version runs, e.g. /srv/app/releases/v2/app.py) end
    with the repository path `changed` (app.py), component by component?"""
    parts, tail = PurePosixPath(frame).parts, PurePosixPath(changed).parts
    return len(parts) >= len(tail) and parts[-len(tail) :] == tail
