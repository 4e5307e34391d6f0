"""Push to the browser: a server-sent-events stream that says "your jobs changed".

The stream carries no HTML. Its `changed` event triggers the page's one live poll
(`hx-trigger="every 2s, sse:changed"`), so `views.live` stays the only code that decides
which cards changed, and a page whose stream is unavailable (WSGI, a proxy that buffers,
too many streams) still updates every two seconds.

What wakes a stream:
- PostgreSQL: a trigger on gallery_job (migration 0016) calls pg_notify('gallery_job',
  owner id) when a job is inserted or a field its card shows changes (`Job.LIVE_FIELDS`).
  One `Hub` per web process and event loop holds ONE listening connection and fans each
  notification out to that owner's streams: a connection per stream would cost the
  database a backend per open tab, and a pool slot held for minutes.
- Anything else (SQLite): each stream reads its owner's in-flight jobs every
  MJ_PUSH_CHECK_INTERVAL seconds (`Checker`) and wakes when what it read differs.

A stream sends `retry:` and one `changed` at once (whatever changed while no stream was
open), then `changed` on every wake and a comment line after MJ_PUSH_HEARTBEAT idle
seconds, and ends after MJ_PUSH_STREAM_SECONDS: the browser's EventSource reconnects, so a
stream never holds a worker for good. A user has at most MJ_PUSH_STREAMS_PER_USER streams
per web process; beyond that the page keeps to its poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connections
from django.http import HttpRequest

from gallery.models import Job

log = logging.getLogger(__name__)

CHANNEL = "gallery_job"
# The browser waits this long before it reconnects after a stream ended.
RETRY_MS = 1000
# A stream that lost the race for the user's last slot tells the browser to come back later.
FULL_RETRY_MS = 30_000
CHANGED = b"event: changed\ndata: \n\n"
HEARTBEAT = b": keep-alive\n\n"
# The listening connection checks it is alive this often (a dead peer sends nothing).
LISTEN_HEALTH_SECONDS = 30.0
LISTEN_BACKOFF_MAX = 30.0


def enabled(request: HttpRequest) -> bool:
    """A stream can be served to this request: push is on and an ASGI server is serving it
    (under WSGI a stream would hold a worker thread for its whole life)."""
    return bool(settings.MJ_PUSH) and isinstance(request, ASGIRequest)


class Waker(Protocol):
    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True as soon as the owner's jobs changed."""
        ...


class Subscription:
    """One stream's mailbox at the hub: set by a notification, cleared by the stream that
    reads it, so any number of notifications between two reads make one event."""

    def __init__(self, owner_id: int) -> None:
        self.owner_id = owner_id
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), max(timeout, 0.0))
            except TimeoutError:
                return False
        self._event.clear()
        return True


class Hub:
    """The streams of one web process (one event loop): their count per user, and on
    PostgreSQL the one LISTEN connection whose notifications wake them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.streams: dict[int, int] = defaultdict(int)
        self.subscriptions: dict[int, set[Subscription]] = defaultdict(set)
        # Set while the LISTEN connection is up (tests wait for it).
        self.listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    # --- stream slots -------------------------------------------------------------------
    def has_room(self, owner_id: int) -> bool:
        return self.streams.get(owner_id, 0) < settings.MJ_PUSH_STREAMS_PER_USER

    def claim(self, owner_id: int) -> bool:
        if not self.has_room(owner_id):
            return False
        self.streams[owner_id] += 1
        return True

    def release(self, owner_id: int) -> None:
        self.streams[owner_id] -= 1
        if self.streams[owner_id] <= 0:
            del self.streams[owner_id]

    # --- notifications ------------------------------------------------------------------
    def subscribe(self, owner_id: int) -> Subscription:
        subscription = Subscription(owner_id)
        self.subscriptions[owner_id].add(subscription)
        self._ensure_listener()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        mailboxes = self.subscriptions.get(subscription.owner_id)
        if mailboxes is not None:
            mailboxes.discard(subscription)
            if not mailboxes:
                del self.subscriptions[subscription.owner_id]

    def publish(self, payload: str) -> None:
        """A notification's payload is the owner id of the job that changed."""
        try:
            owner_id = int(payload)
        except ValueError:
            return
        for subscription in self.subscriptions.get(owner_id, ()):
            subscription.wake()

    def wake_all(self) -> None:
        for mailboxes in self.subscriptions.values():
            for subscription in mailboxes:
                subscription.wake()

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = self.loop.create_task(self._listen(), name="mjweb-push-listen")

    async def _listen(self) -> None:
        """LISTEN for the process's life, reconnecting with backoff. After every (re)connect
        all streams are woken: what changed while nobody listened is fetched by the poll."""
        import psycopg

        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    **listen_params(), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    self.listening.set()
                    self.wake_all()
                    while True:
                        async for notify in conn.notifies(timeout=LISTEN_HEALTH_SECONDS):
                            self.publish(notify.payload)
                        await asyncio.wait_for(conn.execute("SELECT 1"), 10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: streams keep their heartbeat
                log.warning("push: listening for job changes failed (%s); retrying", exc)
            self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, LISTEN_BACKOFF_MAX)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener


