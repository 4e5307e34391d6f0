"""PiAPI's Midjourney API, in either of its two dialects (the unified task API or legacy v2).

Endpoint reference (docs/provider-protocols.md section 3, seeds/piapi-mj-v2-reroll.txt):
- Auth on every call: "X-API-Key: <key>".
- Unified (api="unified"):
  - POST /api/v1/task {"model": "midjourney", "task_type", "input": {...},
    "config": {"service_mode": "", "webhook_config": {"endpoint", "secret"}}}
    -> {"code": 200, "data": {task}, "message": "success"}
  - GET /api/v1/task/{task_id} -> {"code": 200, "data": {task}, "message"}
  - task: task_id, model, task_type, status (Pending | Staged | Processing | Completed |
    Failed, in any case), input, output{image_url, image_urls, temporary_image_urls,
    discord_image_url, progress, intermediate_image_urls, actions}, meta, error{code,
    message, raw_message, detail}.
  - input per task_type: imagine {prompt, aspect_ratio, process_mode, skip_prompt_check};
    reroll {origin_task_id, prompt?, skip_prompt_check}; upscale {origin_task_id, index:
    "1".."4" | "subtle" | "creative"}; variation {origin_task_id, index: "1".."4" |
    "low_variation" | "high_variation", prompt, skip_prompt_check}; outpaint
    {origin_task_id, zoom_ratio}; pan {origin_task_id, direction}.
  - Webhook: POST, header x-webhook-secret, body {"timestamp": <unix s>, "data": {task}}.
- Legacy v2 (api="legacy"):
  - POST /mj/v2/imagine {prompt, skip_prompt_check, process_mode, aspect_ratio,
    webhook_endpoint, webhook_secret}
  - POST /mj/v2/reroll {origin_task_id, prompt?, skip_prompt_check, webhook_endpoint,
    webhook_secret} (the seed document, to the letter)
  - POST /mj/v2/upscale {origin_task_id, index, webhook_endpoint, webhook_secret}
  - POST /mj/v2/variation {origin_task_id, index, prompt?, skip_prompt_check, webhook_...}
  - POST /mj/v2/outpaint, /mj/v2/pan like variation, with zoom_ratio / direction
  - all answer {"task_id", "status": "success", "message": ""}
  - POST /mj/v2/fetch {"task_id"} -> {task_id, status (pending | processing | finished |
    failed | retry), task_result{image_url, image_urls, discord_image_url,
    temporary_image_urls, task_progress, intermediate_image_urls, actions, error_messages,
    message}}; the legacy webhook body is this same JSON.

Assumptions this adapter makes where the documents say UNCONFIRMED or nothing:
- The input fields of outpaint (zoom_ratio "2" / "1.5") and pan (direction) on both APIs
  are modelled on the other Midjourney tasks; no stored page lists them.
- Error bodies are undocumented. Any answer whose `code` is not 200, or whose
  data.error.message is set, is a refusal whatever its HTTP status; the words decide the
  kind (a banned or invalid prompt is rejected_prompt, a rate or capacity problem is
  transient, anything else permanent). HTTP 401/403 are permanent, 429/5xx transient.
- An unknown task may be reported as HTTP 404, as code 404, as any "not found" message, or
  as an empty `data`: all of them mean None from fetch().
- `actions` is plan-dependent: a finished task that reports none gets the standard set for
  its task_type (see DEFAULT_ACTIONS).
- The legacy submit answer may also come wrapped like the unified one ({"code", "data":
  {"task_id"}}, as in PiAPI's own Hugging Face example); both are read.
- PiAPI never parks a task waiting for a remix prompt: an edited prompt goes with the press
  (reroll, variation, outpaint, pan), so modal() is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from gallery.providers.base import (
    Button,
    HTTPProvider,
    ProviderError,
    Recorder,
    Submission,
    TaskSnapshot,
    TaskStatus,
    looks_banned,
)
from gallery.providers.cometapi import parse_progress

logger = logging.getLogger(__name__)

APIS = ("unified", "legacy")

_STATUS = {
    "": TaskStatus.PENDING,
    "pending": TaskStatus.PENDING,
    "staged": TaskStatus.PENDING,
    "retry": TaskStatus.PENDING,  # legacy: PiAPI resubmits the job itself (UNCONFIRMED)
    "processing": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "finished": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}

# PiAPI action string -> (our action, index, variant, label, emoji). Both spellings seen in
# PiAPI/GoAPI material are accepted; the original string stays in Button.custom_id.
_ACTIONS: dict[str, tuple[str, int | None, str, str, str]] = {
    "reroll": ("reroll", None, "", "Reroll", "🔄"),
    **{f"upscale{i}": ("upscale", i, "", f"U{i}", "") for i in range(1, 5)},
    **{f"variation{i}": ("variation", i, "", f"V{i}", "") for i in range(1, 5)},
    "upscale_subtle": ("upscale_subtle", None, "", "Upscale (Subtle)", ""),
    "upscale_creative": ("upscale_creative", None, "", "Upscale (Creative)", ""),
    "low_variation": ("vary_subtle", None, "", "Vary (Subtle)", "🪄"),
    "vary_subtle": ("vary_subtle", None, "", "Vary (Subtle)", "🪄"),
    "high_variation": ("vary_strong", None, "", "Vary (Strong)", "🪄"),
    "vary_strong": ("vary_strong", None, "", "Vary (Strong)", "🪄"),
    "outpaint_2x": ("zoom_out", None, "2x", "Zoom Out 2x", "🔍"),
    "zoom_out_2": ("zoom_out", None, "2x", "Zoom Out 2x", "🔍"),
    "outpaint_1.5x": ("zoom_out", None, "1.5x", "Zoom Out 1.5x", "🔍"),
    "zoom_out_1.5": ("zoom_out", None, "1.5x", "Zoom Out 1.5x", "🔍"),
    "pan_left": ("pan", None, "left", "Pan Left", "⬅️"),
    "pan_right": ("pan", None, "right", "Pan Right", "➡️"),
    "pan_up": ("pan", None, "up", "Pan Up", "⬆️"),
    "pan_down": ("pan", None, "down", "Pan Down", "⬇️"),
}

_GRID_ACTIONS = (
    *(f"upscale{i}" for i in range(1, 5)),
    "reroll",
    *(f"variation{i}" for i in range(1, 5)),
)
_UPSCALED_ACTIONS = (
    "upscale_subtle",
    "upscale_creative",
    "low_variation",
    "high_variation",
    "outpaint_2x",
    "outpaint_1.5x",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
)
# What Midjourney itself offers after each kind of task, for plans whose answers carry no
# `actions`: zoom and pan answer with a fresh 4-image grid, an upscale with one image.
DEFAULT_ACTIONS: dict[str, tuple[str, ...]] = {
    "imagine": _GRID_ACTIONS,
    "reroll": _GRID_ACTIONS,
    "variation": _GRID_ACTIONS,
    "outpaint": _GRID_ACTIONS,
    "pan": _GRID_ACTIONS,
    "upscale": _UPSCALED_ACTIONS,
}

_ZOOM_RATIOS = {"2x": "2", "1.5x": "1.5"}
_PAN_DIRECTIONS = ("left", "right", "up", "down")
_PROMPTED_TASKS = ("reroll", "variation", "outpaint", "pan")  # take an edited prompt
_CHECKED_TASKS = ("reroll", "variation")  # document skip_prompt_check

_REJECTED_MARKERS = (
    "invalid prompt",
    "prompt check",
    "forbidden word",
    "violat",
    "违禁",
    "违规",
    "敏感",
)
_CAPACITY_MARKERS = (
    "rate limit",
    "too many",
    "busy",
    "queue",
    "capacity",
    "concurren",
    "overload",
    "try again later",
    "temporarily",
    "繁忙",
    "排队",
)
_NOT_FOUND_MARKERS = ("not found", "not_found", "no_found", "not exist", "no such task")


def looks_rejected(text: str) -> bool:
    """Whether a refusal or failure text says the prompt itself was not accepted."""
    lowered = text.lower()
    return looks_banned(text) or any(marker in lowered for marker in _REJECTED_MARKERS)


def _looks_busy(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _CAPACITY_MARKERS)


def _looks_missing(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _NOT_FOUND_MARKERS)


def refusal(
    message: str, *, code: int | str | None = None, status_code: int | None = None
) -> ProviderError:
    """The ProviderError for a refused request, classified by its code and its words."""
    text = message or f"The provider refused the request (code {code})."
    numeric = code if isinstance(code, int) and not isinstance(code, bool) else None
    if looks_rejected(text):
        return ProviderError(
            text, permanent=True, fail_kind="rejected_prompt", status_code=status_code, code=code
        )
    if numeric in (401, 403):
        return ProviderError(text, permanent=True, status_code=status_code, code=code)
    transient = numeric == 429 or (numeric is not None and numeric >= 500) or _looks_busy(text)
    return ProviderError(text, permanent=not transient, status_code=status_code, code=code)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_status(raw: Any) -> TaskStatus:
    text = str(raw or "").strip().lower()
    status = _STATUS.get(text)
    if status is None:
        logger.warning("unknown PiAPI status %r; treating as pending", raw)
        return TaskStatus.PENDING
    return status


def parse_actions(raw: Any, task_type: str = "") -> tuple[Button, ...]:
    """Our buttons for PiAPI's `actions`; unknown strings are skipped."""
    if not isinstance(raw, list) or not raw:
        # `actions` is plan-dependent: offer what Midjourney offers after this kind of task.
        raw = list(DEFAULT_ACTIONS.get(task_type.lower(), ()))
    buttons: list[Button] = []
    seen: set[tuple[str, int | None, str]] = set()
    for item in raw:
        if not isinstance(item, str):
            continue
        known = _ACTIONS.get(item.strip().lower())
        if known is None:
            continue
        action, index, variant, label, emoji = known
        if (action, index, variant) in seen:  # both spellings of one button
            continue
        seen.add((action, index, variant))
        buttons.append(Button(action, index, variant, label, item, emoji))
    return tuple(buttons)


