"""Columnar files of a run: ``events.parquet`` and ``messages.parquet`` (``simulator.records.parquet``)."""
