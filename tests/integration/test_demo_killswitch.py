"""`opsmedic demo`'s kill-switch scene alone: the rule turns the flag off, the shop changes at
once, the history names the rule and its run, and nothing is left running, even on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

# The demo with its other scenes left out, through the real command (its cleanup included).
ONLY_THIS_SCENE = """
import sys
from opsmedic.cli import app
from opsmedic.cli.demo import play
from opsmedic.cli.demo.killswitch import killswitch_scene
play.SCENES[:] = [s for s in play.SCENES if s[1] is killswitch_scene]
sys.argv = ["opsmedic", "demo", "--timeout", sys.argv[1]]
app()
"""


def play(tmp_path: Path) -> tuple[int, str]:
    """The scene's exit code and output. Into a file, not a pipe: a shop left running would
    hold a pipe open and hang the test instead of failing it."""
    with tempfile.TemporaryFile("w+") as output:
        code = subprocess.run([sys.executable, "-c", ONLY_THIS_SCENE, "60"], cwd=tmp_path,
                              stdout=output, stderr=subprocess.STDOUT, timeout=300,
                              check=False).returncode  # fmt: skip
        output.seek(0)
        return code, " ".join(output.read().split())  # rich wraps long lines


def left_running(before: set[int]) -> set[int]:
    """Shops started since `before` and still running, stopped now so none outlives the test."""
    left = [p for p in shops() if p.pid not in before]
    for proc in left:
        proc.kill()
    return {p.pid for p in left}


def shops() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "opsmedic.cli.demo.shop" in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_a_rule_turns_the_flag_off_and_the_shop_serves_the_old_checkout_without_restart(
    tmp_path: Path,
) -> None:
    before = {p.pid for p in shops()}
    code, text = play(tmp_path)
    assert code == 0, text[-3000:]
    order = ["the shop serves: 200 new checkout: paid",
             "the shop serves: 500 new checkout: payment service v2 failed",
             "probe shop-checkout", "firing (status 500",
             "kill-new-checkout: succeeded — 1 step(s) succeeded: flag new_checkout set to "
             "version 2 (off)",
             "the shop serves: 200 old checkout: paid",
             "the probe reads ok again: the incident resolves",
             "after the flag changed, without a restart",
             "the shop serves: 200 new checkout: paid"]  # fmt: skip
    at = 0
    for seen in order:
        found = text.find(seen, at)
        assert found >= 0, f"{seen!r} not after position {at} in {text}"
        at = found + len(seen)
    # The history: seeded on by the config, off by the rule with its run, on by a person.
    run = re.search(r"run …(\w{8}) kill-new-checkout: succeeded", text)
    assert run is not None
    assert re.search(r"v1 on by config \S+opsmedic\.yaml v2 off by rule kill-new-checkout "
                     rf"run …{run[1]} v3 on by cli demo", text), text  # fmt: skip
    # The shop was a child of the demo, and the demo stopped it: no shop is left running.
    assert left_running(before) == set()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_while_the_shop_runs_the_demo_stops_it(tmp_path: Path) -> None:
    before = {p.pid for p in shops()}
    argv = [sys.executable, "-u", "-c", ONLY_THIS_SCENE, "60"]
    # A pipe, read line by line here; the other test shows a shop left holding it open.
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # until the shop serves; the story has not begun
            seen.append(line)
            if "the shop serves: 200 new checkout" in line:
                break
        else:
            raise AssertionError("".join(seen))
        assert len(shops()) > len(before)  # the shop runs now: the test can fail below
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert left_running(before) == set()
    assert list(tmp_path.iterdir()) == []
