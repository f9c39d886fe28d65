"""Sender retry policies: the runtime contract, generic policies and named presets."""

from . import presets as _presets  # noqa: F401  (registers the MTA and provider presets)
from .base import (
    Decision,
    Failure,
    FailureKind,
    MessageView,
    PolicyState,
    RetryPolicy,
    RoundState,
    Stage,
    Timeouts,
)
from .registry import PRESETS, Preset, preset_names, register
from .simple import Exponential, Schedule
from .spec import ExponentialSpec, PolicySpec, PresetSpec, ScheduleSpec, build_policy

__all__ = [
    "PRESETS",
    "Decision",
    "Exponential",
    "ExponentialSpec",
    "Failure",
    "FailureKind",
    "MessageView",
    "PolicySpec",
    "PolicyState",
    "Preset",
    "PresetSpec",
    "RetryPolicy",
    "RoundState",
    "Schedule",
    "ScheduleSpec",
    "Stage",
    "Timeouts",
    "build_policy",
    "preset_names",
    "register",
]
