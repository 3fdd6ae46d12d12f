"""Benchmark: archiving ~1 GiB of logs — opsmedic against `logrotate -f` and `zip -r`.

Every tool gets its own identical copy of a seeded corpus (24 varied log files, see
_archive_corpus.py) with the page cache warm, and is timed as a whole command:

- opsmedic: `opsmedic archive` with tar.zst (the default) and with zip — written to a .part,
  fsynced, read back and compared by SHA-256, renamed, directory fsynced, originals deleted;
- logrotate -f: `compress` (gzip -6, its default), `rotate 1`, `nocreate`: log → log.1 → .gz;
- zip -r: Info-ZIP deflate -6 into one archive.

Correctness is checked, not assumed: opsmedic's archives must list every file with its
original SHA-256 and the originals must be gone. Progress goes to stderr; the last line of
stdout is one JSON object with MB/s per tool, the ratios and opsmedic's peak RSS.

    .venv/bin/python bench/archive.py [--size-mib 1024] [--keep] [--skip-peers]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _archive_corpus import generate
from _proc import log, rounded, run_measured

REPO = Path(__file__).resolve().parent.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
MB = 1e6
CACHE = REPO / ".bench" / "archive-corpus"
FORMATS = ("tar.zst", "zip")


def corpus(size_mib: int) -> tuple[Path, dict[str, str]]:
    """The cached corpus for this size (generated once), and the SHA-256 of each file."""
    directory = CACHE / f"{size_mib}mib"
    if not (directory / ".complete").exists():
        shutil.rmtree(directory, ignore_errors=True)
        log(f"generating {size_mib} MiB of logs in {directory} (once)")
        generate(directory, size_mib)
        (directory / ".complete").touch()
    digests = {p.name: _sha256(p.read_bytes()) for p in sorted(directory.glob("*.log"))}
    return directory, digests


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fresh_copy(source: Path, into: Path) -> Path:
    """An identical copy of the corpus, read once more so every tool starts with a warm cache."""
    shutil.copytree(source, into, ignore=shutil.ignore_patterns(".complete"))
    for path in into.iterdir():
        path.read_bytes()
    return into


def measure(name: str, cmd: list[str], work: Path, total: int, **kw: Any) -> dict[str, Any]:
    log(f"{name}: {' '.join(cmd)}")
    res = run_measured(
        cmd, stdout_path=work / f"{name}.out", stderr_path=work / f"{name}.err", timeout_s=900, **kw
    )
    if res.returncode != 0:
        raise SystemExit(f"{name} failed ({res.returncode}): {res.stderr()[-2000:]}")
    figures = {
        "wall_s": rounded(res.wall_s, 2),
        "cpu_s": rounded(res.cpu_s, 2),
        "mb_per_s": rounded(total / MB / res.wall_s),
        "peak_rss_mib": rounded(res.peak_rss_mib),
    }
    log(f"{name}: {figures}")
    return figures


def run_opsmedic(fmt: str, source: Path, work: Path, total: int) -> dict[str, Any]:
    logs, dest = fresh_copy(source, work / f"opsmedic-{fmt}-logs"), work / f"opsmedic-{fmt}-out"
    config = work / f"opsmedic-{fmt}.yaml"
    config.write_text(f"store: sqlite:///{work / 'opsmedic.db'}\nstate_dir: {work / 'state'}\n")
    cmd = [
        OPSMEDIC,
        "archive",
        str(logs),
        "--include",
        "*.log",
        "--to",
        str(dest),
        "--format",
        fmt,
        "--min-age",
        "0s",
        "--config",
        str(config),
        "--quiet",
    ]
    figures = measure(f"opsmedic-{fmt}", cmd, work, total)
    (archive,) = [p for p in dest.iterdir() if not p.name.endswith(".part")]
    figures["ratio"] = rounded(total / archive.stat().st_size, 2)
    figures["originals_left"] = len(list(logs.glob("*.log")))
    return figures | {"archive": archive}


def archived_digests(archive: Path) -> dict[str, str]:
    """Name → SHA-256 of every member, read with the standard tools' formats (not ours)."""
    found: dict[str, str] = {}
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                found[Path(info.filename).name] = _sha256(zf.read(info))
        return found
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as plain,
        tarfile.open(fileobj=plain, mode="r|") as tar,
    ):
        for member in tar:
            data = tar.extractfile(member)
            if data is not None:
                found[Path(member.name).name] = _sha256(data.read())
    return found


def run_logrotate(source: Path, work: Path, total: int) -> dict[str, Any]:
    logs = fresh_copy(source, work / "logrotate-logs")
    conf = work / "logrotate.conf"
    conf.write_text(f"{logs}/*.log {{\n  rotate 1\n  compress\n  nocreate\n  missingok\n}}\n")
    figures = measure(
        "logrotate",
        ["logrotate", "-f", "-s", str(work / "logrotate.state"), str(conf)],
        work,
        total,
    )
    out = sum(p.stat().st_size for p in logs.glob("*.gz"))
    return figures | {"ratio": rounded(total / out, 2)}


def run_zip(source: Path, work: Path, total: int) -> dict[str, Any]:
    logs = fresh_copy(source, work / "zip-logs")
    target = work / "zip-r.zip"
    figures = measure("zip-r", ["zip", "-q", "-r", str(target), logs.name], work, total, cwd=work)
    return figures | {"ratio": rounded(total / target.stat().st_size, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()
    for tool in ("logrotate", "zip") if not args.skip_peers else ():
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y logrotate zip")

    source, digests = corpus(args.size_mib)
    total = sum((source / name).stat().st_size for name in digests)
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-archive-", dir=REPO / ".bench"))
    log(f"{len(digests)} files, {total / MB:.0f} MB; work in {work}")
    results: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    try:
        for fmt in FORMATS:
            figures = run_opsmedic(fmt, source, work, total)
            archive = figures.pop("archive")
            checks[f"opsmedic_{fmt}_complete"] = archived_digests(archive) == digests
            checks[f"opsmedic_{fmt}_originals_deleted"] = figures["originals_left"] == 0
            results[f"opsmedic_{fmt}"] = figures
            shutil.rmtree(archive.parent)
        if not args.skip_peers:
            results["logrotate"] = run_logrotate(source, work, total)
            results["zip_r"] = run_zip(source, work, total)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def ratio(a: str, b: str) -> float | None:
        if a not in results or b not in results:
            return None
        return rounded(results[a]["mb_per_s"] / results[b]["mb_per_s"], 2)

    summary = {
        "bench": "archive",
        "input_mb": rounded(total / MB),
        "files": len(digests),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "results": results,
        "tar_zst_vs_logrotate": ratio("opsmedic_tar.zst", "logrotate"),
        "zip_vs_zip_r": ratio("opsmedic_zip", "zip_r"),
        "opsmedic_peak_rss_mib": max(results[f"opsmedic_{f}"]["peak_rss_mib"] for f in FORMATS),
        "checks_passed": all(checks.values()),
        "checks": checks,
    }
    print(json.dumps(summary))
    return 0 if summary["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
