"""Run the whole studio in one terminal: web server, django-q2 worker and the simulator.

The web server is uvicorn serving mjweb.asgi, as in production (the push stream needs an
ASGI server; whitenoise serves the static files from the apps' folders with DEBUG).

Ctrl-C stops all three. If one of them dies, the others are stopped too, so a broken
half-running studio never sits there looking healthy.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Start the web server, a qcluster worker and (with MJ_PROVIDER=simulator) the simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-simulator", action="store_true", help="Do not start the built-in simulator."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands: dict[str, list[str]] = {}
        if settings.MJ_PROVIDER == "simulator" and not options["no_simulator"]:
            commands["simulator"] = [*manage, "simulator"]
        commands["worker"] = [*manage, "qcluster"]
        commands["web"] = web_command(options["addrport"])
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            self.stdout.write(f"starting {name}: {' '.join(command[1:])}")
            children[name] = subprocess.Popen(command)
        url = f"http://{options['addrport']}/"
        self.stdout.write(self.style.SUCCESS(f"mjweb is running at {url} (Ctrl-C stops it)"))
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with code {child.returncode}; stopping.")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.3)
        self._stop_all(children)
        sys.exit(exit_code)

    def _stop_all(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it.")
                child.kill()
                child.wait()
        self.stdout.write("stopped.")


def web_command(addrport: str) -> list[str]:
    """uvicorn for `--addrport host:port` (or just a port, as runserver takes it)."""
    host, _, port = addrport.rpartition(":")
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "mjweb.asgi:application",
        "--app-dir",
        str(settings.BASE_DIR),
        "--host",
        host or "127.0.0.1",
        "--port",
        port,
        # The same choices as mjweb.workers.UvicornWorker, the production worker.
        "--lifespan",
        "off",
        "--no-proxy-headers",
        "--timeout-graceful-shutdown",
        "2",
    ]
