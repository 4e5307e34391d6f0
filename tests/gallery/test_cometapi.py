"""The CometAPI adapter against recorded answers in the documented shapes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gallery.providers.base import Button, ProviderError, TaskStatus, classify_failure
from gallery.providers.cometapi import CometAPI, parse_custom_id
from tests.conftest import load

BASE = "https://api.cometapi.com"
PREFIXES = {"fast": "/mj-fast", "relax": "/mj-relax", "turbo": "/mj-turbo"}


def adapter(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> CometAPI:
    return CometAPI(
        name="cometapi",
        base_url=BASE,
        api_key="sk-test",
        mode_prefixes=PREFIXES,
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


def answer(status: int, name: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=load(f"cometapi/{name}"))


def test_it_submits_imagine_with_bearer_auth_and_the_mode_prefix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=load("cometapi/submit_success.json"))

    with adapter(handler) as api:
        submission = api.imagine(prompt="red fox in snow", mode="relax", state="job-17")
    assert submission.provider_job_id == "1773314942177684"
    assert submission.status is TaskStatus.PENDING
    assert submission.message == "提交成功"
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/mj-relax/mj/submit/imagine"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "prompt": "red fox in snow",
        "botType": "MID_JOURNEY",
        "state": "job-17",
    }


def test_it_keeps_numeric_ids_as_exact_strings() -> None:
    with adapter(answer(200, "submit_numeric_id.json")) as api:
        submission = api.imagine(prompt="x", mode="fast", state="s")
    assert submission.provider_job_id == "17733149421776841"


def test_it_accepts_queued_code_22_with_the_queue_position() -> None:
    with adapter(answer(200, "submit_queued.json")) as api:
        submission = api.imagine(prompt="x", mode="fast", state="s")
    assert submission.provider_job_id == "1773314942177685"
    assert submission.status is TaskStatus.PENDING
    assert submission.queue_position == 1


def test_it_reports_modal_code_21() -> None:
    with adapter(answer(200, "submit_modal.json")) as api:
        button = Button("reroll", None, "", "Reroll", "MJ::JOB::reroll::0::abc::SOLO")
        submission = api.action(parent_job_id="1", button=button, mode="fast", state="s")
    assert submission.status is TaskStatus.MODAL
    assert submission.final_prompt == "red fox in snow --v 6.1"


def test_it_sends_the_action_with_task_id_and_custom_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=load("cometapi/submit_success.json"))

    custom_id = "MJ::JOB::reroll::0::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO"
    with adapter(handler) as api:
        api.action(
            parent_job_id="1773314942177684",
            button=Button("reroll", None, "", "Reroll", custom_id),
            mode="fast",
            state="job-18",
        )
    assert seen[0].url.path == "/mj-fast/mj/submit/action"
    body = json.loads(seen[0].content)
    assert body["taskId"] == "1773314942177684"
    assert body["customId"] == custom_id


@pytest.mark.parametrize(
    ("name", "permanent", "fail_kind"),
    [
        ("submit_banned.json", True, "rejected_prompt"),
        ("submit_validation.json", True, "provider_error"),
        ("submit_queue_full.json", False, "provider_error"),
    ],
)
def test_it_maps_refusal_codes(name: str, permanent: bool, fail_kind: str) -> None:
    with adapter(answer(200, name)) as api, pytest.raises(ProviderError) as caught:
        api.imagine(prompt="x", mode="fast", state="s")
    assert caught.value.permanent is permanent
    assert caught.value.fail_kind == fail_kind
    assert caught.value.message  # the provider's own words are kept
    assert caught.value.message.startswith(load(f"cometapi/{name}")["description"])


def test_it_treats_401_as_permanent_with_the_provider_text() -> None:
    with adapter(answer(401, "error_401.json")) as api, pytest.raises(ProviderError) as caught:
        api.imagine(prompt="x", mode="fast", state="s")
    assert caught.value.permanent
    assert caught.value.status_code == 401
    assert "Invalid token" in caught.value.message


@pytest.mark.parametrize("status", [429, 500, 502, 503, 524])
def test_it_treats_429_and_5xx_as_transient(status: int) -> None:
    with (
        adapter(lambda r: httpx.Response(status, text="upstream hiccup")) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert not caught.value.permanent
    assert caught.value.status_code == status


def test_it_treats_a_timeout_as_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with adapter(handler) as api, pytest.raises(ProviderError) as caught:
        api.fetch("1")
    assert not caught.value.permanent


def test_it_treats_a_connection_error_as_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with adapter(handler) as api, pytest.raises(ProviderError) as caught:
        api.fetch_many(["1"])
    assert not caught.value.permanent


def test_it_treats_malformed_json_as_transient() -> None:
    with (
        adapter(lambda r: httpx.Response(200, text="<html>bad gateway</html>")) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.imagine(prompt="x", mode="fast", state="s")
    assert not caught.value.permanent


def test_fetch_of_an_unknown_id_is_none() -> None:
    with adapter(answer(400, "fetch_unknown.json")) as api:
        assert api.fetch("999") is None
    with adapter(lambda r: httpx.Response(200, content=b"")) as api:
        assert api.fetch("999") is None  # novicezk answers an empty 200
    with adapter(lambda r: httpx.Response(204)) as api:
        assert api.fetch("999") is None  # trueai answers 204


def test_fetch_uses_the_bare_path() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=load("cometapi/fetch_in_progress.json"))

    with adapter(handler) as api:
        snapshot = api.fetch("1773314942177684")
    assert seen == ["/mj/task/1773314942177684/fetch"]
    assert snapshot is not None
    assert snapshot.status is TaskStatus.RUNNING
    assert snapshot.progress == 46
    assert snapshot.image_url.endswith("?rand=46")
    assert snapshot.buttons == ()


def test_blank_status_is_not_started() -> None:
    with adapter(answer(200, "fetch_blank.json")) as api:
        snapshot = api.fetch("1773314942177684")
    assert snapshot is not None
    assert snapshot.status is TaskStatus.PENDING
    assert snapshot.progress == 0


def test_success_carries_the_nine_grid_buttons() -> None:
    with adapter(answer(200, "fetch_success.json")) as api:
        snapshot = api.fetch("1773314942177684")
    assert snapshot is not None
    assert snapshot.status is TaskStatus.SUCCEEDED
    assert snapshot.image_url == "https://api.cometapi.com/mj/image/1773314942177684"
    assert [(b.action, b.index) for b in snapshot.buttons] == [
        ("upscale", 1), ("upscale", 2), ("upscale", 3), ("upscale", 4),
        ("reroll", None),
        ("variation", 1), ("variation", 2), ("variation", 3), ("variation", 4),
    ]  # fmt: skip
    reroll = snapshot.buttons[4]
    assert reroll.custom_id == "MJ::JOB::reroll::0::3785da15-4f70-4034-9128-f3ff1ac634fa::SOLO"
    assert reroll.emoji == "🔄"


def test_upscale_buttons_map_to_our_actions_and_skip_unsupported_ones() -> None:
    with adapter(answer(200, "fetch_upscale_success.json")) as api:
        snapshot = api.fetch("1773314999000123")
    assert snapshot is not None
    assert [(b.action, b.variant) for b in snapshot.buttons] == [
        ("upscale_subtle", ""), ("upscale_creative", ""), ("vary_subtle", ""),
        ("vary_strong", ""), ("vary_region", ""), ("zoom_out", "2x"), ("zoom_out", "1.5x"),
        ("custom_zoom", ""), ("pan", "left"), ("pan", "right"), ("pan", "up"), ("pan", "down"),
    ]  # fmt: skip


def test_failure_with_progress_100_is_a_failure() -> None:
    with adapter(answer(200, "fetch_failure.json")) as api:
        snapshot = api.fetch("1773314942177690")
    assert snapshot is not None
    assert snapshot.status is TaskStatus.FAILED
    assert snapshot.fail_reason.startswith("[Banned prompt detected]")


def test_list_by_condition_batches_ids_in_one_call() -> None:
    calls: list[dict[str, object]] = []
    tasks = [
        load("cometapi/fetch_success.json"),
        load("cometapi/fetch_failure.json"),
        {"unexpected": "shape"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        assert request.url.path == "/mj/task/list-by-condition"
        return httpx.Response(200, json=tasks)

    with adapter(handler) as api:
        snapshots = api.fetch_many(["1773314942177684", "1773314942177690", "42"])
    assert calls == [{"ids": ["1773314942177684", "1773314942177690", "42"]}]
    assert set(snapshots) == {"1773314942177684", "1773314942177690"}


def test_list_by_condition_that_is_not_a_list_is_transient() -> None:
    with (
        adapter(lambda r: httpx.Response(200, json={"oops": 1})) as api,
        pytest.raises(ProviderError) as caught,
    ):
        api.fetch_many(["1"])
    assert not caught.value.permanent


def test_the_recorder_sees_every_exchange() -> None:
    records: list[tuple[object, ...]] = []
    with adapter(answer(200, "submit_success.json"), recorder=lambda *a: records.append(a)) as api:
        api.imagine(prompt="x", mode="fast", state="s")
    method, path, status, seconds, body, text, error = records[0]
    assert (method, path, status, error) == ("POST", "/mj-fast/mj/submit/imagine", 200, "")
    assert isinstance(seconds, float)
    assert body == {"prompt": "x", "botType": "MID_JOURNEY", "state": "s"}
    assert "1773314942177684" in str(text)


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        ("MJ::JOB::upsample::3::h", ("upscale", 3, "")),
        ("MJ::JOB::variation::4::h", ("variation", 4, "")),
        ("MJ::JOB::reroll::0::h::SOLO", ("reroll", None, "")),
        ("MJ::JOB::low_variation::1::h::SOLO", ("vary_subtle", None, "")),
        ("MJ::JOB::high_variation::1::h::SOLO", ("vary_strong", None, "")),
        ("MJ::JOB::upsample_v7_2x_subtle::1::h::SOLO", ("upscale_subtle", None, "")),
        ("MJ::JOB::upsample_v6r1_2x_creative::1::h::SOLO", ("upscale_creative", None, "")),
        ("MJ::Outpaint::50::1::h::SOLO", ("zoom_out", None, "2x")),
        ("MJ::Outpaint::75::1::h::SOLO", ("zoom_out", None, "1.5x")),
        ("MJ::JOB::pan_up::1::h::SOLO", ("pan", None, "up")),
        ("MJ::JOB::upsample::7::h", None),
        ("MJ::Inpaint::1::h::SOLO", ("vary_region", None, "")),
        ("MJ::CustomZoom::h", ("custom_zoom", None, "")),
        ("MJ::BOOKMARK::h", None),
        ("garbage", None),
    ],
)
def test_parse_custom_id(custom_id: str, expected: object) -> None:
    assert parse_custom_id(custom_id) == expected


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (
            "[Banned prompt detected] Sorry! Our AI moderator thinks this prompt is...",
            "rejected_prompt",
        ),
        ("可能包含敏感词", "rejected_prompt"),
        ("[Image denied] Request cancelled due to image filters", "rejected_prompt"),
        ("[Invalid prompt] Unrecognized parameter(s): `--foo`", "rejected_prompt"),
        ("任务超时", "timeout"),
        ("执行超时 5 分钟", "timeout"),
        ("上游任务超时（超过1小时）", "timeout"),
        ("取消任务", "cancelled"),
        ("[Invalid parameter] Invalid value", "provider_error"),
        ("[Queue full] Your job queue is full.", "provider_error"),
        ("", "provider_error"),
    ],
)
def test_failure_texts_map_to_fail_kinds(reason: str, kind: str) -> None:
    assert classify_failure(reason) == kind


def test_adapters_of_one_account_share_one_open_client_per_process(settings: Any) -> None:
    from gallery.providers import base

    def adapter(key: str = "k") -> CometAPI:
        return CometAPI(
            name="cometapi", base_url="https://api.cometapi.com", api_key=key, mode_prefixes={}
        )

    first, second = adapter(), adapter()
    assert first.client is second.client  # its connections and SSL context are reused
    first.close()
    assert not second.client.is_closed  # closing an adapter leaves the shared client open
    assert adapter("another key").client is not first.client
    with_transport = CometAPI(
        name="cometapi",
        base_url="https://api.cometapi.com",
        api_key="k",
        mode_prefixes={},
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    assert with_transport.client is not first.client
    with_transport.close()
    assert with_transport.client.is_closed
    key = next(k for k, client in base._CLIENTS.items() if client is first.client)
    assert key[0] == os.getpid()  # a forked worker opens its own
