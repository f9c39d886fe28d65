"""Building blocks shared by the MTA presets.

* ``PresetParams``: the base of every preset's settings model (frozen,
  ``extra="forbid"``), so a typo in a scenario file is an error.
* ``Phase``: a scan or queue-runner phase, a duration or ``"random"``.
* ``next_tick``: the first tick of a periodic queue scan after a time.
* ``bounces_at_once``: the per-MTA reading of a 5xx reply (reference
  section 8: Postfix treats a 5xx greeting like a 4xx one, Exim bounces).
* ``warning_due``: when the next delay warning of a time list is due.
* ``default_next_mx`` and friends: when an MTA tries the next MX host
  (reference section 8).
* ``settings_label``: the ``name(key=value,...)`` label of changed settings.
* ``PresetPolicy``: the frozen runtime policy object every preset builds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from ..durations import format_duration, parse_duration, parse_duration_list
from .base import Failure, FailureKind, PolicyState, Stage, Timeouts
from .simulate import gives_up_after

__all__ = [
    "DurationOrRandom",
    "Phase",
    "PresetParams",
    "PresetPolicy",
    "bounces_at_once",
    "changed_settings",
    "default_next_mx",
    "describe_params",
    "per_host_next_mx",
    "next_tick",
    "parse_phase",
    "resolve_phase",
    "settings_label",
    "shows_durations",
    "warning_due",
]


class PresetParams(BaseModel):
    """Base of every preset's settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_F = TypeVar("_F", bound=Callable[[Any], Any])
_DURATION_PARSERS: set[Callable[[Any], Any]] = {parse_duration, parse_duration_list}


def shows_durations(func: _F) -> _F:
    """Mark a field parser whose values are seconds, for ``describe_params`` and labels."""
    _DURATION_PARSERS.add(func)
    return func


@shows_durations
def parse_phase(value: Any) -> float | str:
    """A phase is ``"random"`` or a duration (``0``, ``150s``, ``15m``)."""
    if isinstance(value, str) and value.strip().lower() == "random":
        return "random"
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"a phase is a duration such as 0, 150s or 15m, or the word random; got {value!r}") from None


DurationOrRandom = Annotated[float | Literal["random"], BeforeValidator(parse_phase)]
"""A pydantic field type: seconds (``"15m"``-style accepted) or the word ``random``."""

Phase = DurationOrRandom
"""Where a periodic scan's grid sits, relative to time 0 (or ``random``)."""


def resolve_phase(phase: float | str, period: float, rng: random.Random) -> float:
    """The phase in seconds; ``"random"`` draws a whole second in ``[0, period)``."""
    if phase == "random":
        return float(rng.randrange(max(1, int(period))))
    return float(phase) % period


def next_tick(after: float, period: float, phase: float, not_before: float | None = None) -> float:
    """First tick ``s = phase + k*period`` with ``s > after`` and ``s >= not_before``.

    Ticks are counted from the sending MTA's start (time 0), so a message
    that arrives mid-interval waits for the grid, as it does for a real
    queue manager or queue runner.
    """
    lower = after if not_before is None else max(after, not_before)
    k = math.floor((lower - phase) / period)
    tick = phase + k * period
    while tick <= after or (not_before is not None and tick < not_before):
        k += 1
        tick = phase + k * period
    return tick


def bounces_at_once(failure: Failure, *, soft_stages: frozenset[Stage] = frozenset()) -> bool:
    """True when a 5xx reply makes this MTA bounce now.

    *soft_stages* are the stages at which this MTA treats a 5xx like a 4xx
    (Postfix's ``smtp_skip_5xx_greeting``; qmail's greeting and HELO).
    """
    return failure.is_permanent and failure.stage not in soft_stages


def warning_due(times: tuple[float, ...], sent: int) -> float | None:
    """Age at which warning number ``sent + 1`` is due, or ``None`` if off.

    *times* is a list of ages, as Exim's ``delay_warning`` (``4h:8h:24h``):
    a warning at each, then repeating the gap between the last two (or the
    single value). An empty list or a single ``0`` means no warnings.
    """
    if not times or times[-1] <= 0:
        return None
    if sent < len(times):
        return times[sent]
    step = times[-1] - times[-2] if len(times) > 1 else times[0]
    if step <= 0:
        return None
    return times[-1] + (sent - len(times) + 1) * step


def default_next_mx(failure: Failure) -> bool:
    """Whether the MTA tries the next MX host after *failure*: RFC 5321, Postfix and Exim.

    Connection failures (refused, or a timeout connecting or waiting for the
    greeting) move on; so do a 4xx reply at any stage, a timeout and a
    connection lost before the final dot. A 5xx never moves on, and neither
    does a deferral without a connection (the MTA's own retry state said
    wait) nor an expiry.
    """
    if failure.kind is FailureKind.SUSPENDED:
        return False
    if failure.kind in (FailureKind.REFUSED, FailureKind.TIMEOUT) and failure.stage in (Stage.CONNECT, Stage.GREETING):
        return True
    if failure.kind is FailureKind.PERMFAIL:
        return False
    if failure.kind is FailureKind.DROPPED:
        return failure.stage is not Stage.DOT
    return failure.kind in (FailureKind.TEMPFAIL, FailureKind.TIMEOUT)


