"""Readable paths into a scenario, for sweep axes: which field a value goes to.

A path is dot-separated, like the paths in error messages, but list entries
may be named instead of numbered:

* ``servers.mx.preference``: a server by its name;
* ``senders.postfix.traffic.rate``, ``senders.*.traffic.rate`` (every group);
* ``senders.mailgun.policy`` (a preset name or a whole policy) and
  ``senders.postfix.policy.maximal_queue_lifetime`` (one override: a preset
  written as a plain name becomes ``{preset: NAME, ...}``);
* ``timeline.fault@mx.fault.per_minute``: a timeline entry by ``EVENT@SERVER``
  (``#2`` for the second such entry), by its 0-based number, or by its note in
  quotes (``timeline."recovery server online".at``);
* ``windows.outage.to``: a window by its label;
* ``outage(crash@mail)``: the length of an outage, from that ``down`` or
  ``crash`` entry to the next ``up`` or ``restore`` of the same server. Setting
  it moves the entry that ends the outage and every later entry by the same
  amount (the rest of the incident keeps its shape).

Paths work on the scenario as read from YAML, before validation: a variant is
the base file's data with the axes' values set, then validated like a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..durations import parse_duration

__all__ = ["PathError", "Target", "parse_target", "fresh"]

_NAMED = {"servers": "name", "senders": "name", "windows": "label"}
_OUTAGE = re.compile(r"^\s*outage\(\s*(.+?)\s*\)\s*$")
_EVENT_AT = re.compile(r"^([a-z-]+)@([a-z0-9][a-z0-9._-]*)(?:#(\d+))?$")


class PathError(ValueError):
    """A path that does not lead to a field of the base scenario; the message says what exists."""


def fresh(value: Any) -> Any:
    """A deep copy of YAML data without shared parts (YAML anchors alias one object)."""
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh(v) for v in value]
    return value


def _split(path: str) -> list[str]:
    """Dot-separated parts; a part in double quotes may hold dots and spaces."""
    parts: list[str] = []
    buf = ""
    quoted = False
    for ch in path:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    if quoted:
        raise PathError(f"unbalanced quote in {path!r}")
    parts.append(buf)
    if any(not p.strip() for p in parts):
        raise PathError(f"empty part in {path!r}; write e.g. servers.mx.preference")
    return [p.strip() for p in parts]


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).strip())


def _select(items: list[Any], key: str, where: str, part: str) -> list[int]:
    """Indices of the list entries *part* names."""
    if part == "*":
        return list(range(len(items)))
    if part.isdigit():
        if int(part) < len(items):
            return [int(part)]
        raise PathError(f"{where} has {len(items)} entries (0 to {len(items) - 1}), not {part}")
    if key == "timeline":
        match = _EVENT_AT.match(part)
        if match:
            event, server, nth = match.group(1), match.group(2), int(match.group(3) or 1)
            found = [
                i
                for i, e in enumerate(items)
                if isinstance(e, dict) and e.get("event") == event and e.get("server") == server
            ]
            if len(found) >= nth:
                if match.group(3) is None and len(found) > 1:
                    raise PathError(
                        f"{len(found)} timeline entries are {event}@{server}; say which with #1 to #{len(found)}, e.g. {event}@{server}#2"
                    )
                return [found[nth - 1]]
            raise PathError(f"no timeline entry {part}; entries are: {', '.join(_entries(items))}")
        found = [i for i, e in enumerate(items) if isinstance(e, dict) and e.get("note") == part]
        if len(found) == 1:
            return found
        raise PathError(
            f"no timeline entry {part!r}; name one by EVENT@SERVER, its note in quotes or its number: {', '.join(_entries(items))}"
        )
    field = _NAMED.get(key)
    if field is not None:
        found = [i for i, e in enumerate(items) if isinstance(e, dict) and str(e.get(field)) == part]
        if found:
            return found
        names = [str(e.get(field)) for e in items if isinstance(e, dict)]
        raise PathError(f"no {key[:-1]} {part!r} in {where}; {key} are: {', '.join(names)}")
    raise PathError(f"{where} is a list: name an entry by its number (0 to {len(items) - 1})")


def _entries(items: list[Any]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, e in enumerate(items):
        if not isinstance(e, dict):
            continue
        name = f"{e.get('event')}@{e.get('server', e.get('domain'))}"
        seen[name] = seen.get(name, 0) + 1
        out.append(f"{i} {name}" + (f"#{seen[name]}" if seen[name] > 1 else ""))
    return out


def _locations(data: Any, parts: list[str], where: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Every concrete location (keys and indices) the readable *parts* lead to in *data*."""
    if not parts:
        return [where]
    part, rest = parts[0], parts[1:]
    shown = ".".join(str(p) for p in where) or "the scenario"
    if isinstance(data, list):
        key = str(where[-1]) if where else ""
        out = []
        for i in _select(data, key, shown, part):
            out += _locations(data[i], rest, (*where, i))
        return out
    if isinstance(data, str) and where and where[-1] in ("policy",):
        data = {"preset": data}  # a preset by name: an override makes it {preset: NAME, key: value}
    if isinstance(data, dict):
        if part in data:
            return _locations(data[part], rest, (*where, part))
        if rest and not any(p == "*" for p in rest):
            return _locations({}, rest, (*where, part))  # a mapping the base leaves out (relay: {policy: ...})
        return [(*where, part)]  # a key the base leaves out: validation says whether it exists
    if data is None and not where:
        raise PathError("the scenario is empty")
    raise PathError(f"{shown} is {data!r}, which has no {part!r}")


