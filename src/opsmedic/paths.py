"""Templated path parameters, kept inside the directory the rule wrote before its first template."""

from __future__ import annotations

import glob
import os
import re
import stat
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import BeforeValidator, ValidationInfo

from opsmedic.templating import MARKERS, Rendered, UnsafeTemplate, is_template

SFTP = "sftp://"
# What the last component must be when it exists: a directory, a regular file, anything.
Leaf = Literal["dir", "file", "any"]
_GLOB = re.compile(r"[*?\[]")  # fnmatch's special characters
_BASE_DIR = "base_dir"


def static_prefix(source: str) -> str:
    """The directory a template fixes: its text up to the first marker, cut back to a `/`."""
    first = min((i for m in MARKERS if (i := source.find(m)) >= 0), default=len(source))
    head = source[:first]
    return head[: head.rfind("/") + 1]


def check_source(source: str, *, relative: bool = False) -> None:
    """Refuse, when rules load, a path template that leaves no fixed directory to stay in.

    `relative`: the path is taken inside a directory given elsewhere (an archive glob inside
    `dir`), so it may start with a template; it must then not be absolute.
    """
    prefix = static_prefix(source)
    # `/` alone confines nothing: the rendered value could name any directory on the host,
    # and no sandbox can grant "anywhere" (ReadWritePaths=/ undoes ProtectSystem=).
    if prefix in ("", "/") and not relative:
        raise UnsafeTemplate(
            "a templated path must start with a directory written in the rule (not / alone), "
            "e.g. /var/log/apps/{{ event.labels.app }}"
        )
    if ".." in prefix.split("/"):
        raise UnsafeTemplate(f"the fixed part {prefix!r} of a templated path has a '..' segment")
    # A remote `/` alone confines no more than a local one. (A templated host is allowed:
    # it can only name an entry of ssh_hosts, and its path is then judged like any other.)
    host, slash, path = prefix.removeprefix(SFTP).partition("/")
    if prefix.startswith(SFTP) and host and slash and not path:
        raise UnsafeTemplate(
            "a templated sftp:// path must write a directory on its host before the first "
            "template (not / alone), e.g. sftp://backup/archive/{{ event.host }}/"
        )


SHOWN_CHARS = 200  # of a value an event chose, in a message: enough to recognise it


def shown(value: str) -> str:
    """`value` quoted as repr() does, cut at SHOWN_CHARS with "…": an event's value may be
    any length, and a message that echoes it whole buries what went wrong."""
    return repr(value) if len(value) <= SHOWN_CHARS else f"{value[:SHOWN_CHARS]!r}…"


def confine(rendered: str, source: str, *, relative: bool = False) -> None:
    """Raise ValueError unless `rendered` (from template `source`) stays inside its prefix.

    Judged on the text alone (lexically, no symlink followed, nothing touched): the rendered
    part must be one or more plain segments, so no value can climb out or name the prefix.
    """
    check_source(source, relative=relative)
    prefix = static_prefix(source)
    where = f"{prefix!r}, the directory written in the rule" if prefix else "its directory"
    if "\0" in rendered:
        raise ValueError(f"rendered path {shown(rendered)} holds a NUL byte")
    if not rendered.startswith(prefix):
        raise ValueError(f"rendered path {shown(rendered)} does not start with {where}")
    rest = rendered[len(prefix) :]
    if prefix.startswith(SFTP):
        # The sftp destination percent-decodes its path: judge what it will use, else `%2e`
        # or `%2F%2F` from an event passes here and becomes `.` or `//` there.
        rest = unquote(rest)
        if "\0" in rest:
            raise ValueError(f"rendered path {shown(rendered)} holds a NUL byte (percent-encoded)")
    # One trailing `/` is how a rule says "a directory" (`to: /srv/archive/{{ host }}/`).
    segments = (rest[:-1] if rest.endswith("/") else rest).split("/")
    # `.` and an empty segment would collapse the templated directory into the prefix,
    # reaching its siblings; `..` climbs out; `//` is what an absolute value leaves behind.
    for bad, name in (("..", "a '..' segment"), (".", "a '.' segment"), ("", "an empty segment")):
        if bad in segments:
            raise ValueError(
                f"rendered path {shown(rendered)} has {name}: a templated path must stay "
                f"inside {where}"
            )


