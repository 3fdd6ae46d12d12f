"""recheck runs a configured probe once more: its verdict is the probe's, right now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from action_context import make_action_context
from opsmedic.actions.recheck import Params, run
from opsmedic.plugins import ActionContext


def context(flag: Path, **config: Any) -> ActionContext:
    """A config whose probe `cert` is ok exactly when `flag` exists."""
    probe = {"name": "cert", "type": "command", "timeout": 5,
             "params": {"argv": ["test", "-e", str(flag)]}}  # fmt: skip
    return make_action_context("recheck", probes=[probe], **config)


async def test_ok_when_the_probe_reads_ok_now(tmp_path: Path) -> None:
    flag = tmp_path / "renewed"
    flag.touch()
    out = await run(Params(probe="cert"), context(flag))
    assert out.ok, out.message
    assert out.message.startswith("cert ok")
    assert [r["status"] for r in out.details["readings"]] == ["resolved"]


async def test_failed_when_the_probe_still_fails(tmp_path: Path) -> None:
    out = await run(Params(probe="cert"), context(tmp_path / "renewed"))
    assert not out.ok
    assert out.message.startswith("cert still failing")
    assert out.details["readings"][0]["status"] == "firing"


async def test_an_unknown_probe_name_is_a_clear_failure(tmp_path: Path) -> None:
    out = await run(Params(probe="certs"), context(tmp_path / "x"))
    assert not out.ok
    assert "unknown probe 'certs' (did you mean cert?)" in out.message
