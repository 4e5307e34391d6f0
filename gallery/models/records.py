"""What happened between us and the providers: poll leases, webhook deliveries, and every
HTTP exchange (the audit trail the back office reads)."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone

from gallery.models.jobs import Job


class PollLease(models.Model):
    """One row per provider: whoever holds the lease runs that provider's poll chain.

    Keeps one batched poll per provider per tick however many workers run; a lease that
    is not renewed expires, so a crashed chain is restarted by the next kick.
    """

    provider = models.CharField(max_length=20, unique=True)
    token = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.provider} until {self.expires_at:%H:%M:%S}"

    @staticmethod
    def free_q(now: datetime) -> Q:
        """Nobody holds the lease: released, or not renewed in time (a crashed chain)."""
        return Q(expires_at__lt=now) | Q(token="")


class WebhookEvent(models.Model):
    """A delivery we acted on, keyed so that a retried or replayed one is recognised."""

    provider = models.CharField(max_length=20)
    # PiAPI: "<task id>:<status>:<timestamp>" (its documented way to spot duplicates).
    key = models.CharField(max_length=200)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "key"], name="webhook_event_unique")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.key}"


def call_failed_q() -> Q:
    """A provider call failed: no answer, an HTTP error status, or a transport error."""
    return Q(status_code__isnull=True) | Q(status_code__gte=400) | ~Q(error="")


class ProviderCallQuerySet(models.QuerySet["ProviderCall"]):
    def failed(self) -> ProviderCallQuerySet:
        return self.filter(call_failed_q())

    def answered(self) -> ProviderCallQuerySet:
        return self.exclude(call_failed_q())


class ProviderCall(models.Model):
    """One HTTP exchange with a provider, for the audit trail: append-only.

    Bodies are truncated and secrets redacted before they get here (gallery.audit); API keys
    travel in headers, which are never recorded.
    """

    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="provider_calls"
    )
    provider = models.CharField(max_length=20)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    # None when no answer came (timeout, connection refused).
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ProviderCallQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["provider", "-created_at"], name="call_provider_recent"),
            # The admin's "failed calls" filter: few rows among many, newest first.
            models.Index(
                fields=["-created_at"],
                condition=call_failed_q(),
                name="call_errors_recent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status_code or self.error[:30]}"

    @property
    def failed(self) -> bool:
        """The instance form of `call_failed_q`."""
        return self.status_code is None or self.status_code >= 400 or bool(self.error)


class SuspectedDuplicate(models.Model):
    """A job that may have more than one task at the provider, for the operator to check
    against the provider's bill: a submit resent after its first outcome stayed unknown, or a
    task reporting a job's `state` that is not the job's task."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="suspected_duplicates")
    provider = models.CharField(max_length=20)
    # The other task's id where one was seen; empty when only a resend makes it likely.
    provider_job_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.provider_job_id or 'resent'}"
