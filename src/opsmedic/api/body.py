"""Request bodies read with a size limit (413 before parsing) and decoded as JSON (else 400)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException, Request


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body; over `limit` bytes → 413 while streaming (a declared Content-Length over
    it was refused already at the front door, api/fastpath.py)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    """Strict JSON (RFC 8259: UTF-8, no NaN, no lone surrogates), parsed by orjson."""
    if not body.strip():
        raise HTTPException(400, "empty body: expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "body is not UTF-8 text") from None
        raise HTTPException(
            400, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
