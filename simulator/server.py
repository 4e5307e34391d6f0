"""HTTP front of the provider simulator: CometAPI's midjourney-proxy surface, and PiAPI's.

Standard library only, so `python -m simulator` runs without Django. The answers
copy the new-api gateway that CometAPI runs (see docs/provider-protocols.md, sections 1
and 2): its auth rules and error envelopes, `task_no_found ` with the trailing space,
and a `/mj/image/{id}` proxy that needs no key. PiAPI's routes (/api/v1/task...,
/mj/v2/...) are answered by simulator.piapi on the same engine.

A task submitted with `notifyHook` is POSTed to it (the fetch JSON, unsigned, no retry) on
every change of status or progress the webhook watcher sees (section 1.10).

`faults` (simulator.faults) makes it fail the ways the real services do: latency,
injected 5xx/429, a full queue, banned prompts, Remix, expiring images, per-job directives
in the prompt, duplicated and reordered webhooks. `Faults()` changes nothing else.

This module holds SimulatorServer (socket, threads, faults applied to tasks); requests
are answered by simulator.handler, webhooks sent by simulator.webhooks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from simulator import faults, images, piapi
from simulator.engine import Clock, Engine, Task
from simulator.faults import Faults, FaultState
from simulator.handler import _Handler, _HTTPServer
from simulator.webhooks import NotifyHooks, Watcher


class SimulatorServer:
    """A fake CometAPI Midjourney endpoint; `port=0` picks a free port on start."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        duration: float = 6.0,
        api_key: str = "",
        clock: Clock | None = None,
        *,
        public_url: str | None = None,
        log_requests: bool = False,
        engine: Engine | None = None,
        faults: Faults | None = None,
        console_token: str = "",
        console_quota: int = 100 * 500_000,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        # CometAPI's console routes (simulator.console): off without a token; $100 of quota.
        self.console_token = console_token
        self.console_quota = console_quota
        self.log_requests = log_requests
        self.engine = engine or Engine(duration=duration, clock=clock)
        # read on every request: assign a new value to change a running server's faults
        self.faults = faults or Faults()
        self.fault_state = FaultState()
        self.engine.shape_task = self._shape_task
        self._public_url = public_url.rstrip("/") if public_url else None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._foreground = False  # serve_forever() is running in some caller's thread
        self._halt = threading.Event()  # set by stop(): ends latency waits and hangs
        self._admission = threading.Lock()
        self.watcher = Watcher()
        self.piapi = piapi.PiAPISimulator(self)
        self.notify = NotifyHooks(self)
        self.watcher.scans += [self.piapi.scan_webhooks, self.notify.scan]

    # -- faults ------------------------------------------------------------------------

    def _shape_task(self, task: Task) -> None:
        """Apply the prompt's directives and the late banned words to a new engine task."""
        found = faults.directives(task.prompt)
        if "slow" in found:
            task.duration *= faults.SLOW_FACTOR
        if "blank" in found:
            task.origin += faults.BLANK_FOR * task.duration
        if "stuck" in found:
            task.hold = faults.STUCK_AT
        if "expire" in found:
            task.image_ttl = 0.0
        if "malformed" in found:
            self.fault_state.mark_malformed(task.id)
        failure = None
        if faults.banned_word(self.faults.late_banned_words, task.prompt):
            failure = (faults.BANNED_REASON, faults.LATE_BANNED_AT)
        elif "fail" in found:
            failure = (faults.TIMEOUT_REASON, faults.FAIL_AT)
        elif "fail-en" in found:
            failure = (faults.INVALID_REASON, faults.INVALID_AT)
        if failure is not None:
            task.forced_failure = failure[0]
            task.failed_at = task.origin + failure[1] * task.duration

    def delay(self) -> None:
        """The latency fault (real time: the fake clock only moves the jobs)."""
        if self.faults.latency > 0:
            # an Event, not time.sleep: tests patch time.sleep, and stop() must not wait
            self._halt.wait(self.faults.latency)

    def hang(self) -> None:
        """A request the provider never answers in time: wait past the client's timeout."""
        self._halt.wait(self.faults.hang)

    @contextmanager
    def admission(self) -> Iterator[bool]:
        """Hold the submit lock; yields whether the account's queue is full (queue_limit)."""
        with self._admission:
            limit = self.faults.queue_limit
            yield limit is not None and self.engine.unfinished() >= limit

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not listening yet: call start()")
        host = self._httpd.server_address[0]
        if host in ("0.0.0.0", "::", ""):  # an address to bind, not one to reach
            host = "127.0.0.1"
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{self._httpd.server_address[1]}"

    @property
    def public_url(self) -> str:
        """Where image links point: base_url unless told otherwise (e.g. behind a proxy)."""
        return self._public_url or self.base_url

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), _Handler)
            httpd.sim = self
            self._httpd = httpd
        return self._httpd

    def start(self) -> SimulatorServer:
        """Serve in a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="mj-simulator",
            daemon=True,
        )
        self._thread.start()
        self._halt.clear()
        self.watcher.start()  # webhooks of both protocols
        return self

    def serve_forever(
        self, on_ready: Callable[[SimulatorServer], None] | None = None, painters: int = 0
    ) -> None:
        """Serve in the calling thread until stop() or KeyboardInterrupt; with `painters`,
        pictures are drawn ahead in that many other processes (images.paint_ahead)."""
        httpd = self._bind()
        self._foreground = True
        try:
            images.paint_ahead(painters)
            self._halt.clear()
            self.watcher.start()  # webhooks of both protocols
            if on_ready is not None:
                on_ready(self)
            httpd.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            images.stop_painting()
            self.watcher.stop()
            self._foreground = False
            httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        self._halt.set()  # hung and delayed answers give up now
        self.watcher.stop()
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        if self._foreground:
            httpd.shutdown()  # the serving thread closes the socket on its way out
            return
        if thread is not None:
            httpd.shutdown()  # would wait forever on a server that never served
            thread.join()
        httpd.server_close()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
