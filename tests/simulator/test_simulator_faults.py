"""The simulator's fault injection, at the wire: configured faults and per-job directives.

No Django database: a live simulator on a free loopback port, time from a fake clock the
tests advance. Only latency, hangs and webhooks take real time (well under a second each,
webhooks waited for on an Event with a timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import faults
from simulator.faults import Faults
from simulator.server import SimulatorServer
from tests.gallery.factories import FakeClock, HookReceiver

DURATION = 10.0


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer(duration=DURATION, clock=clock) as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        yield client


def imagine(api: httpx.Client, prompt: str, **extra: Any) -> dict[str, Any]:
    answer = api.post("/mj/submit/imagine", json={"prompt": prompt, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def submitted(api: httpx.Client, prompt: str, **extra: Any) -> str:
    answer = imagine(api, prompt, **extra)
    assert answer["code"] == 1, answer
    return answer["result"]


def fetch(api: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = api.get(f"/mj/task/{task_id}/fetch")
    assert answer.status_code == 200, answer.text
    return answer.json()


def finished(api: httpx.Client, clock: FakeClock, prompt: str = "a red fox") -> dict[str, Any]:
    task_id = submitted(api, prompt)
    clock.now += DURATION + 1
    task = fetch(api, task_id)
    assert task["status"] == "SUCCESS"
    return task


def press(api: httpx.Client, task: dict[str, Any], label_or_emoji: str) -> dict[str, Any]:
    button = next(b for b in task["buttons"] if label_or_emoji in (b["label"], b["emoji"]))
    answer = api.post(
        "/mj/submit/action", json={"taskId": task["id"], "customId": button["customId"]}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- configuration ---------------------------------------------------------------------


def test_faults_parse_from_the_settings_string() -> None:
    parsed = Faults.parse(
        "latency=0.3, error_rate=0.05,remix=1,queue_limit=3,banned_words=blood,gore|guts,"
        "late_banned_words=,image_ttl=60,webhook_shuffle,seed=7"
    )
    assert parsed.latency == 0.3 and parsed.error_rate == 0.05 and parsed.seed == 7
    assert parsed.remix is True and parsed.remix_code1 is False and parsed.webhook_shuffle
    assert parsed.queue_limit == 3 and parsed.image_ttl == 60.0
    assert parsed.banned_words == ("blood", "gore", "guts")
    assert parsed.late_banned_words == ()
    assert Faults.parse(parsed.describe()) == parsed  # describe() reads back
    assert Faults.parse("") == Faults() and Faults().describe() == ""
    assert Faults.parse("queue_limit=none,image_ttl=").queue_limit is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("bogus=1", "unknown fault 'bogus'"),
        ("remix=maybe", "remix: 'maybe' is not a yes/no value"),
        ("latency=slow", "latency: could not convert"),
        ("error_rate=2", "error_rate must be between 0 and 1"),
        ("latency=1,oops", "'oops' is not name=value"),
    ],
)
def test_faults_parse_rejects_nonsense(text: str, complaint: str) -> None:
    with pytest.raises(ValueError) as refused:
        Faults.parse(text)
    assert complaint in str(refused.value)


def test_directives_are_read_from_the_prompt_in_order() -> None:
    prompt = "a fox [sim:500] in snow [SIM:Stuck] [sim:nonsense] [sim:500]"
    assert faults.directives(prompt) == ("500", "stuck")
    assert faults.directives("a fox in snow") == ()
    assert faults.banned_word(("gore",), "Gore and more") == "gore"
    assert faults.banned_word(("gore",), "a goretex coat") is None  # whole words only


def test_the_default_server_has_no_faults_but_the_banned_words(server: SimulatorServer) -> None:
    assert server.faults == Faults()
    assert server.faults.banned_words == ("bloody", "gore")
    assert server.faults.late_banned_words == ("forbidden",)


# -- configured faults -----------------------------------------------------------------


def test_latency_delays_every_answer(server: SimulatorServer, api: httpx.Client) -> None:
    started = time.monotonic()
    api.get("/mj/task/1234567890123456/fetch")
    quick = time.monotonic() - started
    server.faults = Faults(latency=0.2)  # swapped on the running server
    started = time.monotonic()
    answer = api.get("/mj/task/1234567890123456/fetch")
    assert answer.status_code == 400  # the answer itself is unchanged, only later
    assert time.monotonic() - started >= 0.2 > quick


def test_error_rate_answers_gateway_errors_repeatably(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    task = finished(api, clock)
    server.faults = Faults(error_rate=1.0)
    for _ in range(5):
        answer = api.post("/mj/task/list-by-condition", json={"ids": [task["id"]]})
        assert answer.status_code in (429, 500, 502, 503, 504, 524)
        error = answer.json()["error"]
        assert error["type"] == "comet_api_error" and "(request id: " in error["message"]
    # image bytes are not API calls: they only fail by expiring
    assert api.get(f"/mj/image/{task['id']}").status_code == 200

    def draws(seed: int) -> list[int]:
        server.faults = Faults(error_rate=0.5, seed=seed)
        return [api.get(f"/mj/task/{task['id']}/fetch").status_code for _ in range(12)]

    first = draws(3)
    assert draws(3) == first  # a new Faults value restarts the seeded draws
    assert 200 in first and set(first) - {200}


def test_error_rate_on_piapi_uses_its_envelope(server: SimulatorServer) -> None:
    server.faults = Faults(error_rate=1.0)
    answer = httpx.get(f"{server.base_url}/api/v1/task/whatever")
    assert answer.status_code in (429, 500, 502, 503, 504, 524)
    assert answer.json()["code"] == answer.status_code and answer.json()["data"] == {}


def test_remix_parks_reroll_variation_and_pan_in_modal(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    parent = finished(api, clock)
    server.faults = Faults(remix=True)
    reroll = press(api, parent, "🔄")
    assert reroll["code"] == 21 and reroll["description"] == "Waiting for window confirm"
    assert fetch(api, reroll["result"])["status"] == "MODAL"
    upscale = press(api, parent, "U1")
    assert upscale["code"] == 1  # Remix does not intercept upscales
    assert fetch(api, upscale["result"])["status"] != "MODAL"


def test_remix_code1_answers_like_the_gateway_and_only_the_fetch_says_modal(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    parent = finished(api, clock)
    server.faults = Faults(remix=True, remix_code1=True)
    answer = press(api, parent, "V2")
    assert (answer["code"], answer["description"]) == (1, "提交成功")
    clock.now += DURATION * 3
    assert fetch(api, answer["result"])["status"] == "MODAL"
    confirmed = api.post("/mj/submit/modal", json={"taskId": answer["result"], "prompt": "x"})
    assert confirmed.json()["code"] == 1
    clock.now += DURATION + 1
    assert fetch(api, answer["result"])["status"] == "SUCCESS"


def test_queue_limit_refuses_with_novicezk_and_trueai_codes_in_turn(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    server.faults = Faults(queue_limit=1)
    submitted(api, "the first one")
    refusals = [imagine(api, "one too many") for _ in range(3)]
    assert [(r["code"], r["description"], r["result"]) for r in refusals] == [
        (23, "队列已满，请稍后尝试", None),
        (9, "提交失败，队列已满，请稍后重试", None),
        (23, "队列已满，请稍后尝试", None),
    ]
    assert len(server.engine.tasks()) == 1  # nothing was created
    clock.now += DURATION + 1  # the first one finishes and frees its slot
    assert imagine(api, "one too many")["code"] == 1


def test_queue_limit_on_piapi_is_an_http_429_with_a_capacity_message(
    server: SimulatorServer, clock: FakeClock
) -> None:
    server.faults = Faults(queue_limit=0)
    body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "a cat"}}
    unified = httpx.post(f"{server.base_url}/api/v1/task", json=body)
    assert unified.status_code == 429
    assert unified.json() == {"code": 429, "data": {}, "message": faults.PIAPI_QUEUE_FULL}
    legacy = httpx.post(f"{server.base_url}/mj/v2/imagine", json={"prompt": "a cat"})
    assert legacy.status_code == 429 and "try again later" in legacy.json()["message"]
    assert server.engine.tasks() == []


def test_banned_words_are_refused_before_queueing(
    server: SimulatorServer, api: httpx.Client
) -> None:
    answer = imagine(api, "a Bloody scene")
    assert answer == {
        "code": 24,
        "description": "可能包含敏感词",
        "result": None,
        "properties": {"promptEn": "a Bloody scene", "bannedWord": "bloody"},
    }
    assert server.engine.tasks() == []
    server.faults = Faults(banned_words=())
    assert imagine(api, "a Bloody scene")["code"] == 1


def test_banned_words_on_piapi_are_a_refusal_in_both_dialects(server: SimulatorServer) -> None:
    body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "gore"}}
    unified = httpx.post(f"{server.base_url}/api/v1/task", json=body)
    assert unified.status_code == 400
    assert unified.json()["message"] == (
        "Banned prompt detected: the prompt contains a banned word (gore)"
    )
    legacy = httpx.post(f"{server.base_url}/mj/v2/imagine", json={"prompt": "gore"}).json()
    assert legacy["status"] == "failed" and "(gore)" in legacy["message"]
    assert server.engine.tasks() == []


def test_late_banned_words_run_a_little_then_fail(api: httpx.Client, clock: FakeClock) -> None:
    task_id = submitted(api, "a forbidden garden")
    seen = set()
    for _ in range(20):
        clock.now += DURATION / 20
        task = fetch(api, task_id)
        seen.add(task["status"])
    assert "IN_PROGRESS" in seen
    assert (task["status"], task["progress"], task["failReason"]) == (
        "FAILURE",
        "100%",
        faults.BANNED_REASON,
    )
    assert task["imageUrl"] == "" and task["buttons"] == []


def test_image_ttl_expires_finished_images(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    server.faults = Faults(image_ttl=30)
    task = finished(api, clock)
    assert api.get(f"/mj/image/{task['id']}").status_code == 200
    clock.now += 30
    gone = api.get(f"/mj/image/{task['id']}")
    assert gone.status_code == 404 and gone.json() == {"error": "midjourney_task_not_found"}
    assert fetch(api, task["id"])["imageUrl"].endswith(f"/mj/image/{task['id']}")  # the link stays


# -- per-job directives ----------------------------------------------------------------


def test_stuck_stays_in_progress_until_finished_by_hand(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    task_id = submitted(api, "a fox [sim:stuck]")
    clock.now += DURATION * 0.6
    held = fetch(api, task_id)
    clock.now += DURATION * 100
    later = fetch(api, task_id)
    assert later["status"] == "IN_PROGRESS" and later["progress"] == held["progress"]
    assert server.engine.unfinished() == 1
    server.engine.finish(task_id)  # the proxy finds its Discord message after all
    done = fetch(api, task_id)
    assert done["status"] == "SUCCESS" and len(done["buttons"]) == 9
    assert api.get(f"/mj/image/{task_id}").status_code == 200


@pytest.mark.parametrize(
    ("directive", "reason"),
    [("fail", "任务超时"), ("fail-en", "[Invalid parameter] Invalid value")],
)
def test_fail_directives_fail_with_the_proxys_words(
    api: httpx.Client, clock: FakeClock, directive: str, reason: str
) -> None:
    task_id = submitted(api, f"a fox [sim:{directive}]")
    clock.now += DURATION * 0.25
    assert fetch(api, task_id)["status"] == "IN_PROGRESS"
    clock.now += DURATION
    task = fetch(api, task_id)
    assert (task["status"], task["failReason"], task["progress"]) == ("FAILURE", reason, "100%")
    assert task["prompt"] == f"a fox [sim:{directive}]"  # directives are just words


def test_expire_loses_the_image_once_finished(api: httpx.Client, clock: FakeClock) -> None:
    task_id = submitted(api, "a fox [sim:expire]")
    clock.now += DURATION * 0.5
    assert api.get(fetch(api, task_id)["imageUrl"]).status_code == 200  # the preview works
    clock.now += DURATION
    assert fetch(api, task_id)["status"] == "SUCCESS"
    assert api.get(f"/mj/image/{task_id}").status_code == 404


def test_slow_takes_ten_times_longer(api: httpx.Client, clock: FakeClock) -> None:
    slow, normal = submitted(api, "a fox [sim:slow]"), submitted(api, "a fox")
    clock.now += DURATION + 1
    assert fetch(api, normal)["status"] == "SUCCESS"
    assert fetch(api, slow)["status"] == "SUBMITTED"
    clock.now += DURATION * 9
    assert fetch(api, slow)["status"] == "SUCCESS"


def test_blank_keeps_the_gateways_empty_status_a_long_time(
    api: httpx.Client, clock: FakeClock
) -> None:
    task_id = submitted(api, "a fox [sim:blank]")
    clock.now += DURATION * 4
    task = fetch(api, task_id)
    assert (task["status"], task["progress"], task["startTime"]) == ("", "0%", None)
    clock.now += DURATION * 2.5
    assert fetch(api, task_id)["status"] == "SUCCESS"


@pytest.mark.parametrize("status", [429, 500])
def test_http_error_directives_fail_the_submit_twice_then_let_it_through(
    server: SimulatorServer, api: httpx.Client, status: int
) -> None:
    prompt = f"a fox [sim:{status}]"
    for _ in range(2):
        answer = api.post("/mj/submit/imagine", json={"prompt": prompt})
        assert answer.status_code == status
        assert answer.json()["error"]["type"] == "comet_api_error"
    assert server.engine.tasks() == []
    assert imagine(api, prompt)["code"] == 1
    assert imagine(api, prompt)["code"] == 1  # the counter is per prompt: spent


def test_http_error_directives_on_piapi(server: SimulatorServer) -> None:
    body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": "x [sim:500]"}}
    url = f"{server.base_url}/api/v1/task"
    answers = [httpx.post(url, json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json() == {"code": 500, "data": {}, "message": "internal server error"}
    assert len(server.engine.tasks()) == 1


def test_timeout_directive_hangs_past_the_client_timeout_and_creates_nothing(
    server: SimulatorServer,
) -> None:
    server.faults = Faults(hang=0.4)
    body = {"prompt": "a fox [sim:timeout]"}
    with httpx.Client(base_url=server.base_url, timeout=0.15) as impatient:
        for _ in range(2):
            with pytest.raises(httpx.ReadTimeout):
                impatient.post("/mj/submit/imagine", json=body)
        assert server.engine.tasks() == []
        answer = impatient.post("/mj/submit/imagine", json=body)
    assert answer.json()["code"] == 1 and len(server.engine.tasks()) == 1


def test_stop_releases_a_hanging_request(clock: FakeClock) -> None:
    srv = SimulatorServer(duration=DURATION, clock=clock, faults=Faults(hang=30)).start()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(f"{srv.base_url}/mj/submit/imagine", json={"prompt": "[sim:timeout]"})
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(100):  # until the request is in, hanging
        if srv.fault_state.attempts("timeout", "imagine:[sim:timeout]"):
            break
        time.sleep(0.02)
    started = time.monotonic()
    srv.stop()
    caller.join(timeout=5)
    assert not caller.is_alive() and time.monotonic() - started < 5
    assert outcome and isinstance(outcome[0], httpx.RemoteProtocolError)  # no answer at all


def test_malformed_cuts_off_the_first_answer_that_carries_the_task(
    api: httpx.Client, clock: FakeClock
) -> None:
    task_id = submitted(api, "a fox [sim:malformed]")
    other = submitted(api, "a hare")
    listed = api.post("/mj/task/list-by-condition", json={"ids": [other, task_id]})
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(listed.text)
    assert [t["id"] for t in api.post("/mj/task/list-by-condition", json={"ids": [other]}).json()]
    assert fetch(api, task_id)["id"] == task_id  # once only
    again = submitted(api, "a fox [sim:malformed]")
    with pytest.raises(json.JSONDecodeError):
        api.get(f"/mj/task/{again}/fetch").json()
    assert fetch(api, again)["id"] == again


@pytest.mark.parametrize("dialect", ["unified", "legacy"])
def test_malformed_on_piapi(server: SimulatorServer, dialect: str) -> None:
    prompt = "a fox [sim:malformed]"
    if dialect == "unified":
        body = {"model": "midjourney", "task_type": "imagine", "input": {"prompt": prompt}}
        task_id = httpx.post(f"{server.base_url}/api/v1/task", json=body).json()["data"]["task_id"]

        def read() -> httpx.Response:
            return httpx.get(f"{server.base_url}/api/v1/task/{task_id}")
    else:
        created = httpx.post(f"{server.base_url}/mj/v2/imagine", json={"prompt": prompt})
        task_id = created.json()["task_id"]

        def read() -> httpx.Response:
            return httpx.post(f"{server.base_url}/mj/v2/fetch", json={"task_id": task_id})

    with pytest.raises(json.JSONDecodeError):
        read().json()
    assert read().json()["data" if dialect == "unified" else "task_id"]


def test_submit_directives_count_a_press_by_its_parent_and_button(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    for _ in range(2):  # the imagine fails its own two times first
        assert api.post("/mj/submit/imagine", json={"prompt": "a fox [sim:429]"}).status_code == 429
    parent = finished(api, clock, "a fox [sim:429]")
    button = next(b for b in parent["buttons"] if b["emoji"] == "🔄")
    body = {"taskId": parent["id"], "customId": button["customId"]}
    codes = [api.post("/mj/submit/action", json=body).status_code for _ in range(3)]
    assert codes == [429, 429, 200]


# -- webhooks --------------------------------------------------------------------------


def test_notify_hook_gets_the_task_object_on_every_change(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, receiver: HookReceiver
) -> None:
    task_id = submitted(api, "a lighthouse", notifyHook=receiver.url, state="job-1")
    first = receiver.wait_for(1)[0]
    assert (first["id"], first["status"], first["state"]) == (task_id, "", "job-1")
    clock.now += DURATION * 0.5
    running = receiver.wait_for(2)[1]
    assert running["status"] == "IN_PROGRESS" and running == fetch(api, task_id)
    clock.now += DURATION
    bodies = receiver.wait_for(3)
    assert bodies[2] == fetch(api, task_id) and bodies[2]["status"] == "SUCCESS"
    headers = receiver.received[2][0]
    assert headers["content-type"] == "application/json"
    assert not any("secret" in name or "signature" in name for name in headers)  # unsigned
    time.sleep(0.5)  # a few more watcher rounds: a finished task says nothing more
    assert len(receiver.received) == 3
    assert [d.status for d in server.notify.deliveries] == ["", "IN_PROGRESS", "SUCCESS"]


def test_a_task_without_a_hook_sends_nothing(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    submitted(api, "a lighthouse")
    clock.now += DURATION + 1
    assert server.notify.scan() == [] and server.notify.deliveries == []


def test_a_failing_hook_is_not_retried(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock
) -> None:
    hook = HookReceiver(status=500)
    try:
        submitted(api, "a lighthouse", notifyHook=hook.url)
        hook.wait_for(1)
        time.sleep(0.5)
        assert len(hook.received) == 1
    finally:
        hook.close()


def test_webhook_duplicates_send_each_delivery_twice(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, receiver: HookReceiver
) -> None:
    server.faults = Faults(webhook_duplicates=True)
    submitted(api, "a lighthouse", notifyHook=receiver.url)
    bodies = receiver.wait_for(2)
    assert bodies[0] == bodies[1]
    time.sleep(0.3)
    assert len(receiver.received) == 2  # no change since: nothing more


def test_webhook_shuffle_reverses_a_round_and_resends_a_stale_state_after_the_end(
    server: SimulatorServer, api: httpx.Client, clock: FakeClock, receiver: HookReceiver
) -> None:
    server.watcher.stop()  # rounds by hand, so that each is exactly what the test says
    server.faults = Faults(webhook_shuffle=True)
    one = submitted(api, "one", notifyHook=receiver.url)
    two = submitted(api, "two", notifyHook=receiver.url)
    assert [d.task_id for d in server.notify.scan()] == [one, two]
    first_round = receiver.wait_for(2)
    assert [b["id"] for b in first_round] == [two, one]  # reversed
    clock.now += DURATION * 0.5
    server.notify.scan()
    receiver.wait_for(4)
    clock.now += DURATION
    server.notify.scan()
    bodies = receiver.wait_for(8)[4:]
    assert [(b["id"], b["status"]) for b in bodies] == [
        (two, "SUCCESS"),
        (one, "SUCCESS"),
        (one, "IN_PROGRESS"),  # stale: the state before the terminal one, delivered after it
        (two, "IN_PROGRESS"),
    ]


def test_piapi_webhooks_follow_the_duplicate_fault(
    server: SimulatorServer, clock: FakeClock, receiver: HookReceiver
) -> None:
    server.faults = Faults(webhook_duplicates=True)
    body = {
        "model": "midjourney",
        "task_type": "imagine",
        "input": {"prompt": "a lighthouse"},
        "config": {"webhook_config": {"endpoint": receiver.url, "secret": "s"}},
    }
    assert httpx.post(f"{server.base_url}/api/v1/task", json=body).status_code == 200
    clock.now += DURATION + 1
    bodies = receiver.wait_for(2)
    assert bodies[0] == bodies[1] and bodies[0]["data"]["status"] == "completed"
    assert len(server.piapi.deliveries) == 2


def test_one_watcher_serves_both_protocols_and_stop_ends_it(clock: FakeClock) -> None:
    srv = SimulatorServer(duration=DURATION, clock=clock).start()
    thread = srv.watcher.thread
    assert thread is not None and thread is srv.piapi._watcher and thread.is_alive()
    assert srv.watcher.scans == [srv.piapi.scan_webhooks, srv.notify.scan]
    srv.stop()
    assert not thread.is_alive() and srv.watcher.thread is None
