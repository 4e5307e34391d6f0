"""What the studio keeps, and for how long (`manage.py prune`, and daily on the jobs queue).

- Provider calls: each row is kept for good (it is the audit of what was sent and what it
  cost); the request and response bodies are emptied after MJWEB_KEEP_CALL_BODIES_DAYS.
- Webhook deliveries (their keys spot a retried one): deleted once older than a week and
  twice MJ_WEBHOOK_MAX_AGE, when a replay would be refused as stale anyway.
- Failed background tasks (django-q2 keeps them for the admin): after
  MJWEB_KEEP_FAILED_TASKS_DAYS.
- The user's own pictures (image prompts, Blend, Describe): kept while a job uses them; one
  no job uses (its submit was refused) is deleted, with its file, after a day.
- The audit log and the credit ledger are never pruned.

0 days keeps that kind for ever. Work goes in batches, each its own short transaction, so
a big first prune never holds a long lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import ProtectedError, Q, QuerySet
from django.utils import timezone
from django_q.models import Failure

from gallery.models import ProviderCall, Reference, WebhookEvent

BATCH = 2000


@dataclass(frozen=True)
class Pruned:
    call_bodies: int
    webhook_events: int
    failed_tasks: int
    unused_pictures: int = 0


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
    pictures = _unused_pictures(now - UNUSED_PICTURE_AGE)
    return Pruned(bodies, events, failed, pictures)


# A picture taken in for a submit that was then refused: kept a day for the user's retry.
UNUSED_PICTURE_AGE = timedelta(days=1)


def _unused_pictures(before: datetime) -> int:
    done = 0
    unused = Reference.objects.filter(created_at__lt=before, uses__isnull=True)
    while batch := list(unused[:BATCH]):
        for reference in batch:
            # The row first: a job made from it meanwhile (PROTECT) keeps both.
            try:
                Reference.objects.filter(pk=reference.pk, uses__isnull=True).delete()
            except ProtectedError:
                continue
            reference.file.delete(save=False)
            done += 1
        if len(batch) < BATCH:
            break
    return done
