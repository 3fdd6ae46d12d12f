"""What an ingest sender's text can make the on-call's terminal do: nothing. Escape sequences,
OSC titles, BEL, CR, backspace and bidi overrides in `kind`, `resource` and labels show as
escapes in every listing and `show`, in a pipe and at a terminal (a pty); `--json` is exact."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

from api_service import running_api
from cli_process import on_a_terminal, opsmedic

# An OSC window title, a clear screen, a colour, BEL, CR, backspace, and a right-to-left override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\rX\x08\u202eevil\u2066[bold]b[/bold]"
SHOWN = r"\x1b]0;pwned\x07\x1b[2J\x1b[31m\rX\x08\u202eevil\u2066[bold]b[/bold]"
RULES = [{
    "name": "echo-it",
    "when": {"source": "sender"},
    "do": [{"run_command": {"argv": ["printf", "%s\\n", "{{ event.resource }}"]}}],
}, {
    "name": "hunt-it",
    "when": {"source": "sender"},
    "queue": "investigation",
    "do": [{"loghunt": {"files": ["logs/*"], "mode": "exact"}}],
}]  # fmt: skip
# What rich writes itself at a terminal: colours and bold (SGR). Anything else is the data's.
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def raw_controls(output: str) -> list[str]:
    """The controls in `output` no terminal should get from data (a pty's \\r\\n is its own)."""
    rest = RICH_SGR.sub("", output).replace("\r\n", "\n")
    return re.findall(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", rest)


async def test_an_ingest_senders_text_never_drives_the_terminal(tmp_path: Path) -> None:
    """Its event, its incident (title, timeline), the runs it started, and a log hunt whose
    file name and exact-mode key (the headline) hold the same."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app\x1b]0;pwned\x07\u202e.log").write_text(f"ERROR {HOSTILE}\n")
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["ingest"]) as sender:  # fmt: skip
        event = {"source": "sender", "kind": f"K{HOSTILE}", "resource": f"r{HOSTILE}",
                 "fingerprint": "f", "labels": {f"l{HOSTILE}": f"v{HOSTILE}"}}  # fmt: skip
        reply = await sender.post("/api/v1/events", json=event)
        assert reply.status_code == 202, reply.text
        refused = await sender.post("/api/v1/events", json={"source": "s", "host": HOSTILE})
        assert refused.status_code == 422  # a host never holds a control: nothing to show
        await api.rt.engine.drain()
        runs = {r.rule: r for r in api.store.list_runs()}
        (incident,) = api.store.list_incidents()
    run, hunted = runs["echo-it"], runs["hunt-it"]
    assert hunted.state == "succeeded", hunted.message
    commands = [
        ["events"], ["incidents", "--since", "1d"], ["incidents", "show", incident.id],
        ["runs"], ["runs", "show", run.id], ["runs", "show", hunted.id],
        ["explain", run.event_id],
        ["report", "postmortem", incident.id],
    ]  # fmt: skip
    for command in commands:
        piped = opsmedic(*command, cwd=tmp_path)
        assert piped.returncode == 0, piped.stderr
        assert raw_controls(piped.stdout) == [], (command, piped.stdout)
        at_terminal = on_a_terminal(*command, cwd=tmp_path, columns=400)
        assert raw_controls(at_terminal) == [], (command, at_terminal)
        assert "pwned" in at_terminal, (command, at_terminal)
    # Shown whole, as escapes: a table at a terminal folds the value, a pipe has it on one line.
    shown = opsmedic("runs", "show", run.id, cwd=tmp_path).stdout
    assert SHOWN in shown and "[bold]b[/bold]" in shown
    timeline = on_a_terminal("incidents", "show", incident.id, cwd=tmp_path, columns=400)
    assert "\\u202eevil" in timeline and "[bold]b[/bold]" in timeline  # markup stays text
    assert (
        "Log hunt: top events" in timeline and r"logs/app\x1b]0;pwned\x07\u202e.log:1" in timeline
    )
    # --json: exact, every control escaped by JSON itself.
    exported = opsmedic("events", "--json", cwd=tmp_path).stdout
    assert raw_controls(exported) == []
    (stored,) = [e for e in json.loads(exported) if e["source"] == "sender"]
    assert stored["kind"] == f"K{HOSTILE}" and stored["labels"] == {f"l{HOSTILE}": f"v{HOSTILE}"}


def test_hostile_file_and_member_names_and_lines_show_as_escapes(tmp_path: Path) -> None:
    """`logs hunt` on a file whose name holds an undecodable byte and a clear-screen, and a
    tar member named with an OSC title: the names and the lines show as escapes."""
    logs = tmp_path / "nm"
    logs.mkdir()
    line = b"ERROR \x1b]0;pwned\x07 \x1b[2J \xe2\x80\xae evil"
    (logs / os.fsdecode(b"\xff\x1b[2Jbad.log")).write_bytes(line + b" in a file\n")
    member = tarfile.TarInfo("\x1b[2J\x1b]0;pwned\x07x.log")
    member.size = len(line + b" in a member\n")
    with tarfile.open(logs / "old.tar.gz", "w:gz") as archive:
        archive.addfile(member, io.BytesIO(line + b" in a member\n"))
    hunt = ("logs", "hunt", "nm/*", "--mode", "exact")
    piped = opsmedic(*hunt, cwd=tmp_path).stdout
    for output in (piped, on_a_terminal(*hunt, cwd=tmp_path, columns=400)):
        assert raw_controls(output) == [], output
        assert r"nm/\xff\x1b[2Jbad.log:1:" in output, output
        assert r"\x1b[2J\x1b]0;pwned\x07x.log:1:" in output, output
        assert r"\u202e evil" in output, output
