"""Read a scenario file and report every mistake as ``file:line: path: message``.

The file is parsed once (``simulator.schema.document``: libyaml's C parser
where available, duplicate keys, alias bombs and absurd nesting refused)
and pydantic's error locations are mapped onto the nodes of that parse so
each problem names the line to change, and its error types are put in the
tool's own words: an unknown key names the keys allowed there (and the one
meant, when it is close), a wrong value the values allowed, a wrong type what
was expected with an example. Once the schema accepts the file,
``simulator.schema.validate`` finds everything else (cross-field rules,
traffic CSVs). Nothing here raises anything but ``ScenarioError``.
"""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ForwardRef, Literal, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo

from .errors import Problem, ScenarioError
from .policies import PRESETS
from .policies.exim import EximParams
from .scenario import Scenario
from .schema.document import DocumentError, parse
from .schema.library import resolve
from .schema.validate import dotted, line_of, validate

__all__ = ["load_scenario", "line_of", "schema_problems"]


def load_scenario(path: str | Path, *, seed: int | None = None) -> Scenario:
    """Load and validate a scenario file (or ``incident:NAME`` from the library); *seed* overrides the file's seed.

    Raises ``ScenarioError`` listing every problem with file and line.
    """
    path = resolve(path)
    shown = str(path)
    text = _read(path, shown)
    try:
        document = parse(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, at an offset
        at = text.count("\n", 0, exc.position) + 1
        raise ScenarioError(
            [Problem(shown, at, "", f"not valid YAML: character #x{exc.character:04x}: {exc.reason}")]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ScenarioError([Problem(shown, line, "", f"not valid YAML: {problem}")]) from None
    except DocumentError as exc:
        raise ScenarioError([Problem(shown, exc.line, "", exc.message)]) from None
    root, data = document.root, document.data
    if not isinstance(data, dict):
        raise ScenarioError(
            [Problem(shown, 1, "", "a scenario is a YAML mapping with name, clock, servers, timeline and senders")]
        )
    twice = duplicate_keys(root, shown)
    if twice:
        raise ScenarioError(twice)
    if seed is not None:
        data["seed"] = seed
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(schema_problems(exc, shown, root)) from None
    scenario._source = path.resolve()
    problems = validate(scenario, root=root, shown=shown)
    if problems:
        raise ScenarioError(problems)
    scenario.mark_validated()
    return scenario


def duplicate_keys(root: yaml.Node | None, shown: str) -> list[Problem]:
    """A key written twice in one mapping: YAML keeps the last silently, so the first would never count."""
    found: list[Problem] = []
    visited: set[int] = set()

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if id(node) in visited:  # an alias: its anchor was checked where it was written
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        found.append(
                            Problem(
                                shown,
                                line,
                                dotted((*path, key.value)),
                                f"written twice (first on line {seen[key.value]}); YAML would keep only this one, "
                                "so merge the two into one entry",
                            )
                        )
                    else:
                        seen[key.value] = line
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return found


_MAX_BYTES = 64 * 1024 * 1024
"""A scenario file larger than this is refused before it is read (a 250,000-entry timeline is about 20 MB)."""


def _read(path: Path, shown: str) -> str:
    """The file's text: UTF-8 (a BOM allowed), no NUL characters, at most ``_MAX_BYTES``."""
    try:
        if path.is_dir():
            raise ScenarioError([Problem(shown, None, "", "is a folder; give a scenario file (.yaml)")])
        if path.stat().st_size > _MAX_BYTES:
            raise ScenarioError([Problem(shown, None, "", f"is larger than {_MAX_BYTES // 2**20} MB; not a scenario")])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError([Problem(shown, None, "", "no such file")]) from None
    except OSError as exc:
        raise ScenarioError([Problem(shown, None, "", f"cannot read it: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        hint = ""
        if raw[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
            hint = " (it looks like UTF-32: save it as UTF-8)"
        elif raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " (it looks like UTF-16: save it as UTF-8)"
        raise ScenarioError(
            [Problem(shown, line, "", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}{hint}")]
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ScenarioError([Problem(shown, line, "", "a NUL character: this is not a text file")])
    return text


def schema_problems(
    exc: ValidationError, shown: str, root: yaml.Node | None, model: type[BaseModel] = Scenario
) -> list[Problem]:
    """One problem per mistake pydantic found in a file of *model* (a scenario unless said), in the tool's words."""
    return [
        Problem(shown, line_of(root, loc) if root is not None else None, dotted(loc), message)
        for loc, message in _explain(exc.errors(), model, ())
    ]


# ---------------------------------------------------------------- walking the model along an error's location
@dataclass(frozen=True, slots=True)
class _Walk:
    """An error's location in the file's terms, and the types met on the way."""

    loc: tuple[Any, ...]  #: the location without pydantic's union labels
    types: tuple[Any, ...]  #: the type at each prefix of ``loc`` (``types[0]`` is the root)
    branch: tuple[Any, ...] | None  #: ``loc`` up to a plain (untagged) union, if the error is in one of its members
    inside: bool  #: the error is about the inside of that member's value, not its shape


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """A type without ``Annotated``, and whether that wrapper chose union members by a tag."""
    tagged = False
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tagged = tagged or any(_is_discriminator(m) for m in args[1:])
        tp = args[0]
    return tp, tagged


def _is_discriminator(meta: Any) -> bool:
    return isinstance(meta, Discriminator) or (isinstance(meta, FieldInfo) and meta.discriminator is not None)


def _members(tp: Any) -> list[Any] | None:
    """The members of a union that needs a label (``X | None`` does not), else ``None``."""
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    members = [m for m in get_args(tp) if m is not type(None)]
    return members if len(members) > 1 else None


def _plain(tp: Any) -> Any:
    """A type without ``Annotated`` and without the ``None`` of ``X | None``."""
    tp, _ = _unwrap(tp)
    if get_origin(tp) in (Union, types.UnionType) and _members(tp) is None:
        tp, _ = _unwrap(next(m for m in get_args(tp) if m is not type(None)))
    return tp


def _literal_values(tp: Any) -> list[Any]:
    tp = _plain(tp)
    return list(get_args(tp)) if get_origin(tp) is Literal else []


def _field(model: type[BaseModel], key: Any) -> tuple[str, FieldInfo] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name, info
    return None


def _field_type(model: type[BaseModel], name: str, info: FieldInfo) -> Any:
    tp = info.annotation
    if isinstance(tp, ForwardRef):  # a model named before it is defined (``relay: RelaySpec | None``)
        try:
            tp = get_type_hints(model, include_extras=True)[name]
        except (NameError, TypeError, KeyError):
            return Any
    if info.discriminator is not None or any(_is_discriminator(m) for m in info.metadata):
        return Annotated[tp, Discriminator("tagged")]  # remember the tag for the walk
    return tp


def _member(members: list[Any], label: Any, tagged: bool) -> Any:
    """The union member pydantic names *label* in a location."""
    for m in members:
        inner, _ = _unwrap(m)
        tags = [t.tag for t in get_args(m)[1:] if isinstance(t, Tag)] if get_origin(m) is Annotated else []
        if label in tags:
            return inner
        if (
            tagged
            and isinstance(inner, type)
            and issubclass(inner, BaseModel)
            and any(label in _literal_values(f.annotation) for f in inner.model_fields.values())
        ):
            return inner
    if tagged or not isinstance(label, str):
        return Any
    for m in members:
        inner, _ = _unwrap(m)
        origin = get_origin(inner)
        if (
            (label.startswith("list[") and origin is list)
            or (label.startswith("dict[") and origin is dict)
            or (label.startswith("literal[") and origin is Literal)
            or (label.startswith("function-") and get_origin(m) is Annotated)
            or getattr(inner, "__name__", None) == label
        ):
            return m
    return Any


def _walk(root: Any, raw: tuple[Any, ...]) -> _Walk:
    loc: list[Any] = []
    seen: list[Any] = [root]
    branch: tuple[Any, ...] | None = None
    inside = False
    tp = root
    for i, part in enumerate(raw):
        tp, tagged = _unwrap(tp)
        members = _members(tp)
        if members is None and get_origin(tp) in (Union, types.UnionType):
            tp, more = _unwrap(next(m for m in get_args(tp) if m is not type(None)))
            tagged = tagged or more
            members = _members(tp)
            seen[-1] = tp
        if members is not None:  # pydantic names the member it tried: not a key of the file
            if not tagged:
                branch, inside = tuple(loc), i + 1 < len(raw)
            tp = _member(members, part, tagged)
            seen[-1] = tp
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            found = _field(tp, part)
            tp = _field_type(tp, *found) if found is not None else Any
        elif get_origin(tp) in (list, tuple, set, frozenset) and isinstance(part, int):
            args = get_args(tp)
            tp = args[0] if args else Any
        elif get_origin(tp) is dict:
            args = get_args(tp)
            tp = args[1] if len(args) == 2 else Any
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union", "json-or-python")):
            continue
        else:
            tp = Any
        loc.append(part)
        seen.append(tp)
    return _Walk(tuple(loc), tuple(seen), branch, inside)


# ---------------------------------------------------------------- explaining errors
def _explain(errors: list[Any], root: Any, prefix: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, message)`` for each error, the attempts at a plain union's members merged into one."""
    order: list[tuple[Any, ...] | list[tuple[tuple[Any, ...], str]]] = []  # a union's location, or explained errors
    unions: dict[tuple[Any, ...], list[tuple[_Walk, dict[str, Any]]]] = {}
    for err in errors:
        walk = _walk(root, tuple(err["loc"]))
        if walk.branch is None:
            order.append(_explain_one(err, walk, prefix))
            continue
        key = (*prefix, *walk.branch)
        if key not in unions:
            unions[key] = []
            order.append(key)
        unions[key].append((walk, err))
    result: list[tuple[tuple[Any, ...], str]] = []
    for entry in order:
        if isinstance(entry, list):
            result.extend(entry)
            continue
        attempts = unions[entry]
        inside = [(walk, err) for walk, err in attempts if walk.inside]
        if inside:  # the value has the shape of a member: what is wrong is inside it
            for walk, err in inside:
                result.extend(_explain_one(err, walk, prefix))
        else:
            result.append((entry, _merged(attempts)))
    return result


def _explain_one(err: dict[str, Any], walk: _Walk, prefix: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = (*prefix, *walk.loc)
    if kind in ("bad_override", "bad_exim"):
        nested = _policy_errors(err)
        if nested is not None:
            model, errors, rename = nested
            renamed = [{**e, "loc": tuple(rename.get(p, p) for p in e["loc"])} for e in errors]
            return _explain(renamed, model, loc)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        tags = _tags(walk.types[-1], key)
        if kind == "union_tag_not_found":
            return [((*loc, key), f"required key is missing; use one of: {', '.join(tags)}")]
        return [((*loc, key), _unknown_value(ctx.get("tag"), tags))]
    return [(loc, _message(err, walk))]


def _policy_errors(err: dict[str, Any]) -> tuple[type[BaseModel], list[Any], dict[str, str]] | None:
    """The errors of a preset's overrides or an Exim rule's settings, which the policy schema folds into one."""
    data = err.get("input")
    if not isinstance(data, dict):
        return None
    model: type[BaseModel]
    if err["type"] == "bad_override" and data.get("preset") in PRESETS:
        model, values, rename = PRESETS[data["preset"]].params, {k: v for k, v in data.items() if k != "preset"}, {}
    elif err["type"] == "bad_exim":
        values = {"retry_rule": data.get("exim"), **{k: v for k, v in data.items() if k != "exim"}}
        model, rename = EximParams, {"retry_rule": "exim"}
    else:
        return None
    try:
        model.model_validate(values)
    except ValidationError as exc:
        return model, exc.errors(), rename
    return None


def _tags(union: Any, key: str) -> list[str]:
    """The tags a tagged union accepts under *key*."""
    tp, _ = _unwrap(union)
    tags: list[str] = []
    for m in get_args(tp):
        tags += [str(t.tag) for t in get_args(m)[1:] if isinstance(t, Tag)] if get_origin(m) is Annotated else []
        inner, _ = _unwrap(m)
        if isinstance(inner, type) and issubclass(inner, BaseModel) and key in inner.model_fields:
            tags += [str(v) for v in _literal_values(inner.model_fields[key].annotation)]
    return tags


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(value: Any, choices: list[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_value(value: Any, allowed: list[str]) -> str:
    return f"unknown value {_got(value)}{_did_you_mean(value, allowed)}; use one of: {', '.join(allowed)}"


def _keys(model: Any) -> list[str]:
    model = _plain(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items() if not info.exclude]
    return []


_LISTS = {
    "profile": "a list of 24 numbers, e.g. [0.2, 0.2, ...]",
    "domains": "a list of domains, e.g. [atnex.example]",
    "servers": "a list of servers, e.g. - {name: mx, domains: [atnex.example]}",
    "senders": "a list of sender groups, e.g. - {name: corp, policy: postfix, traffic: {rate: 2/h}}",
    "timeline": "a list of events, e.g. - {at: 2011-10-26 10:38, server: mx, event: down}",
    "windows": "a list of windows, e.g. - {label: outage, from: 2011-10-26 10:38, to: end}",
    "at": "a list of timestamps, e.g. [2011-10-26 10:38, 2011-10-26 11:00]",
    "mx": "a list of server names, most preferred first, e.g. [mx1, mx2]",
    "recipients": "a list of addresses, e.g. [alice@atnex.example]",
}
"""What a list field holds, by key, for ``expected ...`` messages."""

_SCALARS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "datetime_parsing": "a timestamp such as 2011-10-26 10:38",
    "datetime_type": "a timestamp such as 2011-10-26 10:38",
    "datetime_from_date_parsing": "a timestamp such as 2011-10-26 10:38",
}
"""What a scalar type error expected, in users' words."""


def _expected(err: dict[str, Any], walk: _Walk) -> str | None:
    """What a type error expected (``a whole number``), or ``None`` when it is not a type error."""
    kind = err["type"]
    keys = [p for p in walk.loc if isinstance(p, str)]
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind in ("list_type", "tuple_type", "set_type", "iterable_type"):
        if len(keys) >= 2 and keys[-2] == "thresholds":
            return 'a condition or a list of them, e.g. ["count==0"]'
        return _LISTS.get(keys[-1] if keys else "", "a list, e.g. [a, b]")
    if kind in ("dict_type", "mapping_type"):
        if keys and keys[-1] == "thresholds":
            return 'a mapping from metrics to conditions, e.g. {stranded: ["count==0"]}'
        return "a mapping of keys to values, e.g. {key: value}"
    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        model = _plain(walk.types[-1])
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return "a mapping of keys to values"
        fields = model.model_fields.items()
        keys = [info.alias or name for name, info in fields if not info.exclude]
        required = [info.alias or name for name, info in fields if info.is_required()]
        need = f" ({', '.join(required)} required)" if required else ""
        return f"a mapping with the keys {', '.join(keys)}{need}"
    return None


def _bound(kind: str, ctx: dict[str, Any]) -> str | None:
    words = {
        "greater_than_equal": ("ge", "at least"),
        "greater_than": ("gt", "greater than"),
        "less_than_equal": ("le", "at most"),
        "less_than": ("lt", "less than"),
        "multiple_of": ("multiple_of", "a multiple of"),
    }
    if kind not in words:
        return None
    key, phrase = words[kind]
    limit = ctx.get(key)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    return f"must be {phrase} {limit}"


def _message(err: dict[str, Any], walk: _Walk) -> str:
    """One error in the tool's words."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    msg = str(err["msg"])
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "extra_forbidden":
        key = walk.loc[-1] if walk.loc else ""
        allowed = _keys(walk.types[-2]) if len(walk.types) >= 2 else []
        listed = f"; the keys here are: {', '.join(allowed)}" if allowed else "; remove it"
        return f"unknown key {str(key)!r}{_did_you_mean(str(key), allowed)}{listed}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        allowed = [str(v) for v in _literal_values(walk.types[-1])] or re.findall(
            r"'([^']*)'", str(ctx.get("expected"))
        )
        return _unknown_value(value, allowed)
    if kind == "unknown_preset" and "name" in ctx:
        choices = [c.strip() for c in str(ctx.get("choices", "")).split(",")]
        return msg + _did_you_mean(ctx["name"], choices)
    bound = _bound(kind, ctx)
    if bound is not None:
        return f"{bound}, got {_got(value)}"
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        actual = ctx.get("actual_length")
        what = "at least" if kind == "too_short" else "at most"
        items = "entry" if limit == 1 else "entries"
        return f"needs {what} {limit} {items}, got {actual or 'none'}"
    if kind in ("string_too_short", "string_too_long"):
        limit = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        what = "at least" if kind == "string_too_short" else "at most"
        return f"must be {what} {limit} characters long, got {_got(value)}"
    expected = _expected(err, walk)
    if expected is not None:
        return f"expected {expected}, got {_got(value)}"
    if msg.startswith("Input should be "):  # a pydantic type not mapped above: keep its meaning, not its voice
        return f"expected {msg.removeprefix('Input should be ')}, got {_got(value)}"
    return msg


def _merged(attempts: list[tuple[_Walk, dict[str, Any]]]) -> str:
    """One message for a value no member of a plain union accepted: ``expected A, B or C, got X``."""
    literals: list[str] = []
    phrases: list[str] = []
    for walk, err in attempts:
        if err["type"] == "literal_error":
            literals += [str(v) for v in _literal_values(walk.types[-1])] or re.findall(
                r"'([^']*)'", str((err.get("ctx") or {}).get("expected"))
            )
            continue
        expected = _expected(err, walk)
        if expected is None:
            message = _message(err, walk)
            found = re.fullmatch(r"expected (.+?), got .*", message, flags=re.DOTALL)
            expected = found.group(1) if found else message
        phrases.append(expected)
    choices = literals + phrases
    said = choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"
    return f"expected {said}, got {_got(attempts[0][1].get('input'))}"
