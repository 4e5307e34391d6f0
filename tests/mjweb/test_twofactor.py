from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _required(settings: Any) -> None:
    settings.MJWEB_STAFF_2FA = True


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        "olga", "olga@example.com", "correct horse 9", is_staff=True, is_superuser=True
    )


def logged_in(user: Any) -> Client:
    """Through the login page, as a person would."""
    client = Client()
    response = client.post(
        reverse("login"), {"username": user.username, "password": "correct horse 9"}
    )
    assert response.status_code == 302, response.content[:300]
    return client


def code_now(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def enrol(client: Client, user: Any) -> list[str]:
    client.get(reverse("twofactor_setup"))
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("twofactor_setup"), {"code": code_now(device), "next": "/"})
    assert response.status_code == 200
    return re.findall(r"<li><code>(\w+)</code></li>", response.content.decode())


def test_a_staff_session_without_a_code_reaches_nothing_but_enrolment(operator: Any) -> None:
    client = logged_in(operator)
    admin = reverse("admin:index")
    for path in (admin, reverse("gallery:home"), "/admin/reports/usage/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(reverse("twofactor_setup") + "?next=")
    htmx = client.get(admin, HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"].startswith(reverse("twofactor_setup"))
    page = client.get(reverse("twofactor_setup"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "<svg" in body and "Turn on" in body
    # The key written out is the device's, in groups of four.
    device = TOTPDevice.objects.get(user=operator)
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', body)
    assert secret is not None and len(secret.group(1).replace(" ", "")) == 32
    assert not device.confirmed


def test_enrolling_gives_ten_recovery_codes_and_opens_the_admin(operator: Any) -> None:
    client = logged_in(operator)
    client.get(reverse("twofactor_setup"))
    device = TOTPDevice.objects.get(user=operator)
    wrong = client.post(reverse("twofactor_setup"), {"code": "000000"})
    assert wrong.status_code == 400 and "not the one your app shows" in wrong.content.decode()
    # django-otp then waits a second before it checks another code, and says so.
    soon = client.post(reverse("twofactor_setup"), {"code": code_now(device)})
    assert soon.status_code == 400 and "wait a few seconds" in soon.content.decode()
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    codes = enrol(client, operator)
    assert len(codes) == 10 and len(set(codes)) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(reverse("admin:index")).status_code == 200
    # Enrolled: the setup page now sends to the code page instead of showing a new secret.
    assert TOTPDevice.objects.filter(user=operator).count() == 1


def test_every_later_login_asks_for_a_code(operator: Any) -> None:
    enrol(logged_in(operator), operator)
    client = logged_in(operator)
    response = client.get(reverse("admin:index"))
    assert response["Location"].startswith(reverse("twofactor_verify"))
    assert client.get(reverse("twofactor_setup"))["Location"].startswith(
        reverse("twofactor_verify")
    )
    refused = client.post(reverse("twofactor_verify"), {"code": "123456", "next": "/admin/"})
    assert refused.status_code == 400 and "not right" in refused.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302
    device = TOTPDevice.objects.get(user=operator)
    # The code that enrolled the device was used; the app's next one is accepted.
    device.refresh_from_db()
    device.last_t = -1
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.save()
    done = client.post(reverse("twofactor_verify"), {"code": code_now(device), "next": "/admin/"})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_recovery_code_signs_in_once(operator: Any) -> None:
    codes = enrol(logged_in(operator), operator)
    first = logged_in(operator)
    assert first.post(reverse("twofactor_verify"), {"code": codes[0]}).status_code == 302
    assert first.get(reverse("admin:index")).status_code == 200
    assert StaticDevice.objects.get(user=operator).token_set.count() == 9
    again = logged_in(operator)
    assert again.post(reverse("twofactor_verify"), {"code": codes[0]}).status_code == 400
    assert again.get(reverse("admin:index")).status_code == 302


def test_next_is_followed_only_to_our_own_pages(operator: Any) -> None:
    codes = enrol(logged_in(operator), operator)
    client = logged_in(operator)
    response = client.post(
        reverse("twofactor_verify"), {"code": codes[1], "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("admin:index")


def test_codes_are_throttled_per_account(operator: Any, settings: Any) -> None:
    # Four a minute: the code that enrolled counts as one.
    settings.MJWEB_RATES = {**settings.MJWEB_RATES, "otp": [("user", "4/m")]}
    enrol(logged_in(operator), operator)
    client = logged_in(operator)
    statuses = [
        client.post(reverse("twofactor_verify"), {"code": "999999"}).status_code for _ in range(4)
    ]
    assert statuses == [400, 400, 400, 429]


def test_users_and_an_operator_who_turned_it_off_are_not_asked(
    operator: Any, alice_client: Client, settings: Any
) -> None:
    assert alice_client.get(reverse("gallery:home")).status_code == 200
    settings.MJWEB_STAFF_2FA = False
    assert logged_in(operator).get(reverse("admin:index")).status_code == 200


def test_reset_2fa_removes_the_devices(operator: Any) -> None:
    enrol(logged_in(operator), operator)
    call_command("reset_2fa", operator.username)
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert not StaticDevice.objects.filter(user=operator).exists()
    response = logged_in(operator).get(reverse("admin:index"))
    assert response["Location"].startswith(reverse("twofactor_setup"))
