"""Provider accounts without a live provider: sealed keys, the admin and the command, the
routing rule, refusals read from the providers' documented answers, per-account webhooks,
and the console's task log read defensively."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import Client

from gallery import routing, services, tasks, webhooks
from gallery.models import Job, Protocol, ProviderAccount, ProviderCost
from gallery.providers.base import ProviderError
from gallery.providers.console import Console
from mjweb import catalogue, vault
from mjweb.models import AuditEntry
from tests.conftest import load
from tests.gallery.factories import FakeProvider, json_answer, make_finished_job, make_job

pytestmark = pytest.mark.django_db

SECRET = "sk-live-0123456789abcdef-SECRET"


def add_account(name: str, **fields: Any) -> ProviderAccount:
    fields.setdefault("protocol", Protocol.COMETAPI)
    fields.setdefault("base_url", f"https://{name}.example.com")
    account = ProviderAccount(name=name, **fields)
    account.api_key = SECRET
    account.save()
    return account


# --- sealed at rest --------------------------------------------------------------------


def test_keys_are_sealed_at_rest_and_open_with_any_configured_key(settings: Any) -> None:
    account = add_account("comet2")
    stored = ProviderAccount.objects.values_list("api_key_sealed", flat=True).get(pk=account.pk)
    assert SECRET not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert ProviderAccount.objects.get(pk=account.pk).api_key == SECRET

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.MJWEB_ENCRYPTION_KEYS = [old]
    account.api_key = SECRET
    account.save()
    settings.MJWEB_ENCRYPTION_KEYS = [new, old]  # rotated: the old key still opens
    assert ProviderAccount.objects.get(pk=account.pk).api_key == SECRET
    call_command("provider_account", "reseal", stdout=io.StringIO())
    settings.MJWEB_ENCRYPTION_KEYS = [new]
    assert ProviderAccount.objects.get(pk=account.pk).api_key == SECRET
    settings.MJWEB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(vault.Unreadable, match="enter it again"):
        ProviderAccount.objects.get(pk=account.pk).api_key  # noqa: B018


def test_the_environment_account_exists_and_reads_the_environment(settings: Any) -> None:
    account = ProviderAccount.objects.get(name=settings.MJ_PROVIDER)
    assert account.from_environment
    settings.MJ_SIMULATOR_API_KEY, settings.MJ_PROVIDER_RUNNING = "from-env", 7
    connection = account.connection()
    assert connection.api_key == "from-env" and connection.running == 7
    assert account.costs.get(action="reroll", mode="fast").model_id == "mj-fast-reroll"
    assert account.costs.get(action="reroll", mode="fast").price == Decimal("0.056")
    assert account.costs.get(action="imagine", mode="turbo").price == Decimal("0.168")
    assert not account.costs.filter(action="import").exists()  # a fetch is not billed


# --- the admin ----------------------------------------------------------------------------


def test_the_admin_adds_an_account_and_never_shows_its_key_again(admin_client: Client) -> None:
    response = admin_client.get("/admin/gallery/provideraccount/add/")
    assert response.status_code == 200
    response = admin_client.post(
        "/admin/gallery/provideraccount/add/",
        {
            "name": "comet2",
            "label": "CometAPI two",
            "protocol": "cometapi",
            "base_url": "https://api.cometapi.com",
            "api_key": SECRET,
            "console_token": "console-SECRET-token",
            "modes": ["fast", "turbo"],
            "running": "3",
            "queued": "10",
            "weight": "2",
            "enabled": "on",
            "low_balance_below": "5.00",
            "costs-TOTAL_FORMS": "0",
            "costs-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = ProviderAccount.objects.get(name="comet2")
    assert account.api_key == SECRET and account.console_token == "console-SECRET-token"
    assert account.modes == ["fast", "turbo"] and account.costs.count() == len(
        catalogue.PRICED_ACTIONS
    ) * len(catalogue.MODES)
    page = admin_client.get(f"/admin/gallery/provideraccount/{account.pk}/change/")
    text = page.content.decode()
    assert SECRET not in text and "console-SECRET-token" not in text
    assert "set, ending …CRET" in text
    entry = AuditEntry.objects.filter(content_type__model="provideraccount").latest("pk")
    logged = json.dumps([entry.before, entry.after])
    assert SECRET not in logged and account.api_key_sealed not in logged
    assert "[sealed " in logged

    listing = admin_client.get("/admin/gallery/provideraccount/").content.decode()
    assert "comet2" in listing and SECRET not in listing


def test_the_admin_keeps_a_key_left_empty_and_refuses_a_missing_one(admin_client: Client) -> None:
    account = add_account("comet3")
    form = {
        "name": "comet3",
        "protocol": "cometapi",
        "base_url": "https://comet3.example.com",
        "api_key": "",
        "running": "3",
        "queued": "10",
        "weight": "1",
        "enabled": "on",
        "costs-TOTAL_FORMS": "0",
        "costs-INITIAL_FORMS": "0",
    }
    response = admin_client.post(f"/admin/gallery/provideraccount/{account.pk}/change/", form)
    assert response.status_code == 302
    assert ProviderAccount.objects.get(pk=account.pk).api_key == SECRET
    response = admin_client.post("/admin/gallery/provideraccount/add/", {**form, "name": "comet4"})
    assert response.status_code == 200
    assert "The provider&#x27;s API key is required." in response.content.decode()
    assert not ProviderAccount.objects.filter(name="comet4").exists()


# --- the command ----------------------------------------------------------------------


def test_the_command_adds_lists_disables_and_enables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMET2_KEY", SECRET)
    out = io.StringIO()
    call_command(
        "provider_account", "add", "comet2", "--protocol", "cometapi",
        "--base-url", "https://api.cometapi.com", "--api-key-env", "COMET2_KEY",
        "--modes", "fast,relax", "--weight", "3", "--low-balance", "2.5", stdout=out,
    )  # fmt: skip
    account = ProviderAccount.objects.get(name="comet2")
    assert account.api_key == SECRET and account.modes == ["fast", "relax"]
    assert account.weight == 3 and account.low_balance_below == Decimal("2.5")
    call_command("provider_account", "list", stdout=out)
    assert "comet2" in out.getvalue() and SECRET not in out.getvalue()
    call_command("provider_account", "disable", "comet2", "--reason", "Paused.", stdout=out)
    assert ProviderAccount.objects.get(name="comet2").disabled_reason == "Paused."
    call_command("provider_account", "enable", "comet2", stdout=out)
    assert ProviderAccount.objects.get(name="comet2").enabled
    with pytest.raises(CommandError, match="exists already"):
        call_command("provider_account", "add", "comet2", "--protocol", "cometapi")
    with pytest.raises(CommandError, match="NOPE is not set"):
        call_command("provider_account", "add", "x", "--protocol", "piapi", "--api-key-env", "NOPE")
    with pytest.raises(CommandError, match="base_url"):
        call_command(
            "provider_account", "add", "bad", "--protocol", "cometapi", "--base-url", "nope"
        )
    with pytest.raises(CommandError, match="Unknown modes slow"):
        call_command("provider_account", "add", "y", "--protocol", "cometapi", "--modes", "slow")


# --- routing ----------------------------------------------------------------------------


def test_new_jobs_go_to_the_least_loaded_account_then_the_heavier(alice: Any) -> None:
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    light = add_account("light", running=1, queued=1, weight=1)
    heavy = add_account("heavy", running=2, queued=2, weight=5)
    assert routing.account_for_new_job("fast") == heavy  # both empty: the heavier
    make_job(alice, provider="heavy", status=Job.Status.SUBMITTED, provider_job_id="h1")
    # heavy 1/4 taken, light 0/2: the lighter share wins.
    assert routing.account_for_new_job("fast") == light
    make_job(alice, provider="light", status=Job.Status.SUBMITTED, provider_job_id="l1")
    assert routing.account_for_new_job("fast") == heavy  # 1/4 against 1/2
    make_job(alice, provider="light", status=Job.Status.SUBMITTED, provider_job_id="l2")
    for n in range(3):
        make_job(alice, provider="heavy", status=Job.Status.SUBMITTED, provider_job_id=f"h{n + 2}")
    # Both full: the job waits in the least loaded line (light 2/2 = heavy 4/4: the heavier).
    assert routing.account_for_new_job("fast") == heavy
    ProviderAccount.objects.filter(pk=heavy.pk).update(modes=["relax"])
    assert routing.account_for_new_job("fast") == light
    assert routing.account_for_new_job("relax") == heavy
    ProviderAccount.objects.filter(pk=light.pk).update(modes=["turbo"])
    with pytest.raises(routing.NoAccount, match="No provider account takes fast jobs"):
        routing.account_for_new_job("fast")


def test_an_older_environment_account_keeps_its_follow_ups_but_takes_no_imagine(
    alice: Any, settings: Any
) -> None:
    old = make_finished_job(alice, provider="simulator")
    settings.MJ_PROVIDER = "cometapi"
    assert routing.account_for_new_job("fast").name == "cometapi"
    assert ProviderAccount.objects.get(name="cometapi").from_environment
    assert routing.account_for_follow_up(old).name == "simulator"


def test_an_out_of_balance_answer_disables_the_account_and_moves_the_imagine(
    fake: FakeProvider, alice: Any
) -> None:
    # new-api checks the quota before relaying: {"code": 4, "description": "quota_not_enough"}
    broke = add_account("broke", weight=9)
    add_account("spare")
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    answers = iter(
        [
            httpx.Response(200, json={"code": 4, "description": "quota_not_enough"}),
            json_answer(load("cometapi/submit_success.json"))(None),  # type: ignore[arg-type]
        ]
    )
    fake.routes["/mj/submit/imagine"] = lambda request: next(answers)
    job = services.submit(owner=alice, prompt="a lighthouse")
    assert job.provider == "broke"
    tasks.dispatch(job.pk)
    broke.refresh_from_db()
    assert not broke.enabled and "out of balance" in broke.disabled_reason
    job.refresh_from_db()
    assert job.provider == "spare" and job.status == Job.Status.QUEUED
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED and job.provider == "spare"


def test_a_follow_up_refused_with_401_fails_and_releases(fake: FakeProvider, alice: Any) -> None:
    add_account("comet2")
    parent = make_finished_job(alice, provider="comet2")
    fake.routes["/mj/submit/action"] = lambda request: httpx.Response(
        401, json={"error": {"message": "Invalid token", "type": "comet_api_error"}}
    )
    child = services.press(owner=alice, parent=parent, action=Job.Action.REROLL)
    tasks.dispatch(child.pk)
    child.refresh_from_db()
    assert child.status == Job.Status.FAILED and child.charge == "released"
    assert child.provider == "comet2"  # a follow-up never moves: its parent is there
    assert not ProviderAccount.objects.get(name="comet2").enabled


def test_provider_errors_say_whose_fault_they_are() -> None:
    assert ProviderError("x", permanent=True, status_code=401).refused_account
    assert not ProviderError("x", permanent=True, status_code=400).refused_account
    assert ProviderError("余额不足", permanent=True, words="余额不足").out_of_balance
    assert ProviderError("Insufficient credits", permanent=True).out_of_balance
    assert ProviderError("x", permanent=True, status_code=402).out_of_balance
    quota = ProviderError("user quota is not enough", permanent=True, status_code=403)
    assert quota.out_of_balance and not quota.refused_account
    assert not ProviderError("banned prompt", permanent=True, code=24).out_of_balance


# --- webhooks per account ----------------------------------------------------------------


def test_each_account_has_its_own_webhook_url(
    alice: Any, client: Client, settings: Any, fake: FakeProvider
) -> None:
    settings.MJ_WEBHOOKS, settings.SITE_URL = True, "https://studio.example.com"
    add_account("comet2")
    own = webhooks.url("cometapi", "comet2")
    assert own.endswith("/comet2/") and own != webhooks.url("cometapi", "simulator")
    assert webhooks.url("cometapi", "simulator") == webhooks.url("cometapi")
    mine = make_job(alice, provider="comet2", status=Job.Status.RUNNING, provider_job_id="777")
    other = make_job(alice, provider="simulator", status=Job.Status.RUNNING, provider_job_id="888")
    path = own.removeprefix(settings.SITE_URL)
    answer = client.post(path, {"id": "777", "status": "SUCCESS"}, content_type="application/json")
    assert answer.json() == {"ok": True}
    # The same id on another account is unknown here.
    answer = client.post(path, {"id": "888", "status": "SUCCESS"}, content_type="application/json")
    assert answer.json()["ignored"] == "unknown task"
    assert {mine.pk, other.pk} == set(Job.objects.values_list("pk", flat=True))


# --- the console ----------------------------------------------------------------------


def console_answering(pages: list[Any]) -> Console:
    answers = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        return httpx.Response(200, json=next(answers))

    return Console(
        name="c", base_url="https://api.example.com", token="tok", timeout=5,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip


def test_the_console_reads_either_page_shape_and_skips_hostile_rows() -> None:
    rows = [
        {"task_id": "1", "action": "IMAGINE", "status": "success", "quota": 28000,
         "model_name": "mj-fast-imagine", "submit_time": 1767225600, "finish_time": 0},
        {"task_id": "", "quota": 10},
        {"task_id": "x" * 65, "quota": 10},
        {"task_id": "2", "quota": "NaN", "submit_time": "soon"},
        {"task_id": "3\x00", "quota": 1},
        "not a row",
        {"task_id": 4, "quota": 10**30, "submit_time": 10**20},
        {"task_id": "6", "quota": -28000},
    ]  # fmt: skip
    with console_answering([{"success": True, "data": {"items": rows}}]) as console:
        found = list(console.tasks())
    assert [task.task_id for task in found] == ["1", "2", "4", "6"]
    first = found[0]
    assert first.cost == Decimal("0.056") and first.status == "SUCCESS"
    assert first.submitted_at is not None and first.finished_at is None
    assert found[1].cost == 0 and found[1].submitted_at is None
    assert found[2].cost == 0 and found[2].submitted_at is None
    assert found[3].cost == 0
    with console_answering([{"success": True, "data": [{"task_id": "9", "quota": 0}]}]) as console:
        assert [task.task_id for task in console.tasks()] == ["9"]
    with (
        console_answering([{"success": False, "message": "未登录"}]) as console,
        pytest.raises(ProviderError, match="未登录"),
    ):
        console.balance()
    with (
        console_answering([{"success": True, "data": {"items": "nope"}}]) as console,
        pytest.raises(ProviderError, match="no list of tasks"),
    ):
        list(console.tasks())


def test_a_provider_cost_is_editable_and_recorded_on_the_job(
    fake: FakeProvider, alice: Any
) -> None:
    fake.routes["/mj/submit/imagine"] = json_answer(load("cometapi/submit_success.json"))
    ProviderCost.objects.filter(account__name="simulator", action="imagine", mode="relax").update(
        model_id="mj-relax-imagine-v7", price=Decimal("0.0123")
    )
    job = services.submit(owner=alice, prompt="a lighthouse", mode="relax")
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert (job.provider_model, job.provider_cost) == ("mj-relax-imagine-v7", Decimal("0.0123"))


def test_a_waiting_imagine_of_an_account_switched_off_goes_elsewhere(
    fake: FakeProvider, alice: Any
) -> None:
    fake.routes["/mj/submit/imagine"] = json_answer(load("cometapi/submit_success.json"))
    paused = add_account("paused", weight=9)
    add_account("spare")
    ProviderAccount.objects.filter(name="simulator").update(enabled=False)
    job = services.submit(owner=alice, prompt="a lighthouse")
    child_parent = make_finished_job(alice, provider="paused")
    child = services.press(owner=alice, parent=child_parent, action=Job.Action.REROLL)
    assert job.provider == "paused" and child.provider == "paused"
    paused.disable("Paused by an operator.")
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.provider == "spare" and job.status == Job.Status.QUEUED
    assert "Moved from account paused to spare" in job.fail_note
    assert not fake.requests  # nothing was sent to the paused account
    tasks.dispatch(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUBMITTED and job.provider == "spare"
    # A follow-up cannot move: its parent's task is on the paused account.
    fake.routes["/mj/submit/action"] = json_answer(load("cometapi/submit_success.json"))
    tasks.dispatch(child.pk)
    child.refresh_from_db()
    assert child.provider == "paused"
