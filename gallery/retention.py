"""What the studio keeps, and for how long (`manage.py prune`, and daily on the jobs queue).

- Provider calls: each row is kept for good (it is the audit of what was sent and what it
  cost); the request and response bodies are emptied after MJWEB_KEEP_CALL_BODIES_DAYS.
- Webhook deliveries (their keys spot a retried one): deleted once older than a week and
  twice MJ_WEBHOOK_MAX_AGE, when a replay would be refused as stale anyway.
- Failed background tasks (django-q2 keeps them for the admin): after
  MJWEB_KEEP_FAILED_TASKS_DAYS.
- The audit log and the credit ledger are never pruned.

0 days keeps that kind for ever. Work goes in batches, each its own short transaction, so
a big first prune never holds a long lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_q.models import Failure

from gallery.models import ProviderCall, WebhookEvent

BATCH = 2000


@dataclass(frozen=True)
class Pruned:
    call_bodies: int
    webhook_events: int
    failed_tasks: int


def _before(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _in_batches(rows: QuerySet, act: str, **values: str) -> int:
    done = 0
    while ids := list(rows.values_list("pk", flat=True)[:BATCH]):
        batch = rows.model._default_manager.filter(pk__in=ids)
        done += batch.update(**values) if act == "update" else batch.delete()[0]
    return done


def prune(now: datetime | None = None) -> Pruned:
    now = now or timezone.now()
    bodies = 0
    if cut := _before(settings.MJWEB_KEEP_CALL_BODIES_DAYS, now):
        with_body = ProviderCall.objects.filter(created_at__lt=cut).filter(
            ~Q(request_body="") | ~Q(response_body="")
        )
        bodies = _in_batches(with_body, "update", request_body="", response_body="")
    replay_window = max(timedelta(days=7), 2 * timedelta(seconds=settings.MJ_WEBHOOK_MAX_AGE))
    events = _in_batches(WebhookEvent.objects.filter(received_at__lt=now - replay_window), "delete")
    failed = 0
    if cut := _before(settings.MJWEB_KEEP_FAILED_TASKS_DAYS, now):
        failed = _in_batches(Failure.objects.filter(stopped__lt=cut), "delete")
    return Pruned(bodies, events, failed)
