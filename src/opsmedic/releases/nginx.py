"""The nginx router: one include file per upstream, checked with `nginx -t`, reloaded, read back.

nginx (without the commercial API) has no runtime call for weights: a change is a config
change. The file is written atomically, the whole config is tested with the real main file,
and a refusal puts the old file back before anything is reloaded. The reload is confirmed by
the master starting new workers (a reload nginx refuses at runtime leaves the old ones), and
the weights are read back from `nginx -T`, the configuration the reloaded master loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from opsmedic.files import write_atomic
from opsmedic.releases.router import (
    ConfigRejected,
    ReadBackError,
    ReloadFailed,
    RouterError,
    check_weights,
)
from opsmedic.transport.output import Captured
from opsmedic.transport.process import run_local

OUTPUT_LIMIT = 4 * 1024 * 1024  # `nginx -T` prints the whole configuration
POLL_S = 0.02
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")
_COOKIE = re.compile(r"[A-Za-z0-9_]{1,64}")
_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class Sticky:
    """Requests carrying the same header or cookie value always reach the same backend.

    The value is hashed (nginx `split_clients`) into the shares the weights give, so a user
    stays on one version for a whole step, and an A/B test is a canary nobody promotes.
    Requests without the value are spread per request by the weights.
    """

    kind: Literal["header", "cookie"]
    name: str

    def __post_init__(self) -> None:
        pattern = _HEADER if self.kind == "header" else _COOKIE
        if not pattern.fullmatch(self.name):
            raise RouterError(f"sticky {self.kind} name {self.name!r} is not {pattern.pattern}")

    @property
    def variable(self) -> str:
        if self.kind == "header":
            return "$http_" + self.name.lower().replace("-", "_")
        return "$cookie_" + self.name


@dataclass(frozen=True)
class UpstreamFile:
    """The include file opsmedic owns for one upstream; the main config must include it."""

    path: Path
    sticky: Sticky | None = None


@dataclass(frozen=True)
class NginxSettings:
    """Where the running nginx is: its prefix, main config and pid file, and the files we own."""

    prefix: Path
    conf: Path
    pid_file: Path
    upstreams: Mapping[str, UpstreamFile]
    program: str = "nginx"
    timeout_s: float = 10.0  # per `nginx -t`/`-T` run and for the reload to take effect
    extra_args: Sequence[str] = field(default_factory=tuple)  # e.g. ("-e", "/path/error.log")


def route_variable(upstream: str) -> str:
    """The variable a sticky upstream's `proxy_pass http://$…;` names."""
    return "$opsmedic_" + upstream.replace("-", "_")


