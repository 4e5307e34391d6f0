"""Run the whole studio in one terminal: web server, the worker (`manage.py worker`: one
django-q2 cluster per task queue) and the simulator.

The web server is uvicorn serving mjweb.asgi, as in production (the push stream needs an
ASGI server; whitenoise serves the static files from the apps' folders with DEBUG).

Ctrl-C stops all three. If one of them dies, the others are stopped too (mjweb.processes),
so a broken half-running studio never sits there looking healthy.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mjweb import processes


class Command(BaseCommand):
    help = "Start the web server, the worker and (with MJ_PROVIDER=simulator) the simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-simulator", action="store_true", help="Do not start the built-in simulator."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        children: dict[str, processes.Child] = {}
        if settings.MJ_PROVIDER == "simulator" and not options["no_simulator"]:
            children["simulator"] = processes.Child(processes.manage("simulator"))
        children["worker"] = processes.Child(processes.manage("worker"))
        children["web"] = processes.Child(web_command(options["addrport"]))
        url = f"http://{options['addrport']}/"

        def started() -> None:
            self.stdout.write(self.style.SUCCESS(f"mjweb is running at {url} (Ctrl-C stops it)"))

        sys.exit(processes.run_group(children, self.stdout.write, started))


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
