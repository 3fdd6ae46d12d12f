"""Benchmark: the `path_size` walk on a generated tree of 1,000,000 files against GNU `du -sb`.

The tree (small files of 0-199 bytes, 1,000 per directory, two levels of directories, seeded)
is generated once on /tmp; its generation time is reported. Each tool then measures the same
tree as a whole command (a process of its own, start-up included): opsmedic's walk
(`opsmedic.archive.tree.measure`, what the probe runs) and `du -sb`, alternately, `--runs`
times with a warm page cache and, where /proc/sys/vm/drop_caches may be written, as many
times cold (caches dropped before each run; otherwise the cold figures say "warm only").
Both must report the same byte count. Peak RSS is opsmedic's walk process's. The last line
of stdout is one JSON object. Part (b), `scale_out_s`, is bench/_scale_out.py: scaling out
through a real nginx under a bounded load, from the latency breach to the new instance
serving, `--trials` times, with the instance's own start time measured alone in the same run
(`--trials 0` leaves it out; it needs Debian's nginx, and says so when absent).

    .venv/bin/python bench/capacity.py [--files 1000000] [--runs 3] [--keep] [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import log, rounded, run_measured

from opsmedic.archive.tree import default_workers

PER_DIR = 1000
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def generate(top: Path, files: int, seed: int = 19) -> float:
    """`files` small files under top/NN/MMM/, PER_DIR per directory; returns seconds taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    payload = b"x" * 200
    for i in range(files):
        if i % PER_DIR == 0:
            here = top / f"{i // (PER_DIR * 100):02d}" / f"{i // PER_DIR % 100:03d}"
            here.mkdir(parents=True)
            fd = os.open(here, os.O_RDONLY | os.O_DIRECTORY)
        out = os.open(f"{i}.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        os.write(out, payload[: rng.randrange(200)])
        os.close(out)
        if i % PER_DIR == PER_DIR - 1 or i == files - 1:
            os.close(fd)
        if i and i % 100_000 == 0:
            log(f"  {i:,} files")
    return time.perf_counter() - started


def walk(path: str, workers: int) -> None:
    """The measured child: walk `path` as the probe does and print the result as JSON."""
    from opsmedic.archive.tree import measure

    size = measure(path, max_entries=10**8, max_seconds=3600, workers=workers)
    print(json.dumps({"bytes": size.bytes, "files": size.files, "complete": size.complete,
                      "walk_s": size.elapsed_s, "errors": size.errors}))  # fmt: skip


def drop_caches() -> bool:
    """Drop the page, dentry and inode caches (root, and a /proc/sys we may write)."""
    subprocess.run(["sync"], check=True)
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def timed(cmd: list[str], work: Path, name: str) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds with its workers', peak RSS MiB, stdout) of one run."""
    result = run_measured(cmd, stdout_path=work / f"{name}.out", stderr_path=work / f"{name}.err",
                          timeout_s=1800)  # fmt: skip
    if result.returncode != 0 or result.timed_out:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr()[-500:]}")
    return result.wall_s, result.cpu_s, result.peak_rss_mib, result.stdout()


def measure_both(tree: Path, work: Path, runs: int, cold: bool, workers: int) -> dict[str, Any]:
    """Alternate opsmedic and du `runs` times each; medians, the byte counts checked equal."""
    ours_cmd = [sys.executable, __file__, "--walk", str(tree), "--workers", str(workers)]
    du_cmd = ["du", "-sb", str(tree)]
    ours: list[float] = []
    theirs: list[float] = []
    cpu: dict[str, list[float]] = {"opsmedic": [], "du": []}
    rss: list[float] = []
    for i in range(runs):
        for name, cmd in (("opsmedic", ours_cmd), ("du", du_cmd)):
            if cold and not drop_caches():
                return {}
            wall, cpu_s, peak, out = timed(cmd, work, f"{name}-{i}")
            cpu[name].append(cpu_s)
            if name == "du":
                theirs.append(wall)
                du_bytes = int(out.split()[0])
            else:
                ours.append(wall)
                rss.append(peak)
                found = json.loads(out.strip().splitlines()[-1])
        if found["bytes"] != du_bytes or not found["complete"]:
            raise SystemExit(f"opsmedic counted {found}, du -sb {du_bytes}: not the same tree")
        log(f"  {'cold' if cold else 'warm'} run {i + 1}: opsmedic {ours[-1]:.2f}s "
            f"(walk {found['walk_s']:.2f}s, CPU {cpu['opsmedic'][-1]:.2f}s), "
            f"du {theirs[-1]:.2f}s (CPU {cpu['du'][-1]:.2f}s)")  # fmt: skip
    ours_s, du_s = statistics.median(ours), statistics.median(theirs)
    ours_cpu, du_cpu = statistics.median(cpu["opsmedic"]), statistics.median(cpu["du"])
    return {
        "opsmedic_s": rounded(ours_s, 3),
        "du_s": rounded(du_s, 3),
        "ratio": rounded(ours_s / du_s, 2),
        # CPU (user + system, the walk's workers included): on a loaded host the wall-clock
        # ratio says as much about the other tenants as about either tool.
        "opsmedic_cpu_s": rounded(ours_cpu, 3),
        "du_cpu_s": rounded(du_cpu, 3),
        "ratio_cpu": rounded(ours_cpu / du_cpu, 2),
        "peak_rss_mib": rounded(max(rss), 1),
        "bytes": du_bytes,
        "files": found["files"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the tree (and reuse it)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="the walk's processes (default: the probe's)")  # fmt: skip
    parser.add_argument("--trials", type=int, default=10, help="scale-outs (0: none)")
    parser.add_argument("--walk", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.walk:
        walk(args.walk, args.workers)
        return 0
    tree = Path(tempfile.gettempdir()) / f"opsmedic-bench-tree-{args.files}"
    work = Path(tempfile.mkdtemp(prefix="opsmedic-bench-capacity-"))
    generated_s = None
    complete = tree.with_name(tree.name + ".complete")  # beside it: not one of its files
    if not complete.exists():
        shutil.rmtree(tree, ignore_errors=True)
        log(f"generating {args.files:,} files in {tree}")
        generated_s = generate(tree, args.files)
        complete.touch()
        log(f"generated in {generated_s:.1f}s")
    try:
        warm = measure_both(tree, work, args.runs, cold=False, workers=args.workers)
        cold = measure_both(tree, work, args.runs, cold=True, workers=args.workers)
    finally:
        shutil.rmtree(work)
        if not args.keep:
            log(f"removing {tree}")
            shutil.rmtree(tree)
            complete.unlink()
    result: dict[str, Any] = {
        "path_size": {
            **warm,
            "cache": "warm",
            "cold": cold or "warm only: /proc/sys/vm/drop_caches is not writable here",
            "tree_files": args.files,
            "generated_s": rounded(generated_s, 1),
            "runs": args.runs,
            "workers": args.workers,
            "cpus": os.cpu_count(),
        },
        "scale_out_s": None,
    }
    if args.trials > 0:
        if shutil.which("nginx") is None:
            log("scale-out: nginx is not installed (apt-get install nginx): left out")
        else:
            from _scale_out import measure_scale_out

            scaled = measure_scale_out(args.trials)
            result["scale_out_s"] = scaled.pop("scale_out_s")
            result["scale_out"] = scaled  # instance start alone, probe interval, goal
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
