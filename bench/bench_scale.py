"""A replay at scale: 10k, 100k (and, behind ``--million``, 1M) messages in memory mode.

Run:  python bench/bench_scale.py [--sizes 10000,100000] [--million] [--wire] [--format csv|parquet|both]

Each size generates the same incident (``scenario()``): two MX hosts for
``example.com`` (``mx1`` preferred; ``mx2`` a backup MX that queues and
relays, behind a capacity limit), ``mx1`` backed up every 6 hours, crashing
at 14:00 on the first day and restored from its latest backup 21 hours
later; Postfix, Exim, Gmail and Microsoft 365 senders (equal groups, each
MTA sending 125 messages a day on a working-day profile for two days). Only
the number of MTAs (and mx2's capacity) grows with the size, so every size
has the same shape.

Every size runs in a child process of its own (so that its peak RSS is its
own), ``run_scenario(..., transport="memory", out=...)`` and then the report,
as ``smtp-outage run --memory`` does. The parent prints, per size: messages,
attempts, wall time, attempts per second, peak RSS and RSS per message, and
the ratio of the run's attempt rate to a bare SimPy loop with the same number
of ``env.timeout()`` events, measured right after the run in a fresh process
(best of three; by wall time, and by CPU time, which a busy machine disturbs
less), and
the time ``load_results`` takes to compute the analysis again from the
files (summary, queue depth, qshape). Nothing here passes or fails on
timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GROUPS = (("postfix", "postfix"), ("exim", "exim"), ("gmail", "gmail"), ("microsoft365", "microsoft365"))
PER_MTA_PER_DAY = 125
DAYS = 2


def scenario(size: int, name: str = "scale") -> dict[str, Any]:
    """The generated incident for about *size* messages (see the module notes)."""
    mtas = max(1, round(size / (PER_MTA_PER_DAY * DAYS * len(GROUPS))))
    traffic = {"rate": f"{PER_MTA_PER_DAY}/d", "profile": "business", "until": "2024-03-06 00:00"}
    return {
        "name": name,
        "description": f"About {size} messages: two MX hosts, a crash restored 21 hours later.",
        "seed": 10,
        "clock": {"start": "2024-03-04 00:00", "end": "2024-03-10 00:00"},
        "servers": [
            {"name": "mx1", "domains": ["example.com"], "preference": 10},
            {"name": "mx2", "domains": ["example.com"], "preference": 20, "relay": {"policy": "postfix"}},
        ],
        "timeline": [
            {"at": "2024-03-04 00:00", "server": "mx1", "event": "backups", "every": "6h"},
            {
                "at": "2024-03-04 00:00",
                "server": "mx2",
                "event": "fault",
                "fault": {"kind": "capacity", "sessions": max(2, size // 5000), "per_minute": max(5, size // 2000)},
            },
            {"at": "2024-03-04 14:00", "server": "mx1", "event": "crash", "mode": "refuse"},
            {"at": "2024-03-05 11:00", "server": "mx1", "event": "restore", "backup": "latest"},
        ],
        "senders": [{"name": group, "count": mtas, "policy": policy, "traffic": traffic} for group, policy in GROUPS],
    }


def write_scenario(size: int, folder: Path) -> Path:
    """Write the generated scenario as YAML into *folder*; returns its path."""
    import yaml

    path = folder / f"scale-{size}.yaml"
    path.write_text(yaml.safe_dump(scenario(size), sort_keys=False), encoding="utf-8")
    return path


def bare_simpy(timeouts: int, processes: int = 1000) -> tuple[float, float]:
    """Wall and CPU seconds a bare SimPy loop takes for *timeouts* ``env.timeout()`` events over *processes* processes."""
    import simpy

    env = simpy.Environment()
    each, extra = divmod(timeouts, processes)

    def proc(env: simpy.Environment, n: int, k: int) -> Any:
        for i in range(n):
            yield env.timeout(1.0 + (i + k) % 7)

    for k in range(processes):
        env.process(proc(env, each + (1 if k < extra else 0), k))
    started, cpu = time.perf_counter(), time.process_time()
    env.run()
    return time.perf_counter() - started, time.process_time() - cpu


def _bare_in_a_child(timeouts: int, rounds: int = 3) -> tuple[float, float]:
    """``bare_simpy(timeouts)`` in a fresh process, best of *rounds*: after a big run, the same process's heap and
    collector made the bare loop's rate vary by half from one run to the next."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, __file__, "--bare", str(timeouts)], capture_output=True, text=True, check=True
        )
        wall, cpu = (float(v) for v in done.stdout.split())
        best = (wall, cpu) if best is None else (min(best[0], wall), min(best[1], cpu))
    assert best is not None
    return best