def _last_url(urls: Any) -> str:
    if isinstance(urls, list):
        for url in reversed(urls):
            if isinstance(url, str) and url:
                return url
    return ""


def _snapshot(
    *,
    task_id: str,
    status_raw: Any,
    task_type: str,
    result: dict[str, Any],
    progress: Any,
    fail_reason: str,
    final_prompt: str,
    raw: dict[str, Any],
) -> TaskSnapshot:
    status = parse_status(status_raw)
    image_url = ""
    if status is TaskStatus.SUCCEEDED:
        image_url = _text(result.get("image_url")) or _text(result.get("discord_image_url"))
    elif status is TaskStatus.RUNNING:
        image_url = _last_url(result.get("intermediate_image_urls"))  # the latest preview
    done = status is TaskStatus.SUCCEEDED
    return TaskSnapshot(
        provider_job_id=task_id,
        status=status,
        progress=100 if done else parse_progress(progress),
        image_url=image_url,
        buttons=parse_actions(result.get("actions"), task_type) if done else (),
        fail_reason=fail_reason if status is TaskStatus.FAILED else "",
        final_prompt=final_prompt,
        raw=raw,
    )


def parse_unified_task(data: Any) -> TaskSnapshot:
    """A unified-API task object (GET data, create data, webhook data)."""
    if not isinstance(data, dict) or not _text(data.get("task_id")):
        raise ProviderError("The provider sent a task without a task_id.", permanent=False)
    output = _dict(data.get("output"))
    error = _dict(data.get("error"))
    reasons = [_text(error.get("message")), _text(error.get("raw_message"))]
    return _snapshot(
        task_id=_text(data["task_id"]),
        status_raw=data.get("status"),
        task_type=_text(data.get("task_type")),
        result=output,
        progress=output.get("progress"),
        fail_reason="; ".join(dict.fromkeys(r for r in reasons if r)),
        final_prompt=_text(_dict(data.get("input")).get("prompt")),
        raw=data,
    )


