"""Parquet files of a run: ``messages.parquet`` and ``events.parquet``, written in batches with pyarrow.

``messages.parquet`` holds exactly the columns and values of
``messages.csv`` (times as the same ISO 8601 text, counts as integers), so
one reader serves both. ``events.parquet`` is one table for all event types:
a column per field of any event (``t``, ``time``, ``type`` first), empty
where a type has no such field; the ``fault`` object and the ``mx`` list are
JSON text. ``ParquetEventWriter`` is an ``EventSink`` that writes a row
group every ``BATCH`` events, so a run of any size streams its events to
disk; ``iter_parquet_events`` reads them back as the same typed events
``events.jsonl`` gives.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .. import events as ev
from ..events import Event, EventSink

__all__ = [
    "ParquetEventWriter",
    "iter_parquet_events",
    "fold_parquet_events",
    "iter_parquet_attempts",
    "write_messages_parquet",
    "iter_parquet_rows",
    "BATCH",
]

BATCH = 65536
"""Rows per row group."""

_TYPES: dict[str, type[Any]] = {}
_FIELDS: dict[str, pa.DataType] = {}
_JSON = ("fault", "mx")
for _cls in typing.get_args(typing.get_args(ev.Event)[0]):
    _hints = typing.get_type_hints(_cls)
    _TYPES[_cls.__dataclass_fields__["type"].default] = _cls
    for _f in dataclasses.fields(_cls):
        hint = _hints[_f.name]
        if _f.name in _JSON:
            kind = pa.string()
        elif hint is bool:
            kind = pa.bool_()
        elif hint is float:
            kind = pa.float64()
        elif hint in (int, int | None):
            kind = pa.int64()
        else:
            kind = pa.string()
        _FIELDS.setdefault(_f.name, kind)
_ORDER = ["t", "time", "type", *(name for name in _FIELDS if name not in ("t", "time", "type"))]
EVENT_SCHEMA = pa.schema([(name, _FIELDS[name]) for name in _ORDER])
"""One column per field of any event type."""
_TYPE_FIELDS = {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _TYPES.items()}


class ParquetEventWriter:
    """An ``EventSink`` that writes ``events.parquet`` in row groups of ``BATCH`` events, passing each on to *then*."""

    def __init__(self, path: Path, then: EventSink | None = None) -> None:
        self.path = path
        self._writer = pq.ParquetWriter(path, EVENT_SCHEMA, compression="zstd")
        self._batch: list[Event] = []
        self._then = then.emit if then is not None else None
        self.count = 0

    def emit(self, event: Event) -> None:
        """Buffer *event*; write a row group when the buffer is full."""
        self._batch.append(event)
        self.count += 1
        if len(self._batch) >= BATCH:
            self._flush()
        if self._then is not None:
            self._then(event)

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        columns = []
        for name in _ORDER:
            values = [getattr(e, name, None) for e in batch]
            if name in _JSON:
                values = [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]
            columns.append(pa.array(values, type=_FIELDS[name]))
        self._writer.write_table(pa.Table.from_arrays(columns, schema=EVENT_SCHEMA))

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self._flush()
        self._writer.close()


def iter_parquet_events(path: Path) -> Iterator[Event]:
    """The typed events of an ``events.parquet``, in file order, one row group at a time."""
    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        yield from _events_of(_row_group(source, group))


def write_messages_parquet(path: Path, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> None:
    """Write ``messages.parquet``: *rows* as ``messages.csv`` has them, in row groups of ``BATCH``."""
    ints = {"attempts", "copies", "delay_warnings", "connections"}
    schema = pa.schema([(name, pa.int64() if name in ints else pa.string()) for name in columns])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        chunk: list[tuple[Any, ...]] = []
        flush: Callable[[], None]

        def flush() -> None:
            if chunk:
                data = [pa.array([row[k] for row in chunk], type=schema.field(k).type) for k in range(len(columns))]
                writer.write_table(pa.Table.from_arrays(data, schema=schema))
                chunk.clear()

        for row in rows:
            chunk.append(row)
            if len(chunk) >= BATCH:
                flush()
        flush()


def iter_parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``messages.parquet`` as dicts of column name to value, one row group at a time."""
    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        yield from _row_group(source, group).to_pylist()


