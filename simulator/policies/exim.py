"""Exim 4: retry rules, per-host retry records shared by all messages, queue runners.

Source: Exim ``src/src/retry.c`` (``retry_update``), ``readconf.c`` and
``configure.default``; the Exim specification (chapters "Retry configuration",
"SMTP processing", "Main configuration", "The smtp transport"); Debian's
``exim4-config`` (retry rule) and ``/etc/init.d/exim4`` (``QUEUEINTERVAL='30m'``).
See retry-policies.md section 2.

What is modelled:

* A host error (refused, connect or greeting timeout, any error to the
  greeting or EHLO, a lost connection before the final dot, a timeout after
  DATA) writes the host's retry record, keyed by host and shared by every
  message of this MTA. A 4xx or timeout after MAIL, DATA or the dot (or a
  lost connection after the dot) is a message error, keyed by host and
  message. A 4xx to RCPT is a recipient error (keyed here by destination and
  message: the simulator does not see recipient addresses).
* ``retry_update``: the first rule whose cutoff the failing interval has not
  passed gives the next try; the failing interval counts from the record's
  first failure (for non-host errors, from arrival if that is earlier);
  ``retry_interval_max`` caps every gap; records not updated for
  ``retry_data_expire`` are forgotten.
* Retries happen on the queue-runner grid (``queue_runner`` from time 0 plus
  ``queue_runner_phase``): the first run at or after the retry time.
* A host in retry wait is skipped ("retry time not reached") and the
  destination's other MX hosts are tried, subject to their own retry
  records; the message waits only when every host waits, until the
  earliest of their retry times. A new message whose every known host is
  in retry wait is not tried on arrival. A message queued for longer than
  the final cutoff is tried anyway and bounces if that fails.
* Past the final cutoff the host record is "expired": the failing message
  bounces ("retry timeout exceeded") once every host of the destination is
  expired, and with ``delay_after_cutoff`` messages bounce without an
  attempt while every host is expired and waiting for its post-cutoff retry
  time; then one attempt is made.
* A message queued longer than the final cutoff is looked at by the first
  queue run after that moment even while its host waits, and bounces
  ("retry timeout exceeded") if that attempt fails: the real Exim 4.96
  bounced it there, not at the host's next retry time.
* A 5xx at any stage, the greeting included, bounces.
* Delay warnings (``delay_warning`` time list, Exim's colon syntax) are
  checked when a delivery defers.
* Several messages attempted at the same simulated instant behave like one
  queue run: the first failure updates the host record, the others do not
  update it again (in Exim they would have found the host in retry wait).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from ..durations import Duration, parse_duration
from ._common import (
    Phase,
    PresetParams,
    PresetPolicy,
    next_tick,
    per_host_next_mx,
    resolve_phase,
    shows_durations,
    warning_due,
)
from .base import Decision, Failure, FailureKind, MessageView, Stage, Timeouts
from .exim_rules import DEFAULT_RULES, format_retry_rules, next_gap, parse_retry_rules
from .simple import permanent_decision

__all__ = ["EximParams", "build_exim", "parse_time_list"]

SOURCE = (
    "Exim src/src/retry.c retry_update, readconf.c, configure.default (default rule "
    "F,2h,15m; G,16h,1h,1.5; F,4d,6h); Exim specification chapters Retry configuration, SMTP "
    "processing, Main configuration, The smtp transport; Debian exim4 QUEUEINTERVAL=30m. "
    "retry-policies.md section 2. Recipient retry records keyed by message, not address [I]."
)

_HOST, _MESSAGE, _RECIPIENT = "host", "message", "recipient"


@shows_durations
def parse_time_list(value: Any) -> tuple[float, ...]:
    """Exim's time list: ``24h`` or ``4h:8h:24h`` (colons; commas also accepted)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part for part in value.replace(",", ":").split(":") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected a time list such as 24h or 4h:8h:24h, got {value!r}")
    times = tuple(parse_duration(item) for item in items)
    if any(b <= a for a, b in pairwise(times)):
        raise ValueError("delay_warning times must increase, e.g. 4h:8h:24h")
    return times


