"""The FlagService's refusals as a caller over HTTP answers them: one status and message
for the API and the dashboard alike (nothing was written for any)."""

from __future__ import annotations

from opsmedic.errors import (
    FlagConflict,
    FlagRefused,
    FlagStoreError,
    FlagUnreadable,
    NotFoundError,
    UnknownFlag,
)

# What a change through the service may be refused with.
REFUSALS = (NotFoundError, FlagConflict, FlagUnreadable, FlagRefused, FlagStoreError)


def refusal(exc: Exception) -> tuple[int, str]:
    """The status and message of one of REFUSALS."""
    if isinstance(exc, UnknownFlag):
        return 404, str(exc)
    # NotFoundError: an undo with nothing before it; FlagUnreadable: a stored document that
    # is not a valid flag (a PUT of a valid one repairs it).
    if isinstance(exc, FlagConflict | NotFoundError | FlagUnreadable):
        return 409, str(exc)
    if isinstance(exc, FlagStoreError):
        # When Redis's answer never came it may hold the change: the store's value is put
        # back there (now, or by the next check once it answers), so the two agree again.
        done = ("the store was not changed, and Redis gets the store's value back"
                if exc.outcome_unknown else "nothing was changed")  # fmt: skip
        return 503, f"{exc}; {done}"
    assert isinstance(exc, FlagRefused), exc
    return 422, str(exc)
