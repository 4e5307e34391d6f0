"""Speed modes a user may choose: the site default, overridden per user."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from billing import quotas
from billing.models import Quota
from gallery import lifecycle, limits, services
from gallery.models import Job
from tests.gallery.factories import make_finished_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_the_site_default_applies_until_a_user_override(alice: Any, settings: Any) -> None:
    settings.MJ_ALLOWED_MODES = ["fast", "relax"]
    assert quotas.allowed_modes(alice) == ["fast", "relax"]
    Quota.objects.create(user=alice, allowed_modes="turbo,fast")
    assert quotas.allowed_modes(alice) == ["fast", "turbo"]


def test_the_form_offers_only_the_allowed_modes(
    alice_client: Client, alice: Any, settings: Any
) -> None:
    settings.MJ_ALLOWED_MODES = ["relax"]
    body = alice_client.get(reverse("gallery:home")).content.decode()
    assert 'type="radio" name="mode" value="relax"' in body
    assert 'name="mode" value="fast"' not in body and 'name="mode" value="turbo"' not in body


def test_a_mode_outside_the_quota_is_refused_and_writes_nothing(
    alice_client: Client, alice: Any
) -> None:
    Quota.objects.create(user=alice, allowed_modes="relax")
    data = {"prompt": "x", "mode": "turbo", "submit_key": str(uuid.uuid4())}
    response = alice_client.post(reverse("gallery:imagine"), data, **HX)
    assert "Select a valid choice" in response.content.decode()
    assert Job.objects.count() == 0
    with pytest.raises(services.SubmitError, match="cannot use turbo mode"):
        services.submit(owner=alice, prompt="x", mode="turbo")


def test_a_press_keeps_its_parents_mode_only_if_still_allowed(alice: Any) -> None:
    parent = make_finished_job(alice, mode="turbo")
    Quota.objects.create(user=alice, allowed_modes="fast,relax")
    with pytest.raises(services.SubmitError, match=r"allowed: fast, relax"):
        services.press(owner=alice, parent=parent, action=Job.Action.REROLL)


def test_unknown_modes_are_refused_in_the_admin(alice: Any) -> None:
    quota = Quota(user=alice, allowed_modes="fast, warp")
    with pytest.raises(ValidationError):
        quota.full_clean()
    quota.allowed_modes = "turbo , fast"
    quota.full_clean()
    assert quota.allowed_modes == "fast,turbo"


def test_jobs_at_once_is_enforced_and_says_why(alice: Any, settings: Any) -> None:
    settings.MJ_JOBS_AT_ONCE = 2
    services.submit(owner=alice, prompt="one")
    services.submit(owner=alice, prompt="two")
    with pytest.raises(services.SubmitError, match="already have 2 jobs in progress"):
        services.submit(owner=alice, prompt="three")
    assert Job.objects.count() == 2
    Quota.objects.create(user=alice, jobs_at_once=3)
    services.submit(owner=alice, prompt="three")
    assert Job.objects.count() == 3


def test_failed_and_cancelled_jobs_do_not_count_against_the_day(alice: Any, settings: Any) -> None:
    settings.MJ_JOBS_PER_DAY = 2
    settings.MJ_JOBS_AT_ONCE = 0
    first = services.submit(owner=alice, prompt="one")
    second = services.submit(owner=alice, prompt="two")
    with pytest.raises(services.SubmitError, match=r"used your 2 jobs for today; the count resets"):
        services.submit(owner=alice, prompt="three")
    lifecycle.cancel(first)
    lifecycle.fail(second, kind=Job.FailKind.PROVIDER_ERROR, reason="boom")
    services.submit(owner=alice, prompt="three")
    services.submit(owner=alice, prompt="four")
    assert limits.jobs_today(alice) == 2


def test_yesterdays_jobs_do_not_count(alice: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.MJ_JOBS_PER_DAY = 1
    job = services.submit(owner=alice, prompt="yesterday")
    start, resets = quotas.day_window()
    Job.objects.filter(pk=job.pk).update(created_at=start - timedelta(minutes=1))
    assert limits.jobs_today(alice) == 0
    assert resets - start == timedelta(days=1) and start <= timezone.now() < resets
    services.submit(owner=alice, prompt="today")


def test_a_user_override_of_zero_means_no_daily_limit(alice: Any, settings: Any) -> None:
    settings.MJ_JOBS_PER_DAY = 1
    Quota.objects.create(user=alice, jobs_per_day=0)
    services.submit(owner=alice, prompt="one")
    services.submit(owner=alice, prompt="two")
    assert quotas.limits(alice).jobs_per_day == 0


def test_a_refused_submit_over_a_limit_writes_nothing(alice: Any, settings: Any) -> None:
    from billing.models import LedgerEntry

    settings.MJ_JOBS_PER_DAY = 1
    services.submit(owner=alice, prompt="one")
    entries = LedgerEntry.objects.count()
    with pytest.raises(services.SubmitError):
        services.submit(owner=alice, prompt="two")
    assert Job.objects.count() == 1
    assert LedgerEntry.objects.count() == entries
