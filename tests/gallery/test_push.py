"""The push stream (gallery.push, views.stream): its events on a fake clock, the SQLite
check, the per-process hub, the view on SQLite and on PostgreSQL (LISTEN/NOTIFY through the
trigger of migration 0016), and the live poller it wakes."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient, Client
from django.urls import reverse

from gallery import push
from gallery.models import Job
from tests.gallery.factories import make_job
from tests.requirements import require_postgres

HX = {"HTTP_HX_REQUEST": "true"}
FIRST = b"retry: 1000\n" + push.CHANGED


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedWaker:
    """Changes arrive at these (fake) times; waiting moves the clock instead of sleeping."""

    def __init__(self, clock: FakeClock, changes: list[float]) -> None:
        self.clock = clock
        self.changes = changes

    async def wait(self, timeout: float) -> bool:
        if self.changes and self.changes[0] <= self.clock.now + timeout:
            self.clock.now = max(self.clock.now, self.changes.pop(0))
            return True
        self.clock.now += timeout
        return False


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async scenario; its sync_to_async calls come back to this (the test's) thread,
    so they see the test's database."""
    return async_to_sync(scenario)()


async def collect(chunks: AsyncIterator[bytes], clock: FakeClock) -> list[tuple[float, bytes]]:
    return [(clock.now, chunk) async for chunk in chunks]


# --- the stream's bytes, on a fake clock ----------------------------------------------------


def test_a_stream_says_changed_at_once_on_every_change_beats_when_idle_and_ends() -> None:
    clock = FakeClock()
    waker = ScriptedWaker(clock, [1.0, 1.5, 40.0])

    async def scenario() -> list[tuple[float, bytes]]:
        return await collect(push.events(waker, heartbeat=15, lifetime=60, clock=clock), clock)

    got = run(scenario)
    assert got == [
        (0.0, FIRST),  # at once: whatever changed while no stream was open
        (1.0, push.CHANGED),
        (1.5, push.CHANGED),
        (16.5, push.HEARTBEAT),  # 15 s without a word
        (31.5, push.HEARTBEAT),
        (40.0, push.CHANGED),
        (55.0, push.HEARTBEAT),
    ]
    assert clock.now == 60.0  # then it ended, and the browser opens a new one


def test_the_events_are_what_an_eventsource_reads() -> None:
    assert push.CHANGED == b"event: changed\ndata: \n\n"  # a data line, or no event fires
    assert push.HEARTBEAT.startswith(b":") and push.HEARTBEAT.endswith(b"\n\n")


def test_the_check_wakes_only_when_what_it_reads_changed() -> None:
    answers = iter(["a", "a", "a", "b", "b"])
    slept: list[float] = []

    async def look() -> str:
        return next(answers)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> tuple[bool, bool]:
        checker = push.Checker(look, interval=0.25, sleep=sleep)
        await checker.start()  # "a"
        first = await checker.wait(1.0)  # "a", "a", then "b": woken on the third look
        second = await checker.wait(0.25)  # "b" again: nothing
        return first, second

    assert run(scenario) == (True, False)
    assert slept == [0.25, 0.25, 0.25, 0.25]


def test_the_hub_wakes_the_owners_streams_only_and_counts_them(settings: Any) -> None:
    settings.MJ_PUSH_STREAMS_PER_USER = 2

    async def scenario() -> None:
        hub = push.Hub(asyncio.get_running_loop())
        hub._ensure_listener = lambda: None  # type: ignore[method-assign]  # no database here
        mine, also_mine, theirs = hub.subscribe(1), hub.subscribe(1), hub.subscribe(2)
        hub.publish("1")
        hub.publish("1")  # two notifications before a read make one event
        hub.publish("not an id")
        assert await mine.wait(0) and await also_mine.wait(0)
        assert not await mine.wait(0)
        assert not await theirs.wait(0)
        hub.unsubscribe(mine)
        hub.wake_all()  # after a reconnect of the listener
        assert await also_mine.wait(0) and await theirs.wait(0)
        assert hub.claim(1) and hub.claim(1) and not hub.claim(1) and hub.claim(2)
        hub.release(1)
        assert hub.claim(1)

    run(scenario)


