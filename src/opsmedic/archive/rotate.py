"""Rotating live logs before archiving: rename and have the writer reopen, or lossy copytruncate."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmedic.archive.local import fsync_dir
from opsmedic.archive.openfiles import scan_open
from opsmedic.config.types import PositiveDuration
from opsmedic.transport.process import kill_group

_COPY_CHUNK = 1 << 20
_OUTPUT_TAIL = 300  # characters of a failed reopen command's output kept in its message
_POLL = 0.05  # seconds between looks at whether the writer let go of the renamed file


class RotateParams(BaseModel):
    """Which live logs of the directory to rotate, and how the writer learns of it."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["rename", "copytruncate"] = Field(
        "rename", description="copytruncate loses the lines written between copy and truncate"
    )
    files: list[str] = Field(min_length=1, description="names of live logs in the directory")
    reopen: list[str] | None = Field(
        None,
        min_length=1,
        description="argv (no shell) run after renaming so the writer reopens its log",
    )
    reopen_timeout: PositiveDuration = Field(
        10.0, description="for the reopen command and for the writer to let go of the old file"
    )

    @field_validator("files")
    @classmethod
    def _plain_names(cls, names: list[str]) -> list[str]:
        for i, name in enumerate(names):
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                raise ValueError(f"item {i} {name!r} is not a file name inside the directory")
        return names

    @field_validator("reopen")
    @classmethod
    def _argv(cls, argv: list[str] | None) -> list[str] | None:
        if argv is not None and (not argv[0] or any("\0" in word for word in argv)):
            raise ValueError("the program (item 0) is empty, or an item holds a NUL byte")
        return argv

    @model_validator(mode="after")
    def _reopen_needs_rename(self) -> RotateParams:
        if self.reopen is not None and self.mode == "copytruncate":
            raise ValueError("reopen is for mode rename; copytruncate keeps the writer's file")
        return self


@dataclass(slots=True)
class RotateResult:
    """The rotated files (new names), whether lines may have been lost, and what went wrong."""

    rotated: list[Path] = field(default_factory=list)
    lossy: bool = False
    messages: list[str] = field(default_factory=list)


def rotate(directory: Path, params: RotateParams, now: datetime) -> RotateResult:
    """Rotate each live log to `NAME.YYYYmmddTHHMMSSZ` (UTC), never over an existing file.

    Blocking. An empty log is left alone quietly; a missing, symlinked or non-regular one
    with a message. In mode rename, `reopen` runs once after the renames, then the call waits
    (within reopen_timeout) until no process writes to a renamed file any more.
    """
    if now.tzinfo is None:
        raise ValueError("rotate needs a timezone-aware time")
    suffix = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = RotateResult()
    move = _rename if params.mode == "rename" else _copytruncate
    for name in params.files:
        live = directory / name
        refusal = _refusal(live)
        if refusal is not None:
            if refusal:
                result.messages.append(f"{live}: {refusal}; not rotated")
            continue
        target = directory / f"{name}.{suffix}"
        try:
            move(live, target)
        except FileExistsError:
            result.messages.append(f"{target} exists already; {live} not rotated")
        except OSError as exc:
            result.messages.append(f"{live}: {exc.strerror or exc}; not rotated")
        else:
            result.rotated.append(target)
    if not result.rotated:
        return result
    fsync_dir(directory)
    names = ", ".join(p.name for p in result.rotated)
    if params.mode == "copytruncate":
        result.lossy = True
        result.messages.append(
            f"copytruncate ({names}): lines written between the copy and the truncate are "
            "lost; mode rename with reopen loses none"
        )
        return result
    deadline = time.monotonic() + (params.reopen_timeout if params.reopen else 0.0)
    if params.reopen is not None:
        failure = _run_reopen(params.reopen, params.reopen_timeout)
        if failure is not None:
            result.messages.append(f"{failure}; the writer may still hold {names}")
            return result
    result.messages += _still_written(result.rotated, deadline, params.reopen is not None)
    return result


def _refusal(live: Path) -> str | None:
    """Why `live` is not rotated ("" when there is simply nothing to rotate), or None."""
    try:
        st = live.lstat()
    except FileNotFoundError:
        return "not found"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink (never followed)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return "" if st.st_size == 0 else None


def _rename(live: Path, target: Path) -> None:
    # link() fails on an existing target where rename() would silently replace it.
    os.link(live, target, follow_symlinks=False)
    try:
        os.unlink(live)
    except OSError:
        target.unlink()
        raise


def _copytruncate(live: Path, target: Path) -> None:
    src = os.open(live, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(src)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dst = os.open(target, flags, stat.S_IMODE(st.st_mode))
        try:
            with contextlib.suppress(PermissionError):  # only root can give it to the log's owner
                os.fchown(dst, st.st_uid, st.st_gid)
            with open(src, "rb", closefd=False) as reader, open(dst, "wb", closefd=False) as out:
                shutil.copyfileobj(reader, out, _COPY_CHUNK)
            os.fsync(dst)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            os.close(dst)
        os.ftruncate(src, 0)  # the inode that was copied, even if the name moved meanwhile
    finally:
        os.close(src)


def _run_reopen(argv: list[str], timeout: float) -> str | None:
    """Run the reopen command in its own process group; what went wrong, or None."""
    shown = " ".join(argv)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return f"reopen command `{shown}` could not start: {exc.strerror or exc}"
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"reopen command `{shown}` did not finish within {timeout:g} s and was killed"
    if proc.returncode != 0:
        tail = output.decode(errors="replace").strip()[-_OUTPUT_TAIL:]
        return f"reopen command `{shown}` failed (exit {proc.returncode})" + (
            f": {tail}" if tail else ""
        )
    return None


def _still_written(rotated: list[Path], deadline: float, reopened: bool) -> list[str]:
    """Wait until no process writes to a rotated file any more; name those that still do."""
    keys: dict[tuple[int, int], Path] = {}
    for path in rotated:
        with contextlib.suppress(OSError):  # archived or removed by someone else already
            st = path.stat()
            keys[(st.st_dev, st.st_ino)] = path
    while True:
        writers = {
            key: [h for h in holders if h.writing] for key, holders in scan_open(set(keys)).items()
        }
        writers = {key: found for key, found in writers.items() if found}
        if not writers or time.monotonic() >= deadline:
            break
        time.sleep(_POLL)
    hint = (
        "the writer did not reopen its log in time"
        if reopened
        else "without reopen the writer stays on the renamed file"
    )
    return [
        f"{keys[key].name} still open for writing by "
        + ", ".join(f"pid {h.pid} ({h.command})" for h in found)
        + f"; {hint}"
        for key, found in writers.items()
    ]
