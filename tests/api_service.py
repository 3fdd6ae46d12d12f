"""A running opsmedic (engine, store, API on a free loopback port) for API tests, and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from opsmedic.clock import Clock
from opsmedic.model import new_id
from opsmedic.runtime import Runtime, Service, build, build_registry, run_forever
from opsmedic.store.store import Store
from opsmedic.tokens import Scope, digest, mint


@dataclass
class Api:
    """The service under test: its runtime, store, base URL, and a token per scope."""

    rt: Runtime
    store: Store
    url: str
    service: Service
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, *scopes: Scope, name: str | None = None) -> str:
        record, secret = mint(name or "+".join(scopes) or "none", list(scopes), 0.0)
        self.store.add_token(record, digest(secret))
        return secret

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


def write_config(tmp: Path, rules: list[dict[str, Any]], **extra: Any) -> Path:
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    (tmp / "rules" / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = tmp / "opsmedic.yaml"
    body = {"store": f"sqlite:///{tmp / 'opsmedic.db'}", "rules_dir": "rules",
            "api": {"port": 0, **extra.pop("api", {})}, **extra}  # fmt: skip
    config.write_text(yaml.safe_dump(body, sort_keys=False))
    return config


@asynccontextmanager
async def running_api(
    tmp: Path, rules: list[dict[str, Any]] | None = None, clock: Clock | None = None, **extra: Any
) -> AsyncIterator[Api]:
    """opsmedic run, in this event loop, until the block ends; `clock` for one a test moves."""
    from opsmedic.metrics import Metrics

    rt = build(write_config(tmp, rules or [], **extra), clock=clock, registry=build_registry())
    assert rt.store is not None
    stop, service = asyncio.Event(), Service(Metrics())
    task = asyncio.create_task(run_forever(rt, stop, service))
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        await task  # start-up failed: show why
    assert service.api_address is not None
    host, port = service.api_address
    api = Api(rt, rt.store, f"http://{host}:{port}", service)
    # Fresh names on every start: a test may start the service twice on one store.
    api.tokens = {s.value: api.token(s, name=f"test-{s.value}-{new_id()}") for s in Scope}
    try:
        yield api
    finally:
        stop.set()
        await task
