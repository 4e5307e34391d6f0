"""Pages and partials: owner, another user (404, nothing changed), anonymous (login)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ

from billing import prices
from gallery.models import Job, ProviderAccount
from tests.gallery.factories import make_finished_job, make_job

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_home_lists_only_my_jobs_newest_first(alice_client: Client, alice: Any, bob: Any) -> None:
    first = make_job(alice, prompt="first prompt")
    second = make_job(alice, prompt="second prompt")
    make_job(bob, prompt="bob's secret prompt")
    response = alice_client.get(reverse("gallery:home"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index(str(second.code)) < body.index(str(first.code))
    assert "bob&#x27;s secret prompt" not in body and "bob's secret prompt" not in body


def test_home_requires_login(client: Client) -> None:
    response = client.get(reverse("gallery:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_imagine_creates_a_queued_job_and_enqueues_dispatch(
    alice_client: Client, alice: Any
) -> None:
    key = uuid.uuid4()
    response = alice_client.post(
        reverse("gallery:imagine"),
        {"prompt": "  a red fox   in snow ", "mode": "fast", "submit_key": str(key)},
        **HX,
    )
    assert response.status_code == 200
    job = Job.objects.get(owner=alice)
    assert job.prompt == "a red fox in snow"
    assert job.status == Job.Status.QUEUED
    assert job.root_id == job.pk and job.parent_id is None
    assert job.submit_key == key
    body = response.content.decode()
    assert f'id="job-{job.code}"' in body
    assert 'hx-swap-oob="true"' in body  # a fresh form with a new submit key
    assert OrmQ.objects.count() == 1


def test_imagine_twice_with_one_key_makes_one_job(alice_client: Client, alice: Any) -> None:
    data = {"prompt": "one job", "mode": "fast", "submit_key": str(uuid.uuid4())}
    alice_client.post(reverse("gallery:imagine"), data, **HX)
    alice_client.post(reverse("gallery:imagine"), data, **HX)
    assert Job.objects.filter(owner=alice).count() == 1
    assert OrmQ.objects.count() == 1


def test_imagine_without_js_redirects(alice_client: Client, alice: Any) -> None:
    response = alice_client.post(
        reverse("gallery:imagine"),
        {"prompt": "plain post", "mode": "relax", "submit_key": str(uuid.uuid4())},
    )
    assert response.status_code == 302
    assert Job.objects.get(owner=alice).mode == "relax"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompt": "", "mode": "fast"}, "Type a prompt first."),
        ({"prompt": "   ", "mode": "fast"}, "Type a prompt first."),
        ({"prompt": "x", "mode": "warp"}, "Select a valid choice"),
        ({"prompt": "x" * 2001, "mode": "fast"}, "2001 characters long; the limit is 2000"),
    ],
)
def test_bad_imagine_input_says_why_and_writes_nothing(
    alice_client: Client, data: dict[str, str], message: str
) -> None:
    data = {**data, "submit_key": str(uuid.uuid4())}
    response = alice_client.post(reverse("gallery:imagine"), data, **HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#imagine-form"
    assert message in response.content.decode()
    assert Job.objects.count() == 0
    assert OrmQ.objects.count() == 0
    plain = alice_client.post(reverse("gallery:imagine"), data)
    assert plain.status_code == 422
    assert message in plain.content.decode()


def test_imagine_requires_login(client: Client) -> None:
    response = client.post(reverse("gallery:imagine"), {"prompt": "x", "mode": "fast"})
    assert response.status_code == 302
    assert Job.objects.count() == 0


def test_job_page_shows_parent_and_children(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice, prompt="parent prompt")
    child = make_job(alice, parent=parent, root=parent, action=Job.Action.REROLL)
    response = alice_client.get(parent.get_absolute_url())
    assert response.status_code == 200
    assert str(child.code) in response.content.decode()
    response = alice_client.get(child.get_absolute_url())
    assert parent.get_absolute_url() in response.content.decode()


@pytest.mark.parametrize("name", ["gallery:job", "gallery:card", "gallery:preview"])
def test_other_users_get_404(bob_client: Client, alice: Any, name: str) -> None:
    job = make_job(alice, status=Job.Status.RUNNING, preview_url="http://127.0.0.1:1/x.png")
    assert bob_client.get(reverse(name, args=[job.code]), **HX).status_code == 404


@pytest.mark.parametrize("name", ["gallery:job", "gallery:card", "gallery:preview"])
def test_anonymous_is_sent_to_login(client: Client, alice: Any, name: str) -> None:
    job = make_job(alice)
    response = client.get(reverse(name, args=[job.code]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_running_card_joins_the_pages_poll_and_a_finished_one_does_not(
    alice_client: Client, alice: Any
) -> None:
    running = make_job(alice, status=Job.Status.RUNNING, progress=46)
    response = alice_client.get(reverse("gallery:card", args=[running.code]), **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body  # the partial alone
    card = body.split("</article>")[0]
    assert "hx-trigger" not in card  # cards do not poll on their own
    assert f'name="live" value="{running.code}~{running.live_version}~"' in card
    assert 'value="46"' in card
    # The card came back running: the page's poller is woken (it switches itself on if it
    # is off), and not replaced (that would restart it).
    assert response["HX-Trigger-After-Swap"] == '{"live-wake": {}}'
    assert "live-poller" not in body
    assert response["Vary"].find("HX-Request") >= 0
    done = make_finished_job(alice)
    response = alice_client.get(reverse("gallery:card", args=[done.code]), **HX)
    assert 'name="live"' not in response.content.decode()
    assert "live-poller" not in response.content.decode()
    assert "HX-Trigger-After-Swap" not in response


def test_card_without_htmx_redirects_to_the_job_page(alice_client: Client, alice: Any) -> None:
    job = make_job(alice)
    response = alice_client.get(reverse("gallery:card", args=[job.code]))
    assert response.status_code == 302
    assert response["Location"] == job.get_absolute_url()


def test_finished_card_shows_the_offered_buttons(alice_client: Client, alice: Any) -> None:
    job = make_finished_job(alice)
    body = alice_client.get(reverse("gallery:card", args=[job.code]), **HX).content.decode()
    for label in ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "Reroll"]:
        assert label in body
    assert reverse("gallery:reroll", args=[job.code]) in body
    assert reverse("gallery:upscale", args=[job.code, 2]) in body
    assert reverse("gallery:image", args=[job.code, "grid", 0, "thumb"]) in body
    assert "127.0.0.1:8001" not in body and "mj/image" not in body  # no provider URL


def test_reroll_makes_a_child_job(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    response = alice_client.post(
        reverse("gallery:reroll", args=[parent.code]), {"submit_key": str(uuid.uuid4())}, **HX
    )
    assert response.status_code == 200
    child = Job.objects.get(parent=parent)
    assert child.action == Job.Action.REROLL
    assert child.root_id == parent.root_id
    assert child.prompt == parent.prompt
    assert child.status == Job.Status.QUEUED
    assert f'id="job-{child.code}"' in response.content.decode()
    assert OrmQ.objects.count() == 1


def test_upscale_and_variation_keep_their_index(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    alice_client.post(reverse("gallery:upscale", args=[parent.code, 3]))
    alice_client.post(reverse("gallery:variation", args=[parent.code, 2]))
    kids = {(j.action, j.index) for j in Job.objects.filter(parent=parent)}
    assert kids == {("upscale", 3), ("variation", 2)}


def test_reroll_without_js_redirects_to_the_child(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    response = alice_client.post(reverse("gallery:reroll", args=[parent.code]))
    child = Job.objects.get(parent=parent)
    assert response.status_code == 302
    assert response["Location"] == child.get_absolute_url()


def test_a_button_the_provider_did_not_offer_is_refused(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    response = alice_client.post(reverse("gallery:pan", args=[parent.code, "left"]), **HX)
    assert response.status_code == 200
    assert "did not offer this button" in response.content.decode()
    assert not Job.objects.filter(parent=parent).exists()


def test_buttons_on_an_unfinished_job_are_refused(alice_client: Client, alice: Any) -> None:
    parent = make_job(alice, status=Job.Status.RUNNING)
    response = alice_client.post(reverse("gallery:reroll", args=[parent.code]))
    assert response.status_code == 422
    assert not Job.objects.filter(parent=parent).exists()


def test_another_user_cannot_press_my_buttons(bob_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    response = bob_client.post(reverse("gallery:reroll", args=[parent.code]), **HX)
    assert response.status_code == 404
    assert Job.objects.count() == 1


def test_anonymous_cannot_press_buttons(client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    response = client.post(reverse("gallery:reroll", args=[parent.code]))
    assert response.status_code == 302
    assert Job.objects.count() == 1


def test_buttons_need_post(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice)
    assert alice_client.get(reverse("gallery:reroll", args=[parent.code])).status_code == 405


def test_images_are_served_to_their_owner_only(
    alice_client: Client, bob_client: Client, client: Client, alice: Any
) -> None:
    job = make_finished_job(alice)
    url = reverse("gallery:image", args=[job.code, "grid", 0, "full"])
    response = alice_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert bob_client.get(url).status_code == 404
    assert client.get(url).status_code == 302


def test_csrf_is_enforced_on_imagine(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("gallery:imagine"), {"prompt": "x", "mode": "fast"})
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_pages_carry_a_strict_content_security_policy(alice_client: Client) -> None:
    response = alice_client.get(reverse("gallery:home"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert 'hx-headers=\'{"X-CSRFToken": "' in response.content.decode()


def test_a_submit_leaves_the_composer_alone_but_for_a_new_key(alice_client: Client) -> None:
    """What the user types while the answer is on its way is not overwritten."""
    key = str(uuid.uuid4())
    data = {"prompt": "first", "mode": "fast", "submit_key": key}
    body = alice_client.post(reverse("gallery:imagine"), data, **HX).content.decode()
    assert 'id="imagine-form"' not in body
    new_key = body.split('name="submit_key" id="id_submit_key" value="')[1].split('"')[0]
    assert uuid.UUID(new_key) and new_key != key
    assert 'hx-swap-oob="true"' in body.split('id="id_submit_key"')[1].split(">")[0]
    assert '<div id="imagine-errors" hx-swap-oob="true"></div>' in body


def test_under_asgi_a_stored_file_is_streamed_in_chunks_not_read_whole(
    settings: Any, tmp_path: Any
) -> None:
    import asyncio
    import warnings

    from gallery.views import stored_file_response

    data = bytes(range(256)) * 1000  # 256 kB: several blocks
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    settings.SERVED_BY_ASGI = False
    assert not stored_file_response(path.open("rb"), content_type="image/png").is_async
    settings.SERVED_BY_ASGI = True
    stored = path.open("rb")
    response = stored_file_response(stored, content_type="image/png")
    assert response.is_async and response["Content-Length"] == str(len(data))

    async def take() -> list[bytes]:
        return [chunk async for chunk in response]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django warns when it must read a file whole
        chunks = asyncio.run(take())
    assert b"".join(chunks) == data and len(chunks) == -(-len(data) // response.block_size)
    response.close()
    assert stored.closed


def test_the_prompt_box_cuts_nothing_and_carries_its_counter(alice_client: Client) -> None:
    """No maxlength (a browser would cut a long paste without a word): the counter
    (static/js/composer.js) and the server's message say it instead."""
    page = alice_client.get("/").content.decode()
    box = re.search(r"<textarea[^>]*name=\"prompt\"[^>]*>", page)
    assert box is not None
    assert "maxlength" not in box.group(0)
    assert 'data-limit="2000"' in box.group(0) and 'data-counter="prompt-count"' in box.group(0)
    assert 'id="prompt-count"' in page and "js/composer" in page


