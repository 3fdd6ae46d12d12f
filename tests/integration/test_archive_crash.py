"""SIGKILL the archiver at 50+ instants: no log byte is ever lost, and the next run cleans up."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from opsmedic.actions.archive_logs import Params, archive
from opsmedic.archive.pipeline import recover
from opsmedic.config.schema import Config

TRIALS = 52  # run in pairs; half one archive per run, half one archive per file
SIZES = (3 << 20, 3 << 20, 2 << 20, 2 << 20, 1 << 20, 500_000, 60_000, 1)
# The archiver as a separate process, so that it can be killed at any instant.
_REAPED_ELSEWHERE = 255
ARCHIVER = """
import asyncio, sys
from opsmedic.actions.archive_logs import Params, archive
from opsmedic.config.schema import Config
config = Config(state_dir=sys.argv[1])
params = Params.model_validate_json(sys.argv[2])
print("ready", flush=True)
report = asyncio.run(archive(params, config, "crash", time_limit=300))
sys.exit(report.error is not None)
"""


def log_text(n: int, seed: int) -> bytes:
    """Log lines with random ids: they compress about 3 to 1, like real logs, not to nothing."""
    ids = random.Random(seed).randbytes(n // 4 + 16).hex()
    lines = (
        f"2026-11-22T10:15:{i % 60:02d}Z GET /api/v1/orders id={ids[i : i + 32]} 200\n"
        for i in range(0, len(ids) - 32, 32)
    )
    return "".join(lines).encode()[:n]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """About 12 MB of logs in files of very different sizes: name → content."""
    return {f"app-{i}.log.1": log_text(size, i) for i, size in enumerate(SIZES)}


@dataclass
class Trial:
    base: Path
    per: str

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def dest(self) -> Path:
        return self.base / "dest"

    @property
    def config(self) -> Config:
        return Config(state_dir=self.base / "state")

    @property
    def params(self) -> Params:
        return Params(
            dir=[str(self.logs)], include=["*.log.*"], to=str(self.dest), min_age=0, per=self.per
        )


def setup(trial: Trial, corpus: dict[str, bytes]) -> None:
    trial.logs.mkdir(parents=True)
    for name, data in corpus.items():
        (trial.logs / name).write_bytes(data)


def committed_members(trial: Trial) -> dict[str, list[str]]:
    """Every committed archive read back whole: SHA-256 of each member → archives holding it.

    A committed archive that does not read back cleanly fails the test right here.
    """
    found: dict[str, list[str]] = {}
    for path in sorted(trial.dest.iterdir()) if trial.dest.exists() else ():
        if path.name.endswith(".part"):
            continue
        with path.open("rb") as raw:
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for member in tf:
                    data = tf.extractfile(member).read()
                    key = f"{member.name}:{hashlib.sha256(data).hexdigest()}"
                    found.setdefault(key, []).append(path.name)
    return found


def check(trial: Trial, corpus: dict[str, bytes], settled: bool) -> str:
    """Every byte of every log is in its file unchanged, or in a committed archive that reads
    back; settled (after recovery): no part and no intent either. Returns what the kill left."""
    archived = committed_members(trial)
    deleted = 0
    for name, data in corpus.items():
        path = trial.logs / name
        key = f"{str(path).lstrip('/')}:{hashlib.sha256(data).hexdigest()}"
        if path.exists():
            assert path.read_bytes() == data, f"{path} changed"
        else:
            deleted += 1
            assert key in archived, f"{path} is gone and in no committed archive"
    parts = [p.name for p in trial.dest.glob("*.part")] if trial.dest.exists() else []
    intents = [
        json.loads(p.read_text()) for p in (trial.base / "state" / "archive").glob("*.intent.json")
    ]
    if settled:
        assert parts == [], parts
        assert intents == [], intents
    if any(i["members"] is not None for i in intents):
        return "between verify and forget"
    if parts:
        return "writing or verifying"
    if deleted:
        return "deleted"
    return "committed" if archived else "nothing committed"


async def one_trial(trial: Trial, corpus: dict[str, bytes], kill_at: float) -> tuple[str, float]:
    """Archive, SIGKILL after `kill_at` s (unless done), check, recover, check, finish, check."""
    await asyncio.to_thread(setup, trial, corpus)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ARCHIVER, str(trial.base / "state"), trial.params.model_dump_json(),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"ready\n"
    started = time.monotonic()
    try:
        await asyncio.wait_for(proc.wait(), kill_at)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):  # it ended as the timer fired
            proc.kill()
    await proc.communicate()
    ran = time.monotonic() - started
    # 255 is what asyncio's child watcher reports when the status was reaped elsewhere (seen
    # once in a full run, "Unknown child process pid"); the archiver itself fails with 1.
    # What this test is about — no byte lost, whatever the exit — is checked below either way.
    assert proc.returncode in (0, -signal.SIGKILL, _REAPED_ELSEWHERE), (
        f"the archiver failed: {proc.returncode}"
    )
    left = await asyncio.to_thread(check, trial, corpus, False)
    _, problems = await recover(trial.config)
    assert problems == []
    await asyncio.to_thread(check, trial, corpus, True)
    report = await archive(trial.params, trial.config, "crash",
                           time_limit=trial.config.actions.timeout)  # fmt: skip
    assert report.error is None, report.error
    assert os.listdir(trial.logs) == []
    archived = await asyncio.to_thread(committed_members, trial)
    assert len(archived) == len(corpus)
    assert all(len(holders) == 1 for holders in archived.values()), archived  # exactly once
    await asyncio.to_thread(shutil.rmtree, trial.base)
    return left, ran


async def test_no_byte_is_lost_whenever_the_archiver_is_killed(
    tmp_path: Path, corpus: dict[str, bytes]
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    # Unkilled runs first, in a pair as the trials run: how long each kind of run takes.
    durations = dict(
        zip(
            ("run", "file"),
            [
                ran
                for _, ran in await asyncio.gather(
                    one_trial(Trial(tmp_path / "ref-run", "run"), corpus, 600),
                    one_trial(Trial(tmp_path / "ref-file", "file"), corpus, 600),
                )
            ],
            strict=True,
        )
    )
    # Kill instants spread over the whole run (and a little past it), stratified per kind.
    plan = []
    for i in range(TRIALS):
        per = ("run", "file")[i % 2]
        slot = (i // 2 + rng.random()) / (TRIALS // 2)
        plan.append((Trial(tmp_path / f"t{i}", per), slot * 1.1 * durations[per]))
    left: list[str] = []
    for a, b in zip(plan[::2], plan[1::2], strict=True):
        for outcome, _ in await asyncio.gather(
            one_trial(a[0], corpus, a[1]), one_trial(b[0], corpus, b[1])
        ):
            left.append(outcome)
    seen = {state: left.count(state) for state in sorted(set(left))}
    print(f"seed {seed}, unkilled runs {durations}, kills left: {seen}")
    # Kills must have hit mid-archive and after a commit, or the test proves little.
    assert "writing or verifying" in seen, (seed, durations, seen)
    assert {"deleted", "between verify and forget"} & seen.keys(), (seed, durations, seen)
