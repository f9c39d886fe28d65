"""Read a scenario file and report every mistake as ``file:line: path: message``.

pydantic's error locations are mapped onto the nodes of ``yaml.compose()`` so
each problem names the line to change. Nothing here raises anything but
``ScenarioError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import Problem, ScenarioError
from .scenario import Scenario, check_semantics

__all__ = ["load_scenario", "line_of"]


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at *loc*, or of its nearest existing parent.

    Location parts that are not keys of the current mapping (pydantic's union
    tags, for example) are skipped.
    """
    node = root
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    # An unknown key is reported at the key itself.
                    best = key.start_mark.line + 1
                    node = value
                    if not isinstance(value, yaml.ScalarNode):
                        best = max(best, value.start_mark.line + 1) if isinstance(value, yaml.SequenceNode) else best
                    break
            else:
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                best = node.start_mark.line + 1
            else:
                break
        else:
            continue
    return best


_TAGGED = {
    "policy": {"preset", "retry", "exponential", "exim"},
    "fault": {"reply", "accept-then-drop", "slow", "disk-full", "greylist", "capacity", "fail-first"},
}
_TIMELINE_TAGS = {
    "up", "down", "crash", "backup", "backups", "restore", "recover-disk", "disk-lost", "fault", "clear-faults", "dns",
}


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminated-union tags, which are not keys of the file."""
    out: list[Any] = []
    dropped_after = -1
    for part in loc:
        if out and isinstance(part, str) and dropped_after != len(out):
            prev = out[-1]
            tagged = prev in _TAGGED and part in _TAGGED[prev]
            if tagged or (
                isinstance(prev, int) and len(out) >= 2 and out[-2] == "timeline" and part in _TIMELINE_TAGS
            ):
                dropped_after = len(out)
                continue
        if isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        out.append(part)
    return tuple(out)


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_scenario(path: str | Path, *, seed: int | None = None) -> Scenario:
    """Load and validate a scenario file; *seed* overrides the file's seed.

    Raises ``ScenarioError`` listing every problem with file and line.
    """
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(shown, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(shown, None, "", f"cannot read it: {exc}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([Problem(shown, line, "", f"not valid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(shown, 1, "", "a scenario is a YAML mapping with name, clock, servers, timeline and senders")])
    if seed is not None:
        data["seed"] = seed
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _strip_tags(tuple(err["loc"]))
            if err["type"] == "union_tag_invalid":
                loc = (*loc, err["ctx"]["discriminator"].strip("'"))
            problems.append(Problem(shown, line_of(root, loc), _path(loc), _message(err)))
        raise ScenarioError(problems) from None
    problems = [Problem(shown, line_of(root, loc), _path(loc), msg) for loc, msg in check_semantics(scenario)]
    if problems:
        raise ScenarioError(problems)
    scenario._source = path.resolve()
    return scenario


def _message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling; extra keys are not allowed)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "union_tag_invalid":
        ctx = err["ctx"]
        msg = f"unknown value {ctx['tag']!r}; use one of: {ctx['expected_tags'].replace(chr(39), '')}"
    return msg
