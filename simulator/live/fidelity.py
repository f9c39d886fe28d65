"""A real sending MTA's log next to what a preset predicts against the same server timeline.

``compare_log(log, preset, results)`` reads the sending Postfix's maillog
(``simulator.maillog``: the same parser the log import uses, its sending
side in ``simulator.maillog.sending``) and the results folder of the
``serve`` run it delivered to (the server's states and faults over
simulated time, the speed, and the wall-clock moment of simulated second
0). It replays, in memory and in real seconds, one sending MTA with the
preset against that server's timeline (scaled down by the speed; durations
in faults too), the messages arriving when the log says they did, and lines
up message by message: the real attempts (connected or suspended) and the
model's, how each ended, with a verdict per message and totals (timing
error, final states, connections per retry round).

The scan phase: a real queue manager's scans run on a grid fixed when it
started. Unless the preset names one, ``scan_phase`` is taken from the
retries in the log: each phase they fell on is tried and the one the most
messages agree with is kept. (With ten messages every retry falls on one
phase, the first retry's; a scan of tens of messages can run into the next
second, and the messages it hands out then, and their later retries, are
off the grid.) The real grid slips by +1 s now and then
(``simulator.policies.postfix``), hence the default tolerance of 1 s.

Which message of a round connects and which is suspended depends on the
order of the real scan; only the counts per round are compared.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..api import run_scenario
from ..errors import Problem, ScenarioError
from ..events import AttemptEvent, FaultClearedEvent, FaultEvent, SuspendedEvent, read_events
from ..maillog import LogFormat, SentMessage, read_log, sending_history
from ..policies import PolicySpec, build_policy
from ..scenario import Scenario

__all__ = ["Compared", "Fidelity", "Round", "compare_log", "parse_preset"]

_SPEC: TypeAdapter[Any] = TypeAdapter(PolicySpec)
_FINAL = {"sent": "delivered", "bounced": "bounced", "expired": "bounced", "queued": "queued"}
_DURATION_KEYS = ("delay", "latency", "session_time")


def parse_preset(text: str) -> Any:
    """A policy as ``--preset`` gives it: a preset name or a YAML/JSON mapping (``{preset: postfix, ...}``)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem("--preset", None, "", f"not YAML: {exc}".splitlines()[0])]) from None
    try:
        return _SPEC.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])  # after the policy form's tag (preset, retry, ...)
        raise ScenarioError([Problem("--preset", None, where, first["msg"])]) from None


@dataclass
class Compared:
    """One message: the real attempts and the model's, in seconds from simulated second 0."""

    queue_id: str
    arrived: float
    real: list[tuple[float, bool]]  #: (time, connected)
    model: list[tuple[float, bool]]
    real_final: str  #: sent, bounced, expired, queued
    real_final_at: float | None
    model_final: str  #: delivered, bounced, queued
    model_final_at: float | None
    tolerance: float

    @property
    def errors(self) -> list[float]:
        """|real - model| of each attempt, paired in order."""
        return [abs(r[0] - m[0]) for r, m in zip(self.real, self.model, strict=False)]

    @property
    def same_final(self) -> bool:
        """The same end (sent = delivered; expired or bounced = bounced), at the same time within the tolerance."""
        if _FINAL[self.real_final] != self.model_final:
            return False
        if self.real_final_at is None or self.model_final_at is None:
            return self.real_final_at is None and self.model_final_at is None
        return abs(self.real_final_at - self.model_final_at) <= self.tolerance

    @property
    def verdict(self) -> str:
        """``agrees``, or what differs."""
        why = []
        if len(self.real) != len(self.model):
            why.append(f"{len(self.real)} real attempts, {len(self.model)} predicted")
        late = [e for e in self.errors if e > self.tolerance]
        if late:
            why.append(f"{len(late)} attempt(s) off by more than {self.tolerance:g}s (up to {max(late):g}s)")
        if not self.same_final:
            why.append(f"ended {self.real_final}, predicted {self.model_final}")
        return "agrees" if not why else "differs: " + "; ".join(why)


@dataclass(frozen=True)
class Round:
    """Attempts at one moment: a real round matched with the model's (within the tolerance)."""

    at: float
    real_connected: int
    real_suspended: int
    model_connected: int
    model_suspended: int

    @property
    def ok(self) -> bool:
        """Connections within one of the model's (the real count depends on a race in the queue manager)."""
        return abs(self.real_connected - self.model_connected) <= 1


