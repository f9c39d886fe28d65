"""Every file of the bad-input corpus (``tests/bad-input/``) is refused the same way: exit 2, one line per
problem naming ``file:line`` (or ``file:`` where no line applies), no traceback, found before any run, in
under a second and 100 MB.

Each corpus file says in its first lines what is wrong with it, the arguments
it is run with (``# args:``, ``{file}`` for the file itself) and the start of
the first line ``smtp-outage run`` must print (``# expect:``, ``*`` for any
text). The UTF-16 and UTF-32 files cannot carry comments; their expectations
are below. One worker process (``tests/bad_input_worker.py``) runs the CLI
on every file and measures each: CPU seconds with ``time.process_time`` and
the peak of Python allocations with ``tracemalloc``. The limits are
ceilings, far above what the files take (about 10 ms and 1 MB each on a
2-core machine), not timing assertions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "bad-input"
FILES = sorted(p.name for p in CORPUS.glob("*.yaml"))
CLASSES = (
    "yaml",
    "schema",
    "sem",
    "rate",
    "profile",
    "work",
    "csv",
    "thr",
    "fault",
    "policy",
    "hostile",
    "encoding",
    "out",
    "args",
)
SECONDS = 1.0  # CPU seconds per file, at most
MEGABYTES = 100.0  # peak Python allocations per file, at most
WITHOUT_COMMENTS = {
    "encoding-utf16.yaml": "encoding-utf16.yaml:1: not UTF-8 text: byte 0xff at offset 0 (it looks like UTF-16",
    "encoding-utf32.yaml": "encoding-utf32.yaml:1: not UTF-8 text: byte 0xff at offset 0 (it looks like UTF-32",
}
LOCATION = re.compile(r"^\S[^:]*(:\d+)?: \S")
"""A problem line: a file (or folder), maybe a line number, then the message."""


def expected(name: str) -> str:
    if name in WITHOUT_COMMENTS:
        return WITHOUT_COMMENTS[name]
    for line in (CORPUS / name).read_bytes().decode("utf-8", "replace").splitlines()[:5]:
        if line.startswith("# expect: "):
            return line.removeprefix("# expect: ")
    raise AssertionError(f"{name} has no '# expect:' line")


def matches(line: str, pattern: str) -> bool:
    """*line* starts with *pattern*, where ``*`` in the pattern stands for any text."""
    first, *rest = pattern.split("*")
    if not line.startswith(first):
        return False
    at = len(first)
    for part in rest:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bad_input_worker", str(CORPUS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = [json.loads(line) for line in done.stdout.splitlines()]
    return {str(r["file"]): r for r in found}


def test_the_corpus_covers_every_class_of_bad_input():
    assert len(FILES) >= 60
    assert {name.split("-")[0] for name in FILES} == set(CLASSES)


@pytest.mark.parametrize("name", FILES)
def test_bad_input_is_refused_with_file_and_line(outcomes: dict[str, dict[str, object]], name: str):
    outcome = outcomes[name]
    stderr = str(outcome["stderr"])
    assert "Traceback" not in stderr, stderr
    assert outcome["code"] == 2, stderr
    assert outcome["stdout"] == ""
    lines = stderr.splitlines()
    assert lines and all(LOCATION.match(line) for line in lines), lines
    assert matches(lines[0], expected(name)), (lines[0], expected(name))
    assert float(str(outcome["seconds"])) < SECONDS, outcome["seconds"]
    assert float(str(outcome["peak_mb"])) < MEGABYTES, outcome["peak_mb"]


@pytest.mark.parametrize("name", ["hostile-alias-bomb.yaml", "encoding-utf16.yaml", "out-is-a-file.yaml"])
def test_the_installed_command_refuses_it_too(name: str, tmp_path: Path):
    """The same through the console script, in a process of its own."""
    args = ["--out", f"{name}"] if name.startswith("out-") else ["--out", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "run", name, "--memory", "--no-report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CORPUS,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert matches(line, expected(name)), line
    assert not (tmp_path / "out").exists()