class EximParams(PresetParams):
    """Exim's retry-related defaults (names as in the Exim specification)."""

    retry_rule: str = Field(DEFAULT_RULES, description="the retry rule list for every host and error")
    retry_interval_max: Duration = Field(86400.0, description="cap on any retry gap (at most 24h)")
    retry_data_expire: Duration = Field(604800.0, description="retry records older than this are ignored")
    delay_warning: Annotated[tuple[float, ...], BeforeValidator(parse_time_list)] = Field(
        (86400.0,), description="ages for delay warnings, the last gap repeating; 0 = off"
    )
    delay_after_cutoff: bool = Field(True, description="bounce new mail at once to a host past its final cutoff")
    queue_runner: Duration = Field(1800.0, description="queue runner interval (exim -q30m, Debian's default)")
    queue_runner_phase: Phase = Field(0.0, description="offset of the queue runs from time 0, or random")
    connect_timeout: Duration = Field(300.0, description="smtp transport connect_timeout")
    command_timeout: Duration = Field(300.0, description="smtp transport command_timeout (also the greeting)")
    final_timeout: Duration = Field(600.0, description="smtp transport final_timeout (reply to the dot)")

    @field_validator("retry_rule")
    @classmethod
    def _rules(cls, value: str) -> str:
        try:
            return format_retry_rules(parse_retry_rules(value))
        except ValueError as exc:
            raise PydanticCustomError("exim_rule", "{msg}", {"msg": str(exc)}) from None

    @field_validator("retry_interval_max")
    @classmethod
    def _cap(cls, value: float) -> float:
        if value <= 0 or value > 86400:
            raise PydanticCustomError(
                "exim_interval_max", "retry_interval_max must be greater than 0s and at most 24h (Exim's limit)"
            )
        return value

    @field_validator("queue_runner")
    @classmethod
    def _runner(cls, value: float) -> float:
        if value <= 0:
            raise PydanticCustomError("exim_runner", "queue_runner must be greater than 0s, e.g. 30m (exim -q30m)")
        return value


def _error_class(failure: Failure) -> str:
    """Exim's split of temporary errors into host, message and recipient errors."""
    if failure.kind in (FailureKind.REFUSED, FailureKind.SUSPENDED):
        return _HOST
    if failure.stage in (Stage.CONNECT, Stage.GREETING, Stage.EHLO):
        return _HOST
    if failure.kind is FailureKind.DROPPED:
        return _MESSAGE if failure.stage is Stage.DOT else _HOST
    if failure.stage is Stage.RCPT:
        return _RECIPIENT
    if failure.kind is FailureKind.TIMEOUT and failure.stage not in (Stage.MAIL, Stage.DOT):
        return _HOST
    return _MESSAGE


@dataclass
class _Record:
    """A retry record in Exim's hints database."""

    first_failed: float
    last_try: float
    next_try: float
    stamp: float
    expired: bool = False


