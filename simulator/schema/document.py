"""A YAML document parsed once, safely, with the lines of its nodes.

``parse(text)`` composes the node tree (libyaml's C parser when PyYAML was
built with it, ``yaml.CSafeLoader``; the pure-Python ``SafeLoader``
otherwise) and constructs the data from that same tree, so a scenario is
parsed once and its errors can still name lines. Only YAML's safe types are
built (a ``!!python/...`` tag is an error). Before anything is constructed,
the tree is checked for what a hand-written scenario never holds and a
hostile one might:

* nesting deeper than ``MAX_DEPTH`` levels;
* aliases that expand the document far beyond its own size (an "alias
  bomb"): more than ``MAX_EXPANSION`` values, or a recursive alias;
* a number longer than ``MAX_DIGITS`` digits.

Each is a ``DocumentError`` with the 1-based line of the node at fault.
(A key given twice in one mapping is reported by the loader, with its path.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Document", "DocumentError", "parse", "MAX_DEPTH", "MAX_EXPANSION", "MAX_DIGITS", "LOADER"]

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The loader used: libyaml's parser with PyYAML's safe constructor, when available."""

MAX_DEPTH = 64
"""Levels of nesting allowed (a scenario needs fewer than ten)."""
MAX_EXPANSION = 1_000_000
"""Values the aliases of a document may add beyond the document's own nodes."""
MAX_DIGITS = 100
"""Digits in one number (Python refuses to read integers of more than 4,300)."""

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class DocumentError(ValueError):
    """A document that is valid YAML but not one to read: *line* (1-based, or None) and what is wrong."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Document:
    """The node tree (for lines) and the data built from it; both ``None`` for an empty document."""

    root: yaml.Node | None
    data: Any


def parse(text: str) -> Document:
    """Parse *text* once. Raises ``yaml.YAMLError`` for invalid YAML, ``DocumentError`` for the rest."""
    loader = LOADER(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:  # the pure-Python composer; libyaml stops at its own depth limit
            raise DocumentError(None, f"the document is nested too deeply (more than {MAX_DEPTH} levels)") from None
        if root is None:
            return Document(None, None)
        check(root)
        return Document(root, loader.construct_document(root))
    finally:
        loader.dispose()


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return [n for pair in node.value for n in pair]


def _check_number(node: yaml.Node) -> None:
    if len(node.value) > MAX_DIGITS:
        raise DocumentError(
            _line(node), f"a number of {len(node.value)} characters; numbers here have at most {MAX_DIGITS}"
        )


def check(root: yaml.Node) -> None:
    """Check a composed tree (see the module notes); raises ``DocumentError``.

    One walk over the distinct nodes, without recursion: aliases share
    nodes, so each node's expanded size and depth are computed once.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    entered: set[int] = set()
    distinct = 0
    scalar = yaml.ScalarNode
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is not None:  # leaving: every child is done
            size[key] = 1 + sum(size[id(c)] for c in children)
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
            if height[key] > MAX_DEPTH:
                raise DocumentError(
                    _line(node), f"nested more than {MAX_DEPTH} levels deep; a scenario needs far fewer"
                )
            if size[key] > MAX_EXPANSION + distinct:
                raise DocumentError(
                    _line(node),
                    f"its aliases expand it to more than {MAX_EXPANSION:,} values (an alias bomb?); "
                    "write the values out or use fewer aliases",
                )
            continue
        if key in size:
            continue
        distinct += 1
        if isinstance(node, scalar):
            if node.tag in (_INT, _FLOAT):
                _check_number(node)
            size[key] = height[key] = 1
            continue
        if key in entered:
            raise DocumentError(_line(node), "an alias refers to a node that contains it (a recursive alias)")
        entered.add(key)
        children = _children(node)
        stack.append((node, children))
        stack.extend((child, None) for child in reversed(children) if id(child) not in size)
