"""API tokens and poller cursors as rows: small tables the API and the pollers read and write."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.model import TokenRecord
from opsmedic.store.schema import cursors, tokens


def _record(row: sa.RowMapping) -> TokenRecord:
    return TokenRecord(row["id"], row["name"], tuple(row["scopes"]), row["created_at"],
                       row["revoked_at"])  # fmt: skip


def insert_token(conn: Connection, record: TokenRecord, digest: str) -> None:
    taken = conn.execute(sa.select(tokens.c.id).where(tokens.c.name == record.name)).first()
    if taken is not None:
        raise ValueError(f"a token named {record.name!r} exists already (revoke it first)")
    conn.execute(tokens.insert().values(
        id=record.id, name=record.name, hash=digest, scopes=list(record.scopes),
        created_at=record.created_at, revoked_at=None,
    ))  # fmt: skip


def token_by_hash(conn: Connection, digest: str) -> TokenRecord | None:
    row = conn.execute(
        sa.select(tokens).where(tokens.c.hash == digest, tokens.c.revoked_at.is_(None))
    ).mappings().first()  # fmt: skip
    return _record(row) if row is not None else None


def revoke_token(conn: Connection, name_or_id: str, now: float) -> TokenRecord:
    """Revoke by name or id; a revoked token's name is freed (renamed) for a successor."""
    row = (
        conn.execute(
            sa.select(tokens).where(
                sa.or_(tokens.c.name == name_or_id, tokens.c.id == name_or_id),
                tokens.c.revoked_at.is_(None),
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ValueError(f"no active token named {name_or_id!r}")
    conn.execute(
        tokens.update().where(tokens.c.id == row["id"])
        .values(revoked_at=now, name=f"{row['name']} (revoked {row['id']})")
    )  # fmt: skip
    return _record(row)


def list_tokens(conn: Connection) -> list[TokenRecord]:
    rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at)).mappings()
    return [_record(row) for row in rows]


def load_cursor(conn: Connection, name: str) -> str | None:
    return conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).scalar()


def save_cursor(conn: Connection, name: str, value: str, now: float) -> None:
    updated = conn.execute(
        cursors.update().where(cursors.c.name == name).values(value=value, updated_at=now)
    ).rowcount
    if not updated:
        conn.execute(cursors.insert().values(name=name, value=value, updated_at=now))
