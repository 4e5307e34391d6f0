"""Webhook endpoints: authenticate, find the job, hint it, answer fast."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gallery import dispatch, fitting, sync, webhooks
from gallery.models import Job, WebhookEvent
from gallery.providers.base import TaskStatus, loads


def _malformed(reason: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": reason}, status=400)


def _ignored(reason: str) -> JsonResponse:
    # 200: the sender must not retry something we deliberately ignore.
    return JsonResponse({"ok": True, "ignored": reason})


# midjourney-proxy statuses after which nothing more happens without us: a hook with one of
# these costs a read of its job; any other only wakes the poll chain.
_FINAL_STATUSES = {"SUCCESS", "FAILURE", "CANCEL", "MODAL"}


def _hinted(job: Job | None, *, final: bool) -> JsonResponse:
    if job is None:
        return _ignored("unknown task")
    sync.hint(job, final=final)
    return JsonResponse({"ok": True})


def _account(account: str) -> str:
    """The provider account a hook URL names; the environment's where it names none."""
    return account or settings.MJ_PROVIDER


def _job(account: str, provider_job_id: str) -> Job | None:
    return Job.objects.filter(provider=account, provider_job_id=provider_job_id).first()


@csrf_exempt
@require_POST
def cometapi(request: HttpRequest, token: str, account: str = "") -> HttpResponse:
    """midjourney-proxy notifyHook: the full task object, unsigned; the path token is the key."""
    if not hmac.compare_digest(token.encode(), webhooks.path_token().encode()):
        return HttpResponse(status=404)
    try:
        data = loads(request.body)
        task_id = str(data["id"]).strip()
    except (ValueError, KeyError, TypeError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "it has no id"
        return _malformed(f"malformed task object: {detail}")
    if fitting.task_id(task_id):
        return _malformed("malformed task object: its id is empty, too long or holds a NUL")
    final = str(data.get("status") or "").upper() in _FINAL_STATUSES
    # An id we do not know may be the task of a submit whose answer was lost: its `state`
    # names the job.
    account = _account(account)
    job = _job(account, task_id) or dispatch.adopt(account, task_id, data.get("state"))
    return _hinted(job, final=final)


@csrf_exempt
@require_POST
def piapi(request: HttpRequest, token: str, account: str = "") -> HttpResponse:
    """PiAPI webhook: x-webhook-secret must match; `timestamp` spots retried deliveries."""
    from gallery.providers.piapi import parse_status, parse_webhook

    if not hmac.compare_digest(token.encode(), webhooks.path_token().encode()):
        return HttpResponse(status=404)
    secret = request.headers.get("x-webhook-secret", "")
    if not hmac.compare_digest(secret.encode(), webhooks.piapi_secret().encode()):
        return JsonResponse({"ok": False, "error": "bad secret"}, status=401)
    try:
        task_id, status, timestamp = parse_webhook(request.body)
    except ValueError as exc:
        return _malformed(f"malformed delivery: {exc}")
    if fitting.task_id(task_id):
        return _malformed("malformed delivery: its task id is too long or holds a NUL")
    if timestamp is not None and abs(time.time() - timestamp) > settings.MJ_WEBHOOK_MAX_AGE:
        return _ignored("stale delivery")
    if timestamp is not None:
        try:
            # Its own savepoint: a duplicate must not break an enclosing transaction.
            with transaction.atomic():
                key = f"{task_id}:{status}:{timestamp}"
                WebhookEvent.objects.create(provider=_account(account), key=key)
        except IntegrityError:
            return _ignored("duplicate delivery")
    # Deliveries are de-duplicated above; an end costs a read, progress only wakes the poll.
    final = parse_status(status) in (TaskStatus.SUCCEEDED, TaskStatus.FAILED)
    return _hinted(_job(_account(account), task_id), final=final)