def test_a_press_may_be_sent_in_another_speed(alice_client: Client, alice: Any) -> None:
    parent = make_finished_job(alice, mode=Job.Mode.RELAX)
    alice_client.post(
        reverse("gallery:upscale", args=[parent.code, 1]),
        {"submit_key": str(uuid.uuid4()), "mode": "fast"},
        **HX,
    )
    alice_client.post(reverse("gallery:upscale", args=[parent.code, 2]), **HX)
    kids = dict(Job.objects.filter(parent=parent).values_list("index", "mode"))
    assert kids == {1: "fast", 2: "relax"}
    fast = Job.objects.get(parent=parent, index=1)
    assert fast.cost == prices.price_of("upscale", "fast") != prices.price_of("upscale", "relax")


def test_a_press_in_a_speed_the_user_may_not_use_is_refused(
    alice_client: Client, alice: Any, settings: Any
) -> None:
    settings.MJ_ALLOWED_MODES = ["relax"]
    parent = make_finished_job(alice, mode=Job.Mode.RELAX)
    response = alice_client.post(
        reverse("gallery:upscale", args=[parent.code, 1]), {"mode": "turbo"}, **HX
    )
    assert "cannot use turbo mode" in response.content.decode()
    response = alice_client.post(
        reverse("gallery:upscale", args=[parent.code, 1]), {"mode": "warp"}, **HX
    )
    assert "Choose fast, relax or turbo" in response.content.decode()
    assert not Job.objects.filter(parent=parent).exists()


def test_a_press_in_a_speed_its_account_does_not_take_is_refused(
    alice_client: Client, alice: Any
) -> None:
    parent = make_finished_job(alice, mode=Job.Mode.RELAX)
    ProviderAccount.objects.named(parent.provider)
    ProviderAccount.objects.filter(name=parent.provider).update(modes=["relax"])
    response = alice_client.post(
        reverse("gallery:upscale", args=[parent.code, 1]), {"mode": "fast"}, **HX
    )
    assert "does not take fast jobs" in response.content.decode()
    assert not Job.objects.filter(parent=parent).exists()


def test_the_card_offers_the_users_speeds_with_each_buttons_prices(
    alice_client: Client, alice: Any
) -> None:
    parent = make_finished_job(alice, mode=Job.Mode.RELAX)
    body = alice_client.get(reverse("gallery:card", args=[parent.code]), **HX).content.decode()
    assert '<select name="mode">' in body
    assert '<option value="relax" selected>' in body
    fast, relax = prices.price_of("upscale", "fast"), prices.price_of("upscale", "relax")
    assert f'data-prices="relax:{relax} fast:{fast}' in body
    # Each button carries its own key: a second press is a second job, not a replay.
    assert body.count('name="submit_key"') == len(parent.buttons)
