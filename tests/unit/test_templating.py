"""Tests of the sandboxed parameter templates: native values, errors with paths, the sandbox."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from opsmedic.errors import TemplateError
from opsmedic.model import Event
from opsmedic.templating import Rendered, Templates, template_context


@pytest.fixture
def event() -> Event:
    return Event(
        source="disk",
        kind="usage",
        resource="/var/log/app",
        host="web-1",
        labels={"team": "ops", "tricky": "a'b; $(touch /tmp/x)"},
        value=91.5,
        payload={"nested": {"list": [1, 2, 3]}},
    )


@pytest.fixture
def context(event: Event) -> dict[str, Any]:
    return template_context(event, rule="archive-app-logs", run_id="run-1")


def test_it_exposes_event_target_rule_and_run_id(event: Event, context: dict[str, Any]) -> None:
    """The context holds the event's fields plus its target, the rule and the run id."""
    t = Templates()
    assert t.render("{{ event.target }}", context) == event.target
    assert (
        t.render("{{ rule }}/{{ run_id }}/{{ event.host }}", context)
        == "archive-app-logs/run-1/web-1"
    )
    assert t.render("{{ event.labels.team }}", context) == "ops"


def test_it_returns_plain_strings_untouched(context: dict[str, Any]) -> None:
    """A string with no Jinja syntax is the very same object, never rendered."""
    t = Templates()
    raw = "plain text with } and { braces"
    assert t.render(raw, context) is raw
    assert t._compiled == {}


def test_it_keeps_native_values_of_a_single_expression(context: dict[str, Any]) -> None:
    """`{{ x }}` alone yields x itself: a float stays a float, a list a list, a dict a dict."""
    t = Templates()
    assert t.render("{{ event.value }}", context) == 91.5
    assert t.render("{{ event.payload.nested.list }}", context) == [1, 2, 3]
    assert t.render("{{ event.labels }}", context) == {
        "team": "ops",
        "tricky": "a'b; $(touch /tmp/x)",
    }
    assert t.render("{{- event.value -}}", context) == 91.5
    assert t.render("{{ event.value * 2 }}", context) == 183.0


def test_it_renders_mixed_templates_as_text(context: dict[str, Any]) -> None:
    """Anything beyond one expression is text, also two expressions back to back."""
    t = Templates()
    assert t.render("used {{ event.value }}%", context) == "used 91.5%"
    assert t.render("{{ event.value }}{{ event.value }}", context) == "91.591.5"
    assert t.render(" {{ event.value }}", context) == " 91.5"


def test_it_does_not_parse_event_values_as_literals(context: dict[str, Any]) -> None:
    """A label that looks like a list or a number is still the label's string."""
    t = Templates()
    event = Event(source="x", labels={"looks": "[1, 2]", "num": "42"})
    ctx = template_context(event, "r", "id")
    assert t.render("{{ event.labels.looks }}", ctx) == "[1, 2]"
    assert t.render("{{ event.labels.num }}", ctx) == "42"


def test_it_renders_nested_params_and_leaves_other_scalars(context: dict[str, Any]) -> None:
    """Dicts and lists are walked; keys, numbers, booleans and None pass as they are."""
    t = Templates()
    raw = {
        "argv": ["echo", "{{ event.host }}", 3],
        "env": {"{{ key }}": "{{ event.labels.team }}"},
        "flag": True,
        "nothing": None,
    }
    assert t.render(raw, context) == {
        "argv": ["echo", "web-1", 3],
        "env": {"{{ key }}": "ops"},
        "flag": True,
        "nothing": None,
    }
    assert raw["argv"][1] == "{{ event.host }}"  # the raw params are not modified


def test_it_keeps_event_text_verbatim_without_autoescape(context: dict[str, Any]) -> None:
    """No HTML escaping and no interpretation: the label comes out byte for byte."""
    assert Templates().render("{{ event.labels.tricky }}", context) == "a'b; $(touch /tmp/x)"


