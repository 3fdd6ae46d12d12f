"""Dashboard sessions: a token exchanged at sign-in for a random id kept in memory, with expiry."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

SESSION_SECONDS = 8 * 3600.0  # one shift; the token itself is re-checked on every request
MAX_SESSIONS = 10_000  # sign-ins are bounded: a flood of them cannot grow memory for ever
# Sessions of one token: its oldest goes past this, so one token (a read one handed around)
# cannot fill MAX_SESSIONS and push everyone else's out.
PER_TOKEN = 20


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: which token (its hash, to re-check revocation), its scopes at
    sign-in, the CSRF token of its forms, and when it ends."""

    id: str
    token_hash: str
    token_name: str
    scopes: tuple[str, ...]
    csrf: str
    expires_at: float


class Sessions:
    """The sessions of this process: a restart signs everyone out, which is the safe side."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def open(
        self, token_hash: str, token_name: str, scopes: tuple[str, ...], now: float
    ) -> Session:
        own = [s for s in self._by_id.values() if s.token_hash == token_hash]
        if len(own) >= PER_TOKEN:
            del self._by_id[min(own, key=lambda s: s.expires_at).id]
        if len(self._by_id) >= MAX_SESSIONS:
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires_at > now}
            if len(self._by_id) >= MAX_SESSIONS:  # still full: the oldest goes
                del self._by_id[min(self._by_id, key=lambda k: self._by_id[k].expires_at)]
        session = Session(secrets.token_urlsafe(32), token_hash, token_name, scopes,
                          secrets.token_urlsafe(32), now + SESSION_SECONDS)  # fmt: skip
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        found = self._by_id.get(session_id)
        if found is not None and found.expires_at <= now:
            del self._by_id[session_id]
            return None
        return found

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)
