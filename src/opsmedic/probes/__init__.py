"""Built-in probes (http, command, disk, process, host, dns, …) and the runner that makes Events."""

from __future__ import annotations

from typing import Any

from opsmedic.plugins import ProbeSpec
from opsmedic.probes import command, disk, dns, host, http, path_size, process, tls_cert
from opsmedic.probes.runner import ProbeRunner, validate_probe_params

# Each probe module exports its spec as PROBE, its params model as Params, its entry point
# as `check` (each action module: ACTION, Params, `run`).
BUILTIN_PROBES: tuple[ProbeSpec[Any], ...] = (
    http.PROBE,
    command.PROBE,
    disk.PROBE,
    process.PROBE,
    dns.PROBE,
    tls_cert.PROBE,
    host.PROBE,
    path_size.PROBE,
)

__all__ = ["BUILTIN_PROBES", "ProbeRunner", "validate_probe_params"]
