"""`/metrics`: the studio in Prometheus's text format, for the operator's scraper.

Every figure is read from the database at scrape time, so it is the same whichever web
process answers and whatever the number of workers, and nothing is lost on a restart:

- jobs in flight by status and action, and jobs ended in the last WINDOW by status and
  action (`mjweb_jobs_in_flight`, `mjweb_jobs_ended_recent`);
- provider calls of the last WINDOW by endpoint and outcome, with their total latency, to
  divide by their count (`mjweb_provider_calls_recent`, `..._latency_seconds_recent`);
- task queue depth by queue (django-q2's broker rows), credits held across all accounts;
- ingest: jobs whose result waits to be stored and the oldest one's wait, and how long the
  ingests that ended jobs in the last WINDOW took (`mjweb_ingest_seconds_recent`);
- each queue's last worker heartbeat.

Scrape with `Authorization: Bearer $MJWEB_METRICS_TOKEN`, or sign in as staff.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Max, Min, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django_q.models import OrmQ
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from billing.models import CreditAccount
from gallery import ingest
from gallery.models import Job, ProviderCall
from gallery.models.records import call_failed_q
from mjweb.models import WorkerBeat

WINDOW = timedelta(minutes=5)


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class StudioCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        since = now - WINDOW
        window = f"{int(WINDOW.total_seconds())} s"

        in_flight = _gauge("mjweb_jobs_in_flight", "Jobs not ended yet.", ["status", "action"])
        for row in (
            Job.objects.filter(status__in=Job.IN_FLIGHT)
            .values("status", "action")
            .annotate(n=Count("id"))
        ):
            in_flight.add_metric([row["status"], row["action"]], row["n"])
        yield in_flight

        ended = _gauge(
            "mjweb_jobs_ended_recent", f"Jobs ended in the last {window}.", ["status", "action"]
        )
        for row in (
            Job.objects.filter(status__in=Job.TERMINAL, finished_at__gte=since)
            .values("status", "action")
            .annotate(n=Count("id"))
        ):
            ended.add_metric([row["status"], row["action"]], row["n"])
        yield ended

        calls = _gauge(
            "mjweb_provider_calls_recent",
            f"Provider calls in the last {window}, by endpoint and outcome (ok or failed).",
            ["provider", "method", "endpoint", "outcome"],
        )
        latency = _gauge(
            "mjweb_provider_call_latency_seconds_recent",
            "Total latency of those calls; divide by mjweb_provider_calls_recent for the mean.",
            ["provider", "method", "endpoint", "outcome"],
        )
        slowest = _gauge(
            "mjweb_provider_call_latency_seconds_max_recent",
            "The slowest of those calls.",
            ["provider", "method", "endpoint", "outcome"],
        )
        failed = call_failed_q()
        # Paths carry task ids: grouped by path here, then summed by endpoint.
        by_endpoint: dict[tuple[str, ...], list[float]] = {}
        for row in (
            ProviderCall.objects.filter(created_at__gte=since)
            .values("provider", "method", "path")
            .annotate(
                ok=Count("id", filter=~failed),
                bad=Count("id", filter=failed),
                ok_ms=Sum("latency_ms", filter=~failed),
                bad_ms=Sum("latency_ms", filter=failed),
                ok_max=Max("latency_ms", filter=~failed),
                bad_max=Max("latency_ms", filter=failed),
            )
        ):
            base = (row["provider"], row["method"], endpoint(row["path"]))
            for outcome, n, ms, top in (
                ("ok", row["ok"], row["ok_ms"], row["ok_max"]),
                ("failed", row["bad"], row["bad_ms"], row["bad_max"]),
            ):
                if n:
                    sums = by_endpoint.setdefault((*base, outcome), [0, 0.0, 0.0])
                    sums[0] += n
                    sums[1] += (ms or 0) / 1000
                    sums[2] = max(sums[2], (top or 0) / 1000)
        for labels, (n, seconds, top) in sorted(by_endpoint.items()):
            calls.add_metric(list(labels), n)
            latency.add_metric(list(labels), seconds)
            slowest.add_metric(list(labels), top)
        yield from (calls, latency, slowest)

        depth = _gauge("mjweb_task_queue_depth", "Tasks waiting in each task queue.", ["queue"])
        counts = dict(OrmQ.objects.values_list("key").annotate(n=Count("id")))
        for queue, name in settings.TASK_QUEUES.items():
            depth.add_metric([queue], counts.get(name, 0))
        yield depth

        held = CreditAccount.objects.aggregate(held=Sum("held"))["held"] or 0
        yield GaugeMetricFamily(
            "mjweb_credits_held", "Credits held for jobs in flight, all accounts.", value=held
        )

        waiting = Job.objects.awaiting_ingest().aggregate(
            n=Count("id"), oldest=Min("ingest_due_at")
        )
        yield GaugeMetricFamily(
            "mjweb_ingest_waiting", "Jobs whose result waits to be stored.", value=waiting["n"]
        )
        oldest = waiting["oldest"]
        wait = 0.0
        if oldest is not None:  # ingest_due_at is set to (last start + due_after)
            wait = max(0.0, (now - (oldest - ingest.due_after())).total_seconds())
        yield GaugeMetricFamily(
            "mjweb_ingest_oldest_waiting_seconds",
            "Since the oldest of them was recorded or last handed to an ingest.",
            value=wait,
        )
        took = Job.objects.filter(
            status=Job.Status.SUCCEEDED, finished_at__gte=since, ingest_due_at__isnull=False
        ).aggregate(
            n=Count("id"),
            total=Sum(F("finished_at") - F("ingest_due_at")),
        )
        count = took["n"] or 0
        total = (took["total"] or timedelta(0)) + count * ingest.due_after()
        ingests = _gauge(
            "mjweb_ingest_seconds_recent",
            f"Ingests that ended a job in the last {window}: count and total seconds.",
            ["measure"],
        )
        ingests.add_metric(["count"], count)
        ingests.add_metric(["seconds"], max(0.0, total.total_seconds()))
        yield ingests

        beats = _gauge(
            "mjweb_worker_last_seen_seconds",
            "Seconds since a worker last reported in for each queue (-1: never).",
            ["queue"],
        )
        seen = dict(WorkerBeat.objects.values_list("queue").annotate(at=Max("seen_at")))
        for queue in settings.TASK_QUEUES:
            at = seen.get(queue)
            beats.add_metric([queue], (now - at).total_seconds() if at else -1)
        yield beats


def endpoint(path: str) -> str:
    """A call's path with its task ids taken out, so that each endpoint is one series."""
    parts = [
        "{id}" if any(ch.isdigit() for ch in part) and len(part) >= 8 else part
        for part in path.split("?")[0].split("/")
    ]
    return "/".join(parts)


def _allowed(request: HttpRequest) -> bool:
    token = settings.MJWEB_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(
            {"error": "send Authorization: Bearer <MJWEB_METRICS_TOKEN>, or sign in as staff"},
            status=401,
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StudioCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
