"""Log hunt: the error events of logs, whole, each once with its count, fast and bounded.

`hunt_paths(paths, HuntOptions(...))` reads files and globs (rotated generations oldest
first, .gz and .zst too, archives member by member); `hunt(sources, options)` reads any
`Source`: those, a command's output (`CommandSource`, `SshCommandSource`) or a unit's
journal (`JournalSource`). The report's events come in order of first occurrence with
their context, counts and first and last sightings; its stats say what was read and
everything left out. See docs/loghunt.md.
"""

from opsmedic.loghunt.archives import ArchiveSource
from opsmedic.loghunt.commands import CommandSource, SshCommandSource
from opsmedic.loghunt.hunt import check, hunt, hunt_paths
from opsmedic.loghunt.journal import JournalSource
from opsmedic.loghunt.model import (
    DEFAULT_PATTERN,
    MODES,
    HuntEvent,
    HuntOptions,
    HuntReport,
    HuntStats,
    Line,
    Mode,
    Sighting,
)
from opsmedic.loghunt.sources import FileSource, Source, open_files

__all__ = [
    "DEFAULT_PATTERN",
    "MODES",
    "ArchiveSource",
    "CommandSource",
    "FileSource",
    "HuntEvent",
    "HuntOptions",
    "HuntReport",
    "HuntStats",
    "JournalSource",
    "Line",
    "Mode",
    "Sighting",
    "Source",
    "SshCommandSource",
    "check",
    "hunt",
    "hunt_paths",
    "open_files",
]
