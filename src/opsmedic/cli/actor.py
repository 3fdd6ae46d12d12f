"""Who acts from the CLI: the login name, or with `--as NAME` that name and the login both."""

from __future__ import annotations

import getpass
import socket

import typer

from opsmedic.lifecycle import WHO_MAX, clean


def checked(value: str, limit: int, param: str, *, multiline: bool = False) -> str:
    """`value` as people's text must be (lifecycle.clean), or a usage error naming `param`."""
    try:
        return clean(value, limit, multiline=multiline)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (containers)
        return "?"


def actor(given: str | None) -> str:
    """The name to record for an action: the login name; with `--as NAME`, NAME and who
    typed it (`alice (via bob@host)`), so that no one at a shell acts untraceably in another's
    name. The API records the token's name beside `as` alike (`alice (token ops)`)."""
    user = login()
    if given is None:
        return user
    name = checked(given, WHO_MAX, "--as")
    return name if name == user else f"{name} (via {user}@{socket.gethostname()})"
