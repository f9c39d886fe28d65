"""Sending MTAs and the life of one delivery job.

A ``Job`` is one message in one MTA's queue: an original sender's, or a
backup MX relaying a message it accepted. ``deliver()`` (in ``flight``)
asks the MTA's retry policy when to try, walks the MX hosts the router
gives (falling back as the MTA does), runs each attempt through the submit
function and charges the simulated time the attempt took; ``Flight`` runs
it as a light SimPy process.

A delivery knows only its collaborators (``Couriers``): the SimPy
environment, a router, a submit function, an event sink, the ledger keeper
that records acceptances, bounces and warnings, the instant's host probes
and its serial rounds. MTA quirks (falling back to the next MX, sharing a
host's failure, sending a retry round out one message at a time) are the
policy's own answers.
"""

from __future__ import annotations

from .arrivals import Arrivals
from .flight import STAGE_ORDER, Flight, charge, deliver, with_client_timeouts
from .jobs import Couriers, HostProbes, Job, Keeper, Mta, Rounds
from .keeper import LedgerKeeper

__all__ = [
    "Arrivals",
    "LedgerKeeper",
    "Mta",
    "Job",
    "Couriers",
    "Keeper",
    "HostProbes",
    "Rounds",
    "Flight",
    "deliver",
    "STAGE_ORDER",
    "charge",
    "with_client_timeouts",
]
