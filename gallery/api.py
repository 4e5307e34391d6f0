"""The JSON API, in the midjourney-proxy protocol that CometAPI, trueai-org/midjourney-proxy
and new-api speak (docs/provider-protocols.md, sections 1.4-1.8), so that their clients and
web UIs can use mjweb as their backend with per-user credits.

- `Authorization: Bearer <personal token>` (or `mj-api-secret`), counted per token
  (MJWEB_RATES["api"]) and, for submits, like the studio's submits.
- `POST [/mj-fast|/mj-relax|/mj-turbo]/mj/submit/imagine` {prompt, base64Array?, state?,
  notifyHook?}, `/mj/submit/blend` {base64Array (2-5), dimensions?}, `/mj/submit/describe`
  {base64} (a `link` is refused: fetching a caller's URL could point us anywhere);
- `POST /mj/submit/action` {taskId, customId, state?, notifyHook?} with a customId from
  the task's `buttons` (under a speed prefix in that speed, else in its parent's);
- `POST /mj/submit/modal` {taskId, prompt} for a task waiting in MODAL (Remix);
- `GET /mj/task/{id}/fetch`, `POST /mj/task/list-by-condition` {ids}.
Submits answer {code, description, result, properties}: 1 submitted, 22 waiting in line
(properties.numberOfQueues), 21 waiting for the Remix prompt (continue with /submit/modal),
3 the parent task is unknown, 4 refused (the reason in `description`; `quota_not_enough`
first when credits are short), 23 too many submits. A banned prompt is not refused with 24
(we have no word list to check before the provider does): the task ends in FAILURE with
the provider's words, as trueai's proxy does. Task ids are our job codes; imageUrl
is a signed link to our own copy that expires (MJWEB_API_IMAGE_LINK_SECONDS). Credits,
quotas, capacity and the audit are the studio's: the same gallery.services calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from gallery import notify, references, services
from gallery.models import Image, Job, Reference
from gallery.providers.base import loads
from gallery.providers.cometapi import custom_id, parse_custom_id
from mjweb import catalogue, throttle, tokens

MODE_PREFIXES = {"mj-fast": "fast", "mj-relax": "relax", "mj-turbo": "turbo"}
IMAGE_SALT = "mjweb.api.image"
MAX_BODY = 64 * 1024
MAX_LIST = 100

# midjourney-proxy's task actions, by ours.
ACTIONS = {
    "imagine": "IMAGINE",
    "reroll": "REROLL",
    "upscale": "UPSCALE",
    "variation": "VARIATION",
    "vary_subtle": "LOW_VARIATION",
    "vary_strong": "HIGH_VARIATION",
    "zoom_out": "ZOOM",
    "pan": "PAN",
    "upscale_subtle": "UPSCALE",
    "upscale_creative": "UPSCALE",
    "vary_region": "INPAINT",
    "custom_zoom": "CUSTOM_ZOOM",
    "blend": "BLEND",
    "describe": "DESCRIBE",
    "import": "IMAGINE",
}
EMOJI = {"reroll": "🔄", "vary_subtle": "🪄", "vary_strong": "🪄", "zoom_out": "🔍"}


def _error(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"message": message, "type": "mjweb_error", "code": code}}, status=status
    )


def _answer(code: int, description: str, result: str | None = None, **properties: Any) -> Any:
    return JsonResponse(
        {"code": code, "description": description, "result": result, "properties": properties}
    )


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Token, rate and body checks in front of an API view; the view gets the token's user."""

    @csrf_exempt
    @never_cache
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = tokens.authenticate(request)
        if token is None:
            return _error(401, "Invalid, expired or revoked API token.", "invalid_token")
        request.user = token.user
        if limit := throttle.limited(request, "api"):
            response = _error(429, limit.message, "rate_limited")
            response["Retry-After"] = str(limit.retry_after)
            return response
        return view(request, *args, **kwargs)

    return wrapped


def pictures_body_limit() -> int:
    """The largest body of a submit carrying pictures: five of the largest we take, as
    base64 (4/3 of their bytes), and the rest of the request."""
    return MAX_BODY + services.MAX_IMAGE_PROMPTS * settings.MJWEB_UPLOAD_MAX_BYTES * 4 // 3


