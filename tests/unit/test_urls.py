"""Tests of templated URL parameters: the scheme, host, port and written path always stay."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmedic.actions import annotate, http_request, notify
from opsmedic.model import Event
from opsmedic.templating import Templates, template_context
from opsmedic.urls import confine_url
from rule_steps import load_problem

_SAMPLES = [
    "..", "../", "../../../admin/delete?all=1", ".", "./", "%2e%2e", "%2E%2e%2f", "%252e%252e",
    "..%2f..%2fadmin", "..;", "..;/admin", "..\\..\\admin", "?all=1", "#frag", "%3F", "@evil",
    ":99", "a\r\nX-Injected: 1", "\x00", "\x7f", "\x85", "web-1", "a b", "", "/", "//x",
    "\uff0e\uff0e",
]  # fmt: skip
_HOSTILE = st.sampled_from(_SAMPLES) | st.text(alphabet="./%2eE\\;?#@:\r\nab", max_size=20)

# template → the path every accepted URL stays under (None: the template is in the query)
_UNDER = {
    "http://127.0.0.1:18999/api/v1/items/{{ v }}": "/api/v1/items/",
    "http://h/api/{{ v }}/details": "/api/",
    "https://h:8443/api/x{{ v }}-{{ v }}": "/api/",
    "http://h/api/.{{ v }}": "/api/",
    "json://127.0.0.1:9/notify/{{ v }}": "/notify/",
    "http://h/search?q={{ v }}": None,
}


def _decoded_path(url: str) -> str:
    """Independent of the code under test: the path as a server that decodes and normalizes."""
    path = urlsplit(url).path
    for _ in range(4):
        path = unquote(path)
    return posixpath.normpath(path.replace("\\", "/"))


@settings(max_examples=400, deadline=None)
@given(
    value=st.lists(_HOSTILE, min_size=1, max_size=4).map("".join),
    source=st.sampled_from(list(_UNDER)),
)
def test_a_rendered_url_keeps_what_the_rule_wrote(value: str, source: str) -> None:
    """Whatever the value: refused, or same scheme, host, port and path prefix, no new query."""
    under = _UNDER[source]
    rendered = Templates().render(source, {"v": value})
    refused = ""
    try:
        confine_url(rendered, source)
    except ValueError as exc:
        refused = str(exc)
    if refused:
        assert refused.startswith("rendered URL")
        return
    written, now = urlsplit(source.replace("{{ v }}", "")), urlsplit(rendered)
    assert (now.scheme, now.hostname, now.port) == (written.scheme, written.hostname, written.port)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", rendered)
    if under is None:
        assert now.path == written.path and not now.fragment
    else:
        assert not now.query and not now.fragment
        assert (_decoded_path(rendered) + "/").startswith(under), rendered


@pytest.mark.parametrize(
    ("value", "why"),
    [("../../../admin/delete", "'..' path segment"), ("%2e%2e", "'..' path segment"),
     ("%2e", "'.' path segment"), ("..;", "'..;' path segment"), ("a%2f..%2fb", "'..' path"),
     ("..\\x", "'..' path segment"), ("1?all=1", "a '?' that the rule did not write"),
     ("1#x", "a '#' that the rule did not write"), ("1\r\nX: y", "control character")],
)  # fmt: skip
def test_a_hostile_id_is_refused_saying_why(value: str, why: str) -> None:
    source = "http://127.0.0.1:18999/api/v1/items/{{ v }}"
    with pytest.raises(ValueError, match=re.escape(why)):
        confine_url(Templates().render(source, {"v": value}), source)


def test_a_query_the_rule_started_takes_a_value() -> None:
    source = "http://h/search?q={{ v }}"
    confine_url(Templates().render(source, {"v": "a/../b?c"}), source)
    with pytest.raises(ValueError, match="'#'"):
        confine_url(Templates().render(source, {"v": "a#b"}), source)


def _render(raw: dict[str, Any], **labels: Any) -> Any:
    context = template_context(Event(source="x", labels=labels), "r", "run-1")
    return Templates().render(raw, context, "do[0]")


@pytest.mark.parametrize(
    ("model", "raw", "where"),
    [(http_request.Params, {"url": "http://h/items/{{ event.labels.id }}"}, ("url",)),
     (annotate.Params, {"url": "http://h/notes/{{ event.labels.id }}", "note": "n"}, ("url",)),
     (notify.Params, {"urls": ["json://h/n/{{ event.labels.id }}"], "title": "t"}, ("urls", 0))],
)  # fmt: skip
def test_every_templated_url_parameter_is_confined_naming_it(
    model: Any, raw: dict[str, Any], where: tuple[Any, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(_render(raw, id="../admin"))
    assert [err["loc"] for err in info.value.errors()] == [where]
    model.model_validate(_render(raw, id="42"))


@pytest.mark.parametrize(
    "step",
    ["http_request: {url: 'http://{{ event.host }}/x'}",
     "http_request: {url: 'http://h:{{ event.labels.port }}/x'}",
     "http_request: {url: 'http://h{{ event.labels.path }}'}",
     "annotate: {url: '{{ event.labels.url }}', note: n}",
     "notify: {urls: ['json://{{ event.host }}/n'], title: t}"],
)  # fmt: skip
def test_a_url_template_that_leaves_the_host_open_is_refused_at_load(
    tmp_path: Path, step: str
) -> None:
    problem = load_problem(tmp_path, step)
    assert problem.line == 4
    assert "must write its scheme, host and port" in problem.message
