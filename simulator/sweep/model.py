"""The shapes of a sweep: the file's schema, and the axes, points, metrics and goal made from it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..durations import format_duration, parse_duration
from ..schema.thresholds import Threshold
from .paths import Target

__all__ = [
    "SweepSpec",
    "AxisSpec",
    "ZipSpec",
    "RangeSpec",
    "FindSpec",
    "Axis",
    "Point",
    "MetricSpec",
    "Goal",
    "column_value",
    "show_value",
    "goal_value",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Number = int | float | str


class RangeSpec(_Model):
    """Evenly spaced values from ``from`` to ``to`` (both included) by ``step``, or ``count`` of them."""

    start: Number = Field(alias="from")
    to: Number
    step: Number | None = None
    count: int | None = Field(None, ge=2, le=10000)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> RangeSpec:
        if (self.step is None) == (self.count is None):
            raise PydanticCustomError("range", "give step (e.g. step: 5) or count (e.g. count: 10), not both")
        return self


class AxisSpec(_Model):
    """One axis: a path into the scenario and its values (a list or a range)."""

    path: str
    name: str | None = None
    values: list[Any] | None = Field(None, min_length=1)
    range: RangeSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> AxisSpec:
        if (self.values is None) == (self.range is None):
            raise PydanticCustomError("axis", "give values (a list) or range ({from: 5, to: 50, step: 5}), not both")
        return self


class ZipSpec(_Model):
    """Axes that move together: the first values of each, then the second values, ..."""

    zip: list[AxisSpec] = Field(min_length=2)


class FindSpec(_Model):
    """Goal seeking: the smallest (or largest) value of an axis whose runs meet a target."""

    axis: str
    name: str | None = None
    range: list[Number] = Field(min_length=2, max_length=2)
    metric: str
    target: str
    want: Literal["smallest", "largest"] = "smallest"
    across: Literal["all", "mean"] = "all"
    resolution: Number | None = None


def _axis_kind(value: Any) -> str:
    """An entry of ``axes`` with a ``zip`` key is a zip of axes; anything else is one axis."""
    return "zip" if isinstance(value, dict) and "zip" in value else "axis"


class SweepSpec(_Model):
    """A sweep file as written."""

    name: str | None = None
    description: str = ""
    scenario: str
    seeds: int | list[int] = 1
    transport: Literal["memory", "wire"] = "memory"
    axes: list[
        Annotated[Annotated[ZipSpec, Tag("zip")] | Annotated[AxisSpec, Tag("axis")], Discriminator(_axis_kind)]
    ] = Field(default_factory=list)
    metrics: list[str | dict[str, str]] | dict[str, str] = Field(default_factory=list)
    find: FindSpec | None = None
    keep: bool = False

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and not 1 <= seeds <= 10000:
            raise PydanticCustomError("seeds", "seeds is a number of seeds from 1 to 10000, or a list of seeds")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise PydanticCustomError("seeds", "a list of seeds needs at least one seed and no seed twice")
        return seeds


@dataclass(frozen=True)
class Axis:
    """An axis ready to use: its target in the scenario, the values written there, and how to show them."""

    name: str
    target: Target
    values: tuple[Any, ...]  #: what goes into the scenario data
    unit: str  #: number, duration or text
    line: int | None
    where: str  #: ``axes.0`` or ``axes.1.zip.0``

    def column(self, value: Any) -> float | int | str:
        """The value as it goes in a results column: numbers, durations in seconds, text otherwise."""
        return column_value(value, self.unit)

    def shown(self, value: Any) -> str:
        """The value for people (``6h``, ``40``, ``postfix``)."""
        return show_value(self.column(value), self.unit)


def column_value(value: Any, unit: str) -> float | int | str:
    """*value* as a results column holds it under *unit*."""
    if unit == "duration":
        return parse_duration(value)
    if unit == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def show_value(value: Any, unit: str) -> str:
    """A column value for people."""
    if unit == "duration" and isinstance(value, (int, float)):
        return "never" if math.isinf(value) else format_duration(round(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Point:
    """One combination of axis values."""

    index: int
    values: tuple[tuple[Axis, Any], ...]

    def columns(self) -> dict[str, Any]:
        """Axis name -> column value."""
        return {axis.name: axis.column(v) for axis, v in self.values}

    def label(self) -> str:
        """``per_minute=40, outage=6h``."""
        return ", ".join(f"{axis.name}={axis.shown(v)}" for axis, v in self.values) or "base"


@dataclass(frozen=True)
class MetricSpec:
    """A metric to collect: its column name and the threshold-shaped question that reads it from an analysis."""

    column: str
    threshold: Threshold
    line: int | None


@dataclass(frozen=True)
class Goal:
    """The goal of a ``find:``: the axis searched, its range, and the target its runs must meet."""

    axis: Axis
    low: float
    high: float
    integer: bool
    resolution: float
    target: Threshold
    metric: MetricSpec
    want: str
    across: str
    line: int | None


def goal_value(goal: Goal, x: float) -> Any:
    """The value written into the scenario for the searched axis at *x*."""
    if goal.integer:
        return round(x)
    if goal.axis.unit == "duration" and not goal.axis.target.duration:
        return format_duration(round(x))
    return x
