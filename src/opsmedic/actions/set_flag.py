"""Action `set_flag`: pull a feature flag's kill switch (or move its variant or rollout)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Strict
from opsmedic.errors import (
    FlagRefused,
    FlagStoreError,
    FlagUnreadable,
    NotFoundError,
    RetryableError,
)
from opsmedic.flags.changes import Author, FlagRecord
from opsmedic.flags.model import FLAG_KEY_PATTERN, VariantName
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec


class Params(Strict):
    # Checked after templating: a value from an event can name a flag, never smuggle in text
    # that is not one (a space, a newline, a second key).
    # A flag made with `flags set` is in the store alone: an unknown name is `check`'s warning.
    flag: Annotated[str, ConfigRef("flags", warn=True)] = Field(
        pattern=FLAG_KEY_PATTERN, description="the flag's key"
    )
    enabled: bool | None = Field(None, description="false: serve the off variant to everyone")
    variant: VariantName | None = Field(None, description="the default variant to serve")
    rollout: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="the percentage of the flag's rollout"
    )

    @model_validator(mode="after")
    def _one_change(self) -> Params:
        given = [n for n in ("enabled", "variant", "rollout") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of enabled, variant, rollout")
        return self


async def run(params: Params, ctx: ActionContext) -> Outcome:
    if ctx.flags is None:
        return Outcome(ok=False, message="no flag service here (no store)")
    by = Author("rule", ctx.rule or "?", ctx.run_id or None)
    key = params.flag
    try:
        before = await ctx.flags.get(key)
        if params.enabled is not None:
            after = await ctx.flags.set_enabled(key, params.enabled, by)
        elif params.variant is not None:
            after = await ctx.flags.set_default(key, params.variant, by)
        else:
            assert params.rollout is not None  # exactly one is given (Params)
            after = await ctx.flags.rollout(key, params.rollout, by)
    except (NotFoundError, FlagRefused, FlagUnreadable) as exc:  # retrying would not help
        return Outcome(ok=False, message=str(exc))
    except FlagStoreError as exc:  # Redis away: nothing was written, worth the retries
        raise RetryableError(str(exc)) from None
    return Outcome(ok=True, message=_message(key, before, after), details={
        "flag": key, "version": after.version, "before_version": before.version,
        "enabled": after.flag.enabled, "default": after.flag.default,
        "rollout": after.flag.rollout.percentage if after.flag.rollout else None,
    })  # fmt: skip


def _message(key: str, before: FlagRecord, after: FlagRecord) -> str:
    state = "on" if after.flag.enabled else "off"
    if after.version == before.version:  # nobody wrote in between: it was so already
        return f"flag {key} already so (version {after.version}, {state})"
    return f"flag {key} set to version {after.version} ({state})"


ACTION: ActionSpec[Params] = ActionSpec(
    name="set_flag",
    params=Params,
    run=run,
    # Setting a flag to a value it has writes nothing: safe to run again after a crash.
    idempotent=True,
    summary="switch a feature flag on or off, or set its default variant or rollout",
)
