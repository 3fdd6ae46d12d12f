"""Parameters that name an entry of the config (a notify target, an ssh host…), checked on load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The config sections a parameter may name an entry of, and how `check` calls an entry.
SECTIONS = {
    "notify": "notify target",
    "ssh_hosts": "ssh host",
    "probes": "probe",
    "tsig_keys": "TSIG key",
    "annotate.webhooks": "annotate webhook",
}

ConfigNames = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class ConfigRef:
    """Annotated metadata: `to: Annotated[list[str], ConfigRef("notify")]`."""

    section: str

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"no config section {self.section!r} holds named entries")

    @property
    def kind(self) -> str:
        return SECTIONS[self.section]


def config_names(data: Any) -> ConfigNames:
    """The names each section defines, read from the raw config: an entry that has an error
    of its own still exists, so a rule naming it gets no second, misleading error."""
    data = data if isinstance(data, dict) else {}
    names: ConfigNames = {}
    for section in SECTIONS:
        node: Any = data
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if section == "probes":
            items = node if isinstance(node, list) else []
            names[section] = [str(p["name"]) for p in items if isinstance(p, dict) and "name" in p]
        else:
            names[section] = [str(k) for k in node] if isinstance(node, dict) else []
    return names