@dataclass
class Fidelity:
    """The comparison: per message, per round, and what it was made against."""

    log: str
    policy: str
    server: str
    speed: float
    phase: float | None
    phase_source: str
    messages: list[Compared] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    tolerance: float = 1.0

    @property
    def agreeing(self) -> int:
        """Messages whose every attempt and end agree."""
        return sum(1 for m in self.messages if m.verdict == "agrees")

    @property
    def attempts_within(self) -> int:
        """Real attempts within the tolerance of the model's (paired in order, message by message)."""
        return sum(1 for m in self.messages for e in m.errors if e <= self.tolerance)

    def totals(self) -> dict[str, Any]:
        """The numbers of the comparison."""
        errors = [e for m in self.messages for e in m.errors]
        real_c = sum(r.real_connected for r in self.rounds)
        model_c = sum(m[1] for c in self.messages for m in c.model)
        return {
            "messages": len(self.messages),
            "agree": self.agreeing,
            "real_attempts": sum(len(m.real) for m in self.messages),
            "model_attempts": sum(len(m.model) for m in self.messages),
            "real_connections": real_c,
            "model_connections": model_c,
            "timing_error_max": max(errors, default=0.0),
            "timing_error_median": statistics.median(errors) if errors else 0.0,
            "same_final": sum(1 for m in self.messages if m.same_final),
            "rounds": len(self.rounds),
            "rounds_within_one": sum(1 for r in self.rounds if r.ok),
        }

    def lines(self) -> list[str]:
        """The table the ``fidelity`` command prints."""
        out = [
            f"{self.log}: {len(self.messages)} message(s) against {self.policy} on {self.server}'s timeline "
            f"(speed {self.speed:g}); scan phase "
            + (f"{self.phase:g}s ({self.phase_source})" if self.phase is not None else self.phase_source),
            f"{'queue id':<12} {'arrived':>7}  {'real attempts (s; * suspended)':<40} {'model':<40} "
            f"{'max |d|':>7}  {'end real/model':<28} verdict",
        ]
        for m in self.messages:
            err = max(m.errors, default=0.0)
            end = f"{m.real_final} {_s(m.real_final_at)} / {m.model_final} {_s(m.model_final_at)}"
            out.append(
                f"{m.queue_id:<12} {m.arrived:>7g}  {_tries(m.real):<40} {_tries(m.model):<40} {err:>6g}s  "
                f"{end:<28} {m.verdict}"
            )
        t = self.totals()
        out.append(
            f"totals: {t['agree']} of {t['messages']} agree; attempts real {t['real_attempts']}, model "
            f"{t['model_attempts']}; connections real {t['real_connections']}, model {t['model_connections']}; "
            f"timing error max {t['timing_error_max']:g}s, median {t['timing_error_median']:g}s; "
            f"same end {t['same_final']} of {t['messages']}"
        )
        out.append("rounds (s: real connected/suspended, model connected/suspended):")
        for r in self.rounds:
            mark = "ok" if r.ok else "differs"
            out.append(
                f"  {r.at:>7g}  real {r.real_connected}/{r.real_suspended}  model {r.model_connected}/{r.model_suspended}  {mark}"
            )
        out.append(f"  {t['rounds_within_one']} of {t['rounds']} rounds within one connection of the model")
        return out


def _s(t: float | None) -> str:
    return "-" if t is None else f"{t:g}"


def _tries(tries: list[tuple[float, bool]], width: int = 40) -> str:
    text = " ".join(f"{t:g}" + ("" if connected else "*") for t, connected in tries)
    return text if len(text) <= width else text[: width - 3] + "..."


def _load_results(results: Path) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    problems = [f for f in ("summary.json", "timeline.json", "events.jsonl") if not (results / f).exists()]
    if problems:
        raise ScenarioError(
            [Problem(str(results), None, "", f"not a results folder of serve: {', '.join(problems)} missing")]
        )
    summary = json.loads((results / "summary.json").read_text(encoding="utf-8"))
    if "live" not in summary:
        raise ScenarioError(
            [Problem(str(results / "summary.json"), None, "", "not a live run: written by run, not serve")]
        )
    timeline = json.loads((results / "timeline.json").read_text(encoding="utf-8"))
    return summary, timeline, list(read_events(results / "events.jsonl"))


def _pick_server(timeline: dict[str, Any], live: dict[str, Any], history: list[SentMessage], server: str | None) -> str:
    names: list[str] = [str(s["name"]) for s in timeline["servers"]]
    if server is not None:
        if server not in names:
            raise ScenarioError(
                [Problem("--server", None, "", f"no server {server!r}; the run served {', '.join(names)}")]
            )
        return server
    ports = {int(p): str(name) for name, p in live.get("ports", {}).items()}
    for message in history:
        for attempt in message.tries:
            for port, name in ports.items():
                if f":{port}" in attempt.relay or f"]:{port}:" in attempt.text:
                    return name
    return names[0]


