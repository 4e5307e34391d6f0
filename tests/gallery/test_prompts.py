"""A prompt's parameters (gallery.prompts): the reading, the ranges, the form's refusals, the
composer's table, and a job's prompt taken again (?prompt= on the studio)."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from gallery import prompts
from gallery.forms import ImagineForm
from gallery.models import Job
from tests.gallery.factories import make_finished_job, make_job

HX = {"HTTP_HX_REQUEST": "true"}


def problems(prompt: str) -> list[str]:
    return prompts.parse(prompt).problems


def test_it_reads_the_words_and_every_known_parameter() -> None:
    parsed = prompts.parse(
        "a lighthouse at dawn --ar 16:9 --v 7 --stylize 250 --chaos 20 --weird 3000 "
        "--no text, people --seed 4294967295 --tile --style raw"
    )
    assert parsed.text == "a lighthouse at dawn"
    assert parsed.parameters == {
        "ar": "16:9",
        "v": "7",
        "stylize": "250",
        "chaos": "20",
        "weird": "3000",
        "no": "text, people",
        "seed": "4294967295",
        "tile": "",
        "style": "raw",
    }
    assert parsed.problems == [] and parsed.others == []


def test_a_prompt_without_parameters_has_none() -> None:
    parsed = prompts.parse("a red fox in the snow, 35mm")
    assert parsed == prompts.Parsed("a red fox in the snow, 35mm", {}, [], [])


@pytest.mark.parametrize(
    ("prompt", "name", "value"),
    [
        ("x --ar 3:2", "ar", "3:2"),
        ("x --aspect 21:9", "ar", "21:9"),
        ("x --ar 1:1", "ar", "1:1"),
        ("x --ar 999:1", "ar", "999:1"),
        ("x --v 6.1", "v", "6.1"),
        ("x --version 7", "v", "7"),
        ("x --niji 6", "niji", "6"),
        ("x --s 0", "stylize", "0"),
        ("x --stylize 1000", "stylize", "1000"),
        ("x --c 100", "chaos", "100"),
        ("x --chaos 0", "chaos", "0"),
        ("x --w 0", "weird", "0"),
        ("x --weird 3000", "weird", "3000"),
        ("x --seed 0", "seed", "0"),
        ("x --seed 007", "seed", "7"),
        ("x --no cars", "no", "cars"),
        ("x --tile", "tile", ""),
        ("x --style raw", "style", "raw"),
    ],
)
def test_each_parameter_takes_its_edges(prompt: str, name: str, value: str) -> None:
    parsed = prompts.parse(prompt)
    assert parsed.problems == []
    assert parsed.parameters == {name: value}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("x --chaos 500", "--chaos takes a whole number from 0 to 100, not “500”."),
        ("x --chaos -1", "--chaos takes a whole number from 0 to 100, not “-1”."),
        ("x --stylize 1001", "--stylize takes a whole number from 0 to 1000, not “1001”."),
        ("x --s 2.5", "--stylize takes a whole number from 0 to 1000, not “2.5”."),
        ("x --s 1e3", "--stylize takes a whole number from 0 to 1000, not “1e3”."),
        ("x --weird 3001", "--weird takes a whole number from 0 to 3000, not “3001”."),
        (
            "x --seed 4294967296",
            "--seed takes a whole number from 0 to 4294967295, not “4294967296”.",
        ),
        ("x --seed abc", "--seed takes a whole number from 0 to 4294967295, not “abc”."),
        ("x --v 5", "--v takes 6.1 or 7, not “5”."),
        ("x --v 7.0", "--v takes 6.1 or 7, not “7.0”."),
        ("x --niji 5", "--niji takes 6, not “5”."),
        ("x --style cute", "--style takes raw, not “cute”."),
        (
            "x --ar 16x9",
            "--ar takes a shape as width:height in whole numbers from 1 to 999, like 16:9, "
            "not “16x9”.",
        ),
        (
            "x --ar 0:1",
            "--ar takes a shape as width:height in whole numbers from 1 to 999, like 16:9, "
            "not “0:1”.",
        ),
        (
            "x --ar 1000:1",
            "--ar takes a shape as width:height in whole numbers from 1 to 999, like 16:9, "
            "not “1000:1”.",
        ),
        (
            "x --ar 16:9 on a hill",
            "--ar takes a shape as width:height in whole numbers from 1 to 999, like 16:9, "
            "not “16:9 on a hill”.",
        ),
        ("x --chaos", "--chaos needs a value, like --chaos 20."),
        ("x --no", "--no needs a value, like --no text, people."),
        ("x --ar --v 7", "--ar needs a value, like --ar 16:9."),
        (
            "x --tile please",
            "--tile takes no value, not “please”: the words of a prompt go before its parameters.",
        ),
    ],
)
def test_a_malformed_or_out_of_range_value_is_named_with_what_is_allowed(
    prompt: str, expected: str
) -> None:
    assert problems(prompt) == [expected]


def test_no_takes_several_words_up_to_the_next_parameter() -> None:
    parsed = prompts.parse("a street --no cars,  red   bicycles, people --ar 3:2")
    assert parsed.parameters == {"no": "cars, red bicycles, people", "ar": "3:2"}
    assert parsed.problems == []


def test_names_and_choices_are_read_without_regard_to_case() -> None:
    parsed = prompts.parse("x --AR 16:9 --Style RAW --CHAOS 5 --Tile")
    assert parsed.parameters == {"ar": "16:9", "style": "raw", "chaos": "5", "tile": ""}
    assert parsed.problems == []


def test_a_parameter_given_twice_is_refused_whatever_its_spelling() -> None:
    # Not "the last one wins": the prompt must say one thing, as the composer writes it.
    assert problems("x --ar 16:9 --ar 2:3") == ["--ar is given more than once; keep one."]
    assert problems("x --s 100 --stylize 200") == ["--stylize is given more than once; keep one."]
    assert problems("x --tile --TILE") == ["--tile is given more than once; keep one."]
    # The first one is what the prompt is read as.
    assert prompts.parse("x --c 5 --chaos 9").parameters == {"chaos": "5"}


def test_v_and_niji_together_are_refused() -> None:
    assert problems("x --v 7 --niji 6") == ["--v and --niji both choose the model; keep one."]
    assert problems("x --niji 6 --v 7") == ["--niji and --v both choose the model; keep one."]


def test_every_problem_is_said_once_in_the_prompts_order() -> None:
    assert problems("x --chaos 500 --v 5 --chaos 600 --chaos 1") == [
        "--chaos takes a whole number from 0 to 100, not “500”.",
        "--v takes 6.1 or 7, not “5”.",
        "--chaos is given more than once; keep one.",
    ]


def test_unknown_parameters_and_dashes_in_words_are_left_alone() -> None:
    parsed = prompts.parse("a well-lit room -- calm --sref 123 456 --iw 2 --q 2")
    assert parsed.text == "a well-lit room -- calm"
    assert parsed.parameters == {}
    assert parsed.others == ["--sref 123 456", "--iw 2", "--q 2"]
    assert parsed.problems == []
    assert prompts.parse("---ar 16:9").parameters == {}  # not a parameter's word


def test_aspect_preset_reduces_a_ratio_to_the_composers_shapes() -> None:
    assert prompts.aspect_preset("16:9") == "16:9"
    assert prompts.aspect_preset("32:18") == "16:9"
    assert prompts.aspect_preset("2:2") == "1:1"
    assert prompts.aspect_preset("5:4") is None
    assert prompts.aspect_preset("0:4") is None
    assert prompts.aspect_preset("nope") is None


def test_the_spec_for_the_page_is_the_table() -> None:
    spec = json.loads(json.dumps(prompts.spec()))
    by_name = {p["name"]: p for p in spec["parameters"]}
    assert set(by_name) == {p.name for p in prompts.PARAMETERS}
    assert by_name["chaos"]["low"] == 0 and by_name["chaos"]["high"] == 100
    assert by_name["seed"]["high"] == 4294967295
    assert by_name["stylize"]["aliases"] == ["s"]
    assert by_name["v"]["choices"] == ["6.1", "7"]
    assert spec["presets"] == ["1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16", "21:9"]
    assert spec["messages"]["number"] == prompts.messages()["number"]


# The form and the pages.


def _form(prompt: str) -> ImagineForm:
    return ImagineForm({"prompt": prompt, "mode": "fast", "submit_key": str(uuid.uuid4())})


def test_the_form_refuses_an_out_of_range_parameter_with_the_range() -> None:
    form = _form("a fox --chaos 500 --v 5")
    assert not form.is_valid()
    assert form.errors["prompt"] == [
        "--chaos takes a whole number from 0 to 100, not “500”.",
        "--v takes 6.1 or 7, not “5”.",
    ]


def test_the_form_takes_a_prompt_with_good_parameters_as_written() -> None:
    form = _form("a fox --AR 16:9 --sref 123")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["prompt"] == "a fox --AR 16:9 --sref 123"


@pytest.mark.django_db
def test_imagine_with_a_bad_parameter_makes_nothing_and_says_why(
    alice_client: Client, alice: Any
) -> None:
    data = {"prompt": "a fox --chaos 500", "mode": "fast", "submit_key": str(uuid.uuid4())}
    response = alice_client.post(reverse("gallery:imagine"), data, **HX)
    assert response.status_code == 200
    assert "--chaos takes a whole number from 0 to 100, not “500”." in unescape(
        response.content.decode()
    )
    assert response["HX-Retarget"] == "#imagine-form"
    # Without JavaScript: the studio again, 422, the same sentence.
    response = alice_client.post(reverse("gallery:imagine"), data)
    assert response.status_code == 422
    assert "--chaos takes a whole number from 0 to 100, not “500”." in unescape(
        response.content.decode()
    )
    assert not Job.objects.filter(owner=alice).exists()


@pytest.mark.django_db
def test_imagine_keeps_the_parameters_in_the_jobs_prompt(alice_client: Client, alice: Any) -> None:
    data = {
        "prompt": "a fox --ar 16:9 --chaos 20 --no snow, trees",
        "mode": "fast",
        "submit_key": str(uuid.uuid4()),
    }
    response = alice_client.post(reverse("gallery:imagine"), data, **HX)
    assert response.status_code == 200
    assert Job.objects.get(owner=alice).prompt == "a fox --ar 16:9 --chaos 20 --no snow, trees"


@pytest.mark.django_db
def test_the_studio_renders_the_table_and_the_help(alice_client: Client) -> None:
    body = alice_client.get(reverse("gallery:home")).content.decode()
    match = re.search(
        r'<script id="prompt-parameters" type="application/json">(.*?)</script>', body
    )
    assert match
    assert json.loads(match.group(1)) == json.loads(json.dumps(prompts.spec()))
    assert 'class="parameters" id="prompt-parameters-chips"' in body
    assert re.search(r'class="parameters"[^>]*\bhidden\b', body)  # shown by the script only
    assert "Parameter help" in body and "0–4294967295" in body


@pytest.mark.django_db
def test_the_studio_starts_with_the_prompt_of_the_link_escaped(alice_client: Client) -> None:
    prompt = '</textarea><script>alert("x")</script> a fox --ar 2:3 & more'
    response = alice_client.get(reverse("gallery:home") + "?prompt=" + quote(prompt, safe=""))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body
    textarea = re.search(r'<textarea name="prompt"[^>]*>(.*?)</textarea>', body, re.S)
    assert textarea
    assert unescape(textarea.group(1)).strip() == prompt


@pytest.mark.django_db
def test_the_studio_without_a_prompt_link_starts_empty(alice_client: Client) -> None:
    body = alice_client.get(reverse("gallery:home")).content.decode()
    textarea = re.search(r'<textarea name="prompt"[^>]*>(.*?)</textarea>', body, re.S)
    assert textarea and textarea.group(1).strip() == ""


@pytest.mark.django_db
def test_cards_and_the_job_page_offer_the_final_prompt_again(
    alice_client: Client, alice: Any
) -> None:
    job = make_finished_job(alice, prompt="a fox & a hound --ar 3:2")
    Job.objects.filter(pk=job.pk).update(final_prompt="a fox & a hound --ar 3:2 --v 7")
    link = reverse("gallery:home") + "?prompt=" + quote("a fox & a hound --ar 3:2 --v 7", safe="")
    for url in (reverse("gallery:home"), job.get_absolute_url()):
        body = alice_client.get(url).content.decode()
        assert 'data-prompt="a fox &amp; a hound --ar 3:2 --v 7"' in body
        assert f'href="{link}"' in body
        assert "Copy prompt" in body and "Use as prompt" in body


@pytest.mark.django_db
def test_a_job_without_a_prompt_offers_none(alice_client: Client, alice: Any) -> None:
    job = make_job(alice, prompt="")
    body = alice_client.get(job.get_absolute_url()).content.decode()
    assert "Use as prompt" not in body
