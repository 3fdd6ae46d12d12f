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
    "services": "service",
    "flags": "flag",
}

ConfigNames = dict[str, list[str]]
# Beside the names: the `host` of each ssh_hosts entry, which an sftp:// URL may name too.
SSH_HOST_ADDRESSES = "ssh_hosts.host"


@dataclass(frozen=True, slots=True)
class ConfigRef:
    """Annotated metadata: `to: Annotated[list[str], ConfigRef("notify")]`."""

    section: str
    # Set for a value that is a URL or a local path: only a `scheme://` URL refers to an
    # entry, through its host part (`ConfigRef("ssh_hosts", scheme="sftp")`).
    scheme: str | None = None
    # Set for a name that may be defined outside the config too (a flag made with `flags set`
    # lives in the store alone): one the config lacks is a warning of `check`, which also asks
    # the store, and never an error that would refuse the rule.
    warn: bool = False

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
    hosts = data.get("ssh_hosts")
    entries = hosts.values() if isinstance(hosts, dict) else []
    names[SSH_HOST_ADDRESSES] = [
        str(h["host"]).lower() for h in entries if isinstance(h, dict) and "host" in h
    ]
    return names