def _set(data: dict[str, Any], loc: tuple[Any, ...], value: Any) -> None:
    node: Any = data
    for i, part in enumerate(loc[:-1]):
        child = node[part] if isinstance(node, list) else node.get(part)
        if isinstance(child, str) and part == "policy":
            child = {"preset": child}
            node[part] = child
        elif child is None:
            child = {}
            node[part] = child
        node = child
        if not isinstance(node, (dict, list)):
            raise PathError(f"{'.'.join(map(str, loc[: i + 1]))} is {node!r}, which has no {loc[i + 1]!r}")
    node[loc[-1]] = value


@dataclass(frozen=True)
class Target:
    """Where an axis puts its value in a scenario: a field, or the length of an outage."""

    path: str
    locations: tuple[tuple[Any, ...], ...]  #: the concrete locations in the base data
    outage: tuple[int, int] | None = None  #: the timeline entries that start and end the outage

    @property
    def duration(self) -> bool:
        """Whether the value is a duration whatever its spelling (an outage's length)."""
        return self.outage is not None

    def apply(self, data: dict[str, Any], value: Any) -> None:
        """Set *value* at this target in *data* (a ``fresh`` copy of the base), in place."""
        if self.outage is None:
            for loc in self.locations:
                _set(data, loc, value)
            return
        start_i, end_i = self.outage
        timeline = data["timeline"]
        length = timedelta(seconds=parse_duration(value))
        if length.total_seconds() <= 0:
            raise PathError(f"an outage's length must be more than 0, got {value!r}")
        delta = _timestamp(timeline[start_i]["at"]) + length - _timestamp(timeline[end_i]["at"])
        for entry in timeline[end_i:]:
            entry["at"] = _timestamp(entry["at"]) + delta
            if entry.get("until") is not None:
                entry["until"] = _timestamp(entry["until"]) + delta

    def touches(self, loc: tuple[Any, ...]) -> bool:
        """Whether a problem at *loc* lies in what this target changes."""
        if self.outage is not None:
            return len(loc) >= 2 and loc[0] == "timeline" and isinstance(loc[1], int) and loc[1] >= self.outage[1]
        return any(loc[: len(mine)] == mine or mine[: len(loc)] == loc for mine in self.locations)


def parse_target(path: str, data: dict[str, Any]) -> Target:
    """Resolve the readable *path* against the base scenario's YAML *data*; ``PathError`` says what is wrong."""
    if not isinstance(path, str) or not path.strip():
        raise PathError("write a path such as servers.mx.preference or outage(down@mx)")
    match = _OUTAGE.match(path)
    if match:
        timeline = data.get("timeline") or []
        (start,) = {loc[1] for loc in _locations(timeline, [match.group(1)], ("timeline",))}
        entry = timeline[start]
        if entry.get("event") not in ("down", "crash"):
            raise PathError(f"outage() starts at a down or crash entry; timeline.{start} is {entry.get('event')}")
        end = next(
            (
                i
                for i in range(start + 1, len(timeline))
                if timeline[i].get("server") == entry.get("server") and timeline[i].get("event") in ("up", "restore")
            ),
            None,
        )
        if end is None:
            raise PathError(
                f"the outage at timeline.{start} never ends: add an up or restore entry for {entry.get('server')}"
            )
        return Target(path, (("timeline", end, "at"),), (start, end))
    parts = _split(path)
    if parts[0] not in data and parts[0] not in ("engine", "windows", "thresholds", "timeline"):
        known = ", ".join(k for k in data if isinstance(k, str))
        raise PathError(f"the scenario has no {parts[0]!r}; its keys are: {known}")
    locations = _locations(data, parts, ())
    if not locations:
        raise PathError(f"{path} names no field of the scenario")
    return Target(path, tuple(locations))
