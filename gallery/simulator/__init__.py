"""A stand-alone fake Midjourney provider: CometAPI's midjourney-proxy protocol and PiAPI's
(the unified task API and legacy v2) on one port, drawing real images, with injectable
faults (gallery.simulator.faults).

Run it with `python -m gallery.simulator --port 8001` or `python manage.py simulator`.
"""

from gallery.simulator.faults import Faults
from gallery.simulator.server import SimulatorServer

__all__ = ["Faults", "SimulatorServer"]
