"""FastAPI routes whose JSON bodies go through the one strict decoder the ingest routes use."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from opsmedic.api.body import decode_json


class _StrictRequest(Request):
    async def json(self) -> Any:
        # Starlette's json() is the stdlib's, which takes NaN and Infinity; a body model
        # would then hold a float no JSON column or reply can carry.
        return decode_json(await self.body())


class StrictJSONRoute(APIRoute):
    """A route whose body model is parsed from strict JSON: what ingest refuses, it refuses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict
