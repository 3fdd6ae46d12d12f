"""Action `dns_failover`: point clients at the secondary DNS server, or back at the primary."""

from __future__ import annotations

from pydantic import Field, model_validator

from opsmedic.config.types import Strict
from opsmedic.dns import rfc2136
from opsmedic.dns.report import switch_outcome
from opsmedic.dns.resolv_conf import ResolvConf, ResolvConfParams
from opsmedic.dns.rfc2136 import Rfc2136Backend, Rfc2136Params, TsigKeys
from opsmedic.dns.switch import Backend, Direction, SwitchFailed
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec

BACKENDS = ("resolv_conf", "rfc2136")


class Params(Strict):
    direction: Direction = Field(description="failover: to the secondary; failback: back")
    resolv_conf: ResolvConfParams | None = None
    rfc2136: Rfc2136Params | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> Params:
        given = [name for name in BACKENDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one backend of {', '.join(BACKENDS)} (got "
                             f"{', '.join(given) or 'none'})")  # fmt: skip
        return self


def open_backend(params: Params, tsig_keys: TsigKeys) -> tuple[str, Backend]:
    """The backend the params name, with its name."""
    if params.resolv_conf is not None:
        return "resolv_conf", ResolvConf(params.resolv_conf)
    assert params.rfc2136 is not None
    return "rfc2136", Rfc2136Backend(params.rfc2136, tsig_keys)


async def run(params: Params, ctx: ActionContext) -> Outcome:
    try:
        name, backend = open_backend(params, ctx.settings)
    except (ValueError, SwitchFailed) as exc:  # an unknown or unusable tsig_key, say
        return Outcome(ok=False, message=f"{params.direction} failed: {exc}")
    return await switch_outcome(name, backend, params.direction, ctx)


ACTION: ActionSpec[Params] = ActionSpec(
    name="dns_failover",
    params=Params,
    run=run,
    # A repeat finds it already done (compare-and-swap), so re-running after a crash is safe.
    idempotent=True,
    summary="point clients at the secondary DNS server (resolv.conf or RFC 2136), or back",
    settings=rfc2136.SETTINGS,
)
