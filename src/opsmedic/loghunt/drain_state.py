"""Drain's clusters saved as versioned JSON and loaded back, checked field by field.

A token is bytes from a log: in JSON it is the UTF-8 text with each byte that does not
decode as a lone surrogate (Python's surrogateescape), and the wildcard as "\\u001a".
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmedic.errors import HuntInputError
from opsmedic.files import write_atomic
from opsmedic.loghunt.drain import MAX_TOKENS, WILDCARD, Cluster, Drain, DrainParams

STATE_VERSION = 1
STATE_KIND = "opsmedic.loghunt.templates"
MAX_STATE_BYTES = 256 << 20  # a state file is read whole: refuse one far past any max_clusters

_STRICT = ConfigDict(strict=True, extra="forbid")


class _Params(BaseModel):
    model_config = _STRICT
    sim_th: Annotated[float, Field(ge=0.0, le=1.0)]
    depth: Annotated[int, Field(ge=3, le=16)]
    max_children: Annotated[int, Field(ge=2, le=1_000_000)]
    max_clusters: Annotated[int, Field(ge=1, le=10_000_000)]


class _Cluster(BaseModel):
    model_config = _STRICT
    id: Annotated[int, Field(ge=1)]
    size: Annotated[int, Field(ge=1)]
    template: Annotated[list[str], Field(max_length=MAX_TOKENS)]
    path: Annotated[list[str], Field(min_length=1)]


class _State(BaseModel):
    model_config = _STRICT
    kind: Literal["opsmedic.loghunt.templates"]
    version: Literal[1]
    params: _Params
    next_id: Annotated[int, Field(ge=1)]
    clusters: list[_Cluster]  # least recently used first


def state_json(drain: Drain) -> dict[str, Any]:
    """The clusters as plain data (least recently used first), with the params that made them."""
    return {
        "kind": STATE_KIND,
        "version": STATE_VERSION,
        "params": asdict(drain.params),
        "next_id": drain.next_id,
        "clusters": [
            {
                "id": c.id,
                "size": c.size,
                "template": list(map(_text, c.template)),
                "path": list(map(_text, c.path)),
            }
            for c in drain.clusters.values()
        ],
    }


def save_state(path: Path, drain: Drain) -> None:
    """Write the clusters to `path` atomically (the old state or the new, never a torn one)."""
    write_atomic(path, json.dumps(state_json(drain), separators=(",", ":")) + "\n")


def load_state(path: Path, params: DrainParams | None = None) -> Drain:
    """The clusters saved in `path`, or a new Drain with `params` when there is no such file.
    A state that cannot be read or is not one raises HuntInputError naming the file and field."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return Drain(params)
    except OSError as exc:
        raise HuntInputError(f"--state {path}: {exc.strerror}") from exc
    if len(raw) > MAX_STATE_BYTES:
        raise HuntInputError(f"--state {path}: larger than {MAX_STATE_BYTES >> 20} MiB")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise HuntInputError(f"--state {path}: not JSON: {exc}") from exc
    return drain_from(data, f"--state {path}")


def drain_from(data: object, where: str) -> Drain:
    """A Drain from state_json's data, checked (HuntInputError: `where`, the field, the fault)."""
    try:
        state = _State.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise HuntInputError(f"{where}: {_field(first['loc'])}: {first['msg']}") from exc
    p = state.params
    drain = Drain(DrainParams(p.sim_th, p.depth, p.max_children, p.max_clusters))
    if len(state.clusters) > p.max_clusters:
        raise HuntInputError(f"{where}: clusters: more than params.max_clusters ({p.max_clusters})")
    by_id: dict[int, tuple[int, Cluster]] = {}
    for i, c in enumerate(state.clusters):
        at = f"{where}: clusters[{i}]"
        template = tuple(_bytes(t, f"{at}.template[{k}]") for k, t in enumerate(c.template))
        path = tuple(_bytes(key, f"{at}.path[{k}]") for k, key in enumerate(c.path))
        _check_cluster(c, template, path, drain, at)
        if c.id in by_id:
            raise HuntInputError(f"{at}.id: {c.id} is also clusters[{by_id[c.id][0]}]'s")
        if c.id >= state.next_id:
            raise HuntInputError(f"{at}.id: {c.id} is not below next_id ({state.next_id})")
        by_id[c.id] = (i, Cluster(c.id, template, c.size, path))
    # A leaf compares its clusters in order of opening: hang them by id, then restore the LRU.
    for cid in sorted(by_id):
        i, cluster = by_id[cid]
        drain.place(cluster, cluster.path)
        for depth in range(1, len(cluster.path)):
            if drain.width(cluster.path[:depth]) > p.max_children:
                raise HuntInputError(
                    f"{where}: clusters[{i}].path: a node with more than params.max_children "
                    f"({p.max_children}) branches"
                )
    for c in state.clusters:
        drain.clusters.move_to_end(c.id)
    drain.next_id = state.next_id
    return drain


def _check_cluster(
    c: _Cluster, template: tuple[bytes, ...], path: tuple[bytes, ...], drain: Drain, at: str
) -> None:
    """The path must be the one a line of this template's length could have taken."""
    for k, token in enumerate(template):
        if not token or token != token.strip() or len(token.split()) != 1:
            raise HuntInputError(f"{at}.template[{k}]: {c.template[k]!r} is not one token")
    n = len(template)
    if path[0] != b"%d" % n:
        raise HuntInputError(f"{at}.path[0]: {c.path[0]!r} is not the template's length ({n})")
    want = 1 + max(0, min(drain.params.depth - 2, n) - 1)
    if len(path) != want:
        raise HuntInputError(f"{at}.path: {len(path)} keys, not {want} (params.depth, length)")
    for k, (key, token) in enumerate(zip(path[1:], template, strict=False), start=1):
        if key != token and WILDCARD not in (key, token):
            raise HuntInputError(
                f"{at}.path[{k}]: {c.path[k]!r} is neither the template's token "
                f"{c.template[k - 1]!r} nor the wildcard"
            )


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the document)"


def _text(token: bytes) -> str:
    return token.decode("utf-8", "surrogateescape")


def _bytes(text: str, at: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise HuntInputError(f"{at}: {text!r} is not a saved token ({exc.reason})") from exc
