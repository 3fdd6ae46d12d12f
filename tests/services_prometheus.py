"""A real Prometheus (Debian's prometheus) on loopback in a temp dir, its TSDB backfilled with
per-minute counters by promtool (the SLI tests and bench/_slo_prometheus.py share it)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from services import HOST, START_TIMEOUT, _program, _stop, free_port, wait_for_port, wait_ready

Rows = Mapping[int, tuple[int, int]]  # minute → (good, total)


def openmetrics(rows: Rows, path: Path, *, reset_at: int | None = None, slo: str = "api") -> None:
    """Cumulative counters slo_requests_total and slo_errors_total{slo}: one sample at the end
    of each minute with samples (none for a minute missing); they restart at `reset_at`."""
    requests = errors = 0
    req_lines, err_lines = [], []
    for m in sorted(rows):
        good, total = rows[m]
        if m == reset_at:
            requests = errors = 0  # the exporter restarted: its counters start again
        requests += total
        errors += total - good
        at = (m + 1) * 60
        req_lines.append(f'slo_requests_total{{slo="{slo}"}} {requests} {at}')
        err_lines.append(f'slo_errors_total{{slo="{slo}"}} {errors} {at}')
    lines = ["# TYPE slo_requests counter", *req_lines, "# TYPE slo_errors counter", *err_lines]
    path.write_text("\n".join(lines) + "\n# EOF\n")


@contextmanager
def running_prometheus(tmp: Path, metrics: Path) -> Iterator[str]:
    """Prometheus serving the OpenMetrics file `metrics` backfilled as TSDB blocks (write its
    samples well in the past: blocks must not overlap the head); yields its base URL."""
    prometheus = _program("prometheus", package="prometheus")
    promtool = _program("promtool", package="prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    blocks = tmp / "tsdb"
    backfill = [promtool, "tsdb", "create-blocks-from", "openmetrics", str(metrics), str(blocks)]
    subprocess.run(backfill, check=True, capture_output=True, timeout=600)
    (tmp / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={blocks}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address={HOST}:{port}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        wait_for_port(HOST, port, deadline, proc)
        url = f"http://{HOST}:{port}"
        wait_ready(f"{url}/-/ready", deadline, tmp / "prometheus.log")  # its blocks loading
        yield url
    finally:
        _stop(proc)
