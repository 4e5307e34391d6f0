from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from django.contrib.admin.sites import site
from django.test import Client
from django.urls import reverse

from gallery import audit, tasks
from gallery.models import Job, ProviderCall
from gallery.providers.base import ProviderError
from gallery.providers.cometapi import CometAPI
from tests.conftest import load
from tests.gallery.factories import answer_through, make_job

pytestmark = pytest.mark.django_db


def test_redact_hides_secrets_and_hook_tokens() -> None:
    body = {
        "prompt": "a fox",
        "notifyHook": "https://studio.example.com/hooks/cometapi/s3cr3tt0ken/",
        "config": {
            "webhook_config": {"endpoint": "https://x/hooks/piapi/abc", "secret": "hunter2"}
        },
        "webhook_secret": "hunter2",
        "api_key": "sk-live",
    }
    text = json.dumps(audit.redact(body))
    assert "hunter2" not in text and "sk-live" not in text and "s3cr3tt0ken" not in text
    assert "a fox" in text and "studio.example.com/hooks/cometapi/" in text


def test_dispatch_records_the_exchange_linked_to_the_job(
    monkeypatch: pytest.MonkeyPatch, settings: Any, alice: Any
) -> None:
    answer_through(
        monkeypatch,
        lambda r: httpx.Response(200, json=load("cometapi/submit_success.json")),
        api_key="sk-must-not-appear",
    )
    job = make_job(alice, prompt="audited prompt")
    tasks.dispatch(job.pk)
    call = ProviderCall.objects.get()
    assert call.job == job
    assert (call.method, call.path, call.status_code) == ("POST", "/mj-fast/mj/submit/imagine", 200)
    assert "audited prompt" in call.request_body
    assert "1773314942177684" in call.response_body
    assert "sk-must-not-appear" not in call.request_body + call.response_body
    assert call.latency_ms >= 0


def test_a_timeout_is_recorded_with_its_error(monkeypatch: pytest.MonkeyPatch, alice: Any) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    api = CometAPI(
        name="simulator",
        base_url="https://api.cometapi.com",
        api_key="k",
        mode_prefixes={},
        transport=httpx.MockTransport(boom),
        recorder=audit.recorder("simulator"),
    )
    with pytest.raises(ProviderError):
        api.fetch("1")
    call = ProviderCall.objects.get()
    assert call.status_code is None
    assert "timeout" in call.error


def test_provider_calls_and_jobs_are_read_only_in_the_admin(
    django_user_model: Any, alice: Any
) -> None:
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(boss)
    job = make_job(alice)
    call = ProviderCall.objects.create(
        provider="simulator", method="GET", path="/x", latency_ms=1, job=job
    )
    for model in (ProviderCall, Job):
        model_admin = site._registry[model]
        request = type("R", (), {"user": boss})()
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, None)
        assert not model_admin.has_delete_permission(request, None)
    assert client.get(reverse("admin:gallery_providercall_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:gallery_providercall_change", args=[call.pk])).status_code == 200
    )
    response = client.post(
        reverse("admin:gallery_providercall_delete", args=[call.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert ProviderCall.objects.filter(pk=call.pk).exists()
    assert client.get(reverse("admin:gallery_job_changelist")).status_code == 200