def child(size: int, out: Path, transport: str, fmt: str, report: bool) -> dict[str, Any]:
    """Run one size in this process and return its figures."""
    from simulator import run_scenario

    path = write_scenario(size, out)
    started, cpu = time.perf_counter(), time.process_time()
    run = run_scenario(path, transport=transport, out=out / "results", formats=fmt)
    ran, ran_cpu = time.perf_counter() - started, time.process_time() - cpu
    engine_seconds = run.wall_seconds
    _note(f"run {ran:.1f} s (engine {engine_seconds:.1f} s, CPU {ran_cpu:.1f} s), {run.attempts:,} attempts")
    summary = json.loads((out / "results" / "summary.json").read_text(encoding="utf-8"))
    del run
    from simulator.report import load_results

    started = time.perf_counter()
    data = load_results(out / "results")
    a = data.analysis
    a.summary()
    a.queue_depth()
    for t, _ in a.recovery_times:
        a.qshape(t, (5, 10, 20, 40, 80, 160, 320, 640, 1280))
    analysis_seconds = time.perf_counter() - started
    _note(f"analysis from the files {analysis_seconds:.1f} s")
    del data, a
    report_seconds = 0.0
    if report:
        from simulator.report import write_report

        started = time.perf_counter()
        write_report(out / "results")
        report_seconds = time.perf_counter() - started
        _note(f"report {report_seconds:.1f} s")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attempts = int(summary["attempts"])
    bare, bare_cpu = _bare_in_a_child(attempts)
    return {
        "size": size,
        "messages": int(summary["messages"]),
        "attempts": attempts,
        "connections": int(summary["connections"]),
        "counts": summary["counts"],
        "run_seconds": ran,
        "run_cpu_seconds": ran_cpu,
        "engine_seconds": engine_seconds,
        "analysis_seconds": analysis_seconds,
        "report_seconds": report_seconds,
        "peak_rss_kb": peak_kb,
        "bare_seconds": bare,
        "bare_cpu_seconds": bare_cpu,
    }


def _note(text: str) -> None:
    """A progress line on stderr, with the peak RSS so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {text}; peak RSS so far {peak:,.0f} MB\n")
    sys.stderr.flush()


SAMPLE_SECONDS = 5.0


def _watch(cmd: list[str]) -> tuple[str, list[float]]:
    """Run the child, sampling its resident set (``VmRSS``) every ``SAMPLE_SECONDS``; its stdout and the samples."""
    samples: list[float] = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=SAMPLE_SECONDS)
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        samples.append(int(line.split()[1]) / 1024)
            except OSError:
                pass  # not on Linux, or the child just ended
        out.seek(0)
        err.seek(0)
        if child.returncode:
            sys.stderr.write(err.read())
            raise SystemExit(f"the child failed (exit {child.returncode}): {' '.join(cmd)}")
        sys.stderr.write(err.read())
        return out.read(), samples


def _series(samples: list[float], most: int = 24) -> str:
    """*samples* thinned evenly to at most *most* values (the last one always kept)."""
    if not samples:
        return "(none: no /proc here)"
    step = max(1, -(-len(samples) // most))
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return " ".join(f"{v:,.0f}" for v in picked)


def _row(r: dict[str, Any]) -> str:
    rate = r["attempts"] / r["run_seconds"]
    cpu_rate = r["attempts"] / r["run_cpu_seconds"]
    bare_rate = r["attempts"] / r["bare_seconds"]
    bare_cpu_rate = r["attempts"] / r["bare_cpu_seconds"]
    per_msg = r["peak_rss_kb"] * 1024 / max(1, r["messages"])
    return (
        f"| {r['messages']:,} | {r['attempts']:,} | {r['run_seconds']:.1f} s | {r['analysis_seconds']:.1f} s "
        f"| {r['report_seconds']:.1f} s | {rate:,.0f} | {1e6 / cpu_rate:.1f} us "
        f"| {r['peak_rss_kb'] / 1024:,.0f} MB | {per_msg:,.0f} B "
        f"| 1/{bare_rate / rate:.1f} | 1/{bare_cpu_rate / cpu_rate:.1f} |"
    )


def main() -> None:
    """Run each size in a child process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated message counts")
    parser.add_argument("--million", action="store_true", help="add the 1,000,000-message size")
    parser.add_argument("--wire", action="store_true", help="real SMTP on loopback instead of memory mode")
    parser.add_argument("--format", default="csv", choices=("csv", "parquet", "both"), help="output files")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    transport = "wire" if args.wire else "memory"
    if args.bare is not None:
        wall, cpu = bare_simpy(args.bare)
        sys.stdout.write(f"{wall!r} {cpu!r}\n")
        return
    if args.child is not None:
        result = child(args.child, args.out, transport, args.format, not args.no_report)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.million:
        sizes.append(1_000_000)
    print(f"transport {transport}, outputs {args.format}, report {'no' if args.no_report else 'yes'}")
    print(
        "| messages | attempts | run (wall) | analysis from files | report | attempts/s | CPU per attempt "
        "| peak RSS | RSS/message | to bare SimPy (wall) | to bare SimPy (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            cmd = [sys.executable, __file__, "--child", str(size), "--out", tmp, "--format", args.format]
            cmd += ["--wire"] if args.wire else []
            cmd += ["--no-report"] if args.no_report else []
            stdout, samples = _watch(cmd)
            result = json.loads(stdout.strip().splitlines()[-1])
            print(_row(result), flush=True)
            print(f"  counts {result['counts']}, connections {result['connections']:,}", file=sys.stderr)
            print(
                f"  RSS during the run, MB (sampled every {SAMPLE_SECONDS:g} s, at most 24 shown): {_series(samples)}"
            )


if __name__ == "__main__":
    main()
