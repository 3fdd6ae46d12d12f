"""Templated path parameters, kept inside the directory the rule wrote before its first template."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import BeforeValidator

from opsmedic.templating import MARKERS, Rendered, UnsafeTemplate, is_template

SFTP = "sftp://"


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


def confine(rendered: str, source: str, *, relative: bool = False) -> None:
    """Raise ValueError unless `rendered` (from template `source`) stays inside its prefix.

    Judged on the text alone (lexically, no symlink followed, nothing touched): the rendered
    part must be one or more plain segments, so no value can climb out or name the prefix.
    """
    check_source(source, relative=relative)
    prefix = static_prefix(source)
    where = f"{prefix!r}, the directory written in the rule" if prefix else "its directory"
    if "\0" in rendered:
        raise ValueError(f"rendered path {rendered!r} holds a NUL byte")
    if not rendered.startswith(prefix):
        raise ValueError(f"rendered path {rendered!r} does not start with {where}")
    rest = rendered[len(prefix) :]
    if prefix.startswith(SFTP):
        # The sftp destination percent-decodes its path: judge what it will use, else `%2e`
        # or `%2F%2F` from an event passes here and becomes `.` or `//` there.
        rest = unquote(rest)
        if "\0" in rest:
            raise ValueError(f"rendered path {rendered!r} holds a NUL byte (percent-encoded)")
    # One trailing `/` is how a rule says "a directory" (`to: /srv/archive/{{ host }}/`).
    segments = (rest[:-1] if rest.endswith("/") else rest).split("/")
    # `.` and an empty segment would collapse the templated directory into the prefix,
    # reaching its siblings; `..` climbs out; `//` is what an absolute value leaves behind.
    for bad, name in (("..", "a '..' segment"), (".", "a '.' segment"), ("", "an empty segment")):
        if bad in segments:
            raise ValueError(
                f"rendered path {rendered!r} has {name}: a templated path must stay inside {where}"
            )


def _checked(value: Any, *, relative: bool) -> Any:
    """Rendered text is judged against its template; a template itself (at load) on its own."""
    if isinstance(value, Rendered) and is_template(value.source):
        confine(value, value.source, relative=relative)
    elif isinstance(value, str) and is_template(value):
        check_source(value, relative=relative)
    return value


# On a parameter that names a file or directory: a templated value stays under its prefix.
CONFINED = BeforeValidator(partial(_checked, relative=False))
TemplatedPath = Annotated[str, CONFINED]
# Likewise, for a path taken inside another directory (an archive glob): no prefix needed.
TemplatedRelativePath = Annotated[str, BeforeValidator(partial(_checked, relative=True))]