class EximState:
    """One Exim instance: its retry hints database and queue-runner grid."""

    def __init__(self, policy: PresetPolicy[EximParams], rng: random.Random) -> None:
        self._p = policy.params
        self._rules = parse_retry_rules(self._p.retry_rule)
        self._rng = rng
        self._phase = resolve_phase(self._p.queue_runner_phase, self._p.queue_runner, rng)
        self._records: dict[tuple[str, ...], _Record] = {}
        self._dest_hosts: dict[str, list[str]] = {}

    # -- hints database -------------------------------------------------

    def _read(self, key: tuple[str, ...], now: float) -> _Record | None:
        rec = self._records.get(key)
        if rec is not None and now - rec.stamp > self._p.retry_data_expire:
            del self._records[key]
            return None
        return rec

    def _see(self, dest: str, host: str) -> None:
        hosts = self._dest_hosts.setdefault(dest, [])
        if host not in hosts:
            hosts.append(host)

    def _host_records(self, dest: str, now: float) -> list[_Record | None]:
        return [self._read(("host", h), now) for h in self._dest_hosts.get(dest, [])]

    def _final_cutoff(self) -> float | None:
        return self._rules[-1].cutoff if self._rules else None

    def _tick(self, now: float, not_before: float) -> float:
        return next_tick(now, self._p.queue_runner, self._phase, not_before=not_before)

    def _update(self, key: tuple[str, ...], msg: MessageView, now: float, host_error: bool) -> tuple[_Record, bool]:
        """``retry_update`` for one retry item; returns the record and whether it timed out."""
        rec = self._read(key, now)
        if rec is None:
            rec = self._records[key] = _Record(now, now, now, now)
        failing = now - rec.first_failed
        if not host_error:
            failing = max(failing, now - msg.arrival)
        rule = next((r for r in self._rules if failing <= r.cutoff), None)
        timed_out = False
        if rule is not None:
            rec.expired = False
        else:
            rule = self._rules[-1] if self._rules else None
            rec.expired = timed_out = True
        final = self._final_cutoff()
        if (
            rule is not None
            and not rec.expired
            and msg.arrival <= rec.first_failed
            and final is not None
            and now - msg.arrival > final
        ):
            timed_out, rule = True, None  # on the queue longer than the final cutoff
        if rule is None:
            next_try = now
        else:
            gap = next_gap(rule, rec.next_try - rec.last_try, now - rec.last_try, self._rng)
            next_try = now + min(gap, self._p.retry_interval_max)
        rec.last_try, rec.next_try, rec.stamp = now, next_try, now
        return rec, timed_out

    # -- the PolicyState contract ---------------------------------------

    def on_arrival(self, msg: MessageView, now: float) -> Decision:
        """Deliver at once, unless every known host of the destination is in retry wait."""
        recs = self._host_records(msg.destination, now)
        if not recs or any(rec is None or rec.next_try <= now for rec in recs):
            return Decision.retry(now)
        waiting = [rec for rec in recs if rec is not None]
        if all(rec.expired for rec in waiting):
            if self._p.delay_after_cutoff:
                return Decision.give_up("retry time not reached for any host after a long failure period", "4.4.7")
            return Decision.retry(now)
        return Decision.retry(self._tick(now, min(rec.next_try for rec in waiting)))

    def _all_wait(self, dest: str, now: float, *, expired: bool = False) -> bool:
        """True when every known host of *dest* is in retry wait (and, with *expired*, past its cutoff)."""
        recs = self._host_records(dest, now)
        return bool(recs) and all(
            rec is not None and rec.next_try > now and (rec.expired or not expired) for rec in recs
        )

    def before_connect(self, msg: MessageView, host: str, now: float) -> Failure | None:
        """Skip a host whose retry time has not come (no connection is made)."""
        self._see(msg.destination, host)
        rec = self._read(("host", host), now)
        if rec is None or rec.next_try <= now:
            return None
        final = self._final_cutoff()
        if rec.expired:
            if not self._p.delay_after_cutoff:
                return None
            if self._all_wait(msg.destination, now, expired=True):
                return Failure.suspended(host, "retry time not reached for any host after a long failure period")
            return Failure.suspended(host, "retry time not reached (host past its retry cutoff)")
        if final is not None and now - msg.arrival > final:
            return None  # queued longer than the final cutoff: try anyway
        if self._all_wait(msg.destination, now):
            return Failure.suspended(host, "retry time not reached for any host")
        return Failure.suspended(host, "retry time not reached")

    def after_failure(self, msg: MessageView, failure: Failure, now: float) -> Decision:
        """Update the retry record of the failing item; bounce, or wait for the next queue run."""
        self._see(msg.destination, failure.host)
        if failure.is_permanent:
            return permanent_decision(failure)
        kind = _error_class(failure)
        host_key = ("host", failure.host)
        if kind == _HOST:
            rec = self._read(host_key, now)
            if failure.kind is FailureKind.SUSPENDED or (rec is not None and rec.last_try == now):
                return self._waiting(msg, now)
            rec, timed_out = self._update(host_key, msg, now, host_error=True)
            others = [r for r in self._host_records(msg.destination, now) if r is not rec]
            if timed_out and all(r is not None and r.expired for r in others):
                return Decision.give_up("retry timeout exceeded", "4.4.7")
            return self._defer(msg, self._host_wait(msg.destination, now), now)
        key = ("msg", failure.host, msg.id) if kind == _MESSAGE else ("rcpt", msg.destination, msg.id)
        rec, timed_out = self._update(key, msg, now, host_error=False)
        if timed_out:
            return Decision.give_up("retry timeout exceeded", "4.4.7")
        return self._defer(msg, rec.next_try, now)

    def _earliest_try(self, dest: str, now: float) -> float:
        """The earliest retry time among the destination's known hosts (``now`` for a host without one)."""
        return min((rec.next_try if rec is not None else now for rec in self._host_records(dest, now)), default=now)

    def _waiting(self, msg: MessageView, now: float) -> Decision:
        """The message found a host in retry wait (no connection, or a failure shared in this run).

        It bounces only when every known host of the destination is past its
        cutoff and waiting (``delay_after_cutoff``); otherwise it waits for
        the earliest host retry time, while the engine may go on to the
        next MX host at once.
        """
        if self._p.delay_after_cutoff and self._all_wait(msg.destination, now, expired=True):
            return Decision.give_up("retry time not reached for any host after a long failure period", "4.4.7")
        return self._defer(msg, self._host_wait(msg.destination, now), now)

    def _host_wait(self, dest: str, now: float) -> float:
        """How long a message waits for the destination's hosts: their earliest retry time, or less.

        A message that waits for a host wakes no later than the queue run
        after the host's own cutoff run (the first run at which the host has
        been failing for longer than the final cutoff). By then the message
        that started the host's failures has been tried past its own cutoff
        and, failing, has expired the host record, so this one bounces one
        queue run later, without connecting: Exim looks at every message on
        every queue run, and found the host expired.
        """
        earliest = self._earliest_try(dest, now)
        final = self._final_cutoff()
        if final is None:
            return earliest
        for rec in self._host_records(dest, now):
            if rec is None or rec.expired:
                continue
            run = self._tick(now, rec.first_failed + final)
            if run - rec.first_failed <= final:
                run += self._p.queue_runner
            earliest = min(earliest, run + self._p.queue_runner)
        return earliest

    def _defer(self, msg: MessageView, retry_time: float, now: float) -> Decision:
        due = warning_due(self._p.delay_warning, msg.warnings)
        warn = due is not None and now - msg.arrival >= due
        return Decision.retry(min(self._tick(now, retry_time), self._ultimate_run(msg, now)), warn=warn)

    def _ultimate_run(self, msg: MessageView, now: float) -> float:
        """The first queue run at which *msg* has been queued longer than the final cutoff.

        That run tries the message even though its host waits (the ultimate
        address timeout, ``retry_ultimate_address_timeout``), and bounces it
        if the attempt fails: a message past the cutoff bounces at the next
        queue run, not at the host's next retry time.
        """
        final = self._final_cutoff()
        if final is None:
            return float("inf")
        run = self._tick(now, msg.arrival + final)
        return run if run - msg.arrival > final else run + self._p.queue_runner

    def after_success(self, msg: MessageView, host: str, now: float) -> None:
        """A delivery to *host* deletes its host record and this message's records."""
        for key in (("host", host), ("msg", host, msg.id), ("rcpt", msg.destination, msg.id)):
            self._records.pop(key, None)


def build_exim(params: EximParams) -> PresetPolicy[EximParams]:
    """The ``exim`` preset."""
    timeouts = Timeouts(
        connect=params.connect_timeout,
        greeting=params.command_timeout,
        command=params.command_timeout,
        data_done=params.final_timeout,
    )
    return PresetPolicy("exim", SOURCE, params, EximState, timeouts, mx_rule=per_host_next_mx, shares_host_failure=True)