def _body(request: HttpRequest, limit: int = MAX_BODY) -> dict[str, Any] | JsonResponse:
    too_large = _error(413, "The request body is too large.", "too_large")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return too_large
    # Read here rather than through request.body, whose cap (DATA_UPLOAD_MAX_MEMORY_SIZE)
    # is the whole site's: only the submits that carry pictures may send this much.
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return too_large
    try:
        data = loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return _error(400, f"The body is not JSON: {exc}", "bad_json")
    if not isinstance(data, dict):
        return _error(400, "The body must be a JSON object.", "bad_json")
    return data


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _hook(data: dict[str, Any]) -> str | None:
    """The caller's notifyHook if it is a plain http(s) URL ("" for none; None: refused)."""
    hook = _text(data, "notifyHook", 1000)
    return hook if not hook or notify.acceptable(hook) else None


def _own(request: HttpRequest, task_id: Any) -> Job | None:
    try:
        code = uuid.UUID(str(task_id))
    except ValueError:
        return None
    return Job.objects.visible_to(request.user).select_related("parent").filter(code=code).first()


def _submit(
    request: HttpRequest, data: dict[str, Any], make: Callable[[dict[str, str]], Job]
) -> JsonResponse:
    """The submit both imagine and action end with: the hook checked, the submit rate
    counted, the job made by `make(caller)` (gallery.services), and the protocol's answer."""
    hook = _hook(data)
    if hook is None:
        return _answer(4, "notifyHook must be a public http(s) URL.")
    if limit := throttle.limited(request, "submit"):
        return _answer(23, limit.message)
    try:
        job = make({"api_state": _text(data, "state", 500), "notify_hook": hook})
    except services.SubmitError as exc:
        return _refused(exc)
    job.refresh_from_db()
    code = str(job.code)
    if job.status == Job.Status.MODAL:
        prompt = job.final_prompt or job.prompt
        return _answer(21, "Waiting for window confirm", code, finalPrompt=prompt, remix=True)
    if job.slot_position is not None:
        ahead = job.slot_position
        return _answer(22, f"In queue, {ahead} ahead", code, numberOfQueues=ahead)
    return _answer(1, "Submit success", code)


def _refused(exc: services.SubmitError) -> JsonResponse:
    text = str(exc)
    return _answer(4, f"quota_not_enough: {text}" if exc.needs_credits else text)


@require_POST
@api_view
def imagine(request: HttpRequest, prefix: str = "") -> HttpResponse:
    data = _body(request, pictures_body_limit())
    if isinstance(data, JsonResponse):
        return data
    prompt = _text(data, "prompt", services.MAX_PROMPT_LENGTH + 1)
    if not prompt:
        return _answer(4, "prompt is required")
    images = _pictures(request, data.get("base64Array") or [], "base64Array", most=5)
    if isinstance(images, JsonResponse):
        return images
    mode = MODE_PREFIXES.get(prefix or "", "fast")
    return _submit(
        request,
        data,
        lambda caller: services.submit(
            owner=request.user, prompt=prompt, mode=mode, caller=caller, images=images
        ),
    )


@require_POST
@api_view
def blend(request: HttpRequest, prefix: str = "") -> HttpResponse:
    data = _body(request, pictures_body_limit())
    if isinstance(data, JsonResponse):
        return data
    images = _pictures(request, data.get("base64Array"), "base64Array", most=5)
    if isinstance(images, JsonResponse):
        return images
    dimensions = _text(data, "dimensions", 20).lower() or "square"
    mode = MODE_PREFIXES.get(prefix or "", "fast")
    return _submit(
        request,
        data,
        lambda caller: services.blend(
            owner=request.user, images=images, dimensions=dimensions, mode=mode, caller=caller
        ),
    )