def test_the_notifying_columns_are_the_cards_fields() -> None:
    migration = importlib.import_module("gallery.migrations.0016_job_change_notify")
    assert migration.LIVE_COLUMNS == Job.LIVE_FIELDS
    job = Job(status="running", progress=3, preview_image="previews/1.webp")
    before = job.live_version
    for name in Job.LIVE_FIELDS:  # every one of them shows in the version the poll compares
        changed = Job(status="running", progress=3, preview_image="previews/1.webp")
        value = {"status": "queued", "progress": 4, "slot_position": 2}.get(name, "held")
        if name in ("result_url", "preview_image", "remix_prompt"):
            value = "http://x/2.png"
        setattr(changed, name, value)
        assert changed.live_version != before, name


# --- the view -------------------------------------------------------------------------------


@pytest.fixture
def quick(settings: Any) -> Any:
    settings.MJ_PUSH_HEARTBEAT = 0.2
    settings.MJ_PUSH_STREAM_SECONDS = 30.0
    settings.MJ_PUSH_CHECK_INTERVAL = 0.01
    return settings


def signed_in(user: Any) -> AsyncClient:
    client = AsyncClient()
    client.force_login(user)
    return client


async def next_chunk(chunks: AsyncIterator[bytes], seconds: float = 5.0) -> bytes:
    """The stream's next bytes; a stream that says nothing for `seconds` fails the test
    (asyncio.timeout would cut the stream itself)."""
    return await asyncio.wait_for(anext(chunks), seconds)


@pytest.mark.django_db
def test_the_stream_needs_a_login(client: Client) -> None:
    response = client.get(reverse("gallery:stream"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))

    async def anonymous() -> int:
        return (await AsyncClient().get(reverse("gallery:stream"))).status_code

    assert run(anonymous) == 302


@pytest.mark.django_db
def test_under_wsgi_there_is_no_stream_and_pages_do_not_ask_for_one(
    alice_client: Client, alice: Any
) -> None:
    make_job(alice, status=Job.Status.RUNNING)
    assert alice_client.get(reverse("gallery:stream")).status_code == 204
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert 'hx-trigger="every 2s"' in body and "sse-connect" not in body  # the poll alone


@pytest.mark.django_db
def test_under_asgi_a_page_with_running_cards_connects_its_poller_to_the_stream(
    alice: Any,
) -> None:
    client = signed_in(alice)

    async def page() -> str:
        return (await client.get(reverse("gallery:home"))).content.decode()

    assert "sse-connect" not in run(page)  # nothing runs: no stream either
    make_job(alice, status=Job.Status.RUNNING)
    body = run(page)
    assert (
        'hx-trigger="every 2s, sse:changed" hx-include="input[name=live]" hx-swap="none" '
        'hx-ext="sse" sse-connect="/jobs/stream/"'
    ) in body
    assert body.count("sse-connect") == 1  # one stream per page, whatever the cards
    assert "/static/django_htmx/ext/hx-sse-2.min.js" in body  # served by us, not a CDN


