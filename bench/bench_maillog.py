"""Mail log parsing speed and memory, against a bare line-reading loop over the same file.

Run:  python bench/bench_maillog.py [--quick] [--keep DIR]

Writes a synthetic Postfix maillog and an Exim mainlog of about a million
lines each (``simulator.maillog.synth``: a week of a busy server, with its
crash and restart; ``--quick``: about 200,000) into a temporary folder (or
DIR, reused when already there), and a gzip copy of the Postfix one. Then,
in interleaved rounds, for each file:

* reference: ``for line in open_text(path)``, the same decoding the parser
  reads through, doing nothing with the lines;
* parse: ``for record in read_log([path], fmt)``: every line parsed into
  its typed record;

and prints lines per second in wall time and in CPU time of this process
(the machine is shared: CPU time is what the parser itself costs), the
medians over the rounds, and parse / reference. Once, it times the whole
import (``import_log``: organisations, pseudonyms, rows) and measures peak
memory with ``tracemalloc``: parsing a tenth of the file and all of it peak
alike (bounded), while the import keeps one row per message.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from simulator.maillog import ImportOptions, import_log, read_log
from simulator.maillog.reader import open_text
from simulator.maillog.synth import SampleLog, write_sample

TARGET = 200_000  # lines per second


def make(folder: Path, quick: bool) -> dict[str, tuple[Path, str]]:
    """The benchmark's logs, written once (a week at 1050/h: about 1.2 M Postfix lines)."""
    days = 1.2 if quick else 7.0
    files = {}
    for fmt, rate, name in (("postfix", 1050.0, "maillog"), ("exim", 3000.0, "mainlog")):
        path = folder / f"{name}-{'quick' if quick else 'full'}"
        if not path.exists():
            began = time.perf_counter()
            with path.open("w", encoding="utf-8") as f:
                n = write_sample(f, SampleLog(days=days, rate=rate, seed=7, format=fmt))
            print(f"wrote {path}: {n:,} lines in {time.perf_counter() - began:.0f}s")
        files[f"{fmt}"] = (path, fmt)
    plain = files["postfix"][0]
    packed = plain.with_name(plain.name + ".gz")
    if not packed.exists():
        with plain.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
    files["postfix, gzip"] = (packed, "postfix")
    return files


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    """(count, wall seconds, CPU seconds) of *work*."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = work()
    return n, time.perf_counter() - wall, time.process_time() - cpu


def read_only(path: Path) -> int:
    n = 0
    with open_text(path) as f:
        for _ in f:
            n += 1
    return n


def parse(path: Path, fmt: str) -> int:
    n = 0
    for _ in read_log([path], fmt, year=2024):  # type: ignore[arg-type]
        n += 1
    return n


def peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="about 200,000 lines instead of a million")
    ap.add_argument("--keep", type=Path, help="write the logs here and reuse them on later runs")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = make(folder, args.quick)
        rows = {name: {"ref": [], "parse": [], "ref_cpu": [], "parse_cpu": []} for name in files}
        lines = {}
        for _ in range(args.rounds):
            for name, (path, fmt) in files.items():
                n, wall, cpu = timed(lambda p=path: read_only(p))
                lines[name] = n
                rows[name]["ref"].append(n / wall)
                rows[name]["ref_cpu"].append(n / cpu)
                _, wall, cpu = timed(lambda p=path, f=fmt: parse(p, f))
                rows[name]["parse"].append(n / wall)
                rows[name]["parse_cpu"].append(n / cpu)
        print()
        print(f"{'log':<16}{'lines':>11}{'read/s':>13}{'parse/s wall':>14}{'parse/s CPU':>13}{'parse/read':>12}")
        for name, r in rows.items():
            med = {k: statistics.median(v) for k, v in r.items()}
            print(
                f"{name:<16}{lines[name]:>11,}{med['ref']:>13,.0f}{med['parse']:>14,.0f}{med['parse_cpu']:>13,.0f}"
                f"{med['parse'] / med['ref']:>12.3f}"
            )
        path, fmt = files["postfix"]
        options = ImportOptions(format="postfix", year=2024, key=b"bench")
        imp = None

        def run_import() -> int:
            nonlocal imp
            imp = import_log([path], options)
            return len(imp.rows)

        messages, wall, cpu = timed(run_import)
        n = lines["postfix"]
        print(
            f"{'import':<16}{n:>11,}{'':>13}{n / wall:>14,.0f}{n / cpu:>13,.0f}"
            f"{'':>12}  ({messages:,} messages, {len(imp.groups) if imp else 0} groups)"
        )
        print(
            f"target: {TARGET:,} lines/s parsed (the slowest parse above: "
            f"{min(statistics.median(r['parse_cpu']) for r in rows.values()):,.0f}/s CPU, "
            f"{min(statistics.median(r['parse']) for r in rows.values()):,.0f}/s wall)"
        )
        tenth = path.with_name(path.name + ".tenth")
        with path.open("rb") as src, tenth.open("wb") as dst:
            for i, raw in enumerate(src):
                if i >= n // 10:
                    break
                dst.write(raw)
        small, large = peak(lambda: parse(tenth, "postfix")), peak(lambda: parse(path, "postfix"))
        print(
            f"peak memory parsing: {small / 1e3:.0f} kB for a tenth of the lines, {large / 1e3:.0f} kB for all of them"
        )
        whole = peak(lambda: import_log([path], options))
        print(
            f"peak memory importing all of them: {whole / 1e6:.1f} MB ({whole / max(messages, 1):.0f} bytes a message)"
        )
        tenth.unlink()


if __name__ == "__main__":
    main()
