"""Tests of templated path parameters: a rendered path never leaves the rule's fixed directory."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmedic.actions import archive_logs, run_command
from opsmedic.archive.sftp import parse_sftp_url
from opsmedic.dns.resolv_conf import ResolvConfParams
from opsmedic.model import Event
from opsmedic.paths import check_source, confine, static_prefix, validation_context
from opsmedic.templating import Templates, UnsafeTemplate, template_context
from rule_steps import load_problem

_HOSTILE = st.one_of(
    st.sampled_from(
        [
            "..",
            "../x",
            "x/..",
            "/abs",
            "a/../../b",
            "a\0b",
            "\0",
            "//",
            "/",
            "",
            ".",
            "./",
            "a/./b",
            "x/",
            "~",
            "~root",
            "..\\..",
            "%2e%2e",
            "\u2024\u2024",
            "\uff0e\uff0e",
            "\u002e\u0307",
            ".\u200b.",
            "a\nb",
            "web-1",
        ]
    ),
    st.text(alphabet="./\0a\\~\u2024", max_size=30),
    st.integers(200, 5000).map(lambda n: "a" * n),
    st.integers(1, 500).map(lambda n: "../" * n),
)
_VALUES = st.lists(_HOSTILE, min_size=1, max_size=4).map("".join)

# (template, the directory it must stay strictly inside; "" for one relative to its parent)
_TEMPLATES = [
    ("/var/log/apps/{{ v }}", "/var/log/apps"),
    ("/var/log/apps/{{ v }}/current", "/var/log/apps"),
    ("/srv/archive/{{ v }}/", "/srv/archive"),
    ("/srv/archive/x{{ v }}-{{ v }}.d", "/srv/archive"),
    ("/srv/{% if v %}{{ v }}{% endif %}/logs", "/srv"),
    ("logs/{{ v }}", "logs"),
]
_RELATIVE = [("{{ v }}", ""), ("sub/{{ v }}.log", "sub")]


def _inside(path: str, base: str) -> bool:
    """Independent of the code under test: strictly below `base`, lexically."""
    target = posixpath.normpath(path)
    if not base:
        return not target.startswith("/") and target != "." and target.split("/")[0] != ".."
    return target.startswith(base + "/")


@settings(max_examples=300, deadline=None)
@given(
    value=_VALUES,
    case=st.sampled_from([(*t, False) for t in _TEMPLATES] + [(*t, True) for t in _RELATIVE]),
)
def test_a_rendered_path_never_leaves_its_prefix(value: str, case: tuple[str, str, bool]) -> None:
    """Whatever the value, confine() either refuses it or the path is inside the prefix."""
    source, base, relative = case
    rendered = Templates().render(source, {"v": value})
    refused = ""
    try:
        confine(rendered, source, relative=relative)
    except ValueError as exc:
        refused = str(exc)
    if refused:
        assert refused.startswith("rendered path")
    else:
        assert "\0" not in rendered
        assert _inside(rendered, base), rendered


@pytest.mark.parametrize(
    "value", ["web-1", "a.b", "..a", "a..", "\u2024\u2024", "\uff0e\uff0e", "a/b", "x" * 300]
)
def test_plain_names_are_accepted(value: str) -> None:
    """Odd but harmless names (unicode dots are no `..` to the kernel) pass: the check is exact."""
    confine(f"/var/log/apps/{value}", "/var/log/apps/{{ v }}")
    confine(value, "{{ v }}", relative=True)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("../victim", "a '..' segment"),
        ("a/../../b", "a '..' segment"),
        ("/etc", "an empty segment"),
        ("", "an empty segment"),
        (".", "a '.' segment"),
        ("a//b", "an empty segment"),
        ("a\0b", "holds a NUL byte"),
    ],
)
def test_a_hostile_value_is_refused_saying_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        confine(f"/var/log/apps/{value}", "/var/log/apps/{{ v }}")


def test_the_refusal_names_the_directory_written_in_the_rule() -> None:
    with pytest.raises(ValueError, match="must stay inside '/var/log/apps/', the directory"):
        confine("/var/log/apps/../victim", "/var/log/apps/{{ v }}")


def test_whitespace_control_cannot_eat_into_the_prefix() -> None:
    """The prefix is cut back to its last `/`, which `{{-` cannot strip."""
    assert static_prefix("/var/log/ {{- v }}") == "/var/log/"
    assert static_prefix("/srv/app-{{ v }}/x") == "/srv/"
    assert static_prefix("{# note #}/etc/{{ v }}") == ""
    assert static_prefix("/srv/static") == "/srv/"


def _render(raw: dict[str, Any], **event: Any) -> Any:
    context = template_context(Event(source="disk", **event), "r", "run-1")
    return Templates().render(raw, context, "do[0]")


def test_archive_params_refuse_an_escaping_dir_and_to_naming_them() -> None:
    raw = {
        "dir": "/var/log/apps/{{ event.labels.app }}",
        "include": ["*.log"],
        "to": "/srv/archive/{{ event.host }}/",
    }
    with pytest.raises(ValidationError) as info:
        archive_logs.Params.model_validate(
            _render(raw, host="../escaped", labels={"app": "../victim"})
        )
    where = {err["loc"] for err in info.value.errors()}
    assert where == {("dir", 0), ("to",)}
    ok = archive_logs.Params.model_validate(_render(raw, host="web-1", labels={"app": "shop"}))
    assert ok.dir == ["/var/log/apps/shop"] and ok.to == "/srv/archive/web-1/"


def test_an_sftp_destination_keeps_its_path_too() -> None:
    raw = {"dir": "/l", "include": ["*"], "to": "sftp://backup/archive/{{ event.host }}/"}
    with pytest.raises(ValidationError, match=r"'\.\.' segment"):
        archive_logs.Params.model_validate(_render(raw, host=".."))


@pytest.mark.parametrize(
    ("host", "why"),
    [("%2e", "a '.' segment"), ("%2E%2e", "a '..' segment"), ("%2F%2Fetc", "an empty segment"),
     ("a%2F%2e%2e%2F..%2Fb", "a '..' segment"), ("x%00", "NUL byte"), ("%2f", "an empty segment")],
)  # fmt: skip
def test_an_sftp_path_is_judged_as_the_destination_decodes_it(host: str, why: str) -> None:
    """The sftp destination percent-decodes its path, so `%2e` is `.` and `%2F%2F` is `//`."""
    raw = {"dir": "/l", "include": ["*"], "to": "sftp://backup/archive/{{ event.host }}/"}
    with pytest.raises(ValidationError, match=re.escape(why)):
        archive_logs.Params.model_validate(_render(raw, host=host))
    fine = archive_logs.Params.model_validate(_render(raw, host="web%2D1"))
    assert parse_sftp_url(fine.to).path == "/archive/web-1"


def test_an_sftp_path_template_needs_a_directory_on_its_host() -> None:
    """`sftp://HOST/{{ x }}` could name any remote directory, as `/{{ x }}` any local one."""
    with pytest.raises(UnsafeTemplate, match="not / alone"):
        check_source("sftp://backup/{{ event.host }}/")
    check_source("sftp://backup/~/{{ event.host }}/")
    check_source("sftp://{{ event.host }}/archive")  # only an ssh_hosts entry: judged as a path


def test_items_of_a_native_list_from_an_event_are_judged_too() -> None:
    """`{{ event.payload.globs }}` yields a list: each item came from the event, so each is
    judged, and matches itself only (an event names files, it does not widen the glob)."""
    raw = {"dir": "/l", "include": "{{ event.payload.globs }}", "to": "/a"}
    with pytest.raises(ValidationError, match=r"include\.1"):
        archive_logs.Params.model_validate(_render(raw, payload={"globs": ["*.log", "/etc/*"]}))
    fine = _render(raw, payload={"globs": ["*.log", "sub/*.gz"]})
    assert archive_logs.Params.model_validate(fine).include == ["[*].log", "sub/[*].gz"]


def test_run_command_cwd_and_resolv_conf_path_are_confined() -> None:
    cwd = {"argv": ["true"], "cwd": "/srv/apps/{{ event.labels.app }}"}
    with pytest.raises(ValidationError, match="cwd"):
        run_command.Params.model_validate(_render(cwd, labels={"app": ".."}))
    conf = {"path": "/etc/resolv.d/{{ event.labels.app }}", "primary": "10.0.0.1",
            "secondary": "10.0.0.2"}  # fmt: skip
    with pytest.raises(ValidationError, match="path"):
        ResolvConfParams.model_validate(_render(conf, labels={"app": "../shadow"}))
    assert ResolvConfParams.model_validate(_render(conf, labels={"app": "a"})).path == Path(
        "/etc/resolv.d/a"
    )


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("archive_logs: {dir: '{{ event.labels.d }}', include: ['*'], to: /a}", "must start with"),
        ("archive_logs: {dir: '/a/../{{ event.host }}', include: ['*'], to: /a}", "'..' segment"),
        ("run_command: {argv: [ls], cwd: '{{ event.labels.d }}'}", "must start with"),
        # `/` alone is no fixed directory: the rendered path could be anywhere.
        ("archive_logs: {dir: '/{{ event.resource }}', include: ['*'], to: /a}", "not / alone"),
        ("archive_logs: {dir: /a, include: ['*'], to: '/{{ event.host }}/'}", "not / alone"),
    ],
)
def test_a_path_template_without_a_fixed_directory_is_refused_at_load(
    tmp_path: Path, step: str, message: str
) -> None:
    problem = load_problem(tmp_path, step)
    assert problem.line == 4
    assert message in problem.message


def _validate(model: Any, raw: dict[str, Any], base: Path, **event: Any) -> Any:
    return model.model_validate(_render(raw, **event), context=validation_context(base))


def test_no_confined_parameter_goes_through_a_symlink(tmp_path: Path) -> None:
    """run_command's cwd, resolv.conf's path and archive globs: a link the event names refuses."""
    for d in ("srv/app", "etc/resolv.d", "logs/sub", "victim"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/resolv.d/app").write_text("nameserver 10.0.0.1\n")
    for link in ("srv/lnk", "etc/resolv.d/lnk", "logs/lnk"):
        (tmp_path / link).symlink_to(tmp_path / "victim")
    (tmp_path / "victim/resolv").write_text("nameserver 10.0.0.1\n")
    cwd = {"argv": ["true"], "cwd": "srv/{{ event.labels.app }}"}
    conf = {"path": f"{tmp_path}/etc/resolv.d/{{{{ event.labels.app }}}}",
            "primary": "10.0.0.1", "secondary": "10.0.0.2"}  # fmt: skip
    globs = {"dir": f"{tmp_path}/logs", "include": ["{{ event.labels.app }}/*.log"],
             "exclude": ["{{ event.labels.app }}"], "to": f"{tmp_path}/a"}  # fmt: skip
    cases: list[tuple[Any, dict[str, Any], str]] = [(run_command.Params, cwd, "cwd"), (ResolvConfParams, conf, "path"),
             (archive_logs.Params, globs, "include.0")]  # fmt: skip
    for model, raw, where in cases:
        for app in ("lnk", "lnk/resolv"):
            with pytest.raises(ValidationError, match="is a symlink") as info:
                _validate(model, raw, tmp_path, labels={"app": app})
            assert where in {".".join(map(str, e["loc"])) for e in info.value.errors()}
    assert _validate(run_command.Params, cwd, tmp_path, labels={"app": "app"}).cwd == "srv/app"
    assert _validate(ResolvConfParams, conf, tmp_path, labels={"app": "app"}).path.name == "app"
    assert _validate(archive_logs.Params, globs, tmp_path, labels={"app": "sub"}).include


def test_a_missing_component_ends_the_walk_and_a_wrong_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv/file").write_text("")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/dir").mkdir()
    cwd = {"argv": ["true"], "cwd": "srv/{{ event.labels.app }}"}
    assert _validate(run_command.Params, cwd, tmp_path, labels={"app": "new/deeper"}).cwd
    with pytest.raises(ValidationError, match="is not a directory"):
        _validate(run_command.Params, cwd, tmp_path, labels={"app": "file"})
    conf = {"path": f"{tmp_path}/etc/{{{{ event.labels.app }}}}",
            "primary": "10.0.0.1", "secondary": "10.0.0.2"}  # fmt: skip
    with pytest.raises(ValidationError, match="is not a regular file"):
        _validate(ResolvConfParams, conf, tmp_path, labels={"app": "dir"})


def test_remote_paths_are_not_looked_for_on_this_disk(tmp_path: Path) -> None:
    """cwd on an ssh host and an sftp:// destination name another machine's files."""
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv/lnk").symlink_to(tmp_path)
    cwd = {"argv": ["true"], "host": "web1", "cwd": f"{tmp_path}/srv/{{{{ event.host }}}}"}
    assert _validate(run_command.Params, cwd, tmp_path, host="lnk").cwd.endswith("/srv/lnk")
    to = {"dir": "/l", "include": ["*"], "to": "sftp://b/srv/{{ event.host }}"}
    assert _validate(archive_logs.Params, to, tmp_path, host="lnk").to == "sftp://b/srv/lnk"


def test_a_relative_rendered_path_needs_the_config_directory() -> None:
    """Checked against the process's cwd instead, it would be checked in the wrong tree."""
    cwd = {"argv": ["true"], "cwd": "srv/{{ event.labels.app }}"}
    with pytest.raises(ValidationError, match="no config directory"):
        run_command.Params.model_validate(_render(cwd, labels={"app": "a"}))


@pytest.mark.parametrize("label", ["../" + "y" * 5000, "x" * 5000 + "/\0"])
def test_a_long_value_an_event_chose_is_cut_in_the_error(label: str) -> None:
    with pytest.raises(ValueError, match="…") as caught:
        confine(f"/srv/logs/{label}", "/srv/logs/{{ event.labels.app }}")
    assert len(str(caught.value)) < 400, str(caught.value)
