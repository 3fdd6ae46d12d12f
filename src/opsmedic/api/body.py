"""Request bodies read with a size limit (413 before parsing), decoded as JSON (else 400) and
held to the shape limits of `api.limits` (else 422)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException, Request

from opsmedic.config.schema import JsonLimits


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


def decode_json(body: bytes, limits: JsonLimits | None = None) -> Any:
    """Strict JSON (RFC 8259: UTF-8, no NaN, no lone surrogates), parsed by orjson; with
    `limits`, a value past one of them is refused with a 422 that names it and the place."""
    if not body.strip():
        raise HTTPException(400, "empty body: expected JSON")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if limits is not None and exc.msg == "depth limit exceeded":
            # orjson stops at 1024 levels, past any depth limit we allow: the same answer.
            raise _over("max_depth", limits.max_depth, "body", "levels of nesting") from None
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "body is not UTF-8 text") from None
        raise HTTPException(
            400, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if limits is not None and not within_by_size(body, limits):
        check_shape(value, limits)
    return value


def within_by_size(body: bytes, limits: JsonLimits) -> bool:
    """True when the raw text alone proves every limit holds, so the walk can be skipped.

    Each bound over-counts, never under-counts: a decoded string or value count is at most
    the byte count, an object's keys at most the colons, the depth at most the brackets
    (those inside strings counted too). Counting bytes runs in C: the walk it saves was
    most of the ingest's cost of limits (bench/ingest.py)."""
    size = len(body)
    return (
        size <= limits.max_string
        and size <= limits.max_nodes
        and body.count(b":") <= limits.max_keys
        and body.count(b"[") + body.count(b"{") <= limits.max_depth
    )


# One entry of the walk: a value, its depth, and its parent's entry with the key that leads
# here, so that the place is spelled out only for the value that breaks a limit.
_Entry = tuple[Any, int, "_Entry | None", "str | int"]


def check_shape(value: Any, limits: JsonLimits) -> None:
    """Walk the decoded body once, without recursion (the depth is what is being checked).

    Only containers go on the stack; their scalar members are checked in place: on an
    Alertmanager body that halved the walk (28 -> 16 us) against stacking every value."""
    max_string = limits.max_string
    if isinstance(value, str) and len(value) > max_string:
        raise _over("max_string", max_string, "body", "characters")
    if not isinstance(value, dict | list):
        return
    stack: list[_Entry] = [(value, 1, None, "")]
    nodes = 1
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        if depth > limits.max_depth:
            raise _over("max_depth", limits.max_depth, _place(entry), "levels of nesting")
        nodes += len(item)
        if nodes > limits.max_nodes:
            raise _over("max_nodes", limits.max_nodes, "body", "JSON values")
        if isinstance(item, dict):
            if len(item) > limits.max_keys:
                raise _over("max_keys", limits.max_keys, _place(entry), "keys")
            members: Any = item.items()
        else:
            members = enumerate(item)
        for key, member in members:
            if isinstance(key, str) and len(key) > max_string:
                raise _over("max_string", max_string, _place(entry), "characters in a key")
            if isinstance(member, str):
                if len(member) > max_string:
                    where = _place((member, depth + 1, entry, key))
                    raise _over("max_string", max_string, where, "characters")
            elif isinstance(member, dict | list):
                stack.append((member, depth + 1, entry, key))


def _place(entry: _Entry) -> str:
    """`alerts[0].labels` from the chain of parents."""
    parts: list[str] = []
    at: _Entry | None = entry
    while at is not None and at[2] is not None:
        key = at[3]
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        at = at[2]
    return "".join(reversed(parts)).lstrip(".") or "body"


def _over(name: str, limit: int, where: str, what: str) -> HTTPException:
    return HTTPException(422, f"{where}: more than {limit} {what} (api.limits.{name})")
