"""Vary (Region) and Custom Zoom: both protocols' buttons are read, and neither is pressed
without what it asks for (a region or a zoom factor, and a prompt)."""

from __future__ import annotations

from typing import Any

import pytest
from django.template import Context, RequestContext
from django.test import RequestFactory

from gallery import services
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


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["vary_region", "custom_zoom"])
def test_a_press_without_its_inputs_is_refused_and_makes_nothing(alice: Any, action: str) -> None:
    parent = make_finished_job(alice, action=Job.Action.UPSCALE, index=1, buttons=ASKING_BUTTONS)
    with pytest.raises(services.SubmitError, match="needs a region or a zoom factor"):
        services.press(owner=alice, parent=parent, action=action)
    assert not Job.objects.filter(parent=parent).exists()


@pytest.mark.django_db
def test_the_card_offers_no_one_click_press_for_them(alice: Any) -> None:
    parent = make_finished_job(alice, action=Job.Action.UPSCALE, index=1, buttons=ASKING_BUTTONS)
    request = RequestFactory().get("/")
    request.user = alice
    offered = offered_buttons(RequestContext(request, {}), parent)
    assert [b.url.rstrip("/").rsplit("/", 1)[-1] for b in offered] == ["vary-subtle"]
    assert offered_buttons(Context({}), parent)  # no request: still the plain buttons