@require_POST
@api_view
def describe(request: HttpRequest, prefix: str = "") -> HttpResponse:
    data = _body(request, pictures_body_limit())
    if isinstance(data, JsonResponse):
        return data
    if not data.get("base64") and data.get("link"):
        # Fetching a caller's URL from here would let it point us anywhere: the picture
        # itself, please.
        return _answer(4, "Send the picture itself as base64; link is not accepted here.")
    images = _pictures(request, [data.get("base64")] if data.get("base64") else [], "base64", 1)
    if isinstance(images, JsonResponse):
        return images
    if not images:
        return _answer(4, "base64 is required")
    mode = MODE_PREFIXES.get(prefix or "", "fast")
    return _submit(
        request,
        data,
        lambda caller: services.describe(
            owner=request.user, image=images[0], mode=mode, caller=caller
        ),
    )


_DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


def _pictures(
    request: HttpRequest, value: Any, name: str, most: int
) -> list[Reference] | JsonResponse:
    """The caller's pictures (data URLs, or bare base64), taken in; code 4 saying which one
    is refused and why."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return _answer(4, f"{name} must be a list of data URLs.")
    if len(value) > most:
        return _answer(4, f"{name} takes at most {most} pictures.")
    taken = []
    for position, item in enumerate(value, start=1):
        encoded = _DATA_URL.sub("", item.strip(), count=1)
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return _answer(4, f"{name} picture {position} is not base64.")
        try:
            taken.append(references.take(request.user, data, name=f"{name} picture {position}"))
        except references.Refused as exc:
            return _answer(4, str(exc))
    return taken


@require_POST
@api_view
def action(request: HttpRequest, prefix: str = "") -> HttpResponse:
    data = _body(request)
    if isinstance(data, JsonResponse):
        return data
    parent = _own(request, data.get("taskId"))
    if parent is None:
        return _answer(3, "The task does not exist, or is not yours.")
    parsed = parse_custom_id(_text(data, "customId", 300))
    if parsed is None:
        return _answer(4, "customId is not one of this task's buttons.")
    act, index, variant = parsed
    return _submit(
        request,
        data,
        lambda caller: services.press(
            owner=request.user,
            parent=parent,
            action=act,
            index=index,
            variant=variant,
            mode=MODE_PREFIXES.get(prefix or ""),
            caller=caller,
            # Vary (Region) and Custom Zoom answer code 21: the mask or the --zoom prompt
            # comes next, through /mj/submit/modal, as midjourney-proxy takes them.
            ask_later=act in catalogue.ASKING_ACTIONS,
        ),
    )


@require_POST
@api_view
def modal(request: HttpRequest, prefix: str = "") -> HttpResponse:
    # Vary (Region)'s maskBase64 is a picture: the larger limit of the picture submits.
    data = _body(request, MAX_BODY + settings.MJWEB_UPLOAD_MAX_BYTES * 4 // 3)
    if isinstance(data, JsonResponse):
        return data
    job = _own(request, data.get("taskId"))
    if job is None:
        return _answer(3, "The task does not exist, or is not yours.")
    prompt = _text(data, "prompt", services.MAX_PROMPT_LENGTH + 1) or job.final_prompt or job.prompt
    mask = _text(data, "maskBase64", settings.MJWEB_UPLOAD_MAX_BYTES * 2) or None
    try:
        job = services.answer_modal(job=job, prompt=prompt, mask=mask)
    except services.SubmitError as exc:
        return _refused(exc)
    return _answer(1, "Submit success", str(job.code))


@require_GET
@api_view
def fetch(request: HttpRequest, task_id: str, prefix: str = "") -> HttpResponse:
    job = _own(request, task_id)
    if job is None:
        return JsonResponse(
            {"code": 4, "description": "task_no_found", "type": "mjweb_error"}, status=400
        )
    return JsonResponse(task(job))


@require_POST
@api_view
def list_by_condition(request: HttpRequest, prefix: str = "") -> HttpResponse:
    data = _body(request)
    if isinstance(data, JsonResponse):
        return data
    ids = data.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_LIST:
        return _error(400, f"ids must be a list of at most {MAX_LIST} task ids.", "bad_request")
    codes = []
    for item in ids:
        try:
            codes.append(uuid.UUID(str(item)))
        except ValueError:
            continue
    jobs = (
        Job.objects.visible_to(request.user)
        .filter(code__in=codes)
        .select_related("parent")
        .prefetch_related("images")
    )
    return JsonResponse([task(job) for job in jobs], safe=False)


# --- the task object -----------------------------------------------------------------------


def status_of(job: Job) -> str:
    if job.status == Job.Status.QUEUED:
        return "SUBMITTED" if job.provider_job_id or job.submit_sent_at else "NOT_START"
    return {
        Job.Status.SUBMITTED: "SUBMITTED",
        Job.Status.RUNNING: "IN_PROGRESS",
        Job.Status.MODAL: "MODAL",
        Job.Status.SUCCEEDED: "SUCCESS",
        Job.Status.FAILED: "FAILURE",
        Job.Status.CANCELLED: "CANCEL",
    }.get(job.status, "NOT_START")


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def _picture(job: Job) -> Image | None:
    whole = [image for image in job.images.all() if image.kind in Image.WHOLE_KINDS]
    return min(whole, key=lambda image: image.index) if whole else None


def image_link(image: Image) -> str:
    token = signing.dumps({"i": image.pk}, salt=IMAGE_SALT, compress=True)
    return settings.SITE_URL + reverse("gallery:api_image", args=[token])


def buttons(job: Job) -> list[dict[str, Any]]:
    if job.status != Job.Status.SUCCEEDED:
        return []
    found = []
    for button in job.buttons:
        action_name = button.get("action", "")
        index, variant = button.get("index"), button.get("variant") or ""
        made = custom_id(action_name, index, variant, str(job.code))
        if made is None:
            continue
        label = button.get("label") or (f"{action_name[0].upper()}{index}" if index else "")
        found.append(
            {
                "customId": made,
                "emoji": button.get("emoji") or EMOJI.get(action_name, ""),
                "label": label if action_name != "reroll" else "",
                "type": 2,
                "style": 2,
            }
        )
    return found


def task(job: Job) -> dict[str, Any]:
    """A job as midjourney-proxy's task object (fetch, list-by-condition, notifyHook)."""
    picture = _picture(job) if job.status == Job.Status.SUCCEEDED else None
    failure = ""
    if job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
        failure = job.fail_reason or job.get_fail_kind_display() or "Failed"
    progress = 100 if job.status == Job.Status.SUCCEEDED else job.progress
    final = job.final_prompt or job.prompt
    if job.described:
        # As Midjourney writes Describe's answer: "1️⃣ ...\n\n2️⃣ ...".
        final = "\n\n".join(f"{n}\ufe0f\u20e3 {p}" for n, p in enumerate(job.described, 1))
    return {
        "id": str(job.code),
        "action": ACTIONS.get(job.action, job.action.upper()),
        "customId": "",
        "prompt": job.prompt,
        "promptEn": final,
        "description": job.label,
        "state": job.api_state,
        "mode": job.mode.upper(),
        "submitTime": _ms(job.created_at),
        "startTime": _ms(job.started_at or job.submitted_at),
        "finishTime": _ms(job.finished_at),
        "imageUrl": image_link(picture) if picture else "",
        "status": status_of(job),
        "progress": f"{progress}%" if job.status != Job.Status.FAILED else "",
        "failReason": failure,
        "buttons": buttons(job),
        "properties": {
            "finalPrompt": final,
            "parentId": str(job.parent.code) if job.parent_id and job.parent else "",
        },
    }


@require_GET
def image(request: HttpRequest, token: str) -> HttpResponse:
    """A picture behind an expiring signed link (the API's imageUrl)."""
    try:
        found = signing.loads(token, salt=IMAGE_SALT, max_age=settings.MJWEB_API_IMAGE_LINK_SECONDS)
        picture = Image.objects.select_related("job").get(pk=int(found["i"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError, Image.DoesNotExist):
        raise Http404("This link is unknown or has expired; fetch the task again.") from None
    if picture.job.deleted_at is not None:
        raise Http404("This picture was deleted.")
    response = FileResponse(picture.file.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def openapi(request: HttpRequest) -> HttpResponse:
    from gallery.api_schema import SCHEMA

    return HttpResponse(
        json.dumps(SCHEMA, ensure_ascii=False, indent=2), content_type="application/json"
    )
