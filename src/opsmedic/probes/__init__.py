"""Built-in probes (http, command, disk, process, dns, …) and the runner that makes Events."""

from __future__ import annotations

from typing import Any

from opsmedic.plugins import ProbeSpec
from opsmedic.probes.command import COMMAND_PROBE
from opsmedic.probes.disk import DISK_PROBE
from opsmedic.probes.dns import DNS_PROBE
from opsmedic.probes.http import HTTP_PROBE
from opsmedic.probes.process import PROCESS_PROBE
from opsmedic.probes.runner import ProbeRunner, validate_probe_params
from opsmedic.probes.tls_cert import TLS_CERT_PROBE

BUILTIN_PROBES: tuple[ProbeSpec[Any], ...] = (
    HTTP_PROBE,
    COMMAND_PROBE,
    DISK_PROBE,
    PROCESS_PROBE,
    DNS_PROBE,
    TLS_CERT_PROBE,
)

__all__ = ["BUILTIN_PROBES", "ProbeRunner", "validate_probe_params"]
