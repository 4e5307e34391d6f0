"""CometAPI, which speaks the midjourney-proxy ("plus") protocol.

Endpoint reference (docs/provider-protocols.md sections 1 and 2):
- POST {prefix}/mj/submit/imagine   {"prompt", "botType", "notifyHook", "state",
                                    "base64Array" (image prompts, data URLs)}
- POST {prefix}/mj/submit/blend     {"base64Array" (2-5), "dimensions" PORTRAIT|SQUARE|LANDSCAPE}
- POST {prefix}/mj/submit/describe  {"base64"}; the four prompts arrive in promptEn
- POST {prefix}/mj/submit/action    {"taskId", "customId", "chooseSameChannel", "state"}
- GET  /mj/task/{id}/fetch          -> task object; unknown: HTTP 400 "task_no_found "
- POST /mj/task/list-by-condition   {"ids": [...]} -> [task object, ...]
- Auth: "Authorization: Bearer <key>".
- Submit answers {"code", "description", "result", "properties"}: 1 submitted, 21 waiting for
  the remix modal, 22 queued; 3 not found, 4 validation, 9 system error (trueai: queue
  full), 23 queue full, 24 banned prompt.

Assumptions this adapter makes where the sources disagree or say nothing:
- The speed mode is chosen by a path prefix on submits (/mj-fast, /mj-relax, /mj-turbo;
  configurable, may be empty); fetches use the bare /mj/... paths, which are not billed.
- Task ids are read as strings whether the JSON carries a string or a number.
- A fetched status "" (the gateway before its first refresh) means "not started yet".
- A FAILURE may carry progress "100%", so success is never inferred from progress.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
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
    described_prompts,
    error_text,
    looks_banned,
)
from mjweb import catalogue

logger = logging.getLogger(__name__)

_STATUS = {
    "": TaskStatus.PENDING,
    "NOT_START": TaskStatus.PENDING,
    "SUBMITTED": TaskStatus.PENDING,
    "IN_PROGRESS": TaskStatus.RUNNING,
    "MODAL": TaskStatus.MODAL,
    "SUCCESS": TaskStatus.SUCCEEDED,
    "FAILURE": TaskStatus.FAILED,
    "CANCEL": TaskStatus.FAILED,
}

_PAN_WAYS = ("left", "right", "up", "down")
_PAN = re.compile(rf"^pan_({'|'.join(_PAN_WAYS)})$")


def parse_custom_id(custom_id: str) -> tuple[str, int | None, str] | None:
    """Map a Midjourney button customId to (action, index, variant), or None if we don't offer it.

    Grammar from trueai's templates: MJ::JOB::<kind>::<n>::<hash>[::SOLO], MJ::Outpaint::<pct>::...
    """
    parts = custom_id.split("::")
    if len(parts) < 3 or parts[0] != "MJ":
        return None
    if parts[1] == "Inpaint" and len(parts) >= 4 and parts[2] == "1":
        return ("vary_region", None, "")  # MJ::Inpaint::1::<hash>::SOLO, always MODAL
    if parts[1] == "CustomZoom":
        return ("custom_zoom", None, "")  # MJ::CustomZoom::<hash>, always MODAL
    if parts[1] == "Outpaint" and len(parts) >= 4:
        return {"50": ("zoom_out", None, "2x"), "75": ("zoom_out", None, "1.5x")}.get(parts[2])
    if parts[1] != "JOB" or len(parts) < 4:
        return None
    kind, number = parts[2], parts[3]
    if kind in {"upsample", "variation"}:
        if number not in {"1", "2", "3", "4"}:
            return None
        return ("upscale" if kind == "upsample" else "variation", int(number), "")
    if kind == "reroll":
        return ("reroll", None, "")
    if kind == "low_variation":
        return ("vary_subtle", None, "")
    if kind == "high_variation":
        return ("vary_strong", None, "")
    if kind.startswith("upsample_") and kind.endswith("_subtle"):
        return ("upscale_subtle", None, "")
    if kind.startswith("upsample_") and kind.endswith("_creative"):
        return ("upscale_creative", None, "")
    pan = _PAN.match(kind)
    if pan:
        return ("pan", None, pan.group(1))
    return None


# The customId midjourney-proxy gives each button, by (action, variant): the inverse of
# parse_custom_id, for answering in that protocol ourselves (gallery.api).
_CUSTOM_IDS = {
    ("upscale", ""): "MJ::JOB::upsample::{index}::{hash}",
    ("variation", ""): "MJ::JOB::variation::{index}::{hash}",
    ("reroll", ""): "MJ::JOB::reroll::0::{hash}::SOLO",
    ("vary_subtle", ""): "MJ::JOB::low_variation::1::{hash}::SOLO",
    ("vary_strong", ""): "MJ::JOB::high_variation::1::{hash}::SOLO",
    ("upscale_subtle", ""): "MJ::JOB::upsample_v6_2x_subtle::1::{hash}::SOLO",
    ("upscale_creative", ""): "MJ::JOB::upsample_v6_2x_creative::1::{hash}::SOLO",
    ("zoom_out", "2x"): "MJ::Outpaint::50::1::{hash}::SOLO",
    ("zoom_out", "1.5x"): "MJ::Outpaint::75::1::{hash}::SOLO",
    **{("pan", way): f"MJ::JOB::pan_{way}::1::{{hash}}::SOLO" for way in _PAN_WAYS},
    ("vary_region", ""): "MJ::Inpaint::1::{hash}::SOLO",
    ("custom_zoom", ""): "MJ::CustomZoom::{hash}",
}


def custom_id(action: str, index: int | None, variant: str, task_hash: str) -> str | None:
    """The customId of a button in midjourney-proxy's grammar; None for one it has none for."""
    pattern = _CUSTOM_IDS.get((action, variant if action in ("zoom_out", "pan") else ""))
    return pattern.format(index=index or 1, hash=task_hash) if pattern else None