class _Fold(typing.Protocol):
    def emit(self, event: Event) -> None: ...
    def add_sessions(self, server: str, times: Iterable[float]) -> None: ...
    def add_turned_away(self, server: str, times: Iterable[float]) -> None: ...

    relay_left: dict[str, float]
    bounced: dict[str, float]


def fold_parquet_events(path: Path, fold: _Fold, typed: frozenset[str]) -> None:
    """Fold an ``events.parquet`` into *fold* column by column: sessions and turn-aways per server, relay
    hand-offs, and the events of the types in *typed* as typed events, all in file order."""
    import pyarrow.compute as pc

    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        table = _row_group(source, group, columns=["t", "type", "server", "turned_away", "message", "relay"])
        kind = table.column("type")
        attempts = table.filter(pc.equal(kind, "attempt"))
        servers = attempts.column("server").to_pylist()
        times = attempts.column("t").to_numpy()
        for server in dict.fromkeys(servers):
            fold.add_sessions(server, times[[s == server for s in servers]].tolist())
        away = table.filter(pc.and_(pc.equal(kind, "reply"), pc.fill_null(table.column("turned_away"), False)))
        away_servers = away.column("server").to_pylist()
        away_times = away.column("t").to_numpy()
        for server in dict.fromkeys(away_servers):
            fold.add_turned_away(server, away_times[[s == server for s in away_servers]].tolist())
        handed = pc.or_(
            pc.equal(kind, "relayed"),
            pc.and_(pc.equal(kind, "bounce"), pc.not_equal(pc.fill_null(table.column("relay"), ""), "")),
        )
        left = table.filter(handed)
        for message, t in zip(left.column("message").to_pylist(), left.column("t").to_pylist(), strict=True):
            fold.relay_left.setdefault(message, t)
        bounces = table.filter(pc.equal(kind, "bounce"))
        for message, t in zip(bounces.column("message").to_pylist(), bounces.column("t").to_pylist(), strict=True):
            fold.bounced.setdefault(message, t)
        if pc.any(pc.is_in(kind, pa.array(sorted(typed)))).as_py():
            rows = _row_group(source, group).filter(pc.is_in(kind, pa.array(sorted(typed))))
            for event in _events_of(rows):
                fold.emit(event)


def _events_of(table: pa.Table) -> Iterator[Event]:
    for row in table.to_pylist():
        kind = row["type"]
        values = {name: row[name] for name in _TYPE_FIELDS[kind]}
        for name in _JSON:
            if values.get(name) is not None:
                values[name] = json.loads(values[name])
        yield _TYPES[kind](**values)


def iter_parquet_attempts(path: Path) -> Iterator[tuple[str, float]]:
    """``(message id, t)`` of every ``attempt`` event of an ``events.parquet``, one row group at a time."""
    import pyarrow.compute as pc

    source = pq.ParquetFile(path)
    for group in range(source.num_row_groups):
        table = _row_group(source, group, columns=["t", "type", "message"])
        attempts = table.filter(pc.equal(table.column("type"), "attempt"))
        yield from zip(attempts.column("message").to_pylist(), attempts.column("t").to_pylist(), strict=True)


def _row_group(source: pq.ParquetFile, group: int, columns: list[str] | None = None) -> pa.Table:
    """Row group *group* of *source*, after handing what the previous one left back to the system.

    Arrow's allocator (mimalloc) otherwise keeps the freed buffers of every
    row group read: reading a million-message folder peaked 110 MB higher.
    """
    pa.default_memory_pool().release_unused()
    return source.read_row_group(group, columns=columns)
