"""Vary (Region) and Custom Zoom: both protocols' buttons are read, the job page asks for a
region or a zoom factor (and a prompt), and neither is pressed without them."""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import pytest
from django.template import RequestContext
from django.test import Client, RequestFactory
from django.urls import reverse
from PIL import Image as PILImage
from PIL import ImageDraw

from gallery import regions, services, tasks
from gallery.models import Job
from gallery.providers.cometapi import parse_buttons, parse_custom_id
from gallery.providers.piapi_wire import parse_actions
from gallery.templatetags.gallery_tags import offered_buttons
from tests.gallery.factories import make_finished_job

HASH = "3785da15-4f70-4034-9128-f3ff1ac634fa"


def test_cometapi_reads_the_inpaint_and_custom_zoom_custom_ids() -> None:
    assert parse_custom_id(f"MJ::Inpaint::1::{HASH}::SOLO") == ("vary_region", None, "")
    assert parse_custom_id(f"MJ::CustomZoom::{HASH}") == ("custom_zoom", None, "")
    assert parse_custom_id(f"MJ::Inpaint::2::{HASH}::SOLO") is None
    buttons = parse_buttons(
        [
            {"customId": f"MJ::Inpaint::1::{HASH}::SOLO", "label": "Vary (Region)", "emoji": "🖌️"},
            {"customId": f"MJ::CustomZoom::{HASH}", "label": "", "emoji": "🔍"},
        ]
    )
    assert [(b.action, b.label) for b in buttons] == [
        ("vary_region", "Vary (Region)"),
        ("custom_zoom", "Custom Zoom"),
    ]


def test_piapi_reads_inpaint_and_outpaint_custom_and_offers_them_on_an_upscale() -> None:
    listed = parse_actions(["inpaint", "outpaint_custom"])
    assert [(b.action, b.custom_id) for b in listed] == [
        ("vary_region", "inpaint"),
        ("custom_zoom", "outpaint_custom"),
    ]
    defaults = {b.action for b in parse_actions([], "upscale")}
    assert {"vary_region", "custom_zoom"} <= defaults
    assert not {"vary_region", "custom_zoom"} & {b.action for b in parse_actions([], "imagine")}


ASKING_BUTTONS = [
    {"action": "vary_region", "index": None, "variant": "", "label": "Vary (Region)",
     "custom_id": f"MJ::Inpaint::1::{HASH}::SOLO", "emoji": "🖌️"},
    {"action": "custom_zoom", "index": None, "variant": "", "label": "Custom Zoom",
     "custom_id": f"MJ::CustomZoom::{HASH}", "emoji": "🔍"},
    {"action": "vary_subtle", "index": None, "variant": "", "label": "Vary (Subtle)",
     "custom_id": f"MJ::JOB::low_variation::1::{HASH}::SOLO", "emoji": "🪄"},
]  # fmt: skip


def drawn(size: tuple[int, int], box: tuple[int, int, int, int] | None, mode: str = "RGBA") -> str:
    """A mask as the editor posts it: `box` white on transparent (or black), a data URL."""
    picture = PILImage.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else 0)
    if box is not None:
        ImageDraw.Draw(picture).rectangle(box, fill=(255, 255, 255, 255) if mode == "RGBA" else 255)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_a_mask_is_flattened_to_black_and_white_at_the_pictures_size() -> None:
    made = PILImage.open(io.BytesIO(regions.mask(drawn((100, 50), (0, 0, 49, 49)), (64, 32))))
    assert made.size == (64, 32) and made.mode == "L"
    assert made.getpixel((5, 16)) == 255 and made.getpixel((60, 16)) == 0
    # Bare base64 (as API callers send maskBase64) and a black-and-white picture do too.
    bare = drawn((40, 40), (0, 0, 19, 39), mode="L").split(",", 1)[1]
    assert PILImage.open(io.BytesIO(regions.mask(bare, (40, 40)))).getpixel((2, 2)) == 255


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "Mark the region"),
        ("data:image/png;base64,not base64!", "not a picture we can read"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "not a picture"),
        (drawn((50, 50), None), "Mark a larger region"),
        (drawn((50, 50), (0, 0, 50, 50)), "covers the whole picture"),
    ],
    ids=["empty", "garbage", "not-an-image", "nothing-marked", "everything-marked"],
)
def test_a_mask_we_cannot_use_is_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(regions.Refused, match=why):
        regions.mask(text, (64, 64))


def test_a_mask_too_large_is_refused_before_it_is_decoded(settings: Any) -> None:
    settings.MJWEB_UPLOAD_MAX_BYTES = 1000
    with pytest.raises(regions.Refused, match="larger than"):
        regions.mask("data:image/png;base64," + "A" * 4000, (64, 64))


@pytest.mark.parametrize(
    ("typed", "factor"), [("1.5", "1.5"), ("2", "2"), ("1", "1"), ("1,25", "1.25"), ("1.50", "1.5")]
)
def test_a_zoom_factor_within_the_range_is_taken(typed: str, factor: str) -> None:
    assert regions.zoom(typed) == factor