def parse_buttons(raw: Any) -> tuple[Button, ...]:
    if not isinstance(raw, list):
        return ()
    buttons: list[Button] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        custom_id = str(item.get("customId") or "")
        parsed = parse_custom_id(custom_id)
        if parsed is None:
            continue
        action, index, variant = parsed
        label = str(item.get("label") or "")
        if not label:
            label = catalogue.action(action).button_label(index, variant)
        buttons.append(
            Button(
                action=action,
                index=index,
                variant=variant,
                label=label,
                custom_id=custom_id,
                emoji=str(item.get("emoji") or ""),
            )
        )
    return tuple(buttons)


def parse_progress(value: Any) -> int:
    text = str(value or "").strip().rstrip("%")
    try:
        return max(0, min(100, int(float(text))))
    except ValueError:
        return 0


def parse_task(data: Any) -> TaskSnapshot:
    if not isinstance(data, dict) or data.get("id") in (None, ""):
        raise ProviderError("The provider sent a task without an id.", permanent=False)
    raw_status = str(data.get("status") or "").upper()
    status = _STATUS.get(raw_status)
    if status is None:
        logger.warning("unknown midjourney-proxy status %r; treating as pending", raw_status)
        status = TaskStatus.PENDING
    properties = data.get("properties") if isinstance(data.get("properties"), dict) else {}
    final_prompt = str(properties.get("finalPrompt") or data.get("promptEn") or "")
    described: tuple[str, ...] = ()
    if str(data.get("action") or "").upper() == "DESCRIBE" and status is TaskStatus.SUCCEEDED:
        described = described_prompts(str(data.get("promptEn") or "") or final_prompt)
    return TaskSnapshot(
        provider_job_id=str(data["id"]),
        status=status,
        progress=100 if status is TaskStatus.SUCCEEDED else parse_progress(data.get("progress")),
        image_url=str(data.get("imageUrl") or ""),
        buttons=parse_buttons(data.get("buttons")) if status is TaskStatus.SUCCEEDED else (),
        fail_reason=str(data.get("failReason") or ""),
        final_prompt="" if described else final_prompt,
        raw=data,
        prompts=described,
    )


