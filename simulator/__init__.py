"""A stand-alone fake Midjourney provider: CometAPI's midjourney-proxy protocol and PiAPI's
(the unified task API and legacy v2) on one port, drawing real images, with injectable
faults (simulator.faults).

Run it with `python -m simulator --port 8001` or `python manage.py simulator`.
"""

from simulator.faults import Faults
from simulator.server import SimulatorServer

__all__ = ["Faults", "SimulatorServer"]
