"""Sweep throughput: 1 worker against 2, the local process pool against a Dask LocalCluster, scheduling overhead.

    .venv/bin/python bench/bench_sweep.py            # 16 AtNex points (seeds) per configuration, about 8 minutes
    .venv/bin/python bench/bench_sweep.py --quick    # 4 points of a small recovery storm, about a minute

Each configuration runs the same sweep (the AtNex replay in memory, one point
per seed) on pools created and warmed up beforehand (every worker has run
one small point, so imports are not counted), into a fresh folder. Printed:
wall time per configuration, the speed-up of 2 workers over 1, Dask against
the process pool, and the scheduling overhead per point: the time the
workers were not running a point, ``(wall x workers - sum of point times) /
points``, as a share of a point's mean run time. Ratios come from the same
run; absolute figures move with the machine's other load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.sweep import run_sweep  # noqa: E402
from simulator.sweep.run import Pool, dask_pool, local_pool  # noqa: E402


def sweep_file(folder: Path, scenario: Path, seeds: int, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            scenario: {scenario}
            seeds: {seeds}
            metrics: [stranded, bounced, delivered_ratio]
            """
        )
    )
    return path


def measure(label: str, pool: Pool, sweep: Path, folder: Path) -> dict[str, float]:
    result = run_sweep(sweep, out=folder / label, pool=pool)
    wall = result.run_seconds  # submitting, running and collecting; not loading the file or writing the results
    runs = [r["wall_seconds"] for r in result.runs]
    idle = (wall * pool.slots - sum(runs)) / len(runs)
    print(
        f"  {label:<22} {len(runs)} points in {wall:6.1f}s  (point: mean {statistics.mean(runs):.2f}s; "
        f"overhead per point {idle:.2f}s = {100 * idle / statistics.mean(runs):.1f}%; "
        f"loading and writing results {result.wall_seconds - wall:.1f}s)",
        file=sys.stderr,
    )
    return {"wall": wall, "point": statistics.mean(runs), "overhead": idle / statistics.mean(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 points of a small scenario")
    parser.add_argument("--points", type=int, default=None, help="points (seeds) per configuration")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; each figure is the median")
    args = parser.parse_args()
    if args.quick:
        scenario, points = ROOT / "tests" / "data" / "sweeps" / "storm.yaml", args.points or 4
    else:
        scenario, points = ROOT / "scenarios" / "atnex-2011.yaml", args.points or 16
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sweep = sweep_file(folder, scenario, points, "bench")
        warm = sweep_file(folder, ROOT / "tests" / "data" / "sweeps" / "storm.yaml", 2, "warm")
        one, two = local_pool(1), local_pool(2)
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            dask = dask_pool(cluster.scheduler_address)
            for name, pool in (("one", one), ("two", two), ("dask", dask)):
                run_sweep(warm, out=folder / f"warm-{name}", pool=pool)
            print(f"{points} points of {scenario.name}, in memory", file=sys.stderr)
            configs = [
                ("process pool, 1 worker", one),
                ("process pool, 2 workers", two),
                ("Dask LocalCluster, 2", dask),
            ]
            seen: dict[str, list[dict[str, float]]] = {label: [] for label, _ in configs}
            for round_ in range(args.rounds):
                # alternate the order, so that a busy spell of the machine hits every configuration alike
                for label, pool in configs if round_ % 2 == 0 else configs[::-1]:
                    seen[label].append(measure(label, pool, sweep, folder / f"round{round_}"))
            for pool in (one, two, dask):
                pool.close()
    r1, r2, rd = ({k: statistics.median(m[k] for m in seen[label]) for k in seen[label][0]} for label, _ in configs)
    if args.rounds > 1:
        print(f"medians of {args.rounds} interleaved rounds", file=sys.stderr)
    print(f"| {points} points of {scenario.name} | wall | per point | overhead per point | ratio |")
    print("|---|---|---|---|---|")
    print(f"| process pool, 1 worker | {r1['wall']:.1f} s | {r1['point']:.2f} s | {100 * r1['overhead']:.1f}% | |")
    print(
        f"| process pool, 2 workers | {r2['wall']:.1f} s | {r2['point']:.2f} s | {100 * r2['overhead']:.1f}% | "
        f"{r1['wall'] / r2['wall']:.2f}x as fast as 1 worker |"
    )
    print(
        f"| Dask LocalCluster, 2 workers | {rd['wall']:.1f} s | {rd['point']:.2f} s | {100 * rd['overhead']:.1f}% | "
        f"{rd['wall'] / r2['wall']:.2f} of the process pool's time |"
    )


if __name__ == "__main__":
    main()