class CometAPI(HTTPProvider):
    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str,
        mode_prefixes: dict[str, str],
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        recorder: Recorder | None = None,
        notify_hook: str = "",
        task_list: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
            recorder=recorder,
        )
        self.mode_prefixes = mode_prefixes
        # Sent with every submit; the gateway may strip it (MjNotifyEnabled off), so polling
        # stays the safety net.
        self.notify_hook = notify_hook
        # A self-hosted midjourney-proxy (novicezk, trueai) answers GET /mj/task/list with
        # every task it keeps, `state` included; CometAPI's relay documents no such list.
        self.lists_tasks = task_list

    @classmethod
    def options(cls, hooks: Hooks) -> dict[str, Any]:
        return {
            "mode_prefixes": settings.COMETAPI_MODE_PREFIXES,
            "notify_hook": hooks.cometapi,
            "task_list": settings.MJ_TASK_LIST,
        }

    def image_hosts(self) -> set[str]:
        host = urlsplit(self.base_url).hostname
        return {host} if host else set()

    # --- submits ----------------------------------------------------------------------

    def imagine(
        self, *, prompt: str, mode: str, state: str, images: tuple[InputImage, ...] = ()
    ) -> Submission:
        body: dict[str, Any] = {"prompt": prompt, "botType": "MID_JOURNEY", "state": state}
        if images:
            body["base64Array"] = [image.data_url for image in images]
        return self._submit(f"{self._prefix(mode)}/mj/submit/imagine", self._hooked(body))

    def blend(
        self, *, images: tuple[InputImage, ...], dimensions: str, mode: str, state: str
    ) -> Submission:
        body = {
            "base64Array": [image.data_url for image in images],
            "dimensions": dimensions.upper(),
            "botType": "MID_JOURNEY",
            "state": state,
        }
        return self._submit(f"{self._prefix(mode)}/mj/submit/blend", self._hooked(body))

    def describe(self, *, image: InputImage, mode: str, state: str) -> Submission:
        body = {"base64": image.data_url, "botType": "MID_JOURNEY", "state": state}
        return self._submit(f"{self._prefix(mode)}/mj/submit/describe", self._hooked(body))

    def _hooked(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "notifyHook": self.notify_hook} if self.notify_hook else body

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
        # midjourney-proxy takes no prompt with a press: an edited prompt goes through the
        # remix modal (/mj/submit/modal) once the new task reports MODAL.
        body: dict[str, Any] = {
            "taskId": parent_job_id,
            "customId": button.custom_id,
            "chooseSameChannel": True,
            "state": state,
        }
        if remix:
            body["enableRemix"] = True
        if self.notify_hook:
            body["notifyHook"] = self.notify_hook
        return self._submit(f"{self._prefix(mode)}/mj/submit/action", body)

    def modal(
        self, *, provider_job_id: str, prompt: str, mode: str, mask: InputImage | None = None
    ) -> Submission:
        # taskId is the task waiting in MODAL (the child), as trueai's SubmitModal reads it.
        # The speed-mode prefix goes with it, as with imagine and action: a gateway routes and
        # bills by the path. Vary (Region)'s mask goes as maskBase64, a data URL (white =
        # repaint); Custom Zoom's factor is the prompt's --zoom.
        body = {"taskId": provider_job_id, "prompt": prompt}
        if mask is not None:
            body["maskBase64"] = mask.data_url
        return self._submit(f"{self._prefix(mode)}/mj/submit/modal", body)

    def _prefix(self, mode: str) -> str:
        return self.mode_prefixes.get(mode, "").rstrip("/")

    def _submit(self, path: str, body: dict[str, Any]) -> Submission:
        data = self._json(self._request("POST", path, body))
        if not isinstance(data, dict):
            raise ProviderError("The provider's answer was not a JSON object.", permanent=False)
        code = data.get("code")
        description = str(data.get("description") or "")
        properties = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        result = data.get("result")
        if code in (1, 21, 22):
            if result in (None, ""):
                raise ProviderError(
                    f"The provider accepted the job but gave no task id ({description}).",
                    permanent=False,
                    code=code,
                )
            queue = properties.get("numberOfQueues")
            return Submission(
                provider_job_id=str(result),
                status=TaskStatus.MODAL if code == 21 else TaskStatus.PENDING,
                message=description,
                queue_position=queue if isinstance(queue, int) else None,
                final_prompt=str(properties.get("finalPrompt") or ""),
                raw=data,
            )
        if code == 4 and looks_banned(description):
            # trueai / new-api use 4 for some prompt checks too.
            raise ProviderError(
                description,
                permanent=True,
                fail_kind="rejected_prompt",
                code=code,
                words=description,
            )
        if code == 24:
            banned = properties.get("bannedWord")
            text = f"{description} ({banned})" if banned else description
            raise ProviderError(
                text or "Banned prompt",
                permanent=True,
                fail_kind="rejected_prompt",
                code=code,
                words=text,
            )
        if code in (9, 23):
            # trueai answers 9 for "queue full"; novicezk uses 23: both pass with time.
            raise ProviderError(
                description or "Queue full",
                permanent=False,
                code=code,
                busy=True,
                words=description,
            )
        raise ProviderError(
            description or f"The provider refused the job (code {code}).",
            permanent=True,
            code=code if isinstance(code, int | str) else None,
            words=description,
        )

    # --- reads ------------------------------------------------------------------------

    def fetch(self, provider_job_id: str) -> TaskSnapshot | None:
        response = self._request("GET", f"/mj/task/{provider_job_id}/fetch", None, missing_ok=True)
        if response is None or not response.content.strip():
            # novicezk answers 200 with an empty body, trueai 204, the gateway 400.
            return None
        data = self._json(response)
        if data is None:
            return None
        return parse_task(data)

    def fetch_many(self, provider_job_ids: Iterable[str]) -> dict[str, TaskSnapshot]:
        ids = [str(i) for i in provider_job_ids]
        if not ids:
            return {}
        data = self._json(self._request("POST", "/mj/task/list-by-condition", {"ids": ids}))
        if not isinstance(data, list):
            raise ProviderError("list-by-condition did not answer with a list.", permanent=False)
        snapshots: dict[str, TaskSnapshot] = {}
        for item in data:
            try:
                snapshot = parse_task(item)
            except ProviderError:
                logger.warning("skipping malformed task in list-by-condition: %r", item)
                continue
            snapshots[snapshot.provider_job_id] = snapshot
        return snapshots

    def find_task(self, state: str) -> TaskSnapshot | None:
        if not self.lists_tasks:
            return None
        data = self._json(self._request("GET", "/mj/task/list", None))
        if isinstance(data, dict):
            # Some builds wrap the page: {"data": [...]}, {"items": [...]} or {"list": [...]}.
            data = next((data[k] for k in ("data", "items", "list") if k in data), None)
        if not isinstance(data, list):
            raise ProviderError("The task list was not a list.", permanent=False)
        for item in data:
            if isinstance(item, dict) and str(item.get("state") or "") == state:
                try:
                    return parse_task(item)
                except ProviderError:
                    logger.warning("skipping malformed task in the task list: %r", item)
        return None

    # --- HTTP -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any, *, missing_ok: bool = False
    ) -> httpx.Response | None:
        response = self._exchange(method, path, body)
        if response.status_code in (200, 201):
            return response
        if response.status_code == 204:
            return None if missing_ok else response
        detail = error_text(response, _error_words)
        not_found = "not_found" in detail.replace("no_found", "not_found")
        if missing_ok and response.status_code in (400, 404) and not_found:
            return None
        self._raise_for_common_status(response.status_code, detail)
        raise ProviderError(
            f"The provider rejected the request (HTTP {response.status_code}): {detail}",
            permanent=True,
            status_code=response.status_code,
            words=detail,
        )

    def _json(self, response: httpx.Response | None) -> Any:
        return None if response is None else self._decode(response)


def _error_words(data: dict[str, Any]) -> Iterator[Any]:
    """Where midjourney-proxy and the gateways in front of it put their error text."""
    error = data.get("error")
    yield error.get("message") if isinstance(error, dict) else error
    for key in ("description", "message", "detail"):
        yield data.get(key)
