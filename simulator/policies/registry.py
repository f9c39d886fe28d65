"""The registry of named sender presets (``policy: postfix``).

A preset is a ``Preset``: a user-facing name, a one-line summary, a pydantic
model of its tunable settings (``extra="forbid"``; its defaults are the MTA's
own defaults) and a ``build`` function from those settings to a runtime
``RetryPolicy``. Modules that define presets call ``register()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from .base import RetryPolicy

__all__ = ["Preset", "PRESETS", "register", "preset_names"]


@dataclass(frozen=True)
class Preset:
    """A named retry behaviour of a real MTA or provider."""

    name: str
    summary: str
    params: type[BaseModel]
    build: Callable[[BaseModel], RetryPolicy]


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    """Add *preset* to the registry; names are unique."""
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is registered twice")
    PRESETS[preset.name] = preset
    return preset


def preset_names() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(PRESETS)
