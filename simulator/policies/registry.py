"""The registry of named sender presets (``policy: postfix``).

A preset is a ``Preset``: a user-facing name, a one-line summary, a pydantic
model of its tunable settings (``extra="forbid"``; its defaults are the MTA's
own defaults) and a ``build`` function from those settings to a runtime
``RetryPolicy``. Modules that define presets call ``register()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from .base import RetryPolicy

__all__ = ["Preset", "PRESETS", "register", "preset_names"]


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Preset(Generic[P]):
    """A named retry behaviour of a real MTA or provider.

    ``build`` takes an instance of ``params`` (the preset's own settings model).
    """

    name: str
    summary: str
    params: type[P]
    build: Callable[[P], RetryPolicy]


PRESETS: dict[str, Preset[Any]] = {}
"""Every registered preset by name; each has its own settings model."""


def register(preset: Preset[P]) -> Preset[P]:
    """Add *preset* to the registry; names are unique."""
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is registered twice")
    PRESETS[preset.name] = preset
    return preset


def preset_names() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(PRESETS)
