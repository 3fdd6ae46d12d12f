"""Tests of the built-in actions' parameter models: what a rule may and may not say."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from typing import Any

import pytest
from pydantic import ValidationError

import opsmedic.actions
from opsmedic.actions import http_request, noop, notify, run_command
from opsmedic.actions.notify import Redactor
from opsmedic.model import Event
from opsmedic.runtime import build_registry
from opsmedic.templating import Templates, template_context


def _error(model: Any, raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    return str(info.value)


def test_builtin_actions_are_registered_under_their_names() -> None:
    """The registry offers every built-in, each with a parameter model and a summary."""
    registry = build_registry(load_entry_points=False)
    for name in ("noop", "run_command", "http_request", "notify"):
        spec = registry.action(name)
        assert spec.summary
        assert spec.params.model_config.get("extra") == "forbid"
    # Every module of the package that defines an action is registered, each under its own
    # name (two built-ins with one name would leave one of them unreachable).
    modules = [importlib.import_module(f"opsmedic.actions.{m.name}")
               for m in pkgutil.iter_modules(opsmedic.actions.__path__)]  # fmt: skip
    defined = sorted(m.ACTION.name for m in modules if hasattr(m, "ACTION"))
    assert defined == sorted(registry.actions)


def test_noop_accepts_an_optional_message() -> None:
    """noop takes nothing or a message; anything else is refused."""
    assert noop.Params.model_validate({}).message == ""
    assert noop.Params.model_validate({"message": 5}).message == "5"
    assert "extra" in _error(noop.Params, {"mesage": "typo"}).lower()


# --- run_command ------------------------------------------------------------------------------


def test_run_command_needs_exactly_one_of_argv_and_shell() -> None:
    """argv or shell, never both, never neither; argv not empty."""
    assert "exactly one of argv" in _error(run_command.Params, {})
    both = {"argv": ["true"], "shell": "true"}
    assert "exactly one of argv" in _error(run_command.Params, both)
    assert "at least 1" in _error(run_command.Params, {"argv": []})


def test_run_command_defaults() -> None:
    """Local, exit 0 only, no timeout of its own (the config default applies)."""
    params = run_command.Params.model_validate({"argv": ["true"]})
    assert params.host is None
    assert params.ok_exit_codes == [0]
    assert params.timeout is None
    assert params.command() == ["true"]
    shell = run_command.Params.model_validate({"shell": "echo hi"})
    assert shell.command() == ["/bin/sh", "-c", "echo hi"]


def test_run_command_coerces_numbers_in_argv_and_parses_durations() -> None:
    """A rendered number becomes its text; a timeout reads like every opsmedic duration."""
    params = run_command.Params.model_validate({"argv": ["kill", 1234], "timeout": "1m30s"})
    assert params.argv == ["kill", "1234"]
    assert params.timeout == 90.0
    assert "greater than 0" in _error(run_command.Params, {"argv": ["x"], "timeout": 0})


def test_run_command_refuses_what_no_process_can_receive() -> None:
    """NUL bytes cannot be in argv or env; env names must be shell identifiers."""
    assert "argv[1] contains a NUL" in _error(run_command.Params, {"argv": ["echo", "a\0b"]})
    assert "not a valid variable" in _error(
        run_command.Params, {"argv": ["x"], "env": {"A-B": "1"}}
    )
    bad_env = {"argv": ["x"], "env": {"A": "1\0"}}
    assert "env A contains a NUL" in _error(run_command.Params, bad_env)


def test_run_command_checks_a_rendered_shell_script_through_its_template() -> None:
    """After rendering, the template is judged, not the text: `{{` in a label is fine, and
    an unquoted template is still refused even though its output holds no `{{` any more."""
    t = Templates()
    context = template_context(Event(source="x", host="{{ 7*7 }} ; reboot"), "r", "id")
    good = t.render("echo {{ event.host | shquote }}", context)
    assert run_command.Params.model_validate({"shell": good}).shell == "echo '{{ 7*7 }} ; reboot'"
    bad = t.render("echo {{ event.host }}", context)
    assert "must end in '| shquote'" in _error(run_command.Params, {"shell": bad})
    native = t.render("{{ event.host }}", context)
    assert "must end in '| shquote'" in _error(run_command.Params, {"shell": native})


# --- http_request -------------------------------------------------------------------------


def test_http_request_defaults_and_normalisation() -> None:
    """GET by default, the method upper-cased, `json` read through its alias."""
    params = http_request.Params.model_validate(
        {"url": "https://x.example/hook", "method": "post", "json": {"a": 1}}
    )
    assert params.method == "POST"
    assert params.json_body == {"a": 1}
    assert params.verify_tls is True
    assert params.ok_status is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"url": "ftp://x.example/"}, "http:// or https://"),
        ({"url": "not a url"}, "http:// or https://"),
        ({"url": "https://user:pw@x.example/"}, "no password in the URL"),
        ({"url": "https://x.example/", "method": "BREW"}, "method"),
        ({"url": "https://x.example/", "json": {}, "body": "x"}, "json or body"),
        ({"url": "https://x.example/", "ok_status": []}, "at least 1"),
        ({"url": "https://x.example/", "secret_headers": {"A": "inline"}}, "secret_headers"),
        ({"url": "https://x.example/", "jsn": {}}, "jsn"),
    ],
)
def test_http_request_refuses_bad_params(raw: dict[str, Any], why: str) -> None:
    """Each bad input is refused with a message naming the problem."""
    assert why in _error(http_request.Params, raw)


# --- notify ------------------------------------------------------------------------------


def test_notify_accepts_one_target_or_many() -> None:
    """`to: oncall` and `to: [oncall, chat]` both work; a title alone is enough text."""
    assert notify.Params.model_validate({"to": "oncall", "title": "t"}).to == ["oncall"]
    assert notify.Params.model_validate({"to": ["a", "b"], "body": "b"}).to == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"title": "t"}, "give to:"),
        ({"to": "oncall"}, "title or a body"),
        ({"urls": ["mailto://u:secret@host"], "title": "t"}, "carries a password"),
        ({"urls": ["not-a-url"], "title": "t"}, "not an Apprise URL"),
        ({"to": "oncall", "title": "t", "type": "panic"}, "type"),
    ],
)
def test_notify_refuses_bad_params(raw: dict[str, Any], why: str) -> None:
    """Each bad input is refused with a message naming the problem."""
    assert why in _error(notify.Params, raw)


def test_redactor_masks_secret_urls_and_their_parts() -> None:
    """The whole URL and each token-like part are masked; short and unrelated text stays."""
    redactor = Redactor(["json://user:s3cretpass@hooks.example/T0KEN123/path?token=abcdef&x=1"])
    text = (
        "posting to json://user:s3cretpass@hooks.example/T0KEN123/path?token=abcdef&x=1, "
        "then T0KEN123 and s3cretpass and abcdef again, port 443"
    )
    masked = redactor.redact(text)
    for secret in ("s3cretpass", "T0KEN123", "abcdef"):
        assert secret not in masked
    assert "port 443" in masked


def test_redactor_filters_log_records_and_their_tracebacks() -> None:
    """A record's message, its args and its traceback text are all masked."""
    redactor = Redactor(["slack://AAAA1111/BBBB2222/CCCC3333"])
    try:
        raise RuntimeError("bad url slack://AAAA1111/BBBB2222/CCCC3333")
    except RuntimeError:
        record = logging.LogRecord(
            "apprise", logging.ERROR, __file__, 1, "sending to %s", ("BBBB2222",), sys.exc_info()
        )
    assert redactor.filter(record)
    assert record.getMessage() == "sending to ***"
    assert record.exc_text is not None
    assert "BBBB2222" not in record.exc_text
    assert "RuntimeError" in record.exc_text
