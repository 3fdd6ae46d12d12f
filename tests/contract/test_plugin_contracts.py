"""Every built-in plugin keeps the contract third-party ones must keep too."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from opsmedic.config.types import HttpUrlText, Secret, Strict
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Outcome, Run, RunState
from opsmedic.plugins import ActionContext, ActionSpec, ProbeSpec, SettingsSpec
from opsmedic.runtime import build, build_registry, plugin_sections

REGISTRY = build_registry(load_entry_points=False)
DOCS = Path(__file__).parent.parent.parent / "docs"
SPECS: list[ActionSpec[Any] | ProbeSpec[Any]] = [
    *REGISTRY.actions.values(),
    *REGISTRY.probes.values(),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_params_refuse_unknown_keys(spec: ActionSpec[Any] | ProbeSpec[Any]) -> None:
    """A typo in a rule or probe is an error with close matches, never silently ignored."""
    assert spec.params.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_the_entry_point_is_one_coroutine_taking_params_and_a_context(
    spec: ActionSpec[Any] | ProbeSpec[Any],
) -> None:
    entry = spec.run if isinstance(spec, ActionSpec) else spec.check
    assert inspect.iscoroutinefunction(entry)
    assert len(inspect.signature(entry).parameters) == 2


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_plugin_is_documented(spec: ActionSpec[Any] | ProbeSpec[Any]) -> None:
    doc = DOCS / ("actions.md" if isinstance(spec, ActionSpec) else "probes.md")
    assert f"`{spec.name}`" in doc.read_text()


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_plugin_module_follows_the_naming_pattern(
    spec: ActionSpec[Any] | ProbeSpec[Any],
) -> None:
    """Action modules export ACTION, Params and `run`; probe modules PROBE, Params and `check`."""
    is_action = isinstance(spec, ActionSpec)
    entry = spec.run if isinstance(spec, ActionSpec) else spec.check
    module = inspect.getmodule(entry)
    assert module is not None
    assert getattr(module, "ACTION" if is_action else "PROBE") is spec
    assert module.Params is spec.params
    assert getattr(module, "run" if is_action else "check") is entry


class Pager(Strict):
    """A third party's section of opsmedic.yaml."""

    url: HttpUrlText
    token: Secret
    retries: int = Field(2, ge=0)


class PageParams(Strict):
    summary: str = ""


SEEN: list[ActionContext] = []


async def page(params: PageParams, ctx: ActionContext) -> Outcome:
    SEEN.append(ctx)
    return Outcome(ok=True, message="paged")


PAGE = ActionSpec("page", PageParams, page, settings=SettingsSpec("pager", Pager))
RULE = "- name: r\n  when: {source: test}\n  do:\n    - page: {summary: s}\n"


def third_party(tmp_path: Path, config: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULE)
    (tmp_path / "opsmedic.yaml").write_text(config)
    return tmp_path / "opsmedic.yaml"


async def test_a_third_party_action_gets_its_own_validated_settings(tmp_path: Path) -> None:
    SEEN.clear()
    registry = build_registry(load_entry_points=False)
    registry.actions["page"] = PAGE
    path = third_party(tmp_path, "pager:\n  url: https://pager.example/api\n  token: {file: t}\n")
    rt = build(path, registry=registry, with_store=False)
    (rule,) = rt.ruleset
    event = Event(source="test")
    run = Run(rule="r", event_id=event.id, target=event.target, fingerprint=event.fingerprint,
              actions=rule.actions)  # fmt: skip
    await rt.engine.executor.execute(run, rule, event)
    assert run.state is RunState.SUCCEEDED, run.message
    (ctx,) = SEEN
    assert isinstance(ctx.settings, Pager)
    assert (ctx.settings.url, ctx.settings.retries) == ("https://pager.example/api", 2)
    assert ctx.settings.token.file == tmp_path / "t"  # beside the config, like every secret
    assert not hasattr(ctx, "config") and not hasattr(ctx, "registry")


def test_a_bad_value_in_a_third_party_section_is_an_error_at_its_place(tmp_path: Path) -> None:
    registry = build_registry(load_entry_points=False)
    registry.actions["page"] = PAGE
    path = third_party(tmp_path, "log: {level: info}\npager:\n  url: pager\n  tokn: {env: T}\n")
    with pytest.raises(ConfigError) as info:
        build(path, registry=registry, with_store=False)
    found = [str(p).removeprefix(str(tmp_path) + "/") for p in info.value.problems]
    assert found == [
        "opsmedic.yaml:3:8: pager.url: Value error, expected an http:// or https:// URL with a"
        " host, got 'pager'",
        "opsmedic.yaml:3:3: pager.token: required field is missing",
        "opsmedic.yaml:4:3: pager.tokn: unknown field 'tokn' (did you mean token?)",
    ]
    # A top-level key neither the config nor a plugin claims: refused, with the close match.
    path.write_text("pagr: {}\npager: {url: 'https://p.example', token: {env: T}}\n")
    with pytest.raises(ConfigError) as info:
        build(path, registry=registry, with_store=False)
    (problem,) = info.value.problems
    assert str(problem).endswith(
        "opsmedic.yaml:1:1: pagr: unknown field 'pagr' (did you mean pager?)"
    )


def test_the_read_commands_see_every_section_the_registry_declares() -> None:
    """plugin_sections() lists the built-ins' sections without building every plugin; it must
    be the registry's list, or a read command would refuse a section `run` accepts."""
    declared = {(spec.key, spec.model) for spec in REGISTRY.settings()}
    assert {(spec.key, spec.model) for spec in plugin_sections(load_entry_points=False)} == declared
