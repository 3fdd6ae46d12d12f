"""A real `opsmedic run` in a process of its own, serving its API and dashboard on a loopback
port it picks, for the browser tests and bench/ui.py; API tokens for it; a browser tab
signed in to its dashboard."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from opsmedic.store.store import Store
from opsmedic.tokens import Scope, digest, mint

if TYPE_CHECKING:
    from playwright.sync_api import Page

OPSMEDIC = [sys.executable, "-m", "opsmedic"]
# Debian's browser, never one Playwright downloads (`playwright install` is never run).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Generous: it bounds a wait for a real signal on a loaded CI machine, it is no test timing.
BOUND = 60.0
# The line `opsmedic run` logs once everything (engine, API) has started.
_STARTED = re.compile(r"event=started .* api=(http\S+)")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}


def tokens(store_url: str, wanted: dict[str, list[Scope]]) -> dict[str, str]:
    """New API tokens' secrets by name (`opsmedic token create` in process: a running service
    looks each request's token up in the store, so tokens made after its start work)."""
    store = Store(store_url)
    try:
        secrets = {}
        for name, scopes in wanted.items():
            record, secret = mint(name, scopes, time.time())
            store.add_token(record, digest(secret))
            secrets[name] = secret
        return secrets
    finally:
        store.close()


@contextmanager
def serving(config: Path, log: Path) -> Iterator[str]:
    """`opsmedic run -c config` (its log in `log`) until the block ends; yields its API's URL
    once it has started. SIGTERM at the end, as systemd stops it."""
    with log.open("w") as out:
        proc = subprocess.Popen([*OPSMEDIC, "--log-level", "info", "run", "-c", str(config)],
                                env=_env(), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + BOUND
        while not (found := _STARTED.search(log.read_text())):
            assert proc.poll() is None, f"opsmedic run exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not listening: {log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sign_in(page: Page, url: str, secret: str) -> None:
    """Types the token into the dashboard's sign-in form and submits it, as a person does."""
    page.goto(f"{url}/ui/signin")
    page.get_by_label("API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/")
