"""Sender retry policies: the runtime contract, generic policies and named presets."""

from .base import (
    Decision,
    Failure,
    FailureKind,
    MessageView,
    PolicyState,
    RetryPolicy,
    Stage,
    Timeouts,
)
from .registry import PRESETS, Preset, preset_names, register
from .simple import Exponential, Schedule
from .spec import ExponentialSpec, PolicySpec, PresetSpec, ScheduleSpec, build_policy
from . import presets as _presets  # noqa: F401  (registers the MTA and provider presets)

__all__ = [
    "Decision",
    "Failure",
    "FailureKind",
    "MessageView",
    "PolicyState",
    "RetryPolicy",
    "Stage",
    "Timeouts",
    "PRESETS",
    "Preset",
    "preset_names",
    "register",
    "Exponential",
    "Schedule",
    "ExponentialSpec",
    "PolicySpec",
    "PresetSpec",
    "ScheduleSpec",
    "build_policy",
]
