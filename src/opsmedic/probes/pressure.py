"""The kernel's pressure stall information (/proc/pressure/{cpu,memory,io}), parsed strictly."""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field
from pathlib import Path

PSI_DIR = Path("/proc/pressure")
RESOURCES = ("cpu", "memory", "io")
# The two lines of each file (Documentation/accounting/psi.rst): `some` (at least one task
# stalled) and `full` (all non-idle tasks stalled at once). Kernels before 5.13 write no
# `full` line for cpu; from 5.13 the system-wide cpu `full` is there and always zero.
LINES = ("some", "full")
_AVERAGES = ("avg10", "avg60", "avg300")
_FIELDS = (*_AVERAGES, "total")
_MAX_BYTES = 4096  # two lines of four figures: anything longer is not a pressure file


class PressureError(ValueError):
    """A pressure file that does not read as the documented format; the message says where."""


@dataclass(frozen=True, slots=True)
class Pressure:
    """One resource's lines: `some`, and `full` where the kernel writes it.

    Each line maps avg10/avg60/avg300 (percent of wall time stalled, over 10 s, 60 s,
    300 s) and total (microseconds stalled since boot, as a float for one type).
    """

    lines: dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class HostPressure:
    """What /proc/pressure said: each readable resource, and why each other one is missing."""

    resources: dict[str, Pressure] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def figure(self, resource: str, line: str, average: str) -> float | None:
        """One average, or None where the resource or its line is not reported."""
        found = self.resources.get(resource)
        if found is None or line not in found.lines:
            return None
        return found.lines[line][average]

    def as_details(self) -> dict[str, dict[str, dict[str, float]]]:
        return {name: p.lines for name, p in self.resources.items()}


def parse(text: str) -> Pressure:
    """The lines of one pressure file; raises PressureError naming the line and field."""
    lines: dict[str, dict[str, float]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        kind, *pairs = raw.split()
        if kind not in LINES:
            raise PressureError(f"line {number}: {kind!r} is neither 'some' nor 'full'")
        if kind in lines:
            raise PressureError(f"line {number}: a second {kind!r} line")
        lines[kind] = _figures(number, pairs)
    if "some" not in lines:
        raise PressureError("no 'some' line")
    return Pressure(lines)


def _figures(number: int, pairs: list[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in _FIELDS or key in figures:
            raise PressureError(f"line {number}: unexpected {pair!r}")
        try:
            figure = int(value) if key == "total" else float(value)
        except ValueError:
            raise PressureError(f"line {number}: {key}={value!r} is not a number") from None
        # float() also reads "nan", "inf" and "-1": none is a share of time or a count.
        if not math.isfinite(figure) or figure < 0 or (key != "total" and figure > 100):
            raise PressureError(f"line {number}: {key}={value} is out of range")
        figures[key] = figure
    missing = [k for k in _FIELDS if k not in figures]
    if missing:
        raise PressureError(f"line {number}: no {', '.join(missing)}")
    return figures


def read(directory: Path | None = None) -> HostPressure:
    """Each resource's file under `directory` (PSI_DIR); a file missing, refused or garbled is
    named in `unavailable` with the reason, and the other resources are still read."""
    directory = PSI_DIR if directory is None else directory
    found = HostPressure()
    if not directory.is_dir():
        reason = f"this kernel reports no pressure stall information (no {directory})"
        found.unavailable.update(dict.fromkeys(RESOURCES, reason))
        return found
    for name in RESOURCES:
        path = directory / name
        try:
            with path.open("rb") as f:
                raw = f.read(_MAX_BYTES + 1)
            if len(raw) > _MAX_BYTES:
                raise PressureError(f"longer than {_MAX_BYTES} bytes")
            found.resources[name] = parse(raw.decode("ascii"))
        except OSError as exc:
            found.unavailable[name] = _refused(path, exc)
        except (PressureError, UnicodeDecodeError) as exc:
            found.unavailable[name] = f"{path} is not in the pressure format: {exc}"
    return found


def _refused(path: Path, exc: OSError) -> str:
    if exc.errno == errno.EOPNOTSUPP:
        # CONFIG_PSI built in but off: the files exist and refuse to be read.
        return f"pressure stall information is disabled in this kernel (psi=0): {path}"
    return f"cannot read {path}: {exc.strerror or exc}"