def render(upstream: str, weights: Mapping[str, int], sticky: Sticky | None) -> str:
    """The include file's text: the weighted upstream, and for sticky the map that pins users."""
    lines = [
        "# Written by opsmedic's nginx router; every weight change replaces this file.",
        f"upstream {upstream} {{",
        *(_server(address, weight) for address, weight in weights.items()),
        "}",
    ]
    if sticky is None:
        return "\n".join(lines) + "\n"
    live = [address for address, weight in weights.items() if weight > 0]
    total = sum(weights.values())
    pick = route_variable(upstream) + "_pick"
    split = []
    for index, address in enumerate(live):
        lines += [f"upstream {upstream}__{index} {{", f"    server {address};", "}"]
        # split_clients takes at most two decimals; the last backend takes what is left (*).
        share = max(0.01, math.floor(weights[address] * 10000 / total) / 100)
        split.append(
            f"    {'*' if index == len(live) - 1 else f'{share:.2f}%'} {upstream}__{index};"
        )
    lines += [
        f'split_clients "{sticky.variable}" {pick} {{',
        *split,
        "}",
        f"map {sticky.variable} {route_variable(upstream)} {{",
        f'    "" {upstream};',
        f"    default {pick};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _server(address: str, weight: int) -> str:
    # nginx refuses weight=0: a left-out backend stays listed, marked down, so it reads back.
    return (
        f"    server {address} down;" if weight == 0 else f"    server {address} weight={weight};"
    )


def parse_upstream(config: str, upstream: str) -> dict[str, int] | None:
    """The weights of `upstream`'s servers in an nginx configuration text, None if absent."""
    text = _COMMENT.sub("", config)
    found = re.search(rf"(?:^|[\s;}}]){re.escape(upstream)}\s*\{{([^}}]*)\}}", _upstreams(text))
    if found is None:
        return None
    weights = {}
    for statement in found.group(1).split(";"):
        words = statement.split()
        if not words or words[0] != "server":
            continue
        params = words[2:]
        weight = 1
        for param in params:
            if param.startswith("weight="):
                weight = int(param.removeprefix("weight="))
        weights[words[1]] = 0 if "down" in params else weight
    return weights


def _upstreams(text: str) -> str:
    # Only `upstream NAME {…}` blocks, each kept as "NAME {…}", so a `map` or `location`
    # that happens to share the name is never taken for it.
    return "\n".join(m.group(1) for m in re.finditer(r"\bupstream\s+([^{;]+\{[^}]*\})", text))


class NginxRouter:
    """The Router for a running nginx; one lock serialises changes so files and reloads pair."""

    def __init__(self, settings: NginxSettings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()

    async def set_weights(self, upstream: str, weights: Mapping[str, int]) -> None:
        wanted = check_weights(upstream, weights)
        owned = self._owned(upstream)
        async with self._lock:
            try:
                old = owned.path.read_text(encoding="utf-8") if owned.path.exists() else None
                like = owned.path.stat() if old is not None else None
                write_atomic(owned.path, render(upstream, wanted, owned.sticky), like=like)
            except OSError as exc:  # write_atomic leaves the old file, or no file, in place
                raise RouterError(f"upstream {upstream}: cannot write {owned.path}: {exc}") from exc
            try:
                tested = await self._nginx("-t")
                if tested.exit_code != 0:
                    raise ConfigRejected(
                        f"upstream {upstream}: nginx -t refused {owned.path} (the old file is "
                        f"back, nothing was reloaded): {_message(tested)}"
                    )
                await self._reload(upstream)
            except BaseException:
                _restore(owned.path, old)
                raise
        live = await self.weights(upstream)
        if live != wanted:
            raise ReadBackError(f"upstream {upstream}: set {wanted}, nginx has {live}")

    async def weights(self, upstream: str) -> dict[str, int]:
        owned = self._owned(upstream)
        dumped = await self._nginx("-T")
        if dumped.exit_code != 0:
            raise ReadBackError(f"upstream {upstream}: nginx -T failed: {_message(dumped)}")
        found = parse_upstream(dumped.stdout.text(), upstream)
        if found is None:
            raise ReadBackError(
                f"upstream {upstream} is not in nginx's configuration {self.settings.conf}: "
                f"does it include {owned.path}?"
            )
        return found

    def _owned(self, upstream: str) -> UpstreamFile:
        try:
            return self.settings.upstreams[upstream]
        except KeyError:
            known = ", ".join(sorted(self.settings.upstreams)) or "none"
            raise RouterError(
                f"upstream {upstream} is not managed by this router ({known})"
            ) from None

    async def _nginx(self, flag: str) -> Captured:
        settings = self.settings
        argv = [settings.program, "-p", str(settings.prefix), "-c", str(settings.conf)]
        captured = Captured.bounded(OUTPUT_LIMIT)
        try:
            await run_local(
                [*argv, *settings.extra_args, flag],
                env=dict(os.environ),
                cwd=None,
                stdin=None,
                time_limit=settings.timeout_s,
                captured=captured,
            )
        except OSError as exc:
            raise RouterError(f"cannot run {settings.program}: {exc}") from exc
        if captured.timed_out:
            raise RouterError(f"{settings.program} {flag} ran over {settings.timeout_s} s")
        return captured

    async def _reload(self, upstream: str) -> None:
        """SIGHUP to the master, then wait for workers it started after it (new config live)."""
        pid_file = self.settings.pid_file
        try:
            master = psutil.Process(int(pid_file.read_text(encoding="ascii").strip()))
            before = {child.pid for child in master.children()}
            master.send_signal(signal.SIGHUP)
        except (OSError, ValueError, psutil.Error) as exc:
            raise ReloadFailed(
                f"upstream {upstream}: cannot signal the nginx master named in {pid_file}: {exc}"
            ) from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_s
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            try:
                if _reloaded(master, before):
                    return
            except psutil.Error as exc:
                raise ReloadFailed(
                    f"upstream {upstream}: the nginx master went away: {exc}"
                ) from exc
        raise ReloadFailed(
            f"upstream {upstream}: nginx started no new workers within {self.settings.timeout_s} s "
            "of the reload (it refused the configuration at runtime; see its error log)"
        )


def _reloaded(master: psutil.Process, before: set[int]) -> bool:
    """New workers run and the old ones stopped accepting (gone, or "shutting down").

    The master starts the new workers before it tells the old ones to quit: until they do,
    an old worker still accepts connections and routes them by the old weights.
    """
    children = master.children()
    if not {child.pid for child in children} - before:
        return False
    for child in children:
        if child.pid in before:
            with contextlib.suppress(psutil.NoSuchProcess):
                if "shutting down" not in " ".join(child.cmdline()):
                    return False
    return True


def _message(captured: Captured) -> str:
    """nginx's own words (it prints `[emerg] … in FILE:LINE` then "test failed") on one line."""
    text = captured.stderr.text().strip() or captured.stdout.text().strip()
    return " / ".join(line for line in text.splitlines() if line.strip()) or "no message"


def _restore(path: Path, old: str | None) -> None:
    if old is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, old)
