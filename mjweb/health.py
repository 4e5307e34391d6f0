"""Is this studio up, and can it do its work?

- `/healthz`: the process answers (no database), for a liveness probe.
- `/readyz`: the database answers, every migration is applied and a worker has reported in
  for each task queue within BEAT_FRESH; 503 with a JSON body naming what is missing
  otherwise, for a readiness probe and for the operator.

Both are answered by the first middleware (`probes`), before the host check and the HTTPS
redirect, since a probe asks by the container's own address over plain HTTP.

Workers report in through `manage.py worker`, which writes a WorkerBeat for each of its
running clusters every BEAT_EVERY seconds (`beat`). Staff see a banner when a queue has
none (`context`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from mjweb.models import WorkerBeat

log = logging.getLogger(__name__)

BEAT_EVERY = 15.0  # seconds
BEAT_FRESH = timedelta(seconds=60)
BEATS_KEPT = timedelta(days=1)


def beat(queues: Iterable[str]) -> None:
    """Record that this process's clusters for `queues` (names of settings.TASK_QUEUES) are
    running. A database error is logged, not raised: the worker goes on without it."""
    now = timezone.now()
    host, pid = socket.gethostname()[:255], os.getpid()
    try:
        for queue in queues:
            WorkerBeat.objects.update_or_create(
                queue=queue, host=host, pid=pid, defaults={"seen_at": now}
            )
        WorkerBeat.objects.filter(seen_at__lt=now - BEATS_KEPT).delete()
    except DatabaseError:
        log.warning("could not record the worker's heartbeat", exc_info=True)
        if not connection.in_atomic_block:  # never under someone else's transaction
            connection.close()  # a fresh one next time


def forget() -> None:
    """This process's clusters have stopped: delete their beats."""
    try:
        WorkerBeat.objects.filter(host=socket.gethostname()[:255], pid=os.getpid()).delete()
    except DatabaseError:
        log.warning("could not delete the worker's heartbeat", exc_info=True)


def queues_without_worker(queues: Iterable[str] | None = None) -> list[str]:
    """Task queues (settings.TASK_QUEUES keys, or those of `queues`) no worker has reported
    in for lately."""
    fresh = set(
        WorkerBeat.objects.filter(seen_at__gte=timezone.now() - BEAT_FRESH).values_list(
            "queue", flat=True
        )
    )
    return [queue for queue in (queues or settings.TASK_QUEUES) if queue not in fresh]


_migrated = False  # once true it stays so: migrations are not undone under a running site


def unapplied_migrations() -> int:
    global _migrated
    if _migrated:
        return 0
    executor = MigrationExecutor(connection)
    count = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    _migrated = count == 0
    return count


def missing(queues: Iterable[str] | None = None) -> dict[str, str]:
    """What stands between this site and its work, by check; empty when ready. `queues`
    limits the worker check to those."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return {"database": f"not reachable: {type(exc).__name__}"}
    found: dict[str, str] = {}
    unapplied = unapplied_migrations()
    if unapplied:
        found["migrations"] = f"{unapplied} not applied: run manage.py migrate"
    try:
        without = queues_without_worker(queues)
    except DatabaseError as exc:  # e.g. its table is one of the migrations not applied
        return {**found, "workers": f"unknown: {type(exc).__name__}"}
    for queue in without:
        found[f"worker:{queue}"] = (
            f"no worker has reported in for the {queue} queue in the last "
            f"{int(BEAT_FRESH.total_seconds())} s: run manage.py worker"
        )
    return found


def probes(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            found = missing()
            if found:
                answer = JsonResponse({"status": "not ready", "missing": found}, status=503)
                # An expected answer, polled by probes: not an error for Django's log.
                answer._has_been_logged = True  # type: ignore[attr-defined]
                return answer
            return JsonResponse({"status": "ready"})
        return get_response(request)

    return middleware


def _banner_queues() -> list[str]:
    try:
        return queues_without_worker()
    except DatabaseError:  # the page itself matters more than its banner
        log.warning("could not read the workers' heartbeats", exc_info=True)
        return []


def context(request: HttpRequest) -> dict[str, Any]:
    """The queues without a worker, for the staff banner (a callable: the template calls it
    for staff only)."""
    return {"queues_without_worker": _banner_queues}