_hub: Hub | None = None


def hub() -> Hub:
    """This process's hub, for the running event loop (a new loop, e.g. in tests, gets a new
    hub: the old one's listener died with its loop)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(loop)
    return _hub


def listens() -> bool:
    return connections["default"].vendor == "postgresql"


def listen_params() -> dict[str, Any]:
    """The default database's connection parameters for a plain psycopg connection (Django's
    cursor class and adapters are its own)."""
    params = dict(connections["default"].get_connection_params())
    for key in ("cursor_factory", "context"):
        params.pop(key, None)
    return params


def fingerprint(owner_id: int) -> frozenset[tuple[Any, ...]]:
    """What the owner's running cards show: changes when one of them would look different,
    starts or stops running."""
    rows = Job.objects.filter(owner_id=owner_id, status__in=Job.IN_FLIGHT)
    return frozenset(rows.values_list("code", *Job.LIVE_FIELDS))


class Checker:
    """Wakes when `look()` answers something else than last time, asking every `interval`
    seconds (the fallback where the database cannot notify)."""

    def __init__(
        self,
        look: Callable[[], Awaitable[object]],
        *,
        interval: float,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.look = look
        self.interval = interval
        self.sleep = sleep
        self.seen: object = None

    async def start(self) -> None:
        self.seen = await self.look()

    async def wait(self, timeout: float) -> bool:
        remaining = timeout
        while remaining > 0:
            step = min(self.interval, remaining)
            await self.sleep(step)
            remaining -= step
            now = await self.look()
            if now != self.seen:
                self.seen = now
                return True
        return False


async def events(
    waker: Waker,
    *,
    heartbeat: float,
    lifetime: float,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """The bytes of one stream: `changed` at once and on every wake, a comment after
    `heartbeat` idle seconds, and the end after `lifetime` seconds."""
    started = last = clock()
    yield f"retry: {RETRY_MS}\n".encode() + CHANGED
    while True:
        now = clock()
        end = started + lifetime
        if now >= end:
            return
        beat = last + heartbeat
        if await waker.wait(min(beat, end) - now):
            yield CHANGED
            last = clock()
        elif clock() >= beat:
            yield HEARTBEAT
            last = clock()


async def stream(owner_id: int) -> AsyncIterator[bytes]:
    """One user's stream, holding a slot at the hub while it runs."""
    here = hub()
    # The view checked for room; another stream of the same user may have taken it since.
    if not here.claim(owner_id):
        yield f"retry: {FULL_RETRY_MS}\n\n".encode()
        return
    subscription: Subscription | None = None
    try:
        waker: Waker
        if listens():
            subscription = waker = here.subscribe(owner_id)
        else:
            read = sync_to_async(fingerprint)

            async def look() -> object:
                try:
                    return await read(owner_id)
                except DatabaseError as exc:  # a busy SQLite: no news this time
                    log.warning("push: reading the jobs of user %s failed (%s)", owner_id, exc)
                    return checker.seen

            checker = Checker(look, interval=settings.MJ_PUSH_CHECK_INTERVAL)
            await checker.start()
            waker = checker
        async for chunk in events(
            waker,
            heartbeat=settings.MJ_PUSH_HEARTBEAT,
            lifetime=settings.MJ_PUSH_STREAM_SECONDS,
        ):
            yield chunk
    finally:
        if subscription is not None:
            here.unsubscribe(subscription)
        here.release(owner_id)
