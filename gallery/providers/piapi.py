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
- Vary (Region) is task_type "inpaint" (legacy POST /mj/v2/inpaint) with input
  {origin_task_id, mask, prompt}, the mask a PNG data URL, white = repaint; Custom Zoom is
  "outpaint" with zoom_ratio "custom" and the factor as the prompt's --zoom N. Both are
  UNCONFIRMED: the pages exist, their fields are not captured (provider-protocols.md 3).
"""

from __future__ import annotations

import logging
import queue
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from gallery.providers.base import (
    Button,
    Hooks,
    HTTPProvider,
    InputImage,
    ProviderError,
    Recorder,
    Submission,
    TaskSnapshot,
    TaskStatus,
    error_text,
)
from gallery.providers.piapi_wire import (
    DEFAULT_ACTIONS,
    _body_code,
    _dict,
    _error_words,
    _looks_missing,
    _press,
    _text,
    looks_rejected,
    parse_actions,
    parse_legacy_task,
    parse_status,
    parse_unified_task,
    parse_webhook,
    refusal,
)

# The parsing lives in piapi_wire; these names are imported from here too.
__all__ = [
    "APIS",
    "DEFAULT_ACTIONS",
    "PiAPI",
    "looks_rejected",
    "parse_actions",
    "parse_legacy_task",
    "parse_status",
    "parse_unified_task",
    "parse_webhook",
    "refusal",
]

logger = logging.getLogger(__name__)

APIS = ("unified", "legacy")

_PROMPTED_TASKS = ("reroll", "variation", "outpaint", "pan", "inpaint")  # take an edited prompt
_CHECKED_TASKS = ("reroll", "variation")  # document skip_prompt_check


# All the reads of one tick together take at most this long (inside django-q's timeout).
READ_BUDGET = 45.0


_ASPECT = re.compile(r"--(?:ar|aspect)\s+(\d{1,3}:\d{1,3})\b", re.IGNORECASE)


def _aspect_ratio(prompt: str) -> str:
    """The shape the prompt asks for (its last --ar), "" for none."""
    found = _ASPECT.findall(prompt)
    return found[-1] if found else ""


def _links(images: tuple[InputImage, ...]) -> list[str]:
    """PiAPI fetches the user's pictures itself: each needs a link to this site."""
    if not all(image.url for image in images):
        raise ProviderError(
            "PiAPI fetches your pictures from this site, which has no address for them: "
            "set SITE_URL to the site's public address.",
            permanent=True,
        )
    return [image.url for image in images]


