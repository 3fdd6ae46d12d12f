"""The API's front door: body limits for every request, and the ingest fast path.

Under webhook load most of a request's cost was FastAPI's and Starlette's layers, not the work
(bench/ingest.py); the ingest routes are answered here by the very same `accept` the FastAPI
routes call, and every other request (and the OpenAPI document) goes to FastAPI. FastAPI reads
a body before it checks the token, so the size limit is enforced here, for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from opsmedic.api.ingest import EVENTS_PATH, STORE_DOWN, WEBHOOKS_PREFIX, accept
from opsmedic.errors import StoreError
from opsmedic.logs import get_logger

_JSON = [(b"content-type", b"application/json")]


def _as_json(scope: Scope) -> Scope:
    """Every body this API takes is JSON (docs/api.md): one sent without saying so (`curl
    -d` says form-urlencoded) is read as JSON, as the ingest routes read theirs, instead of
    FastAPI's 422 "Input should be a valid dictionary"."""
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return scope
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    return {**scope, "headers": [*headers, *_JSON]}


class IngestFastPath:
    """An ASGI app in front of FastAPI: ingest POSTs here, everything else there."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._routes: dict[str, str | None] = {EVENTS_PATH: None}
        self._routes.update((WEBHOOKS_PREFIX + name, name) for name in app.state.webhooks)
        self._log = get_logger(component="api")

    def close_streams(self) -> None:
        """End the responses that never end by themselves (the flag streams): the API stops."""
        self.app.state.flag_feed.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        ingest = scope["method"] == "POST" and path in self._routes
        # The dashboard (mounted on this app) reads its forms with a smaller limit of its own
        # and answers an oversized one with a page rather than this JSON.
        own = getattr(self.app.state, "own_body_limits", None)
        if own and path.startswith(own):
            await self.app(scope, receive, send)
        elif refusal := _body_refusal(scope, self.app.state.max_body, chunked_ok=ingest):
            await _send(send, *refusal)
        elif ingest:
            await self._ingest(scope, receive, send, path)
        else:
            await self.app(_as_json(scope), receive, send)

    async def _ingest(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        scope["app"] = self.app  # what request.app.state is read from
        try:
            reply = await accept(Request(scope, receive), self._routes[path])
        except HTTPException as exc:
            await _send(send, exc.status_code, {"detail": exc.detail}, exc.headers)
        except StoreError as exc:
            # As in the FastAPI app: without the store nothing is accepted; 503 → retry later.
            self._log.error("api.store_unavailable", path=path, error=str(exc))
            await _send(send, 503, {"detail": STORE_DOWN})
        except ClientDisconnect:
            return  # the sender gave up mid-body: nobody to answer, nothing was accepted
        except Exception:
            self._log.exception("api.ingest_failed", path=path)
            await _send(send, 500, {"detail": "internal error; see the opsmedic log"})
        else:
            await _send_body(send, 202, orjson.dumps(reply))


def _body_refusal(
    scope: Scope, limit: int, *, chunked_ok: bool
) -> tuple[int, dict[str, Any]] | None:
    """A declared length over the limit, for every route; a chunked body only where it is
    read with a running count (ingest): other routes must declare their length."""
    if scope["method"] in ("GET", "HEAD", "OPTIONS"):
        return None
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if length is None:
        chunked = any(k == b"transfer-encoding" for k, _ in scope["headers"])
        if chunked and not chunked_ok:
            return 411, {"detail": "send a Content-Length with a body"}
        return None
    if not length.isdigit():
        return 400, {"detail": "Content-Length is not a number"}
    if int(length) > limit:
        return 413, {"detail": f"body of {int(length)} bytes is over the limit of {limit}"}
    return None


async def _send(send: Send, status: int, body: dict[str, Any],
                headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await _send_body(send, status, orjson.dumps(body), extra)


async def _send_body(send: Send, status: int, body: bytes,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    headers = [*_JSON, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
