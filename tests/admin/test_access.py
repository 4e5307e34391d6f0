"""Getting into the admin: login throttling (django-axes), the configurable admin URL,
and suspension (a suspended user logs in and browses, but cannot submit)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from billing.models import CreditAccount, LedgerEntry
from gallery import lifecycle, services
from gallery.models import Job
from mjweb import throttle
from mjweb.models import User
from tests.admin.conftest import World, running
from tests.gallery.factories import make_finished_job

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


# --- throttling --------------------------------------------------------------------------


def fail_logins(client: Client, url: str, username: str, times: int) -> list[int]:
    return [
        client.post(url, {"username": username, "password": "wrong guess"}).status_code
        for _ in range(times)
    ]


@pytest.mark.parametrize("login", ["login", "admin:login"])
def test_too_many_bad_passwords_lock_the_login(
    login: str, alice: User, root: User, settings: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    user = root if login == "admin:login" else alice
    password = "pw root 1" if user == root else "correct horse 1"
    url = reverse(login)
    client = Client()
    assert fail_logins(client, url, user.username, 4) == [200] * 4
    assert fail_logins(client, url, user.username, 1) == [429]  # the fifth locks
    response = client.post(url, {"username": user.username, "password": password})
    assert response.status_code == 429  # even with the right password
    body = response.content.decode()
    assert "Too many failed logins" in body and "15 minutes" in body
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked out.
    other = Client()
    ok = other.post(reverse("login"), {"username": "bob", "password": "correct horse 2"})
    assert ok.status_code in (200, 302) and ok.status_code != 429


def test_a_success_before_the_limit_resets_the_count(alice: User, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    url = reverse("login")
    fail_logins(client, url, "alice", 2)
    assert client.post(url, {"username": "alice", "password": "correct horse 1"}).status_code == 302
    client.post(reverse("logout"))
    assert fail_logins(client, url, "alice", 2) == [200, 200]


def test_the_address_behind_a_proxy_is_the_last_hop(settings: Any) -> None:
    request = RequestFactory().post(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )
    settings.TRUST_FORWARDED_FOR = False
    assert throttle.client_ip(request) == "10.0.0.2"
    settings.TRUST_FORWARDED_FOR = True
    assert throttle.client_ip(request) == "203.0.113.9"


# --- the admin's URL -----------------------------------------------------------------------


def run_django(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MJWEB_ADMIN")}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "mjweb.settings", "SECRET_KEY": "x", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_admin_url_comes_from_the_environment() -> None:
    code = (
        "from django.urls import reverse, resolve, Resolver404\n"
        "print(reverse('admin:index'), reverse('admin:reports_usage'))\n"
        "try:\n    resolve('/admin/'); print('admin/ still there')\n"
        "except Resolver404:\n    print('admin/ gone')"
    )
    code = "exec(" + repr(code) + ")"
    result = run_django({"MJWEB_ADMIN_URL": "/ops/console/"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        "/ops/console/ /ops/console/reports/usage/",
        "admin/ gone",
    ]
    default = run_django({}, "from django.urls import reverse; print(reverse('admin:index'))")
    assert default.stdout.strip() == "/admin/"
    empty = run_django({"MJWEB_ADMIN_URL": "/"}, "pass")
    assert empty.returncode != 0 and "MJWEB_ADMIN_URL must not be empty" in empty.stderr


# --- suspension ----------------------------------------------------------------------------


def test_a_suspended_user_cannot_submit_but_still_sees_their_studio(
    root: User, world: World
) -> None:
    alice = world.alice
    finished = make_finished_job(alice)
    assert alice.suspend(actor=root, reason="chargeback")
    client = Client()
    assert (
        client.post(
            reverse("login"), {"username": "alice", "password": "correct horse 1"}
        ).status_code
        == 302
    )
    assert client.get(reverse("gallery:home")).status_code == 200
    assert client.get(reverse("gallery:job", args=[finished.code])).status_code == 200
    jobs = Job.objects.count()
    entries = LedgerEntry.objects.count()
    form = {"prompt": "a cat", "mode": "fast", "submit_key": str(uuid.uuid4())}
    response = client.post(reverse("gallery:imagine"), form)
    assert response.status_code == 422
    assert "Your account is suspended" in response.content.decode()
    with pytest.raises(services.SubmitError, match="suspended"):
        services.press(owner=alice, parent=finished, action="reroll")
    assert (Job.objects.count(), LedgerEntry.objects.count()) == (jobs, entries)

    # The job already in flight finishes and is charged as usual.
    assert lifecycle.succeed(world.running)
    world.running.refresh_from_db()
    assert world.running.charge == Job.Charge.CAPTURED
    assert CreditAccount.objects.get(user=alice).held == 0

    assert alice.reactivate(actor=root, reason="resolved")
    assert services.submit(owner=alice, prompt="a cat").status == Job.Status.QUEUED


def test_a_suspension_reaches_a_request_that_loaded_the_user_before(
    root: User, alice: User
) -> None:
    stale = User.objects.get(pk=alice.pk)  # as request.user was loaded
    User.objects.get(pk=alice.pk).suspend(actor=root, reason="x")
    assert stale.suspended_at is None
    with pytest.raises(services.SubmitError, match="suspended"):
        services.submit(owner=stale, prompt="a cat")


def test_suspension_lets_running_jobs_finish(root: User, alice: User) -> None:
    job = running(services.submit(owner=alice, prompt="slow"), "1730000000000055")
    alice.suspend(actor=root, reason="x")
    lifecycle.fail(job, kind=Job.FailKind.TIMEOUT, reason="took too long")
    job.refresh_from_db()
    assert job.charge == Job.Charge.RELEASED
