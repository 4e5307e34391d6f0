"""/healthz, /readyz, the workers' heartbeat and what staff and users are told without one."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from mjweb import health, processes
from mjweb.models import WorkerBeat

pytestmark = pytest.mark.django_db

ALL_QUEUES = ["jobs", "ingest", "previews"]


def test_healthz_answers_without_the_database_whatever_the_host(
    client: Client, settings: Any, django_assert_num_queries: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True  # a probe asks over plain HTTP, by an address
    with django_assert_num_queries(0):
        answer = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_readyz_names_each_queue_without_a_worker_until_they_report_in(client: Client) -> None:
    answer = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert sorted(body["missing"]) == sorted(f"worker:{q}" for q in ALL_QUEUES)
    assert "manage.py worker" in body["missing"]["worker:ingest"]

    health.beat(["jobs", "ingest"])
    assert list(client.get("/readyz").json()["missing"]) == ["worker:previews"]
    health.beat(ALL_QUEUES)
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json() == {"status": "ready"}

    # a beat older than a minute no longer counts
    WorkerBeat.objects.filter(queue="jobs").update(seen_at=timezone.now() - timedelta(seconds=61))
    assert list(client.get("/readyz").json()["missing"]) == ["worker:jobs"]


def test_readyz_says_the_database_is_unreachable_as_json(client: Client) -> None:
    with mock.patch.object(
        health.connection, "ensure_connection", side_effect=OperationalError("refused")
    ):
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["missing"] == {"database": "not reachable: OperationalError"}


def test_readyz_counts_migrations_not_applied(client: Client, monkeypatch: Any) -> None:
    health.beat(ALL_QUEUES)
    monkeypatch.setattr(health, "_migrated", False)
    with mock.patch.object(
        health.MigrationExecutor, "migration_plan", return_value=[("m1", False), ("m2", False)]
    ):
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["missing"] == {"migrations": "2 not applied: run manage.py migrate"}
    assert client.get("/readyz").status_code == 200  # applied: checked again, then no more
    assert health._migrated is True


def test_a_beat_replaces_its_own_row_prunes_old_ones_and_survives_a_database_error() -> None:
    gone = WorkerBeat.objects.create(
        queue="jobs", host="old-host", pid=1, seen_at=timezone.now() - timedelta(days=2)
    )
    health.beat(["jobs"])
    health.beat(["jobs"])
    assert WorkerBeat.objects.filter(queue="jobs").count() == 1
    assert not WorkerBeat.objects.filter(pk=gone.pk).exists()
    with mock.patch.object(
        WorkerBeat.objects, "update_or_create", side_effect=OperationalError("gone")
    ):
        health.beat(["jobs"])  # logged, not raised: the worker goes on
    health.forget()
    assert not WorkerBeat.objects.exists()


def test_staff_see_a_banner_when_a_queue_has_no_worker_and_users_do_not(
    alice: Any, alice_client: Client, admin_client: Client
) -> None:
    banner = "No worker has reported in for the jobs, ingest, previews queues"
    assert banner in admin_client.get("/").content.decode()
    assert banner in admin_client.get("/admin/").content.decode()  # the admin too
    assert "No worker has reported in" not in alice_client.get("/").content.decode()
    health.beat(ALL_QUEUES)
    assert "No worker has reported in" not in admin_client.get("/").content.decode()
    health.forget()
    health.beat(["jobs", "previews"])
    page = admin_client.get("/").content.decode()
    assert "No worker has reported in for the ingest queue in the last minute" in page


def test_a_job_no_worker_took_for_a_minute_says_so(alice: Any) -> None:
    from tests.gallery.factories import make_job

    job = make_job(alice, status="queued")
    assert job.stage == "Queued, sending to the provider…"
    job.created_at = timezone.now() - timedelta(seconds=61)
    assert "no worker seems to be running" in job.stage
    job.dispatch_lease_until = timezone.now() + timedelta(seconds=30)  # being sent right now
    assert job.stage == "Queued, sending to the provider…"


def test_the_supervisor_ticks_with_the_names_of_the_children_still_running() -> None:
    seen: list[list[str]] = []
    children = {
        "short": processes.Child([sys.executable, "-c", "import time; time.sleep(1)"]),
        "long": processes.Child([sys.executable, "-c", "import time; time.sleep(60)"]),
    }
    processes.run_group(children, lambda line: None, tick=processes.Tick(0.05, seen.append))
    assert seen[0] == ["short", "long"]  # at once after the start
    assert len(seen) > 2 and all(names == ["short", "long"] for names in seen[:-1])
    assert seen[-1] in (["short", "long"], ["long"])  # one that ended is not named


def test_manage_py_ready_prints_what_is_missing_and_exits_1_then_0(capsys: Any) -> None:
    from django.core.management import call_command

    health.beat(["jobs"])
    with pytest.raises(SystemExit) as ended:
        call_command("ready")
    assert ended.value.code == 1
    answer = json.loads(capsys.readouterr().out)
    assert sorted(answer["missing"]) == ["worker:ingest", "worker:previews"]
    with pytest.raises(SystemExit) as ended:
        call_command("ready", "--queue", "jobs")  # a worker container checks its own
    assert ended.value.code == 0
    assert json.loads(capsys.readouterr().out) == {"status": "ready"}