def _scaled_fault(fault: dict[str, Any], speed: float) -> dict[str, Any]:
    out = dict(fault)
    for key in _DURATION_KEYS:
        if isinstance(out.get(key), (int, float)):
            out[key] = out[key] / speed
    if isinstance(out.get("per_minute"), int):
        out["per_minute"] = max(1, round(out["per_minute"] * speed))
    return out


def compare_log(
    log: Path | list[Path],
    preset: Any,
    results: Path,
    *,
    server: str | None = None,
    tolerance: float = 1.0,
    log_format: LogFormat = "postfix",
    year: int | None = None,
    zone: tzinfo | None = None,
) -> Fidelity:
    """Compare a sending MTA's log with *preset* (a ``PolicySpec``) against the timeline of a ``serve`` run.

    *year* is the year of the log's first line (syslog has none; by default
    from the file's date), *zone* the log's time zone (by default this
    machine's, where a live run's MTA writes its log).
    """
    paths = log if isinstance(log, list) else [log]
    summary, timeline, events = _load_results(results)
    live = summary["live"]
    speed = float(live["speed"])
    started = datetime.fromisoformat(live["started"]).astimezone(UTC)
    zero = started.replace(microsecond=0)  # log times are whole seconds: count from a whole second
    lead = (started - zero).total_seconds()  # simulated second 0 of the serve run, from there
    history = [m for m in sending_history(read_log(paths, log_format, year=year, zone=zone)) if m.sender]
    if not history:
        raise ScenarioError([Problem(str(paths[-1]), None, "", "no message with a sender was queued in this log")])
    name = _pick_server(timeline, live, history, server)
    spec = next(s for s in timeline["servers"] if s["name"] == name)

    def seconds(at: datetime) -> float:
        aware = at.astimezone() if at.tzinfo is None else at
        return (aware.astimezone(UTC) - zero).total_seconds()

    origin = math.floor(min(0.0, *(seconds(m.arrived) for m in history)))
    policy = build_policy(preset)
    last = max((seconds(t.at) for m in history for t in m.tries), default=0.0)
    end = last - origin + (policy.gives_up_after or 0.0) + 3600.0

    def at(t: float) -> str:
        return (zero + timedelta(seconds=t)).replace(tzinfo=None).isoformat()

    def served(t: float) -> float:  # a time of the serve run's clock, in seconds from the whole second 0
        return lead + t / speed

    clock_start = summary["clock"]["start"]
    served_until = served(float(timeline["clock"]["seconds"]))
    if summary.get("stopped_at"):
        served_until = min(served_until, served(seconds_since(clock_start, summary["stopped_at"])))
    initially = "refuse" if origin < 0 else spec.get("initially", "up")
    entries: list[dict[str, Any]] = []
    if origin < 0 and spec.get("initially", "up") != "refuse":  # mail queued before serve listened
        entries.append(_mode_entry(name, at(served(0.0)), spec.get("initially", "up")))
    for interval in timeline["states"].get(name, []):
        if float(interval["from"]) > 0:
            entries.append(_mode_entry(name, at(served(float(interval["from"]))), interval["state"]))
    entries.append({"at": at(served_until), "server": name, "event": "down", "mode": "refuse", "note": "serve ended"})
    for event in events:
        if isinstance(event, FaultEvent) and event.server == name:
            fault = {
                "at": at(served(event.t)),
                "server": name,
                "event": "fault",
                "fault": _scaled_fault(event.fault, speed),
            }
            if event.until:
                fault["until"] = at(served(seconds_since(clock_start, event.until)))
            entries.append(fault)
        elif isinstance(event, FaultClearedEvent) and event.server == name:
            entries.append({"at": at(served(event.t)), "server": name, "event": "clear-faults"})
    entries.sort(key=lambda e: str(e["at"]))
    stop = at(origin + end)
    timeline_entries = [e for e in entries if str(e["at"]) <= stop]

    def compare(spec_value: Any, phase: float | None, phase_source: str) -> Fidelity:
        scenario = Scenario.model_validate(
            {
                "name": "fidelity",
                "clock": {"start": at(origin), "end": stop},
                "servers": [{"name": name, "domains": spec["domains"], "initially": initially}],
                "timeline": timeline_entries,
                "senders": [
                    {
                        "name": "real",
                        "policy": spec_value,
                        "traffic": {"at": [at(round(seconds(m.arrived))) for m in history], "to": spec["domains"][0]},
                    }
                ],
            }
        )
        run = run_scenario(scenario, transport="memory")
        predicted: dict[str, list[tuple[float, bool]]] = {}
        for event in run.events:
            if isinstance(event, (AttemptEvent, SuspendedEvent)):
                predicted.setdefault(event.message, []).append((event.t + origin, isinstance(event, AttemptEvent)))
        fidelity = Fidelity(
            log=", ".join(str(p) for p in paths),
            policy=build_policy(spec_value).label,
            server=name,
            speed=speed,
            phase=phase,
            phase_source=phase_source,
            tolerance=tolerance,
        )
        for message, record in zip(history, run.records, strict=True):
            model_at = record.accepted_at if record.final_state != "bounced" else record.bounced_at
            fidelity.messages.append(
                Compared(
                    queue_id=message.queue_id,
                    arrived=round(seconds(message.arrived), 3),
                    real=[(round(seconds(t.at), 3), t.connected) for t in message.tries],
                    model=predicted.get(record.message_id, []),
                    real_final=message.final,
                    real_final_at=None if message.final_at is None else round(seconds(message.final_at), 3),
                    model_final="delivered" if record.accepted_at is not None else record.final_state,
                    model_final_at=None if model_at is None else model_at + origin,
                    tolerance=tolerance,
                )
            )
        fidelity.rounds = _rounds(fidelity.messages, tolerance)
        return fidelity

    tried = [compare(*candidate) for candidate in _phases(preset, history, seconds)]
    return max(tried, key=lambda f: (f.agreeing, f.attempts_within))  # the first of the best on a tie


