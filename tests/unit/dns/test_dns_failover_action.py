"""The dns_failover action's own handling: a backend that cannot even be opened fails cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from action_context import make_action_context
from opsmedic.actions.dns_failover import Params, run

RECORD = {
    "server": "192.0.2.53",
    "zone": "svc.example.com",
    "name": "resolver",
    "primary": "192.0.2.1",
    "secondary": "192.0.2.2",
}


def params(**record: Any) -> Params:
    return Params.model_validate({"direction": "failover", "rfc2136": RECORD | record})


async def test_an_unknown_tsig_key_is_a_failed_outcome_not_a_crash() -> None:
    ctx = make_action_context("dns_failover", tsig_keys={"known.": {"secret": {"env": "UNUSED"}}})
    outcome = await run(params(tsig_key="typo."), ctx)
    assert not outcome.ok
    assert outcome.message == (
        "failover failed: tsig_key 'typo.' is not one of the config's tsig_keys (known: "
        "known.); nothing changed"
    )


async def test_an_unreadable_tsig_secret_is_a_failed_outcome(tmp_path: Path) -> None:
    ctx = make_action_context(
        "dns_failover", tsig_keys={"k.": {"secret": {"file": str(tmp_path / "gone")}}}
    )
    outcome = await run(params(tsig_key="k."), ctx)
    assert not outcome.ok
    assert outcome.message == (
        "failover failed: TSIG key k.: cannot use its secret: No such file or directory; "
        "nothing changed"
    )
