"""The installed version, read from the distribution's METADATA without importing the CLI."""

from __future__ import annotations

import os
import sys

DIST = "opsmedic"


def installed_version() -> str:
    """The installed distribution's version, from its METADATA file as importlib.metadata
    finds it (the first `opsmedic-*.dist-info` on sys.path), without importing that module:
    its e-mail parser alone cost ~70 ms of a 0.3 s budget (bench/idle.py: version_s)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(f"{DIST}-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as fh:
                        for line in fh:
                            if line.startswith("Version:"):
                                return line.split(":", 1)[1].strip()
                            if not line.strip():  # the headers end here
                                break
                except OSError:
                    continue
    from importlib.metadata import version  # an egg, a zip: let it search the slow way

    return version(DIST)