def parse_legacy_task(data: Any, task_id: str = "") -> TaskSnapshot:
    """A legacy v2 fetch answer (also the legacy webhook body)."""
    if not isinstance(data, dict):
        raise ProviderError("The provider's fetch answer was not an object.", permanent=False)
    task_id = _text(data.get("task_id")) or task_id
    if not task_id:
        raise ProviderError("The provider sent a task without a task_id.", permanent=False)
    result = _dict(data.get("task_result"))
    meta = _dict(data.get("meta"))
    errors = result.get("error_messages")
    reasons = [_text(e) for e in errors] if isinstance(errors, list) else []
    reason = "; ".join(r for r in reasons if r)
    reason = reason or _text(result.get("message")) or _text(data.get("message"))
    return _snapshot(
        task_id=task_id,
        status_raw=data.get("status"),
        task_type=_text(data.get("task_type")) or _text(meta.get("task_type")),
        result=result,
        progress=result.get("task_progress"),
        fail_reason=reason,
        final_prompt=_text(_dict(meta.get("task_param")).get("prompt")),
        raw=data,
    )


def parse_webhook(body: bytes) -> tuple[str, str, int | None]:
    """(task_id, status in lower case, timestamp) of a unified or legacy webhook body.

    Unified bodies are {"timestamp", "data": {task}}; legacy ones are the v2 fetch JSON with
    no timestamp. Dedupe on the whole tuple: PiAPI says retries produce duplicates.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise ValueError("the webhook body is not a JSON object")
    task = payload["data"] if isinstance(payload.get("data"), dict) else payload
    task_id, status = task.get("task_id"), task.get("status")
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError("the webhook body has no task_id")
    if not isinstance(status, str):
        raise ValueError("the webhook body has no status")
    stamp = payload.get("timestamp")
    if stamp is not None:
        if isinstance(stamp, bool) or not isinstance(stamp, int | float):
            raise ValueError("the webhook timestamp is not a number")
        stamp = int(stamp)
    return task_id.strip(), status.strip().lower(), stamp


def _press(button: Button) -> tuple[str, dict[str, str]]:
    """PiAPI's task_type and the input fields that pick what the button does."""
    action, index, variant = button.action, button.index, button.variant
    if action == "reroll":
        return "reroll", {}
    if action in ("upscale", "variation") and index in (1, 2, 3, 4):
        return action, {"index": str(index)}
    simple = {
        "upscale_subtle": ("upscale", "subtle"),
        "upscale_creative": ("upscale", "creative"),
        "vary_subtle": ("variation", "low_variation"),
        "vary_strong": ("variation", "high_variation"),
    }
    if action in simple:
        task_type, value = simple[action]
        return task_type, {"index": value}
    if action == "zoom_out" and variant in _ZOOM_RATIOS:
        return "outpaint", {"zoom_ratio": _ZOOM_RATIOS[variant]}  # field UNCONFIRMED
    if action == "pan" and variant in _PAN_DIRECTIONS:
        return "pan", {"direction": variant}  # field UNCONFIRMED
    raise ProviderError(
        f"PiAPI has no task for the button {button.label or action!r}.", permanent=True
    )


