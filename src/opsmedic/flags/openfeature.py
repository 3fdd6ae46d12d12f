"""The OpenFeature provider: applications read opsmedic's flags through the standard SDK."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OpenFeatureCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.flag_evaluation import Reason as OpenFeatureReason
from openfeature.provider import AbstractProvider, Metadata

from opsmedic.flags.client import FlagClient, FlagDetails, Kind
from opsmedic.flags.evaluate import Reason

log = logging.getLogger("opsmedic.flags")
T = TypeVar("T")
JsonObject = Sequence[FlagValueType] | Mapping[str, FlagValueType]
READY_TIMEOUT_S = 5.0
TARGETING_KEY = "targetingKey"  # where evaluate() and rollouts read OpenFeature's key


class OpsmedicProvider(AbstractProvider):
    """A FlagClient behind OpenFeature's provider interface. The SDK calls the resolve
    methods by keyword (`flag_key=`, `default_value=`, `evaluation_context=`), so their
    parameters carry exactly those names. Values served while the source is disconnected
    have reason STALE (what evaluation decided is in flag_metadata["evaluation_reason"]);
    flag_metadata also carries the document's `version` and `staleness_s`."""

    def __init__(self, client: FlagClient, *, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        super().__init__()
        self.client = client
        self._ready_timeout_s = ready_timeout_s
        client.on_change(self._changed)

    def get_metadata(self) -> Metadata:
        return Metadata(name="opsmedic")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        # The SDK reports the provider ready once this returns: wait for the first load, a
        # while. Past that, evaluations answer PROVIDER_NOT_READY until the flags arrive.
        if not self.client.wait_ready(self._ready_timeout_s):
            log.warning("flags.provider.not_ready waited_s=%g", self._ready_timeout_s)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, Kind.BOOLEAN)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, Kind.STRING)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, Kind.INTEGER)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, Kind.FLOAT)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: JsonObject,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[JsonObject]:
        return self._resolve(flag_key, default_value, evaluation_context, Kind.OBJECT)

    def _resolve(
        self, key: str, default: T, context: EvaluationContext | None, kind: Kind
    ) -> FlagResolutionDetails[T]:
        try:
            found = self.client.details(key, default, _attributes(context), kind)
            return _resolution(found)
        except Exception as exc:  # the SDK would turn it into the default too; say why here
            message = f"{type(exc).__name__}: {exc}"
            return FlagResolutionDetails(default, OpenFeatureCode.GENERAL, message,
                                         OpenFeatureReason.ERROR)  # fmt: skip

    def _changed(self, key: str, version: int) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[key]))


def _attributes(context: EvaluationContext | None) -> Mapping[str, object] | None:
    """The context as evaluate() reads it: the attributes, with the targeting key under
    `targetingKey` (the stickiness rollouts default to)."""
    if context is None:
        return None
    attributes: Any = context.attributes
    if context.targeting_key is None:
        return attributes  # type: ignore[no-any-return]
    return {**attributes, TARGETING_KEY: context.targeting_key}


def _resolution(found: FlagDetails) -> FlagResolutionDetails[Any]:
    metadata: dict[str, bool | int | float | str] = {}
    if found.version is not None:
        metadata["version"] = found.version
    reason: str = found.reason
    if found.staleness_s is not None:
        metadata["staleness_s"] = round(found.staleness_s, 3)
        if found.reason is not Reason.ERROR:
            metadata["evaluation_reason"] = str(found.reason)
            reason = OpenFeatureReason.STALE
    code = None if found.error_code is None else OpenFeatureCode(found.error_code.value)
    return FlagResolutionDetails(value=found.value, error_code=code,
                                 error_message=found.error_message, reason=reason,
                                 variant=found.variant, flag_metadata=metadata)  # fmt: skip