def seconds_since(start: str, when: str) -> float:
    """Seconds from the ISO time *start* to the ISO time *when* (a serve run's simulated clock)."""
    return (datetime.fromisoformat(when) - datetime.fromisoformat(start)).total_seconds()


def _mode_entry(server: str, at: str, state: str) -> dict[str, Any]:
    if state == "up":
        return {"at": at, "server": server, "event": "up"}
    return {"at": at, "server": server, "event": "down", "mode": state}


def _phases(preset: Any, history: list[SentMessage], seconds: Any) -> list[tuple[Any, float | None, str]]:
    """The preset with its scan phase: as given, or each phase the log's retries fell on, the commonest first.

    The real grid is fixed when the queue manager started; its retries are
    logged on it, except those of a round of tens of messages that runs into
    the next second (they, and their later retries, are off the grid). Each
    phase seen is tried; ``compare_log`` keeps the one the most messages
    agree with.
    """
    name = getattr(preset, "preset", None)
    if name not in ("postfix", "postfix-legacy"):
        return [(preset, None, "as the preset has it")]
    settings = preset.params.model_dump(exclude_unset=True)
    if "scan_phase" in settings:
        return [(preset, None, "as given")]
    period = float(preset.params.queue_run_delay)
    retries = [round(seconds(t.at)) for m in history for t in m.tries[1:]]
    if not retries:
        return [(preset, None, "0: no retry in the log")]
    phases = Counter(t % period for t in retries)
    return [
        (
            _SPEC.validate_python({"preset": name, **settings, "scan_phase": phase}),
            phase,
            f"from the retries in the log: {count} of {len(retries)} fell on it",
        )
        for phase, count in sorted(phases.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _rounds(messages: list[Compared], tolerance: float) -> list[Round]:
    """The real rounds (attempts logged in the same second) matched with the model's.

    A real round is matched with the model round at the same time, else with
    the nearest one within the tolerance (the grid's +1 s slip, a first
    attempt logged in the second after the arrival); rounds left over on
    either side are shown with nothing on the other.
    """
    real: Counter[tuple[float, bool]] = Counter()
    model: Counter[tuple[float, bool]] = Counter()
    for m in messages:
        for t, connected in m.real:
            real[(float(math.floor(t)), connected)] += 1
        for t, connected in m.model:
            model[(t, connected)] += 1
    real_times = sorted({t for t, _ in real})
    model_times = sorted({t for t, _ in model})
    pairs: dict[float, float] = {t: t for t in real_times if t in model_times}
    free = [t for t in model_times if t not in pairs.values()]
    for t in real_times:
        if t in pairs:
            continue
        near = min((m for m in free if abs(m - t) <= tolerance), key=lambda m: abs(m - t), default=None)
        if near is not None:
            pairs[t] = near
            free.remove(near)
    rows = [
        Round(
            at=t,
            real_connected=real[(t, True)],
            real_suspended=real[(t, False)],
            model_connected=model[(pairs[t], True)] if t in pairs else 0,
            model_suspended=model[(pairs[t], False)] if t in pairs else 0,
        )
        for t in real_times
    ]
    rows += [
        Round(
            at=t,
            real_connected=0,
            real_suspended=0,
            model_connected=model[(t, True)],
            model_suspended=model[(t, False)],
        )
        for t in free
    ]
    return sorted(rows, key=lambda r: r.at)
