"""notify's settings: the `notify:` section of opsmedic.yaml, named targets and their URLs."""

from __future__ import annotations

from pydantic import Field, RootModel

from opsmedic.config.types import Secret, Strict
from opsmedic.plugins import SettingsSpec


class NotifyTarget(Strict):
    urls: list[str] = Field(default_factory=list, description="Apprise URLs without secrets")
    url_secrets: list[Secret] = Field(
        default_factory=list, description="Apprise URLs that carry a token, read from env/file"
    )


class NotifyTargets(RootModel[dict[str, NotifyTarget]]):
    """The config's `notify:` section: target name → its URLs."""

    root: dict[str, NotifyTarget] = Field(default_factory=dict)


SETTINGS = SettingsSpec("notify", NotifyTargets)
