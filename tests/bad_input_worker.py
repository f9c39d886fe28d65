"""Runs ``smtp-outage run`` on every file of the bad-input corpus, in one process, and measures each.

Usage: ``python -m tests.bad_input_worker CORPUS_DIR`` (``tests/test_bad_input.py``
starts it as a subprocess). For each ``*.yaml`` in the folder (sorted), it
calls the CLI in process, as ``smtp-outage run FILE --memory --no-report
--out TMP/NAME`` plus the arguments of the file's ``# args:`` line, twice:
once for CPU time (``time.process_time``), once for the peak of Python
allocations (``tracemalloc``). It prints one JSON object per file: ``file``,
``code`` (the exit status, or ``"exception"`` when one escaped), ``stdout``,
``stderr``, ``seconds`` and ``peak_mb``. Paths are given relative to the
corpus folder, its working directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback
import tracemalloc
from pathlib import Path


def header_args(path: Path) -> list[str]:
    """The words of the file's ``# args:`` line, if it has one (read as bytes: any encoding)."""
    for line in path.read_bytes().decode("utf-8", "replace").splitlines()[:5]:
        if line.startswith("# args:"):
            return line.removeprefix("# args:").split()
    return []


def invoke(args: list[str]) -> tuple[int | str, str, str]:
    """The CLI, in this process: exit status, stdout, stderr."""
    from simulator.cli import app

    out, err = io.StringIO(), io.StringIO()
    code: int | str
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app(args=args, prog_name="smtp-outage", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the corpus must never see: report it, go on
            traceback.print_exc(file=err)
            code = "exception"
    return code, out.getvalue(), err.getvalue()


def main(corpus: Path) -> int:
    os.chdir(corpus)
    invoke(["--version"])  # imports and the CLI's first call: not charged to the first file
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(".").glob("*.yaml")):
            extra = [w.format(file=path.name, dir=".", tmp=tmp) for w in header_args(path)]
            args = ["run", path.name, "--memory", "--no-report", *extra]
            if "--out" not in extra:
                args += ["--out", f"{tmp}/{path.stem}"]
            started = time.process_time()
            code, stdout, stderr = invoke(args)
            seconds = time.process_time() - started
            tracemalloc.start()
            invoke(args)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            record = {
                "file": path.name,
                "code": code,
                "stdout": stdout,
                "stderr": stderr,
                "seconds": round(seconds, 4),
                "peak_mb": round(peak / 2**20, 2),
            }
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
