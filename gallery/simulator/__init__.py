"""A stand-alone fake Midjourney provider speaking CometAPI's midjourney-proxy protocol.

Run it with `python -m gallery.simulator --port 8001` or `python manage.py simulator`.
"""

from gallery.simulator.server import SimulatorServer

__all__ = ["SimulatorServer"]
