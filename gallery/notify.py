"""Calling an API caller's notifyHook when one of its jobs changes status.

Each change (Job.transition's `status_changed`) of a job with a notifyHook queues one
delivery: the task object as the API's fetch shows it then, POSTed as JSON to the hook,
- to public addresses on ports 80/443 only, through the image downloads' pinned transport
  (the address is checked when the connection opens, so DNS rebinding cannot reach inside);
- signed: `X-Mjweb-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
  user's notify secret (shown on their API tokens page), as Stripe signs its webhooks;
- retried on a failure up to MJ_NOTIFY_ATTEMPTS times, 10 s, 60 s, 5 min apart (a
  scheduled retry, never a sleep in the worker). Anything but a 2xx answer is a failure;
  redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db.transaction import on_commit
from django.utils import timezone

from gallery import downloads
from gallery.models import Job
from mjweb import tokens

logger = logging.getLogger(__name__)

RETRY_AFTER = (10, 60, 300)
TIMEOUT = 10.0

# Tests hand a transport in (httpx.MockTransport); None: the pinned transport.
TRANSPORT: httpx.BaseTransport | None = None


def sign(secret: str, body: bytes, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def acceptable(url: str) -> bool:
    """Whether a notifyHook could be called: http(s), a plain public host, a usual port."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    if parsed.scheme not in ("http", "https") or parsed.userinfo or not parsed.host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.raw_host.decode("ascii", "replace")
    literal = downloads.ip_literal(host)
    if literal is not None and not downloads.is_public_address(literal):
        return False
    return port in downloads.ALLOWED_PORTS


def changed(sender: Any, job: Job, **kwargs: Any) -> None:
    """Job.transition's signal: queue a delivery once the change is committed."""
    if not job.notify_hook:
        return
    from gallery import queue

    status, pk = job.status, job.pk
    on_commit(lambda: queue.notify(pk, status, 1))


def deliver(job_id: int, status: str, attempt: int) -> None:
    from gallery import api, queue

    job = (
        Job.objects.select_related("owner", "parent")
        .prefetch_related("images")
        .filter(pk=job_id)
        .first()
    )
    if job is None or not job.notify_hook:
        return
    # The task as it is now: a delivery that comes after a later change says the latest.
    payload = api.task(job)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "mjweb-notify/1",
        "X-Mjweb-Signature": sign(tokens.notify_secret(job.owner), body, int(time.time())),
    }
    error = _post(job.notify_hook, body, headers)
    if error is None:
        return
    if attempt >= settings.MJ_NOTIFY_ATTEMPTS or error.startswith("refused:"):
        logger.warning("notifyHook of job %s given up after %s tries: %s", job.code, attempt, error)
        return
    delay = RETRY_AFTER[min(attempt - 1, len(RETRY_AFTER) - 1)]
    logger.info("notifyHook of job %s failed (%s); again in %s s", job.code, error, delay)
    queue.notify_later(job_id, status, attempt + 1, timezone.now() + timedelta(seconds=delay))


def _post(url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """None when the hook answered 2xx; else what went wrong ("refused: ..." is final)."""
    transport = TRANSPORT
    try:
        host = [httpx.URL(url).host]
        target = downloads.check_url(url, host, private_hosts=())
        if transport is None:
            deadline = time.monotonic() + TIMEOUT
            transport = downloads.pinned_transport(
                target, host, deadline=deadline, private_hosts=()
            )
    except downloads.ImageFetchError as exc:
        return f"refused: {exc}"
    try:
        with httpx.Client(
            transport=transport, follow_redirects=False, trust_env=False, timeout=TIMEOUT
        ) as client:
            response = client.post(url, content=body, headers=headers)
    except (httpx.HTTPError, downloads.ImageFetchError) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"
