"""The ingest fast path: POSTs to the ingest routes skip FastAPI's routing and middleware.

Under webhook load most of a request's cost was FastAPI's and Starlette's layers, not the work
(bench/ingest.py); these few routes are answered here by the very same `accept` the FastAPI
routes call, and every other request (and the OpenAPI document) goes to FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from opsmedic.api.ingest import EVENTS_PATH, WEBHOOK_PATHS, accept
from opsmedic.errors import StoreError
from opsmedic.logs import get_logger

_JSON = [(b"content-type", b"application/json")]


class IngestFastPath:
    """An ASGI app in front of FastAPI: ingest POSTs here, everything else there."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._routes: dict[str, str | None] = {EVENTS_PATH: None, **WEBHOOK_PATHS}
        self._log = get_logger(component="api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in self._routes:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # what request.app.state is read from
        try:
            reply = await accept(Request(scope, receive), self._routes[path])
        except HTTPException as exc:
            await _send(send, exc.status_code, {"detail": exc.detail}, exc.headers)
        except StoreError as exc:
            # As in the FastAPI app: without the store nothing is accepted; 503 → retry later.
            await _send(send, 503, {"detail": str(exc)})
        except Exception:
            self._log.exception("api.ingest_failed", path=path)
            await _send(send, 500, {"detail": "internal error; see the opsmedic log"})
        else:
            await _send_body(send, 202, reply.model_dump_json().encode())


async def _send(send: Send, status: int, body: dict[str, Any],
                headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
    import json

    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await _send_body(send, status, json.dumps(body).encode(), extra)


async def _send_body(send: Send, status: int, body: bytes,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    headers = [*_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