def per_host_next_mx(failure: Failure) -> bool:
    """``default_next_mx``, and a host skipped for its own retry state moves on to the next MX host.

    For MTAs that keep retry state per host (Exim's hints database,
    Sendmail's host status): a host in retry wait is skipped and the other
    hosts are tried, subject to their own retry state. An expiry never moves on.
    """
    if failure.kind is FailureKind.SUSPENDED:
        return not failure.expiry
    return default_next_mx(failure)


def _is_duration_parser(func: Any) -> bool:
    try:
        return func in _DURATION_PARSERS
    except TypeError:  # an unhashable validator
        return False


def _shows_durations(info: FieldInfo) -> bool:
    return any(isinstance(m, BeforeValidator) and _is_duration_parser(m.func) for m in info.metadata)


def _label_value(value: Any, durations: bool) -> str:
    """One setting as written in a label: durations as ``5m``, lists with ``:``, no spaces."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ":".join(_label_value(v, durations) for v in value) or "none"
    if durations and isinstance(value, (int, float)):
        return format_duration(float(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace(" ", "")


def settings_label(name: str, settings: dict[str, str], first: str = "") -> str:
    """``name``, or ``name(first;key=value,...)`` with the keys sorted.

    *settings* are already formatted; *first* is a leading part that is
    always written (a schedule's gaps), separated from the settings by ``;``.
    """
    pairs = ",".join(f"{key}={settings[key]}" for key in sorted(settings))
    if not first and not pairs:
        return name
    inner = f"{first};{pairs}" if first and pairs else first or pairs
    return f"{name}({inner})"


_MISSING = object()


def _default_of(model: type[BaseModel], name: str, info: FieldInfo) -> Any:
    """The validated default of a field (``_MISSING`` for a required one)."""
    if info.is_required():
        return _MISSING
    raw = info.get_default(call_default_factory=True)
    try:
        return getattr(model.model_validate({name: raw}), name)
    except ValidationError:
        return raw


def changed_settings(params: BaseModel) -> dict[str, str]:
    """The settings of *params* that differ from its model's defaults, formatted for a label."""
    model = type(params)
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        value = getattr(params, name)
        if name not in params.model_fields_set and not info.is_required():
            continue  # never given: the default
        if value == _default_of(model, name, info):
            continue
        out[name] = _label_value(value, _shows_durations(info))
    return out


def describe_params(params: BaseModel) -> dict[str, Any]:
    """Settings as shown by ``policies show``: durations formatted (``5m``), the rest as is."""
    out: dict[str, Any] = {}
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        durations = _shows_durations(info)
        if durations and isinstance(value, float):
            out[name] = format_duration(value)
        elif durations and isinstance(value, tuple):
            out[name] = ",".join(format_duration(v) for v in value) or "none"
        else:
            out[name] = value
    return out


P = TypeVar("P", bound=BaseModel)
"""A preset's settings model."""


@dataclass(frozen=True)
class PresetPolicy(Generic[P]):
    """A named MTA's retry behaviour: what ``Preset.build`` returns.

    ``params`` are the preset's validated settings (its own model, the type
    parameter). ``make_state`` is the MTA's runtime state class; it gets the
    policy and the per-sender ``random.Random``. ``mx_rule`` says when the
    MTA tries the next MX host (``default_next_mx`` unless the MTA differs);
    ``shares_host_failure`` is True for MTAs whose later messages in a queue
    run do not connect again to a host that just failed; ``serial_rounds``
    for MTAs whose retry rounds go out one message at a time (Postfix).
    """

    name: str
    source: str
    params: P
    make_state: Callable[[PresetPolicy[P], random.Random], PolicyState]
    timeouts: Timeouts = field(default_factory=Timeouts)
    mx_rule: Callable[[Failure], bool] = default_next_mx
    shares_host_failure: bool = False
    serial_rounds: bool = False

    @cached_property
    def label(self) -> str:
        """``postfix``, or ``postfix(maximal_queue_lifetime=1d)`` with the settings changed from the defaults."""
        return settings_label(self.name, changed_settings(self.params))

    @cached_property
    def gives_up_after(self) -> float | None:
        """Seconds after arrival at which a message whose every attempt fails bounces (None: not in 30 days)."""
        return gives_up_after(self)

    def next_mx_allowed(self, failure: Failure) -> bool:
        """Whether this MTA tries the next MX host after *failure*."""
        return not failure.expiry and self.mx_rule(failure)

    def start(self, rng: random.Random) -> PolicyState:
        """Fresh runtime state for one sending MTA."""
        return self.make_state(self, rng)