@pytest.mark.parametrize("typed", ["0.9", "2.01", "1.255", "abc", "nan", "inf", "", None])
def test_a_zoom_factor_outside_the_range_is_refused(typed: Any) -> None:
    with pytest.raises(regions.Refused, match="from 1 to 2"):
        regions.zoom(typed)


def test_the_factor_replaces_any_zoom_in_the_prompt() -> None:
    assert regions.zoomed_prompt("a valley --zoom 2 --ar 16:9", "1.5") == (
        "a valley --ar 16:9 --zoom 1.5"
    )
    assert regions.zoom_in_prompt("a valley --zoom 1.75") == "1.75"
    assert regions.zoom_in_prompt("a valley") is None
    with pytest.raises(regions.Refused):
        regions.zoom_in_prompt("a valley --zoom 3")


def an_upscale(owner: Any) -> Job:
    return make_finished_job(owner, action=Job.Action.UPSCALE, index=1, buttons=ASKING_BUTTONS)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "asked", "why"),
    [
        ("vary_region", {}, "Mark the region"),
        ("vary_region", {"mask": "data:image/png;base64,AAAA"}, "not a picture"),
        ("custom_zoom", {}, "from 1 to 2"),
        ("custom_zoom", {"zoom": "5"}, "from 1 to 2"),
        ("custom_zoom", {"zoom": "1.5", "prompt": "x" * 2001}, "limited to"),
    ],
)
def test_a_press_without_what_it_asks_is_refused_and_makes_nothing(
    alice: Any, action: str, asked: dict[str, str], why: str
) -> None:
    parent = an_upscale(alice)
    with pytest.raises(services.SubmitError, match=why):
        services.press(owner=alice, parent=parent, action=action, **asked)
    assert not Job.objects.filter(parent=parent).exists()


@pytest.mark.django_db
def test_the_card_links_to_the_job_pages_forms_instead_of_pressing(alice: Any) -> None:
    parent = an_upscale(alice)
    request = RequestFactory().get("/")
    request.user = alice
    offered = {
        b.url.rstrip("/").rsplit("/", 1)[-1]: b
        for b in offered_buttons(RequestContext(request, {}), parent)
    }
    assert set(offered) == {"vary-subtle", "vary-region", "custom-zoom"}
    assert offered["vary-region"].link == f"{parent.get_absolute_url()}#vary-region"
    assert offered["custom-zoom"].link == f"{parent.get_absolute_url()}#custom-zoom"
    assert offered["vary-subtle"].link == ""
    client = Client()
    client.force_login(alice)
    card = client.get(reverse("gallery:card", args=[parent.code]), HTTP_HX_REQUEST="true")
    assert f'href="{parent.get_absolute_url()}#vary-region"'.encode() in card.content
    assert (
        b'formaction="' + reverse("gallery:vary_region", args=[parent.code]).encode()
        not in card.content
    )


@pytest.mark.django_db
def test_the_job_page_asks_and_a_refusal_keeps_what_was_typed(alice: Any) -> None:
    parent = an_upscale(alice)
    client = Client()
    client.force_login(alice)
    page = client.get(parent.get_absolute_url())
    assert b'id="vary-region"' in page.content and b'id="custom-zoom"' in page.content
    assert b'name="mask"' in page.content and b'name="zoom"' in page.content
    refused = client.post(
        reverse("gallery:custom_zoom", args=[parent.code]),
        {"zoom": "7", "prompt": "a wide sea", "submit_key": str(uuid.uuid4())},
    )
    assert refused.status_code == 422
    assert "Zoom out by a factor from 1 to 2." in refused.content.decode()
    assert b'value="7"' in refused.content and b"a wide sea</textarea>" in refused.content
    refused = client.post(reverse("gallery:vary_region", args=[parent.code]), {"prompt": "a hat"})
    assert refused.status_code == 422 and b"Mark the region to repaint first." in refused.content
    assert not Job.objects.filter(parent=parent).exists()


@pytest.mark.django_db
def test_the_forms_press_with_what_they_asked(alice: Any) -> None:
    parent = an_upscale(alice)
    client = Client()
    client.force_login(alice)
    answer = client.post(
        reverse("gallery:vary_region", args=[parent.code]),
        {"prompt": "a red hat", "mask": drawn((128, 128), (10, 10, 60, 60)), "mode": "relax"},
    )
    child = Job.objects.get(parent=parent, action="vary_region")
    assert answer.status_code == 302 and answer["Location"] == child.get_absolute_url()
    assert (child.prompt, child.mode, child.status) == ("a red hat", "relax", Job.Status.QUEUED)
    assert child.mask and child.mask.name.endswith("mask.png")
    client.post(reverse("gallery:custom_zoom", args=[parent.code]), {"zoom": "1.8", "prompt": ""})
    zoom = Job.objects.get(parent=parent, action="custom_zoom")
    assert zoom.variant == "1.8" and zoom.prompt == f"{parent.prompt} --zoom 1.8"
    # A deleted job's mask goes with its pictures.
    services.delete(child)
    tasks.purge_images(child.pk)
    assert not Job.objects.get(pk=child.pk).mask
