"""Real MTAs against the incident: the live mode and fidelity checks of the presets.

``serve_scenario`` (``simulator.live.serve``) runs a scenario's servers on
fixed loopback ports with its timeline in scaled real time, recording every
message outside MTAs deliver.
"""

from __future__ import annotations

from .serve import OUTSIDE, LiveResult, OutsideMail, check_ports, describe, serve_scenario

__all__ = ["OUTSIDE", "LiveResult", "OutsideMail", "serve_scenario", "describe", "check_ports"]