@pytest.mark.django_db
def test_the_stream_says_when_my_jobs_change_and_not_when_others_do(
    quick: Any, alice: Any, bob: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the database cannot notify (SQLite; here on any database, as this test's
    changes are never committed), each stream looks for changes of its own."""
    monkeypatch.setattr(push, "listens", lambda: False)
    mine = make_job(alice, status=Job.Status.RUNNING, progress=10)
    theirs = make_job(bob, status=Job.Status.RUNNING, progress=10)
    client = signed_in(alice)

    async def scenario() -> list[bytes]:
        response = await client.get(reverse("gallery:stream"))
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        assert "no-cache" in response["Cache-Control"]
        assert response["X-Accel-Buffering"] == "no"
        chunks = response.streaming_content
        got = [await next_chunk(chunks)]
        await sync_to_async(Job.objects.filter(pk=theirs.pk).update)(progress=60)
        got.append(await next_chunk(chunks))  # not theirs: only a heartbeat comes
        await sync_to_async(Job.objects.filter(pk=mine.pk).update)(progress=50)
        got.append(await next_chunk(chunks))
        await sync_to_async(make_job)(alice)  # a new running job of mine
        got.append(await next_chunk(chunks))
        await chunks.aclose()
        return got

    assert run(scenario) == [FIRST, push.HEARTBEAT, push.CHANGED, push.CHANGED]


@pytest.mark.django_db
def test_the_stream_ends_and_gives_its_slot_back(quick: Any, alice: Any) -> None:
    quick.MJ_PUSH_STREAM_SECONDS = 0.3
    quick.MJ_PUSH_STREAMS_PER_USER = 1
    client = signed_in(alice)

    async def scenario() -> tuple[list[bytes], int, int, int]:
        first = await client.get(reverse("gallery:stream"))
        chunks = first.streaming_content
        head = await next_chunk(chunks)
        refused = (await client.get(reverse("gallery:stream"))).status_code  # one per user
        rest = [chunk async for chunk in chunks]  # until it ends by itself
        again = await client.get(reverse("gallery:stream"))
        await again.streaming_content.aclose()
        return [head, *rest], first.status_code, refused, again.status_code

    got, first, refused, again = run(scenario)
    assert (first, refused, again) == (200, 204, 200)
    # (On PostgreSQL the listener's start wakes it once more.)
    assert got[0] == FIRST and set(got[1:]) <= {push.HEARTBEAT, push.CHANGED}


def test_a_stream_that_lost_the_race_for_the_last_slot_tells_the_browser_to_wait(
    settings: Any,
) -> None:
    settings.MJ_PUSH_STREAMS_PER_USER = 1

    async def scenario() -> list[bytes]:
        assert push.hub().claim(7)  # another stream of user 7 got there first
        return [chunk async for chunk in push.stream(7)]

    assert run(scenario) == [b"retry: 30000\n\n"]


# --- the live poller: woken, never replaced while it runs ----------------------------------


@pytest.mark.django_db
def test_a_submit_does_not_restart_a_running_poller(alice_client: Client, alice: Any) -> None:
    """Issue 12: every submit answered with a fresh poller, which restarted the page's timer;
    typing Imagine every 1.5 s stopped the live poll altogether."""
    make_job(alice, status=Job.Status.RUNNING)
    response = alice_client.post(
        reverse("gallery:imagine"),
        {"prompt": "a red kite", "mode": "fast", "submit_key": str(uuid.uuid4())},
        **HX,
    )
    assert response.status_code == 200
    assert "live-poller" not in response.content.decode()  # the page's poller is left alone
    assert "live-wake" in response["HX-Trigger-After-Swap"]  # an idle one wakes itself up
    parent = make_job(alice, status=Job.Status.SUCCEEDED, buttons=[{"action": "reroll"}])
    response = alice_client.post(
        reverse("gallery:reroll", args=[parent.code]), {"submit_key": str(uuid.uuid4())}, **HX
    )
    assert Job.objects.filter(parent=parent).exists()
    assert "live-poller" not in response.content.decode()
    assert "live-wake" in response["HX-Trigger-After-Swap"]


@pytest.mark.django_db
def test_a_woken_poller_is_switched_on_while_something_runs(
    alice_client: Client, alice: Any
) -> None:
    job = make_job(alice, status=Job.Status.RUNNING)
    seen = {"live": f"{job.code}~{job.live_version}~", "wake": "1"}
    body = alice_client.get(reverse("gallery:live"), seen, **HX).content.decode()
    assert 'id="live-poller" hx-swap-oob="true" hx-get="/jobs/live/" hx-trigger="every 2s"' in body
    assert "<article" not in body  # its card had not changed
    del seen["wake"]
    assert alice_client.get(reverse("gallery:live"), seen, **HX).status_code == 204


# --- PostgreSQL: the trigger and the one listening connection -------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_database_notifies_the_owner_when_a_card_would_change(alice: Any) -> None:
    require_postgres()
    job = make_job(alice, status=Job.Status.RUNNING, progress=10)
    with psycopg.connect(**push.listen_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {push.CHANNEL}")

        def heard(seconds: float = 2.0) -> list[str]:
            return [n.payload for n in listener.notifies(timeout=seconds, stop_after=1)]

        Job.objects.filter(pk=job.pk).update(progress=40)
        assert heard() == [str(alice.pk)]
        Job.objects.filter(pk=job.pk).update(hinted_at=job.created_at)  # not on the card
        Job.objects.filter(pk=job.pk).update(progress=40)  # the same value: no change
        assert heard(0.3) == []
        make_job(alice)
        assert heard() == [str(alice.pk)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_stream_wakes_through_notify(quick: Any, alice: Any, bob: Any) -> None:
    require_postgres()
    mine = make_job(alice, status=Job.Status.RUNNING, progress=10)
    theirs = make_job(bob, status=Job.Status.RUNNING, progress=10)
    client = signed_in(alice)

    async def scenario() -> list[bytes]:
        response = await client.get(reverse("gallery:stream"))
        chunks = response.streaming_content
        got = [await next_chunk(chunks)]
        here = push.hub()
        await asyncio.wait_for(here.listening.wait(), 10)
        got.append(await next_chunk(chunks))  # woken once the listener is up
        assert len(here.subscriptions[alice.pk]) == 1
        await sync_to_async(Job.objects.filter(pk=theirs.pk).update)(progress=60)
        got.append(await next_chunk(chunks))
        await sync_to_async(Job.objects.filter(pk=mine.pk).update)(progress=50)
        got.append(await next_chunk(chunks))
        await chunks.aclose()
        await here.close()
        return got

    assert run(scenario) == [FIRST, push.CHANGED, push.HEARTBEAT, push.CHANGED]


def backends() -> int:
    """Connections to the test database, this one's aside."""
    with psycopg.connect(**push.listen_params()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0


async def open_stream(app: Any, session: str) -> tuple[asyncio.Queue[Any], asyncio.Event]:
    """GET /jobs/stream/ through Django's ASGI handler, as a server would call it; setting
    the event disconnects the client."""
    sent: asyncio.Queue[Any] = asyncio.Queue()
    gone = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": reverse("gallery:stream"),
        "raw_path": reverse("gallery:stream").encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", f"sessionid={session}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    asyncio.get_running_loop().create_task(app(scope, receive, sent.put))
    return sent, gone


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_streams_hold_no_database_connection_but_the_one_listening(quick: Any, alice: Any) -> None:
    """Under a server every request runs in a thread of its own, with a connection of its
    own: three streams must not keep three connections (nor three pool slots) for minutes."""
    require_postgres()
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    client = Client()
    client.force_login(alice)
    session = client.cookies["sessionid"].value

    async def scenario() -> tuple[int, int, list[int]]:
        before = backends()
        streams = [await open_stream(app, session) for _ in range(3)]
        statuses = []
        for sent, _ in streams:
            start = await asyncio.wait_for(sent.get(), 10)
            statuses.append(start["status"])
            assert (await asyncio.wait_for(sent.get(), 10))["body"].startswith(b"retry:")
        await asyncio.wait_for(push.hub().listening.wait(), 10)
        during = backends()
        for _, gone in streams:
            gone.set()
        for _ in range(100):  # the handler cancels each stream, which gives its slot back
            if not push.hub().streams:
                break
            await asyncio.sleep(0.01)
        await push.hub().close()
        return before, during, statuses

    # asyncio.run, not async_to_sync: no test thread to send the sync work back to, so each
    # request gets a thread (and a database connection) of its own, as under uvicorn.
    before, during, statuses = asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert during == before + 1  # the hub's one LISTEN connection
