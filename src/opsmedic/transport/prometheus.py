"""Prometheus' HTTP query API: one instant query, its answer read as the values of its series
(release verification checks and Prometheus SLIs share it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


class QueryFailed(Exception):
    """The query could not be run or its answer read: a failed measurement, never a value."""


class Unreachable(QueryFailed):
    """Prometheus did not answer, or failed on its side (5xx): asking again later may work."""


async def instant_values(
    client: httpx.AsyncClient, url: str, query: str, *, wait: float, at: float | None = None
) -> list[float]:
    """The value of each series of `query`'s instant vector (or its scalar) at `at` (epoch
    seconds; default: Prometheus' now), NaN included; QueryFailed when it cannot be read."""
    import httpx

    params: dict[str, str] = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        response = await client.get(url.rstrip("/") + "/api/v1/query", params=params, timeout=wait)
    except httpx.HTTPError as exc:
        raise Unreachable(f"query failed: {type(exc).__name__}: {exc}"[:300]) from None
    try:
        body: Any = response.json()
    except ValueError:  # e.g. a proxy's error page
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        # Prometheus answers 400 and 422 for a query it cannot run, 503 when it is busy.
        failed = Unreachable if response.status_code >= 500 else QueryFailed
        raise failed(f"query failed: {response.status_code} {error or ''}")
    return _values(body.get("data"))


def _values(data: Any) -> list[float]:
    if not isinstance(data, dict):
        raise QueryFailed("query answer without data")
    result = data.get("result")
    if data.get("resultType") == "scalar":
        result = [{"value": result}]
    if not isinstance(result, list):
        raise QueryFailed(f"unsupported result type {data.get('resultType')}")
    try:
        return [float(series["value"][1]) for series in result]
    except (KeyError, IndexError, TypeError, ValueError):
        raise QueryFailed("query answer with an unreadable value") from None
