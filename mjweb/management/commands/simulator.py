"""`manage.py simulator`: run the fake Midjourney provider in the foreground."""

from __future__ import annotations

import logging
import signal
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulator.faults import Faults
from simulator.server import SimulatorServer


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # serve_forever() ends on it and closes the socket


class Command(BaseCommand):
    help = "Run the provider simulator (CometAPI's and PiAPI's Midjourney protocols) until Ctrl-C."

    def add_arguments(self, parser: ArgumentParser) -> None:
        # defaults come from settings at run time, so None means "not given"
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument(
            "--duration",
            type=float,
            default=None,
            help="seconds from submit to SUCCESS in fast mode",
        )
        parser.add_argument("--api-key", default=None, help="require this key (empty: none)")
        parser.add_argument(
            "--public-url",
            default=None,
            help="base of the image links it hands out (default: the address it listens on)",
        )
        parser.add_argument(
            "--faults",
            default=None,
            help='faults to inject, "k=v,k=v" (default: MJ_SIMULATOR_FAULTS), '
            "e.g. latency=0.3,error_rate=0.05,remix=1",
        )
        parser.add_argument(
            "--painters",
            type=int,
            default=1,
            help="processes that draw pictures ahead, at low priority (0: draw when asked)",
        )
        parser.add_argument("--quiet", action="store_true", help="do not log requests")

    def handle(self, *args: Any, **options: Any) -> None:
        def pick(name: str, setting: str, default: Any) -> Any:
            given = options[name]
            return given if given is not None else getattr(settings, setting, default)

        host = pick("host", "MJ_SIMULATOR_HOST", "127.0.0.1")
        port = int(pick("port", "MJ_SIMULATOR_PORT", 8001))
        duration = float(pick("duration", "MJ_SIMULATOR_DURATION", 6.0))
        api_key = pick("api_key", "MJ_SIMULATOR_API_KEY", "") or ""
        try:
            faults = Faults.parse(pick("faults", "MJ_SIMULATOR_FAULTS", "") or "")
        except ValueError as exc:
            raise CommandError(f"--faults: {exc}") from exc
        if not options["quiet"]:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        server = SimulatorServer(
            host=host,
            port=port,
            duration=duration,
            api_key=api_key,
            log_requests=not options["quiet"],
            faults=faults,
            public_url=options["public_url"],
        )

        def ready(srv: SimulatorServer) -> None:
            auth = "key required" if api_key else "no auth"
            injected = f", faults {faults.describe()}" if faults.describe() else ""
            self.stdout.write(
                f"mj simulator on {srv.base_url} (duration {duration}s, {auth}{injected})"
            )
            self.stdout.flush()

        # also SIGINT: a shell that starts us in the background leaves it ignored
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            server.serve_forever(on_ready=ready, painters=options["painters"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("mj simulator stopped")