def test_it_provides_the_shquote_filter(context: dict[str, Any]) -> None:
    """`shquote` makes one single-quoted shell word of any value, even a plain one (a bare
    `if` or `x=1` would be a reserved word or an assignment at a command's start)."""
    t = Templates()
    rendered = t.render("rm -- {{ event.labels.tricky | shquote }}", context)
    assert rendered == "rm -- 'a'\\''b; $(touch /tmp/x)'"
    assert t.render("{{ 'if' | shquote }} {{ 'x=1' | shquote }}", context) == "'if' 'x=1'"


def test_it_names_the_parameter_path_of_an_undefined_attribute(context: dict[str, Any]) -> None:
    """StrictUndefined: a typo fails, and the message says where and what."""
    t = Templates()
    raw = {"argv": ["echo", "x", "{{ event.hots }}"]}
    with pytest.raises(TemplateError) as info:
        t.render(raw, context, where="do[0].run_command")
    assert str(info.value) == "do[0].run_command.argv[2]: 'event' has no attribute 'hots'"


def test_it_names_nested_objects_and_unknown_variables(context: dict[str, Any]) -> None:
    """Nested lookups name their path; a bare unknown name says it is undefined."""
    t = Templates()
    with pytest.raises(TemplateError, match=r"^title: 'event.labels' has no attribute 'nope'$"):
        t.render({"title": "x {{ event.labels.nope }}"}, context)
    with pytest.raises(TemplateError, match=r"^body: 'evnt' is undefined$"):
        t.render({"body": "{{ evnt.host }}"}, context)


def test_it_refuses_undefined_values_inside_native_containers(context: dict[str, Any]) -> None:
    """`{{ [event.x] }}` must not smuggle an Undefined object into the parameters."""
    with pytest.raises(TemplateError, match="'event' has no attribute 'x'"):
        Templates().render("{{ [event.x] }}", context)


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.__class__ }}",
        "{{ event.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ event.labels.update({'team': 'x'}) }}",
        "{{ event.payload.nested.list.append(4) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_it_blocks_sandbox_escapes_and_mutation(context: dict[str, Any], source: str) -> None:
    """Dunder attributes and mutating methods are refused, and nothing is changed."""
    with pytest.raises(TemplateError, match=r"^argv\[0\]: "):
        Templates().render({"argv": [source]}, context)
    assert context["event"]["labels"]["team"] == "ops"
    assert context["event"]["payload"]["nested"]["list"] == [1, 2, 3]


def test_it_reports_syntax_and_runtime_errors_as_template_errors(context: dict[str, Any]) -> None:
    """Bad syntax and an exception inside an expression both become TemplateError."""
    t = Templates()
    with pytest.raises(TemplateError, match=r"^a: template syntax error at line 1"):
        t.render({"a": "{% if %}"}, context)
    with pytest.raises(TemplateError, match=r"^b: ZeroDivisionError"):
        t.render({"b": "{{ 1 / 0 }}"}, context)


def test_it_caches_compiled_templates_by_source(context: dict[str, Any]) -> None:
    """The second render of a source reuses its compiled form."""
    t = Templates()
    t.render(["{{ event.host }}", "{{ event.host }}", "x {{ rule }}"], context)
    assert set(t._compiled) == {"{{ event.host }}", "x {{ rule }}"}
    compiled = t._compiled["x {{ rule }}"]
    t.render("x {{ rule }}", context)
    assert t._compiled["x {{ rule }}"] is compiled


def test_rendered_text_remembers_its_template(context: dict[str, Any]) -> None:
    """Rendered carries its source, also through copy, pickle and JSON (as plain text)."""
    rendered = Templates().render("h={{ event.host }}", context)
    assert isinstance(rendered, Rendered)
    assert rendered == "h=web-1"
    assert rendered.source == "h={{ event.host }}"
    assert copy.deepcopy(rendered).source == rendered.source
    assert pickle.loads(pickle.dumps(rendered)).source == rendered.source
    assert json.dumps(rendered) == '"h=web-1"'