class PiAPI(HTTPProvider):
    # PiAPI never parks a task in MODAL: an edited prompt goes with the press itself.
    REMIX_ASKS_FIRST = True

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
        reads_at_once: int = 6,
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
        self.reads_at_once = reads_at_once

    @classmethod
    def options(cls, hooks: Hooks) -> dict[str, Any]:
        secret = hooks.piapi_secret if hooks.piapi else ""
        return {
            "api": settings.PIAPI_API,
            "webhook_endpoint": hooks.piapi,
            "webhook_secret": secret,
        }

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

    def imagine(
        self, *, prompt: str, mode: str, state: str, images: tuple[InputImage, ...] = ()
    ) -> Submission:
        # PiAPI has no pass-through field like midjourney-proxy's `state`: our own id
        # stays in our database only. Image prompts go as Midjourney takes them, links at
        # the start of the prompt; the shape is the prompt's own --ar (PiAPI's default 1:1).
        if images:
            prompt = " ".join([*_links(images), prompt])
        shape = _aspect_ratio(prompt) or "1:1"
        if self.api == "legacy":
            body = {
                "prompt": prompt,
                "skip_prompt_check": False,
                "process_mode": mode,
                "aspect_ratio": shape,
                **self._legacy_hook(),
            }
            return self._submit_legacy("/mj/v2/imagine", body, prompt)
        fields = {
            "prompt": prompt,
            "aspect_ratio": shape,
            "process_mode": mode,
            "skip_prompt_check": False,
        }
        return self._submit_unified("imagine", fields)

    def blend(
        self, *, images: tuple[InputImage, ...], dimensions: str, mode: str, state: str
    ) -> Submission:
        # Blend's input fields are not in the stored documents (UNCONFIRMED): the links as
        # `image_urls` and the shape as `dimension`, as the other task types name theirs.
        fields = {"image_urls": _links(images), "dimension": dimensions, "process_mode": mode}
        if self.api == "legacy":
            return self._submit_legacy("/mj/v2/blend", {**fields, **self._legacy_hook()}, "")
        return self._submit_unified("blend", fields)

    def describe(self, *, image: InputImage, mode: str, state: str) -> Submission:
        fields = {"image_url": _links((image,))[0], "process_mode": mode}
        if self.api == "legacy":
            return self._submit_legacy("/mj/v2/describe", {**fields, **self._legacy_hook()}, "")
        return self._submit_unified("describe", fields)

    def action(
        self,
        *,
        parent_job_id: str,
        button: Button,
        mode: str,
        state: str,
        prompt: str = "",
        remix: bool = False,
        mask: InputImage | None = None,
    ) -> Submission:
        # `remix` needs nothing here: PiAPI takes the edited prompt with the press itself.
        task_type, fields = _press(button)
        body: dict[str, Any] = {"origin_task_id": parent_job_id, **fields}
        if task_type == "inpaint":
            if mask is None:
                raise ProviderError("Vary (Region) needs the region's mask.", permanent=True)
            body["mask"] = mask.data_url  # field and form UNCONFIRMED (module docstring)
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

    def modal(
        self, *, provider_job_id: str, prompt: str, mode: str, mask: InputImage | None = None
    ) -> Submission:
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
            raise refusal("The provider failed the task as it was created.", code=code, words="")
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
        return dict(self.fetch_each(provider_job_ids))

    def fetch_each(self, provider_job_ids: Iterable[str]) -> Iterator[tuple[str, TaskSnapshot]]:
        """Neither API has a documented batch read (the legacy "multi fetch" page shows no
        shape): one call per id, `reads_at_once` of them at a time, each task yielded as it
        arrives, within READ_BUDGET seconds in all (what is not read by then waits for the
        next tick). One bad id does not hide the others; a refused key stops them all.

        The exchanges are recorded by the caller's thread, as they are yielded: the
        recorder writes to the database, which the read threads never touch."""
        ids = list(dict.fromkeys(str(i) for i in provider_job_ids))
        if not ids:
            return
        recorder, calls = self.recorder, queue.SimpleQueue()
        if recorder is not None:
            self.recorder = lambda *call: calls.put(call)

        def flush() -> None:
            while recorder is not None and not calls.empty():
                recorder(*calls.get())

        failures: list[ProviderError] = []
        waiting = iter(ids)
        reads: dict[Future[TaskSnapshot | None], str] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.reads_at_once, len(ids))))
        ends = time.monotonic() + READ_BUDGET
        try:
            while True:
                # A new read starts only when one has been handed over: a refused key or the
                # budget stops the ones not begun.
                for task_id in islice(waiting, self.reads_at_once - len(reads)):
                    reads[pool.submit(self.fetch, task_id)] = task_id
                if not reads:
                    break
                done, _ = wait(reads, timeout=ends - time.monotonic(), return_when=FIRST_COMPLETED)
                if not done:
                    logger.warning("PiAPI reads took over %s s; the rest wait", READ_BUDGET)
                    break
                flush()
                for read in done:
                    task_id = reads.pop(read)
                    try:
                        snapshot = read.result()
                    except ProviderError as exc:
                        if exc.status_code in (401, 403):
                            raise  # the key is refused: every other id would fail the same way
                        logger.warning("PiAPI fetch of %s failed: %r", task_id, exc)
                        failures.append(exc)
                        continue
                    if snapshot is not None:
                        yield task_id, snapshot
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.recorder = recorder
            flush()
        if len(failures) == len(ids):
            raise failures[-1]

    # --- HTTP -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any, *, missing_ok: bool = False
    ) -> httpx.Response | None:
        response = self._exchange(method, path, body)
        code = response.status_code
        if code in (200, 201):
            return response
        detail = error_text(response, _error_words)
        if missing_ok and (code == 404 or (400 <= code < 500 and _looks_missing(detail))):
            return None
        self._raise_for_common_status(code, detail)
        # Other 4xx: PiAPI's words decide (a banned prompt is not a generic bad request).
        body_code = _body_code(response)
        raise refusal(detail or f"HTTP {code}", code=body_code, status_code=code, words=detail)

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
