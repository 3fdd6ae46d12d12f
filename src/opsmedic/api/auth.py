"""Bearer-token authentication with scopes, as a FastAPI dependency; lookups cached briefly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from opsmedic.model import TokenRecord
from opsmedic.store.store import Store
from opsmedic.tokens import Scope, allows, digest

CACHE_SECONDS = 5.0  # a token revoked from the CLI stops working within this time
CACHE_SIZE = 1024  # entries; random guesses must not grow memory without bound


class Authenticator:
    """Finds the token of a request (header, or query parameter when allowed) in the store."""

    def __init__(self, store: Store, *, allow_query_token: bool) -> None:
        self._store = store
        self._allow_query = allow_query_token
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}

    def forget(self) -> None:
        """Drop cached lookups (after a revocation through the API: effective at once)."""
        self._cache.clear()

    async def check(self, request: Request, scope: Scope) -> TokenRecord:
        secret = self._secret(request)
        if not secret:
            raise _unauthorized("no token: send `Authorization: Bearer <token>`")
        record = await self._lookup(digest(secret))
        if record is None:
            raise _unauthorized("unknown or revoked token")
        if not allows(record, scope):
            raise HTTPException(403, f"token {record.name!r} lacks the {scope.value!r} scope")
        return record

    async def still_allows(self, request: Request, scope: Scope) -> bool:
        """Whether the request's token still has `scope` (for a long-lived response, such as
        a stream, that must end once its token is revoked)."""
        try:
            await self.check(request, scope)
        except HTTPException:
            return False
        return True

    def _secret(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        if header:
            raise _unauthorized("the Authorization header must be `Bearer <token>`")
        if self._allow_query:
            return request.query_params.get("token", "")
        return ""

    async def _lookup(self, key: str) -> TokenRecord | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await asyncio.to_thread(self._store.find_token, key)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()  # simple and bounded; a refill costs one query per token
        self._cache[key] = (now + CACHE_SECONDS, record)
        return record


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[[Request], Awaitable[TokenRecord]]:
    """A dependency that admits only requests whose token has `scope` (or admin)."""

    async def dependency(request: Request) -> TokenRecord:
        auth: Authenticator = request.app.state.auth
        return await auth.check(request, scope)

    dependency.__name__ = f"require_{scope.value}"
    return dependency
