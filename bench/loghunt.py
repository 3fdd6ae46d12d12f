"""Log hunt on a ≥ 200 MB generated log: opsmedic against the fixed coreutils pipeline and rg.

    .venv/bin/python bench/loghunt.py [--size-mb 200] [--runs 3] [--seed 17] [--keep]
                                      [--error-share 0.05] [--quick] [--opsmedic CMD]

bench/_loghunt_corpus.py writes a seeded application log (timestamped lines, variables
everywhere, Python tracebacks with chained exceptions, Java traces with `Caused by:`, a Go
panic, INFO lines that say "error" without being errors) and its ground truth: every
distinct event with its count and first and last line. On the same file, page cache warm,
each measured as a whole command (median wall of `--runs`):

- opsmedic: `opsmedic logs hunt FILE --json` (masked dedup with counts, context 3, tracebacks
  whole), as it runs by default (one process, rg as its prefilter when installed), with
  `--no-ripgrep` (its own literal search) and with `--workers 2` (the file split between two
  processes, each searching itself); peak RSS of the process tree (workers and rg included;
  pages a forked worker shares with its parent count twice), sampled from /proc
  (bench/_proc.py). Its events are checked against the truth: recall and precision count an
  event as found when its first line and its count are both right.
- coreutils: REFERENCE §1.3's fixed pipeline, `grep --no-group-separator -C 3 -i error FILE |
  awk '!seen[$0]++'` (LC_ALL=C): exact dedup of lines, no counts; its "events" are its lines.
- ripgrep: `rg -C3 -i error FILE` alone, output to a file: finds lines, dedups nothing
  (Debian's `ripgrep`; reported as not installed when absent).

Progress goes to stderr; the last line of stdout is one JSON object. Exit 0 when opsmedic's
recall and precision are both 100 %. Never asserted in tests: the machine's load moves
every figure (the load average is in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loghunt_corpus import generate
from _proc import ProcResult, log, rounded, run_measured

REPO = Path(__file__).resolve().parent.parent
OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))
MB = 1e6
TIMEOUT_S = 600


def measured(name: str, cmd: list[str], work: Path, runs: int, **kw: Any) -> list[ProcResult]:
    """`runs` runs of cmd; each must exit 0."""
    results = []
    for i in range(runs):
        res = run_measured(cmd, stdout_path=work / f"{name}.out", stderr_path=work / f"{name}.err",
                           timeout_s=TIMEOUT_S, **kw)  # fmt: skip
        if res.returncode != 0:
            raise SystemExit(f"{name} failed ({res.returncode}): {res.stderr()[-2000:]}")
        log(f"{name} run {i + 1}: {res.wall_s:.2f} s wall, {res.cpu_s:.2f} s CPU, "
            f"{res.peak_rss_mib:.0f} MiB")  # fmt: skip
        results.append(res)
    return results


def figures(results: list[ProcResult], size: int) -> dict[str, Any]:
    wall = statistics.median(r.wall_s for r in results)
    cpu = statistics.median(r.cpu_s for r in results)
    return {
        "wall_s": rounded(wall, 2),
        "cpu_s": rounded(cpu, 2),
        "mb_per_s": rounded(size / MB / wall),
        "mb_per_cpu_s": rounded(size / MB / cpu) if cpu else None,
        "peak_rss_mib": rounded(max(r.peak_rss_mib for r in results)),
    }


def run_opsmedic(ours: list[str], path: Path, truth: dict[str, Any] | None, work: Path,
                 runs: int, size: int, *extra: str) -> dict[str, Any]:  # fmt: skip
    """One opsmedic configuration; judged against the truth unless `truth` is None (template
    mode groups by Drain's clusters, which the truth's events are not)."""
    name = "opsmedic" + "".join(extra)
    cmd = [*ours, "logs", "hunt", str(path), "--json", "--quiet", "--context", "3",
           "--max-events", "100000", *extra]  # fmt: skip
    results = measured(name, cmd, work, runs)
    report = json.loads(results[-1].stdout())
    stats = report["stats"]
    out = figures(results, size) | {
        "events": len(report["events"]),
        "occurrences": stats["occurrences"],
        "counted": sum(e["count"] for e in report["events"]),
        "lines_out": sum(len(e["lines"]) for e in report["events"]),
        "workers": report["options"]["workers"],  # by default: as the machine's load chose
        "hunt_s": rounded(stats["seconds"], 2),  # inside the process: no start-up, no JSON
        "hunt_mb_per_s": rounded(size / MB / stats["seconds"]) if stats["seconds"] else None,
    }
    if truth is not None:
        found = {(e["first"]["line"], e["count"]) for e in report["events"]}
        expected = {(e["first"], e["count"]) for e in truth["events"].values()}
        right = len(found & expected)
        out["recall"] = rounded(right / len(expected), 4) if expected else None
        out["precision"] = rounded(right / len(found), 4) if found else None
        missed = sorted(expected - found)[:5]
        if missed:
            log(f"{name}: missed (first line, count): {missed}")
    log(f"{name}: {out}")
    return out


def run_coreutils(path: Path, work: Path, runs: int, size: int) -> dict[str, Any]:
    script = f"grep --no-group-separator -C 3 -i error '{path}' | awk '!seen[$0]++'"
    results = measured("coreutils", ["bash", "-c", script], work, runs,
                       env=os.environ | {"LC_ALL": "C"})  # fmt: skip
    with results[-1].stdout_path.open("rb") as f:
        lines = sum(1 for _ in f)
    out = figures(results, size) | {"events": lines}
    log(f"coreutils: {out}")
    return out


def run_ripgrep(path: Path, work: Path, runs: int, size: int) -> dict[str, Any]:
    if shutil.which("rg") is None:
        log("ripgrep: not installed (apt-get install -y ripgrep)")
        return {"mb_per_s": None, "status": "not installed"}
    results = measured("ripgrep", ["rg", "-C3", "-i", "error", str(path)], work, runs)
    with results[-1].stdout_path.open("rb") as f:
        lines = sum(1 for _ in f)
    out = figures(results, size) | {"lines_out": lines, "status": "ok"}
    log(f"ripgrep: {out}")
    return out


def _every_tool(ours: list[str], path: Path, truth: dict[str, Any], work: Path, runs: int,
                size: int) -> dict[str, Any]:  # fmt: skip
    return {
        "opsmedic": run_opsmedic(ours, path, truth, work, runs, size),
        "opsmedic_no_ripgrep": run_opsmedic(ours, path, truth, work, runs, size, "--no-ripgrep"),
        "opsmedic_2_workers": run_opsmedic(ours, path, truth, work, runs, size, "--workers", "2"),
        # Drain's clusters of the masked matching lines (one process): speed and events only.
        "opsmedic_template": run_opsmedic(ours, path, None, work, runs, size, "--mode", "template"),
        "coreutils": run_coreutils(path, work, runs, size),
        "ripgrep": run_ripgrep(path, work, runs, size),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="runs per tool; the median counts")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the log and the outputs")
    parser.add_argument(
        "--error-share",
        type=float,
        default=0.05,
        help="share of records that are errors (0.95: nearly nothing else)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only opsmedic as it runs by default, and rg (for the ratio)",
    )
    parser.add_argument(
        "--opsmedic",
        default=OPSMEDIC,
        help="the command to run as opsmedic, such as 'env PYTHONPATH=/tmp/old/src "
        ".venv/bin/python -m opsmedic' for another version of the code (A/B)",
    )
    args = parser.parse_args()
    (REPO / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-loghunt-", dir=REPO / ".bench"))
    try:
        path = work / "app.log"
        log(f"generating {args.size_mb} MB in {path}")
        truth = generate(path, args.size_mb * 1_000_000, seed=args.seed,
                         error_share=args.error_share)  # fmt: skip
        size = truth["bytes"]
        counts = [e["count"] for e in truth["events"].values()]
        log(f"{size / MB:.0f} MB, {truth['lines']:,} lines, {len(counts)} distinct events, "
            f"{sum(counts):,} occurrences")  # fmt: skip
        path.read_bytes()  # warm the page cache for everyone
        command = shlex.split(args.opsmedic)
        if args.quick:
            results = {
                "opsmedic": run_opsmedic(command, path, truth, work, args.runs, size),
                "ripgrep": run_ripgrep(path, work, args.runs, size),
            }
        else:
            results = _every_tool(command, path, truth, work, args.runs, size)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ours, rg = results["opsmedic"], results["ripgrep"]
    passed = ours["recall"] == 1.0 and ours["precision"] == 1.0
    summary = {
        "bench": "loghunt",
        "input_mb": rounded(size / MB),
        "lines": truth["lines"],
        "truth_events": len(counts),
        "truth_occurrences": sum(counts),
        **results,
        "ratio_vs_ripgrep": rounded(ours["mb_per_s"] / rg["mb_per_s"], 2)
        if rg["mb_per_s"]
        else None,
        "cpus": os.cpu_count(),
        "load_avg_1m": rounded(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "checks_passed": passed,
    }
    print(json.dumps(summary))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