def confine_on_disk(
    full: Path, rendered: str, source: str, *, leaf: Leaf, relative: bool = False
) -> None:
    """Raise ValueError if a component of `full` after the fixed prefix is a symlink or misfits."""
    # `full` is `rendered` as the action will use it (expanded, joined to its base). Nothing
    # is followed: each component that exists is looked at with lstat; a missing one ends it.
    segments = rendered[len(static_prefix(source)) :].rstrip("/").split("/")
    # The components the event chose are the last len(segments) of `full`; those before are
    # the rule's own (its directory may well be reached through a link the operator made).
    parts = full.parts
    here = Path(*parts[: len(parts) - len(segments)])
    for i, segment in enumerate(segments):
        if relative and _GLOB.search(segment):
            return  # a pattern from here on: the selection's walk never enters a link
        here /= segment
        last = i == len(segments) - 1
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return  # nothing below exists either; the action creates it or reports it
        except OSError as exc:
            raise ValueError(f"rendered path {shown(rendered)}: cannot check {shown(str(here))}: "
                             f"{exc.strerror}") from None  # fmt: skip
        if stat.S_ISLNK(st.st_mode):
            raise ValueError(
                f"rendered path {shown(rendered)}: {shown(str(here))} is a symlink, and a "
                "templated path is never followed through one"
            )
        wanted = "directory" if not last or leaf == "dir" else "regular file"
        fits = stat.S_ISDIR(st.st_mode) if wanted == "directory" else stat.S_ISREG(st.st_mode)
        if not fits and (not last or leaf != "any"):
            raise ValueError(
                f"rendered path {shown(rendered)}: {shown(str(here))} is not a {wanted}"
            )


def not_blank(values: list[str]) -> list[str]:
    """A list of paths without an empty one or a NUL byte (a field validator's body)."""
    for i, value in enumerate(values):
        if not value.strip() or "\0" in value:
            raise ValueError(f"item {i} is empty or holds a NUL byte: {shown(value)}")
    return values


def validation_context(base_dir: Path) -> dict[str, Any]:
    """What model_validate needs to check rendered paths on disk: the config's directory."""
    return {_BASE_DIR: base_dir}


def _base(info: ValidationInfo, rendered: str) -> Path:
    """The directory a relative path starts from (opsmedic.yaml's), as the actions join it."""
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get(_BASE_DIR)
    if base is None and not Path(rendered).expanduser().is_absolute():
        # Checking the process's cwd instead would check the wrong tree, silently.
        raise ValueError(f"rendered path {shown(rendered)}: no config directory to check it in")
    return Path(base or "/")


def _checked(value: Any, info: ValidationInfo, *, leaf: Leaf) -> Any:
    """Rendered text is judged against its template, then on disk; a template (at load) alone."""
    if isinstance(value, Rendered) and is_template(value.source):
        confine(value, value.source)
        # A remote path (sftp://, or run_command's cwd on an ssh host) is not on this disk.
        remote = value.startswith(SFTP) or (info.data or {}).get("host") is not None
        if not remote:
            full = _base(info, value) / Path(value).expanduser()
            confine_on_disk(full, value, value.source, leaf=leaf)
    elif isinstance(value, str) and is_template(value):
        check_source(value)
    return value


def _checked_relative(value: Any, info: ValidationInfo) -> Any:
    """A glob inside each of `dir`: judged like a path, on disk below each directory; then
    as its pattern, in which an event's `*` or `[` is literal (Rendered.pattern)."""
    if isinstance(value, Rendered) and is_template(value.source):
        confine(value, value.source, relative=True)
        for top in (info.data or {}).get("dir", []):
            full = _base(info, top) / Path(top).expanduser() / value
            confine_on_disk(full, value, value.source, leaf="any", relative=True)
        return Rendered(value.pattern, value.source)
    elif isinstance(value, str) and is_template(value):
        check_source(value, relative=True)
    return value


def _matches_inside(value: Any, info: ValidationInfo) -> Any:
    """A rendered glob as its pattern (an event's `*` is a literal `*`), whose matches, links
    resolved, stay inside the directory the rule wrote."""
    # confine() keeps the text inside; a glob can still match a link planted there that
    # leads out (app/*.log → /etc/shadow), which the lstat walk never reaches.
    if not (isinstance(value, Rendered) and is_template(value.source)):
        return value
    value = Rendered(value.pattern, value.source)
    if not _GLOB.search(value):
        return value
    base = _base(info, value)
    prefix = static_prefix(value.source)
    root = os.path.realpath(base / Path(prefix).expanduser())
    for match in sorted(glob.glob(str(base / Path(value).expanduser()))):
        real = os.path.realpath(match)
        if os.path.commonpath([root, real]) != root:
            raise ValueError(
                f"rendered path {shown(value)}: {shown(match)} leads to {shown(real)}, outside "
                f"{prefix!r}, the directory written in the rule"
            )
    return value


# On a parameter that names a directory (a file, for FILE_CONFINED): a templated value stays
# under its prefix, and no component the event chose is a symlink.
CONFINED = BeforeValidator(partial(_checked, leaf="dir"))
FILE_CONFINED = BeforeValidator(partial(_checked, leaf="file"))
TemplatedPath = Annotated[str, CONFINED]
# Likewise, for a glob taken inside `dir` (an archive include): no prefix needed.
TemplatedRelativePath = Annotated[str, BeforeValidator(_checked_relative)]
# A file or a glob of files (the loghunt action's `files`): confined as a file, and each
# match of a templated glob checked with its links resolved (validators run last first).
TemplatedFileGlob = Annotated[str, BeforeValidator(_matches_inside), FILE_CONFINED]
