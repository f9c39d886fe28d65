"""smtp-outage: replay SMTP outages with a SimPy clock and real SMTP on loopback.

The public surface::

    from simulator import run_scenario, load_scenario
    result = run_scenario("scenarios/atnex-2011.yaml", out="results/atnex-2011")
    result.counts            # delivered / stranded / lost / bounced / queued
    result.analysis          # every number of the run, computed once (simulator.analysis)

Errors are documented in ``simulator.errors``.
"""

from .analysis import Analysis, Window
from .api import Run, run_scenario, run_scenario_async
from .errors import ConservationError, OutageError, Problem, RunError, ScenarioError
from .ledger import STATES, MessageRecord
from .loader import load_scenario
from .results import RunResult
from .scenario import Scenario

__all__ = [
    "run_scenario",
    "run_scenario_async",
    "load_scenario",
    "Scenario",
    "Run",
    "RunResult",
    "Analysis",
    "Window",
    "MessageRecord",
    "STATES",
    "OutageError",
    "ScenarioError",
    "RunError",
    "ConservationError",
    "Problem",
]
