"""Plugins' own sections of opsmedic.yaml, each validated by the model its plugin declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from opsmedic.config.located import Located, validation_problems
from opsmedic.errors import Problem


class Section(Protocol):
    """What the loader needs of a plugin's SettingsSpec (plugins.py, a layer above config)."""

    @property
    def key(self) -> str: ...

    @property
    def model(self) -> type[BaseModel]: ...


def validate_sections(
    data: Mapping[str, Any], located: Located, sections: Sequence[Section]
) -> tuple[dict[str, BaseModel], list[Problem]]:
    """Each section validated by its model, keyed by its top-level key, with every problem
    located; a section the file does not write holds its model's defaults."""
    instances: dict[str, BaseModel] = {}
    problems: list[Problem] = []
    for section in sections:
        try:
            instances[section.key] = section.model.model_validate(data.get(section.key, {}))
        except ValidationError as exc:
            problems += validation_problems(exc, located, section.model, (section.key,))
    return instances, problems
