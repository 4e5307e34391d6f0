"""The PiAPI wire format: its answers parsed into the normalized types of base.py, and back.

Pure functions and tables, no HTTP: the status map, the action strings (`_ACTIONS`,
`DEFAULT_ACTIONS`), unified and legacy task parsing, webhook bodies, error envelopes and
their classification, and `_press` (a button -> PiAPI's task_type and input fields). The
endpoint reference is in the docstring of gallery.providers.piapi, which uses all of this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx

from gallery.providers.base import (
    Button,
    ProviderError,
    TaskSnapshot,
    TaskStatus,
    described_prompts,
    loads,
    looks_banned,
)
from gallery.providers.cometapi import parse_progress
from mjweb import catalogue

logger = logging.getLogger(__name__)

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

# PiAPI action string -> (our action, index, variant, emoji); the label is the catalogue's
# button text. Both spellings seen in PiAPI/GoAPI material are accepted; the original string
# stays in Button.custom_id.
_ACTIONS: dict[str, tuple[str, int | None, str, str]] = {
    "reroll": ("reroll", None, "", "🔄"),
    **{f"upscale{i}": ("upscale", i, "", "") for i in range(1, 5)},
    **{f"variation{i}": ("variation", i, "", "") for i in range(1, 5)},
    "upscale_subtle": ("upscale_subtle", None, "", ""),
    "upscale_creative": ("upscale_creative", None, "", ""),
    "low_variation": ("vary_subtle", None, "", "🪄"),
    "vary_subtle": ("vary_subtle", None, "", "🪄"),
    "high_variation": ("vary_strong", None, "", "🪄"),
    "vary_strong": ("vary_strong", None, "", "🪄"),
    "outpaint_2x": ("zoom_out", None, "2x", "🔍"),
    "zoom_out_2": ("zoom_out", None, "2x", "🔍"),
    "outpaint_1.5x": ("zoom_out", None, "1.5x", "🔍"),
    "zoom_out_1.5": ("zoom_out", None, "1.5x", "🔍"),
    # UNCONFIRMED: no stored PiAPI page names the action strings of Vary (Region) and
    # Custom Zoom; these are modelled on its task types (inpaint, outpaint "custom").
    "inpaint": ("vary_region", None, "", "🖌️"),
    "outpaint_custom": ("custom_zoom", None, "", "🔍"),
    "pan_left": ("pan", None, "left", "⬅️"),
    "pan_right": ("pan", None, "right", "➡️"),
    "pan_up": ("pan", None, "up", "⬆️"),
    "pan_down": ("pan", None, "down", "⬇️"),
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
    "inpaint",  # UNCONFIRMED action string (see _ACTIONS)
    "outpaint_custom",  # UNCONFIRMED action string (see _ACTIONS)
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
    message: str,
    *,
    code: int | str | None = None,
    status_code: int | None = None,
    words: str | None = None,
) -> ProviderError:
    """The ProviderError for a refused request, classified by its code and its words.
    `message` is the provider's own text unless `words` says which part is."""
    text = message or f"The provider refused the request (code {code})."
    said = message if words is None else words
    numeric = code if isinstance(code, int) and not isinstance(code, bool) else None
    if looks_rejected(text):
        return ProviderError(
            text,
            permanent=True,
            fail_kind="rejected_prompt",
            status_code=status_code,
            code=code,
            words=said,
        )
    if numeric in (401, 403):
        return ProviderError(text, permanent=True, status_code=status_code, code=code, words=said)
    busy = numeric == 429 or status_code == 429 or _looks_busy(text)
    transient = busy or (numeric is not None and numeric >= 500)
    return ProviderError(
        text, permanent=not transient, status_code=status_code, code=code, busy=busy, words=said
    )


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
        action, index, variant, emoji = known
        if (action, index, variant) in seen:  # both spellings of one button
            continue
        seen.add((action, index, variant))
        label = catalogue.action(action).button_label(index, variant)
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
    prompts = described(result) if done and task_type.lower() == "describe" else ()
    return TaskSnapshot(
        provider_job_id=task_id,
        status=status,
        progress=100 if done else parse_progress(progress),
        image_url=image_url,
        buttons=parse_actions(result.get("actions"), task_type) if done else (),
        fail_reason=fail_reason if status is TaskStatus.FAILED else "",
        final_prompt="" if prompts else final_prompt,
        raw=raw,
        prompts=prompts,
    )


def described(result: dict[str, Any]) -> tuple[str, ...]:
    """Describe's prompts from a finished task's output. Where PiAPI puts them is not in the
    stored documents (UNCONFIRMED): a list in `prompts`, or the text Midjourney writes
    ("1️⃣ ... 2️⃣ ...") in `description`, `prompt` or `content`, whichever is there."""
    listed = result.get("prompts")
    if isinstance(listed, list):
        found = tuple(" ".join(_text(item).split()) for item in listed if _text(item).strip())
        if found:
            return found[:4]
    for key in ("description", "prompt", "content"):
        text = _text(result.get(key))
        if text.strip():
            return described_prompts(text)
    return ()


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
        payload = loads(body)
    except ValueError as exc:
        raise ValueError(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("the webhook body is not a JSON object")
    task = payload["data"] if isinstance(payload.get("data"), dict) else payload
    task_id, status = task.get("task_id"), task.get("status")
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValueError("the webhook body has no task_id")
    if not isinstance(status, str) or len(status) > 40:
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
    if action == "vary_region":
        return "inpaint", {}  # the mask and the prompt go beside it; fields UNCONFIRMED
    if action == "custom_zoom":
        return "outpaint", {"zoom_ratio": "custom"}  # the factor is the prompt's --zoom
    raise ProviderError(
        f"PiAPI has no task for the button {button.label or action!r}.", permanent=True
    )


def _body_code(response: httpx.Response) -> int | str | None:
    try:
        data = loads(response.content)
    except ValueError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, int | str) and not isinstance(code, bool) else None


def _error_words(data: dict[str, Any]) -> Iterator[Any]:
    """Where PiAPI puts its error text, in any of its envelopes."""
    error = _dict(_dict(data.get("data")).get("error")) or _dict(data.get("error"))
    yield from (error.get("message"), error.get("raw_message"), data.get("message"))
    if isinstance(data.get("error"), str):
        yield data["error"]
