"""Golden results: a run's ``summary.json`` compared with a committed expected one.

Timing fields (``wall_seconds``) and the transport are left out, so a golden
file recorded over the wire matches an in-memory run of the same scenario
and seed; so are the folder's ``status`` and the ``foreign`` sessions
(traffic from outside the run, which changes no result). A difference is shown one line per changed value, with its path::

    counts.stranded: expected 73, got 79
    windows[3].counts.delivered: expected 0, got 6
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import Problem, ScenarioError

__all__ = ["IGNORED", "comparable", "differences", "load_golden", "write_golden", "golden_path"]

IGNORED = ("wall_seconds", "transport", "status", "foreign")
"""Summary fields that change from run to run (or between transports) without the results changing."""


def golden_path(scenario_path: str | Path) -> Path:
    """Where a scenario's golden summary sits by convention: ``name.yaml`` -> ``name.golden.json``."""
    path = Path(scenario_path)
    return path.with_name(f"{path.stem}.golden.json")


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """*summary* without the fields in ``IGNORED``."""
    return {k: v for k, v in summary.items() if k not in IGNORED}


def _show(value: Any, width: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """One line per value that differs between *expected* and *actual* (empty when equal)."""
    out: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: expected {_show(expected[key])}, missing")
            elif key not in expected:
                out.append(f"{sub}: not expected, got {_show(actual[key])}")
            else:
                out += differences(expected[key], actual[key], sub)
    elif isinstance(expected, list) and isinstance(actual, list):
        for i in range(max(len(expected), len(actual))):
            sub = f"{path}[{i}]"
            if i >= len(actual):
                out.append(f"{sub}: expected {_show(expected[i])}, missing")
            elif i >= len(expected):
                out.append(f"{sub}: not expected, got {_show(actual[i])}")
            else:
                out += differences(expected[i], actual[i], sub)
    elif expected != actual or (type(expected) is not type(actual) and not _numbers(expected, actual)):
        out.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")
    return out


def _numbers(a: Any, b: Any) -> bool:
    return (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    )


def load_golden(path: str | Path) -> dict[str, Any]:
    """Read a golden summary; a missing or unreadable file is bad input (``ScenarioError``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            [Problem(str(path), None, "", "no such golden file; write it with --update-golden")]
        ) from None
    except (OSError, ValueError) as exc:
        raise ScenarioError([Problem(str(path), None, "", f"cannot read the golden file: {exc}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(str(path), 1, "", "a golden file is a JSON object (a summary.json)")])
    return comparable(data)


def write_golden(path: str | Path, summary: dict[str, Any]) -> Path:
    """Write *summary* (without ``IGNORED`` fields) as the golden file *path*."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(comparable(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