class PiAPI(HTTPProvider):
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str,
        api: str = "unified",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        recorder: Recorder | None = None,
        webhook_endpoint: str = "",
        webhook_secret: str = "",
    ) -> None:
        if api not in APIS:
            raise ValueError(f"api must be one of {APIS}, not {api!r}")
        super().__init__(
            name=name,
            base_url=base_url,
            headers={"X-API-Key": api_key},
            timeout=timeout,
            transport=transport,
            recorder=recorder,
        )
        self.api = api
        self.webhook_endpoint = webhook_endpoint
        self.webhook_secret = webhook_secret

    def image_hosts(self) -> set[str]:
        # image_url is PiAPI-hosted; discord_image_url and the tiles live on MJ/Discord CDNs
        hosts = {
            "img.theapi.app",
            "cdn.midjourney.com",
            "cdn.discordapp.com",
            "media.discordapp.net",
        }
        host = urlsplit(self.base_url).hostname
        if host:
            hosts.add(host)
        return hosts

    # --- submits ----------------------------------------------------------------------

    def imagine(self, *, prompt: str, mode: str, state: str) -> Submission:
        # PiAPI has no pass-through field like midjourney-proxy's `state`: our own id
        # stays in our database only.
        if self.api == "legacy":
            body = {
                "prompt": prompt,
                "skip_prompt_check": False,
                "process_mode": mode,
                "aspect_ratio": "1:1",
                **self._legacy_hook(),
            }
            return self._submit_legacy("/mj/v2/imagine", body, prompt)
        fields = {
            "prompt": prompt,
            "aspect_ratio": "1:1",
            "process_mode": mode,
            "skip_prompt_check": False,
        }
        return self._submit_unified("imagine", fields)

    def action(
        self,
        *,
        parent_job_id: str,
        button: Button,
        mode: str,
        state: str,
        prompt: str = "",
        remix: bool = False,
    ) -> Submission:
        # `remix` needs nothing here: PiAPI takes the edited prompt with the press itself.
        task_type, fields = _press(button)
        body: dict[str, Any] = {"origin_task_id": parent_job_id, **fields}
        # An empty prompt keeps the parent's. Variation lists prompt as required, but the
        # caller passes the parent's final prompt there; when even that is unknown we omit
        # it and let PiAPI fall back to the origin task's prompt.
        if prompt and task_type in _PROMPTED_TASKS:
            body["prompt"] = prompt
        if task_type in _CHECKED_TASKS:
            body["skip_prompt_check"] = False
        if self.api == "legacy":
            body.update(self._legacy_hook())
            return self._submit_legacy(f"/mj/v2/{task_type}", body, prompt)
        # process_mode is documented on imagine only; elsewhere it is ignored at worst.
        body["process_mode"] = mode
        return self._submit_unified(task_type, body)

    def modal(self, *, provider_job_id: str, prompt: str) -> Submission:
        raise ProviderError(
            "PiAPI never waits for a remix prompt: the prompt goes with the button press.",
            permanent=True,
        )

    def _legacy_hook(self) -> dict[str, str]:
        return {"webhook_endpoint": self.webhook_endpoint, "webhook_secret": self.webhook_secret}

    def _submit_unified(self, task_type: str, fields: dict[str, Any]) -> Submission:
        config: dict[str, Any] = {"service_mode": ""}  # "": the workspace's default pool
        if self.webhook_endpoint:
            config["webhook_config"] = {
                "endpoint": self.webhook_endpoint,
                "secret": self.webhook_secret,
            }
        body = {"model": "midjourney", "task_type": task_type, "input": fields, "config": config}
        answer = self._object(self._request("POST", "/api/v1/task", body))
        data = _dict(answer.get("data"))
        error = _text(_dict(data.get("error")).get("message"))
        code = answer.get("code")
        if code != 200 or error:
            raise refusal(error or _text(answer.get("message")), code=code)
        task_id = _text(data.get("task_id"))
        if not task_id:
            raise ProviderError(
                "The provider accepted the task but gave no task_id.", permanent=False, code=code
            )
        status = parse_status(data.get("status"))
        if status is TaskStatus.FAILED:
            raise refusal("The provider failed the task as it was created.", code=code)
        return Submission(
            provider_job_id=task_id,
            status=status,
            message=_text(answer.get("message")),
            final_prompt=_text(_dict(data.get("input")).get("prompt")) or fields.get("prompt", ""),
            raw=answer,
        )

    def _submit_legacy(self, path: str, body: dict[str, Any], prompt: str) -> Submission:
        answer = self._object(self._request("POST", path, body))
        message = _text(answer.get("message"))
        # PiAPI's own Hugging Face example shows {"code": 200, "data": {"task_id"}} here.
        wrapped = _dict(answer.get("data"))
        task_id = _text(answer.get("task_id")) or _text(wrapped.get("task_id"))
        status = _text(answer.get("status")).lower()
        accepted = status == "success" or (not status and answer.get("code") == 200)
        if not accepted or not task_id:
            raise refusal(message, code=answer.get("code"))
        return Submission(provider_job_id=task_id, message=message, final_prompt=prompt, raw=answer)

    # --- reads ------------------------------------------------------------------------

    def fetch(self, provider_job_id: str) -> TaskSnapshot | None:
        if self.api == "legacy":
            body = {"task_id": provider_job_id}
            response = self._request("POST", "/mj/v2/fetch", body, missing_ok=True)
            if response is None:
                return None
            answer = self._object(response)
            if "status" not in answer and "task_result" not in answer:
                return None  # an error envelope ("task not found") rather than a task
            return parse_legacy_task(answer, provider_job_id)
        response = self._request("GET", f"/api/v1/task/{provider_job_id}", None, missing_ok=True)
        if response is None:
            return None
        answer = self._object(response)
        code, message = answer.get("code"), _text(answer.get("message"))
        if code == 404 or (code != 200 and _looks_missing(message)):
            return None
        if code != 200:
            raise refusal(message, code=code)
        data = answer.get("data")
        if not isinstance(data, dict) or not _text(data.get("task_id")):
            return None  # an empty data object for an id PiAPI does not know
        return parse_unified_task(data)

    def fetch_many(self, provider_job_ids: Iterable[str]) -> dict[str, TaskSnapshot]:
        # Neither API has a documented batch read (the legacy "multi fetch" page shows no
        # shape): one call per id. One bad id must not hide the others' progress.
        ids = list(dict.fromkeys(str(i) for i in provider_job_ids))
        snapshots: dict[str, TaskSnapshot] = {}
        failures: list[ProviderError] = []
        for task_id in ids:
            try:
                snapshot = self.fetch(task_id)
            except ProviderError as exc:
                if exc.status_code in (401, 403):
                    raise  # the key is refused: every other id would fail the same way
                logger.warning("PiAPI fetch of %s failed: %r", task_id, exc)
                failures.append(exc)
                continue
            if snapshot is not None:
                snapshots[task_id] = snapshot
        if ids and len(failures) == len(ids):
            raise failures[-1]
        return snapshots

    # --- HTTP -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any, *, missing_ok: bool = False
    ) -> httpx.Response | None:
        response = self._exchange(method, path, body)
        code = response.status_code
        if code in (200, 201):
            return response
        detail = _error_text(response)
        if missing_ok and (code == 404 or (400 <= code < 500 and _looks_missing(detail))):
            return None
        self._raise_for_common_status(code, detail)
        # Other 4xx: PiAPI's words decide (a banned prompt is not a generic bad request).
        body_code = _body_code(response)
        raise refusal(detail or f"HTTP {code}", code=body_code, status_code=code)

    @staticmethod
    def _object(response: httpx.Response | None) -> dict[str, Any]:
        if response is None:
            return {}
        data = HTTPProvider._decode(response)
        if not isinstance(data, dict):
            raise ProviderError(
                "The provider's answer was not a JSON object.",
                permanent=False,
                status_code=response.status_code,
            )
        return data


def _body_code(response: httpx.Response) -> int | str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, int | str) and not isinstance(code, bool) else None


def _error_text(response: httpx.Response) -> str:
    """PiAPI's own words from any of its error envelopes."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(data, dict):
        error = _dict(_dict(data.get("data")).get("error")) or _dict(data.get("error"))
        for text in (error.get("message"), error.get("raw_message"), data.get("message")):
            if _text(text):
                return _text(text)
        if _text(data.get("error")):
            return _text(data["error"])
    return response.text.strip()[:500]
