"""`python -m simulator`: the fake provider (CometAPI and PiAPI protocols) without
Django."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from simulator.faults import DIRECTIVES, Faults
from simulator.server import SimulatorServer


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # serve_forever() ends on it and closes the socket


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=__doc__,
        epilog="Per-job directives in a prompt: "
        + ", ".join(f"[sim:{name}]" for name in DIRECTIVES),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--duration", type=float, default=6.0, help="seconds from submit to SUCCESS in fast mode"
    )
    parser.add_argument("--api-key", default="", help="require this key (empty: no auth)")
    parser.add_argument(
        "--console-token",
        default="",
        help="serve CometAPI's console routes (/api/user/self, /api/task/self) to this token",
    )
    parser.add_argument("--public-url", default=None, help="base of image links")
    parser.add_argument(
        "--faults",
        default="",
        help='faults to inject, "k=v,k=v", e.g. latency=0.3,error_rate=0.05,remix=1',
    )
    parser.add_argument(
        "--painters",
        type=int,
        default=1,
        help="processes that draw pictures ahead, at low priority (0: draw when asked)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    try:
        faults = Faults.parse(args.faults)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SimulatorServer(
        host=args.host,
        port=args.port,
        duration=args.duration,
        api_key=args.api_key,
        console_token=args.console_token,
        public_url=args.public_url,
        log_requests=not args.quiet,
        faults=faults,
    )
    # also SIGINT: a shell that starts us in the background leaves it ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    def ready(srv: SimulatorServer) -> None:
        auth = "key required" if args.api_key else "no auth"
        injected = f", faults {faults.describe()}" if faults.describe() else ""
        print(
            f"mj simulator on {srv.base_url} (duration {args.duration}s, {auth}{injected})",
            flush=True,
        )

    server.serve_forever(on_ready=ready, painters=args.painters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
