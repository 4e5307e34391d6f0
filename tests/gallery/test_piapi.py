"""The PiAPI adapter, both dialects, against recorded answers in the documented shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gallery.providers import get_provider
from gallery.providers.base import Button, ProviderError, TaskStatus
from gallery.providers.piapi import PiAPI, parse_actions, parse_status, parse_webhook
from tests.conftest import load

BASE = "https://api.piapi.ai"
TID = "5b3e6d0c-8f2a-4c1e-9a7b-3d2f1e0c9b8a"
HOOK = {"webhook_endpoint": "", "webhook_secret": ""}

Handler = Callable[[httpx.Request], httpx.Response]


def adapter(handler: Handler, api: str = "unified", **kwargs: Any) -> PiAPI:
    return PiAPI(
        name="piapi",
        base_url=BASE,
        api_key="pk-test",
        api=api,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def answer(status: int, name: str) -> Handler:
    return lambda request: httpx.Response(status, json=load(f"piapi/{name}"))


class Spy:
    """A MockTransport handler that records requests and replays one recorded answer."""

    def __init__(self, name: str, status: int = 200) -> None:
        self.name, self.status = name, status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=load(f"piapi/{self.name}"))

    @property
    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


def button(action: str, index: int | None = None, variant: str = "") -> Button:
    return Button(action, index, variant, "label", "custom")


# --- submits: unified ---------------------------------------------------------------------


def test_unified_imagine_posts_the_task_envelope_with_the_api_key() -> None:
    spy = Spy("unified_create_success.json")
    with adapter(spy) as api:
        submission = api.imagine(prompt="red fox in snow", mode="relax", state="job-17")
    assert submission.provider_job_id == TID
    assert submission.status is TaskStatus.PENDING
    assert submission.final_prompt == "red fox in snow --v 6.1"
    request = spy.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/v1/task")
    assert request.headers["x-api-key"] == "pk-test"
    assert "authorization" not in request.headers
    assert spy.body == {
        "model": "midjourney",
        "task_type": "imagine",
        "input": {
            "prompt": "red fox in snow",
            "aspect_ratio": "1:1",
            "process_mode": "relax",
            "skip_prompt_check": False,
        },
        "config": {"service_mode": ""},
    }


def test_unified_sends_the_webhook_config_when_one_is_set() -> None:
    spy = Spy("unified_create_success.json")
    hook = {"webhook_endpoint": "https://studio.example.com/h/", "webhook_secret": "s3"}
    with adapter(spy, **hook) as api:
        api.imagine(prompt="x", mode="fast", state="s")
    assert spy.body["config"] == {
        "service_mode": "",
        "webhook_config": {"endpoint": "https://studio.example.com/h/", "secret": "s3"},
    }


@pytest.mark.parametrize(
    ("pressed", "prompt", "task_type", "fields"),
    [
        (button("reroll"), "", "reroll", {"skip_prompt_check": False}),
        (
            button("reroll"),
            "red fox at night",
            "reroll",
            {"prompt": "red fox at night", "skip_prompt_check": False},
        ),
        (button("upscale", 3), "", "upscale", {"index": "3"}),
        (button("upscale_subtle"), "", "upscale", {"index": "subtle"}),
        (button("upscale_creative"), "", "upscale", {"index": "creative"}),
        (
            button("variation", 2),
            "red fox",
            "variation",
            {"index": "2", "prompt": "red fox", "skip_prompt_check": False},
        ),
        (button("variation", 4), "", "variation", {"index": "4", "skip_prompt_check": False}),
        (
            button("vary_subtle"),
            "",
            "variation",
            {"index": "low_variation", "skip_prompt_check": False},
        ),
        (
            button("vary_strong"),
            "",
            "variation",
            {"index": "high_variation", "skip_prompt_check": False},
        ),
        (button("zoom_out", None, "2x"), "", "outpaint", {"zoom_ratio": "2"}),
        (button("zoom_out", None, "1.5x"), "", "outpaint", {"zoom_ratio": "1.5"}),
        (button("pan", None, "left"), "", "pan", {"direction": "left"}),
        (button("pan", None, "down"), "", "pan", {"direction": "down"}),
    ],
)
def test_unified_actions_send_the_documented_inputs(
    pressed: Button, prompt: str, task_type: str, fields: dict[str, Any]
) -> None:
    spy = Spy("unified_create_success.json")
    with adapter(spy) as api:
        submission = api.action(
            parent_job_id="parent-1", button=pressed, mode="turbo", state="s", prompt=prompt
        )
    assert submission.provider_job_id == TID
    assert spy.requests[0].url.path == "/api/v1/task"
    assert spy.body == {
        "model": "midjourney",
        "task_type": task_type,
        "input": {"origin_task_id": "parent-1", **fields, "process_mode": "turbo"},
        "config": {"service_mode": ""},
    }


def test_a_button_piapi_has_no_task_for_is_refused_without_a_call() -> None:
    spy = Spy("unified_create_success.json")
    with adapter(spy) as api, pytest.raises(ProviderError) as caught:
        api.action(parent_job_id="p", button=button("upscale", 7), mode="fast", state="s")
    assert caught.value.permanent and spy.requests == []


def test_modal_is_refused_permanently() -> None:
    with adapter(Spy("unified_create_success.json")) as api, pytest.raises(ProviderError) as e:
        api.modal(provider_job_id=TID, prompt="x", mode="fast")
    assert e.value.permanent
    assert "prompt goes with the button press" in e.value.message


# --- submits: legacy ----------------------------------------------------------------------


def test_legacy_imagine_posts_the_v2_body() -> None:
    spy = Spy("legacy_reroll_success.json")
    with adapter(spy, api="legacy") as api:
        api.imagine(prompt="a cute cat", mode="fast", state="s")
    request = spy.requests[0]
    assert (request.method, request.url.path) == ("POST", "/mj/v2/imagine")
    assert request.headers["x-api-key"] == "pk-test"
    assert spy.body == {
        "prompt": "a cute cat",
        "skip_prompt_check": False,
        "process_mode": "fast",
        "aspect_ratio": "1:1",
        **HOOK,
    }


def test_legacy_reroll_follows_the_seed_document_to_the_letter() -> None:
    spy = Spy("legacy_reroll_success.json")
    with adapter(spy, api="legacy") as api:
        submission = api.action(
            parent_job_id="6886fc4d************d912733806d5",
            button=button("reroll"),
            mode="fast",
            state="s",
            prompt="a cute cat",
        )
        edited = spy.body
        api.action(parent_job_id="p", button=button("reroll"), mode="fast", state="s")
        kept = spy.body
    assert spy.requests[0].url.path == "/mj/v2/reroll"
    # the seed's example body, key for key and in its order
    assert list(edited) == [
        "origin_task_id",
        "prompt",
        "skip_prompt_check",
        "webhook_endpoint",
        "webhook_secret",
    ]
    assert edited == {
        "origin_task_id": "6886fc4d************d912733806d5",
        "prompt": "a cute cat",
        "skip_prompt_check": False,
        "webhook_endpoint": "",
        "webhook_secret": "",
    }
    assert list(kept) == [
        "origin_task_id",
        "skip_prompt_check",
        "webhook_endpoint",
        "webhook_secret",
    ]
    # and the seed's example answer
    assert submission.provider_job_id == "1a8149b1*************a644936daa21"
    assert submission.status is TaskStatus.PENDING


@pytest.mark.parametrize(
    ("pressed", "prompt", "path", "fields"),
    [
        (button("upscale", 1), "", "/mj/v2/upscale", {"index": "1"}),
        (button("upscale_creative"), "", "/mj/v2/upscale", {"index": "creative"}),
        (
            button("variation", 3),
            "a cute cat",
            "/mj/v2/variation",
            {"index": "3", "prompt": "a cute cat", "skip_prompt_check": False},
        ),
        (
            button("vary_strong"),
            "",
            "/mj/v2/variation",
            {"index": "high_variation", "skip_prompt_check": False},
        ),
        (button("zoom_out", None, "2x"), "", "/mj/v2/outpaint", {"zoom_ratio": "2"}),
        (button("pan", None, "up"), "", "/mj/v2/pan", {"direction": "up"}),
    ],
)
def test_legacy_actions_post_to_their_own_endpoints(
    pressed: Button, prompt: str, path: str, fields: dict[str, Any]
) -> None:
    spy = Spy("legacy_reroll_success.json")
    hook = {"webhook_endpoint": "https://studio.example.com/h/", "webhook_secret": "s3"}
    with adapter(spy, api="legacy", **hook) as api:
        api.action(parent_job_id="p-1", button=pressed, mode="fast", state="s", prompt=prompt)
    assert spy.requests[0].url.path == path
    assert spy.body == {"origin_task_id": "p-1", **fields, **hook}


def test_legacy_upscale_body_is_exactly_the_documented_one() -> None:
    spy = Spy("legacy_reroll_success.json")
    with adapter(spy, api="legacy") as api:
        api.action(parent_job_id="p-1", button=button("upscale", 2), mode="relax", state="s")
    assert spy.body == {"origin_task_id": "p-1", "index": "2", **HOOK}


def test_legacy_refusal_keeps_the_message_verbatim() -> None:
    with (
        adapter(answer(200, "legacy_submit_failed.json"), api="legacy") as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert caught.value.message == "origin task not found"
    assert caught.value.permanent


def test_legacy_success_without_a_task_id_is_a_refusal() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_id": "", "status": "success", "message": "hm"})

    with adapter(handler, api="legacy") as api, pytest.raises(ProviderError) as caught:
        api.imagine(prompt="x", mode="fast", state="s")
    assert caught.value.message == "hm"


def test_legacy_answer_in_the_unified_envelope_is_read_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": 200, "data": {"task_id": "t-9"}, "message": ""})

    with adapter(handler, api="legacy") as api:
        assert api.imagine(prompt="x", mode="fast", state="s").provider_job_id == "t-9"


# --- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "permanent", "fail_kind", "text"),
    [
        ("unified_create_refused.json", True, "rejected_prompt", "banned word"),
        ("unified_create_invalid.json", True, "provider_error", "origin task is not completed"),
        ("unified_create_busy.json", False, "provider_error", "too many tasks"),
    ],
)
def test_unified_refusals_are_classified_by_code_and_words(
    name: str, permanent: bool, fail_kind: str, text: str
) -> None:
    with adapter(answer(200, name)) as api, pytest.raises(ProviderError) as caught:
        api.imagine(prompt="x", mode="fast", state="s")
    assert (caught.value.permanent, caught.value.fail_kind) == (permanent, fail_kind)
    assert text in caught.value.message


@pytest.mark.parametrize("api_name", ["unified", "legacy"])
def test_a_banned_prompt_in_an_http_400_is_a_rejected_prompt(api_name: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"code": 400, "data": {}, "message": "Banned prompt detected: 'gore'"}
        return httpx.Response(400, json=body)

    with adapter(handler, api=api_name) as api, pytest.raises(ProviderError) as caught:
        api.imagine(prompt="gore", mode="fast", state="s")
    assert caught.value.fail_kind == "rejected_prompt"
    assert caught.value.permanent and caught.value.status_code == 400
    assert caught.value.message == "Banned prompt detected: 'gore'"


@pytest.mark.parametrize("api_name", ["unified", "legacy"])
def test_401_is_permanent_with_the_providers_words(api_name: str) -> None:
    with (
        adapter(answer(401, "error_401.json"), api=api_name) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert caught.value.permanent and caught.value.status_code == 401
    assert "invalid api key" in caught.value.message


@pytest.mark.parametrize("status", [429, 500, 502, 503, 524])
def test_429_and_5xx_are_transient(status: int) -> None:
    with (
        adapter(lambda r: httpx.Response(status, text="upstream hiccup")) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert not caught.value.permanent and caught.value.status_code == status


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.ConnectError("no")]
)
def test_timeouts_and_connection_errors_are_transient(error: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with adapter(handler) as api, pytest.raises(ProviderError) as caught:
        api.fetch(TID)
    assert not caught.value.permanent


@pytest.mark.parametrize("text", ["<html>bad gateway</html>", "[1, 2]", '"ok"'])
@pytest.mark.parametrize("api_name", ["unified", "legacy"])
def test_malformed_answers_are_transient(text: str, api_name: str) -> None:
    with (
        adapter(lambda r: httpx.Response(200, text=text), api=api_name) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert not caught.value.permanent


# --- reads: unified -----------------------------------------------------------------------


def test_unified_get_uses_the_task_path_and_the_key() -> None:
    spy = Spy("unified_get_processing.json")
    with adapter(spy) as api:
        snapshot = api.fetch(TID)
    request = spy.requests[0]
    assert (request.method, request.url.path) == ("GET", f"/api/v1/task/{TID}")
    assert request.headers["x-api-key"] == "pk-test" and request.content == b""
    assert snapshot is not None
    assert (snapshot.status, snapshot.progress) == (TaskStatus.RUNNING, 46)
    assert snapshot.image_url.endswith("-46.webp")  # the latest preview
    assert snapshot.buttons == () and snapshot.fail_reason == ""


@pytest.mark.parametrize("name", ["unified_get_staged.json", "unified_get_pending.json"])
def test_unified_queued_statuses_are_pending(name: str) -> None:
    with adapter(answer(200, name)) as api:
        snapshot = api.fetch(TID)
    assert snapshot is not None
    assert snapshot.status is TaskStatus.PENDING
    assert (snapshot.progress, snapshot.image_url) == (0, "")


def test_unified_completed_carries_the_image_and_the_grid_buttons() -> None:
    with adapter(answer(200, "unified_get_completed.json")) as api:
        snapshot = api.fetch(TID)
    assert snapshot is not None
    assert snapshot.status is TaskStatus.SUCCEEDED and snapshot.progress == 100
    assert snapshot.image_url == f"https://img.theapi.app/mj/{TID}.png"
    assert snapshot.final_prompt == "red fox in snow --v 6.1"
    assert [(b.action, b.index, b.label, b.custom_id) for b in snapshot.buttons] == [
        ("reroll", None, "Reroll", "reroll"),
        ("upscale", 1, "U1", "upscale1"), ("upscale", 2, "U2", "upscale2"),
        ("upscale", 3, "U3", "upscale3"), ("upscale", 4, "U4", "upscale4"),
        ("variation", 1, "V1", "variation1"), ("variation", 2, "V2", "variation2"),
        ("variation", 3, "V3", "variation3"), ("variation", 4, "V4", "variation4"),
    ]  # fmt: skip
    assert snapshot.raw["task_id"] == TID


def test_the_discord_url_stands_in_for_a_missing_image_url() -> None:
    payload = load("piapi/unified_get_completed.json")
    payload["data"]["output"]["image_url"] = ""
    with adapter(lambda r: httpx.Response(200, json=payload)) as api:
        snapshot = api.fetch(TID)
    assert snapshot is not None
    assert snapshot.image_url == "https://cdn.discordapp.com/attachments/1/2/fox.png"


def test_upscale_actions_map_to_our_buttons_and_skip_unknown_ones() -> None:
    with adapter(answer(200, "unified_get_upscale_completed.json")) as api:
        snapshot = api.fetch("a9e1c3f7-2b4d-4e6f-8a0b-1c2d3e4f5a6b")
    assert snapshot is not None
    assert snapshot.status is TaskStatus.SUCCEEDED  # "Completed"
    assert [(b.action, b.variant, b.label, b.custom_id) for b in snapshot.buttons] == [
        ("vary_strong", "", "Vary (Strong)", "high_variation"),
        ("vary_subtle", "", "Vary (Subtle)", "low_variation"),
        ("zoom_out", "1.5x", "Zoom Out 1.5x", "outpaint_1.5x"),
        ("zoom_out", "2x", "Zoom Out 2x", "outpaint_2x"),
        ("custom_zoom", "", "Custom Zoom", "outpaint_custom"),
        ("pan", "down", "Pan Down", "pan_down"),
        ("pan", "left", "Pan Left", "pan_left"),
        ("pan", "right", "Pan Right", "pan_right"),
        ("pan", "up", "Pan Up", "pan_up"),
        ("upscale_creative", "", "Upscale (Creative)", "upscale_creative"),
        ("upscale_subtle", "", "Upscale (Subtle)", "upscale_subtle"),
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "unified_get_failed_banned.json",
            "failed to do request: [Banned prompt detected] Sorry! Our AI moderator thinks this"
            " prompt is probably against our community standards.; Banned prompt detected",
        ),
        ("unified_get_failed_chinese.json", "提示词可能包含敏感词，请修改后重试"),
    ],
)
def test_unified_failures_keep_the_providers_words(name: str, reason: str) -> None:
    with adapter(answer(200, name)) as api:
        snapshot = api.fetch(TID)
    assert snapshot is not None
    assert snapshot.status is TaskStatus.FAILED
    assert snapshot.fail_reason == reason and snapshot.buttons == ()


@pytest.mark.parametrize(
    "handler",
    [
        answer(404, "error_404.json"),
        answer(200, "error_404.json"),  # code 404 inside an HTTP 200
        lambda r: httpx.Response(400, json={"code": 400, "message": "task not found"}),
        lambda r: httpx.Response(404, text=""),
        lambda r: httpx.Response(200, json={"code": 200, "data": {}, "message": "success"}),
    ],
)
def test_unified_unknown_tasks_are_none(handler: Handler) -> None:
    with adapter(handler) as api:
        assert api.fetch("00000000-0000-4000-8000-000000000000") is None


# --- reads: legacy ------------------------------------------------------------------------


def test_legacy_fetch_posts_the_task_id() -> None:
    spy = Spy("legacy_fetch_processing.json")
    with adapter(spy, api="legacy") as api:
        snapshot = api.fetch("6886fc4d-2c7a-4d3f-9e1b-d912733806d5")
    request = spy.requests[0]
    assert (request.method, request.url.path) == ("POST", "/mj/v2/fetch")
    assert request.headers["x-api-key"] == "pk-test"
    assert spy.body == {"task_id": "6886fc4d-2c7a-4d3f-9e1b-d912733806d5"}
    assert snapshot is not None
    assert (snapshot.status, snapshot.progress) == (TaskStatus.RUNNING, 62)
    assert snapshot.image_url == "https://img.theapi.app/mj/intermediate/6886fc4d-62.webp"


@pytest.mark.parametrize("name", ["legacy_fetch_pending.json", "legacy_fetch_retry.json"])
def test_legacy_pending_and_retry_are_pending(name: str) -> None:
    with adapter(answer(200, name), api="legacy") as api:
        snapshot = api.fetch("x")
    assert snapshot is not None and snapshot.status is TaskStatus.PENDING


def test_legacy_finished_carries_the_image_and_buttons() -> None:
    with adapter(answer(200, "legacy_fetch_finished.json"), api="legacy") as api:
        snapshot = api.fetch("6886fc4d-2c7a-4d3f-9e1b-d912733806d5")
    assert snapshot is not None
    assert snapshot.status is TaskStatus.SUCCEEDED
    assert snapshot.provider_job_id == "6886fc4d-2c7a-4d3f-9e1b-d912733806d5"
    assert snapshot.image_url == "https://img.theapi.app/mj/6886fc4d.png"
    assert snapshot.final_prompt == "a cute cat"
    assert len(snapshot.buttons) == 9 and snapshot.buttons[0].action == "reroll"


def test_legacy_failed_joins_the_error_messages() -> None:
    with adapter(answer(200, "legacy_fetch_failed.json"), api="legacy") as api:
        snapshot = api.fetch("x")
    assert snapshot is not None and snapshot.status is TaskStatus.FAILED
    assert snapshot.fail_reason == "[Invalid parameter] Unrecognized parameter(s): `--foo`"
    payload = load("piapi/legacy_fetch_failed.json")
    payload["task_result"]["error_messages"] = []
    with adapter(lambda r: httpx.Response(200, json=payload), api="legacy") as api:
        snapshot = api.fetch("x")
    assert snapshot is not None and snapshot.fail_reason == "task failed"


@pytest.mark.parametrize(
    "handler",
    [
        answer(404, "error_404.json"),
        answer(200, "error_404.json"),
        lambda r: httpx.Response(400, json={"status": "failed", "message": "task not found"}),
    ],
)
def test_legacy_unknown_tasks_are_none(handler: Handler) -> None:
    with adapter(handler, api="legacy") as api:
        assert api.fetch("nope") is None


# --- mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("pending", TaskStatus.PENDING),
        ("Pending", TaskStatus.PENDING),
        ("STAGED", TaskStatus.PENDING),
        ("retry", TaskStatus.PENDING),
        ("", TaskStatus.PENDING),
        (None, TaskStatus.PENDING),
        ("Processing", TaskStatus.RUNNING),
        (" processing ", TaskStatus.RUNNING),
        ("Completed", TaskStatus.SUCCEEDED),
        ("FINISHED", TaskStatus.SUCCEEDED),
        ("Failed", TaskStatus.FAILED),
        ("something new", TaskStatus.PENDING),
    ],
)
def test_statuses_compare_case_insensitively(raw: object, status: TaskStatus) -> None:
    assert parse_status(raw) is status


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reroll", ("reroll", None, "", "Reroll")),
        ("upscale2", ("upscale", 2, "", "U2")),
        ("variation4", ("variation", 4, "", "V4")),
        ("upscale_subtle", ("upscale_subtle", None, "", "Upscale (Subtle)")),
        ("upscale_creative", ("upscale_creative", None, "", "Upscale (Creative)")),
        ("low_variation", ("vary_subtle", None, "", "Vary (Subtle)")),
        ("vary_subtle", ("vary_subtle", None, "", "Vary (Subtle)")),
        ("high_variation", ("vary_strong", None, "", "Vary (Strong)")),
        ("vary_strong", ("vary_strong", None, "", "Vary (Strong)")),
        ("outpaint_2x", ("zoom_out", None, "2x", "Zoom Out 2x")),
        ("zoom_out_2", ("zoom_out", None, "2x", "Zoom Out 2x")),
        ("outpaint_1.5x", ("zoom_out", None, "1.5x", "Zoom Out 1.5x")),
        ("zoom_out_1.5", ("zoom_out", None, "1.5x", "Zoom Out 1.5x")),
        ("pan_right", ("pan", None, "right", "Pan Right")),
        ("Upscale1", ("upscale", 1, "", "U1")),
        ("upscale5", None),
        ("outpaint_custom", ("custom_zoom", None, "", "Custom Zoom")),
        ("region", None),
        ("upscale_2x", None),
    ],
)
def test_action_strings_map_to_buttons(action: str, expected: object) -> None:
    buttons = parse_actions([action])
    if expected is None:
        assert buttons == ()
    else:
        (only,) = buttons
        assert (only.action, only.index, only.variant, only.label) == expected
        assert only.custom_id == action


def test_two_spellings_of_one_button_give_one_button() -> None:
    buttons = parse_actions(["low_variation", "vary_subtle", 7, None])
    assert [b.custom_id for b in buttons] == ["low_variation"]


@pytest.mark.parametrize("actions", [None, [], "missing"])
def test_a_finished_task_without_actions_gets_the_standard_set(actions: object) -> None:
    payload = load("piapi/unified_get_completed.json")
    if actions == "missing":
        del payload["data"]["output"]["actions"]
    else:
        payload["data"]["output"]["actions"] = actions
    with adapter(lambda r: httpx.Response(200, json=payload)) as api:
        snapshot = api.fetch(TID)
    assert snapshot is not None
    assert [b.custom_id for b in snapshot.buttons] == [
        "upscale1", "upscale2", "upscale3", "upscale4", "reroll",
        "variation1", "variation2", "variation3", "variation4",
    ]  # fmt: skip
    assert [b.action for b in parse_actions(None, "upscale")] == [
        "upscale_subtle", "upscale_creative", "vary_subtle", "vary_strong",
        "zoom_out", "zoom_out", "vary_region", "custom_zoom", "pan", "pan", "pan", "pan",
    ]  # fmt: skip
    assert parse_actions(None, "describe") == () and parse_actions(None) == ()


# --- fetch_many ---------------------------------------------------------------------------


def test_fetch_many_reads_each_id_and_skips_unknown_and_failing_ones() -> None:
    calls: list[str] = []
    answers = {
        "a": httpx.Response(200, json=load("piapi/unified_get_completed.json")),
        "b": httpx.Response(404, json=load("piapi/error_404.json")),
        "c": httpx.Response(502, text="bad gateway"),
        "d": httpx.Response(200, json=load("piapi/unified_get_processing.json")),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        task_id = request.url.path.rsplit("/", 1)[1]
        calls.append(task_id)
        return answers[task_id]

    with adapter(handler) as api:
        snapshots = api.fetch_many(iter(["a", "b", "c", "d", "a"]))
    assert calls == ["a", "b", "c", "d"]
    assert set(snapshots) == {"a", "d"}
    assert snapshots["d"].status is TaskStatus.RUNNING
    with adapter(handler) as api:
        assert api.fetch_many([]) == {}


def test_fetch_many_raises_when_every_id_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with adapter(handler, api="legacy") as api, pytest.raises(ProviderError) as caught:
        api.fetch_many(["a", "b"])
    assert not caught.value.permanent


def test_fetch_many_stops_at_a_refused_key() -> None:
    spy = Spy("error_401.json", status=401)
    with adapter(spy, reads_at_once=1) as api, pytest.raises(ProviderError) as caught:
        api.fetch_many(["a", "b", "c"])
    assert caught.value.permanent and len(spy.requests) == 1  # the reads not begun never are


def test_reads_run_at_once_within_the_bound_and_each_is_recorded_by_the_caller() -> None:
    import threading

    lock, running, peak = threading.Lock(), [0], [0]
    arrived = threading.Barrier(3, timeout=5)  # the three reads are in flight together

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        arrived.wait()
        with lock:
            running[0] -= 1
        task_id = request.url.path.rsplit("/", 1)[-1]
        body = load("piapi/unified_get_processing.json")
        body["data"]["task_id"] = task_id
        return httpx.Response(200, json=body)

    recorded: list[tuple[str, int]] = []
    callers = set()

    def recorder(method: str, path: str, status: Any, *rest: Any) -> None:
        callers.add(threading.get_ident())
        recorded.append((path, status))

    with adapter(handler, reads_at_once=3, recorder=recorder) as api:
        found = api.fetch_many(["a", "b", "c"])
    assert sorted(found) == ["a", "b", "c"] and peak[0] == 3
    assert len(recorded) == 3 and callers == {threading.get_ident()}


# --- the rest -----------------------------------------------------------------------------


def test_image_hosts() -> None:
    with adapter(Spy("error_404.json")) as api:
        assert api.image_hosts() == {
            "api.piapi.ai",
            "img.theapi.app",
            "cdn.midjourney.com",
            "cdn.discordapp.com",
            "media.discordapp.net",
        }


def test_the_recorder_sees_every_exchange() -> None:
    records: list[tuple[object, ...]] = []
    spy = Spy("unified_create_success.json")
    with adapter(spy, recorder=lambda *a: records.append(a)) as api:
        api.imagine(prompt="x", mode="fast", state="s")
    method, path, status, seconds, body, text, error = records[0]
    assert (method, path, status, error) == ("POST", "/api/v1/task", 200, "")
    assert isinstance(seconds, float) and body == spy.body and TID in str(text)


def test_an_unknown_api_dialect_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        PiAPI(name="piapi", base_url=BASE, api_key="k", api="v3")


def test_parse_webhook_reads_both_dialects() -> None:
    unified = json.dumps(load("piapi/webhook_unified.json")).encode()
    assert parse_webhook(unified) == (TID, "completed", 1723018391)
    legacy = json.dumps(load("piapi/webhook_legacy.json")).encode()
    assert parse_webhook(legacy) == ("6886fc4d-2c7a-4d3f-9e1b-d912733806d5", "finished", None)
    shouting = b'{"timestamp": 17.0, "data": {"task_id": "t", "status": "Failed"}}'
    assert parse_webhook(shouting) == ("t", "failed", 17)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"data": {"status": "completed"}}',
        b'{"data": {"task_id": "", "status": "completed"}}',
        b'{"data": {"task_id": "t"}}',
        b'{"data": {"task_id": "t", "status": 3}}',
        b'{"timestamp": "yesterday", "data": {"task_id": "t", "status": "completed"}}',
        b'{"timestamp": true, "data": {"task_id": "t", "status": "completed"}}',
        b'{"task_id": 12, "status": "finished"}',
    ],
)
def test_parse_webhook_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_webhook(body)


def test_get_provider_builds_piapi_from_settings(settings: Any) -> None:
    settings.PIAPI_BASE_URL = "https://piapi.example"
    settings.PIAPI_API_KEY = "pk-live"
    settings.PIAPI_API = "legacy"
    with get_provider("piapi") as provider:
        assert isinstance(provider, PiAPI)
        assert (provider.name, provider.api, provider.base_url) == (
            "piapi",
            "legacy",
            "https://piapi.example",
        )
        assert provider.client.headers["x-api-key"] == "pk-live"
    settings.MJ_SIMULATOR_PROTOCOL = "piapi"
    settings.MJ_SIMULATOR_HOST, settings.MJ_SIMULATOR_PORT = "127.0.0.1", 8123
    with get_provider("simulator") as provider:
        assert isinstance(provider, PiAPI)
        assert (provider.name, provider.base_url) == ("simulator", "http://127.0.0.1:8123")
        assert provider.client.headers["x-api-key"] == settings.MJ_SIMULATOR_API_KEY
    settings.MJ_SIMULATOR_PROTOCOL = "cometapi"
    with get_provider("simulator") as provider:
        assert not isinstance(provider, PiAPI)
