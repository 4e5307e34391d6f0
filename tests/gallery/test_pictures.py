"""The user's own pictures: taken in, and sent as each protocol expects (image prompts,
Blend, Describe), against the documented shapes at the transport."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from gallery import audit, references, services
from gallery.models import Job, Reference
from gallery.providers.base import InputImage, ProviderError, TaskStatus, described_prompts
from gallery.providers.cometapi import parse_task
from gallery.providers.piapi_wire import parse_legacy_task, parse_unified_task
from tests.conftest import load
from tests.gallery import test_cometapi, test_piapi
from tests.gallery.factories import png_bytes


def jpeg_with_exif(size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    PILImage.new("RGB", size, "#c04020").save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


PICTURE = InputImage(data=b"\x89PNG fake", content_type="image/png", url="https://s.example/r/1/")
PICTURE_2 = InputImage(
    data=b"\x89PNG other", content_type="image/png", url="https://s.example/r/2/"
)


class Spy:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.answer)

    @property
    def body(self) -> Any:
        return json.loads(self.requests[-1].content)

    @property
    def path(self) -> str:
        return self.requests[-1].url.path


# --- CometAPI -----------------------------------------------------------------------------


def test_cometapi_sends_image_prompts_as_data_urls_in_base64array() -> None:
    spy = Spy(load("cometapi/submit_success.json"))
    with test_cometapi.adapter(spy) as api:
        api.imagine(prompt="a fox", mode="fast", state="s", images=(PICTURE, PICTURE_2))
    assert spy.path == "/mj-fast/mj/submit/imagine"
    assert spy.body["base64Array"] == [
        "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode(),
        "data:image/png;base64," + base64.b64encode(b"\x89PNG other").decode(),
    ]
    assert spy.body["prompt"] == "a fox"


def test_cometapi_blend_and_describe_post_their_documented_bodies() -> None:
    spy = Spy(load("cometapi/submit_success.json"))
    with test_cometapi.adapter(spy, notify_hook="https://studio.example/hooks/c/t/") as api:
        made = api.blend(
            images=(PICTURE, PICTURE_2), dimensions="portrait", mode="relax", state="b"
        )
        assert made.provider_job_id == "1773314942177684"
        assert spy.path == "/mj-relax/mj/submit/blend"
        assert spy.body == {
            "base64Array": [PICTURE.data_url, PICTURE_2.data_url],
            "dimensions": "PORTRAIT",
            "botType": "MID_JOURNEY",
            "state": "b",
            "notifyHook": "https://studio.example/hooks/c/t/",
        }
        api.describe(image=PICTURE, mode="turbo", state="d")
        assert spy.path == "/mj-turbo/mj/submit/describe"
        assert spy.body["base64"] == PICTURE.data_url and spy.body["state"] == "d"


def test_cometapi_describe_result_gives_the_four_prompts() -> None:
    snapshot = parse_task(load("cometapi/fetch_describe_success.json"))
    assert snapshot.status is TaskStatus.SUCCEEDED
    assert len(snapshot.prompts) == 4
    assert snapshot.prompts[0].startswith("a red fox curled in fresh snow")
    assert snapshot.prompts[3].endswith("storybook illustration --ar 3:2")
    assert "1️⃣" not in " ".join(snapshot.prompts)
    # PicReader and its retry are not buttons of ours: each prompt is one click from an
    # imagine instead.
    assert snapshot.buttons == ()
    assert snapshot.final_prompt == ""


def test_an_unfinished_describe_has_no_prompts_yet() -> None:
    data = load("cometapi/fetch_describe_success.json") | {"status": "IN_PROGRESS"}
    assert parse_task(data).prompts == ()


def test_described_prompts_reads_both_numberings_and_keeps_decimals() -> None:
    assert described_prompts("1️⃣ one --s 2.5\n\n2️⃣ two") == ("one --s 2.5", "two")
    assert described_prompts("1. one\n2. two 3.5\n3) three") == ("one", "two 3.5", "three")
    assert described_prompts("   ") == ()
    assert described_prompts("just one prompt") == ("just one prompt",)


# --- PiAPI --------------------------------------------------------------------------------


def test_piapi_puts_image_links_before_the_prompt_and_takes_the_shape_from_ar() -> None:
    spy = Spy(load("piapi/unified_create_success.json"))
    with test_piapi.adapter(spy) as api:
        api.imagine(prompt="a fox --ar 16:9 --v 7", mode="fast", state="s", images=(PICTURE,))
    assert spy.body["input"]["prompt"] == "https://s.example/r/1/ a fox --ar 16:9 --v 7"
    assert spy.body["input"]["aspect_ratio"] == "16:9"


def test_piapi_legacy_imagine_takes_the_shape_from_ar_too() -> None:
    spy = Spy({"task_id": "t-1", "status": "success", "message": ""})
    with test_piapi.adapter(spy, api="legacy") as api:
        api.imagine(prompt="a fox --AR 2:3", mode="relax", state="s")
    assert spy.path == "/mj/v2/imagine" and spy.body["aspect_ratio"] == "2:3"


def test_piapi_blend_and_describe_send_links() -> None:
    spy = Spy(load("piapi/unified_create_success.json"))
    with test_piapi.adapter(spy) as api:
        api.blend(images=(PICTURE, PICTURE_2), dimensions="landscape", mode="fast", state="b")
        assert spy.body["task_type"] == "blend"
        assert spy.body["input"] == {
            "image_urls": [PICTURE.url, PICTURE_2.url],
            "dimension": "landscape",
            "process_mode": "fast",
        }
        api.describe(image=PICTURE, mode="relax", state="d")
        assert spy.body["task_type"] == "describe"
        assert spy.body["input"] == {"image_url": PICTURE.url, "process_mode": "relax"}
    legacy = Spy({"task_id": "t-2", "status": "success", "message": ""})
    with test_piapi.adapter(legacy, api="legacy") as api:
        api.describe(image=PICTURE, mode="fast", state="d")
        assert legacy.path == "/mj/v2/describe" and legacy.body["image_url"] == PICTURE.url


def test_piapi_refuses_pictures_it_could_not_fetch() -> None:
    spy = Spy(load("piapi/unified_create_success.json"))
    with test_piapi.adapter(spy) as api, pytest.raises(ProviderError) as caught:
        api.describe(image=InputImage(data=b"x"), mode="fast", state="d")
    assert caught.value.permanent and "SITE_URL" in caught.value.message
    assert spy.requests == []


@pytest.mark.parametrize(
    "output",
    [
        {"prompts": ["one fox", "two foxes", "", "three"]},
        {"description": "1️⃣ one fox\n\n2️⃣ two foxes\n\n3️⃣ three"},
    ],
)
def test_piapi_describe_results_in_either_shape(output: dict[str, Any]) -> None:
    data = {
        "task_id": "t-9",
        "task_type": "describe",
        "status": "completed",
        "input": {"image_url": "https://s.example/r/1/"},
        "output": output,
    }
    snapshot = parse_unified_task(data)
    assert snapshot.prompts == ("one fox", "two foxes", "three")
    legacy = parse_legacy_task(
        {"task_id": "t-9", "task_type": "describe", "status": "finished", "task_result": output}
    )
    assert legacy.prompts == snapshot.prompts


# --- the audit trail ----------------------------------------------------------------------


def test_the_audit_keeps_a_pictures_size_not_its_bytes() -> None:
    body = {"base64Array": [PICTURE.data_url * 100], "prompt": "a fox"}
    kept = json.loads(audit._text(body))
    assert kept["prompt"] == "a fox"
    assert kept["base64Array"][0].startswith("data:image/png;base64,[")
    assert "characters]" in kept["base64Array"][0]


# --- taking pictures in -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_picture_is_kept_once_as_a_clean_png(alice: Any) -> None:
    first = references.take(alice, jpeg_with_exif())
    again = references.take(alice, jpeg_with_exif())
    assert first.pk == again.pk and Reference.objects.count() == 1
    assert (first.width, first.height, first.shape) == (300, 200, "3:2")
    with first.file.open("rb") as stored, PILImage.open(stored) as kept:
        assert kept.format == "PNG"
        assert not kept.getexif() and "exif" not in kept.info


@pytest.mark.django_db
def test_what_is_not_a_picture_is_refused_with_its_name(alice: Any, settings: Any) -> None:
    with pytest.raises(references.Refused, match=r"notes\.txt is not a picture"):
        references.take(alice, b"hello, not an image", name="notes.txt")
    with pytest.raises(references.Refused, match="empty"):
        references.take(alice, b"", name="blank.png")
    settings.MJWEB_UPLOAD_MAX_BYTES = 1024
    with pytest.raises(references.Refused, match="larger than"):
        references.take(alice, png_bytes((400, 400), "#123456") + b"\0" * 2048, name="big.png")
    assert Reference.objects.count() == 0


@pytest.mark.django_db
def test_a_providers_link_to_a_picture_is_signed_and_expires(
    alice: Any, client: Any, settings: Any
) -> None:
    reference = references.take(alice, png_bytes((80, 60)))
    url = references.link(reference)
    assert url.startswith(settings.SITE_URL)
    path = url.removeprefix(settings.SITE_URL)
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert client.get(path[:-3] + "xx/").status_code == 404
    settings.MJWEB_REFERENCE_LINK_SECONDS = -1
    assert client.get(path).status_code == 404


# --- the submits --------------------------------------------------------------------------


@pytest.mark.django_db
def test_blend_takes_two_to_five_pictures_and_a_known_shape(alice: Any, bob: Any) -> None:
    pictures = [references.take(alice, png_bytes(color=f"#{i:02x}3366")) for i in range(6)]
    with pytest.raises(services.SubmitError, match="2 to 5 pictures; you gave 1"):
        services.blend(owner=alice, images=pictures[:1])
    with pytest.raises(services.SubmitError, match="you gave 6"):
        services.blend(owner=alice, images=pictures)
    with pytest.raises(services.SubmitError, match="square, portrait or landscape"):
        services.blend(owner=alice, images=pictures[:2], dimensions="round")
    with pytest.raises(services.SubmitError, match="not yours"):
        services.blend(owner=bob, images=pictures[:2])
    assert not Job.objects.exists()
    job = services.blend(owner=alice, images=pictures[:3], dimensions="portrait", mode="relax")
    assert (job.action, job.variant, job.mode, job.prompt) == ("blend", "portrait", "relax", "")
    assert references.of(job) == pictures[:3]
    assert job.cost > 0 and job.charge == Job.Charge.HELD
    assert job.caption == "Blend 2 to 5 of your pictures"


@pytest.mark.django_db
def test_describe_and_image_prompts_keep_their_pictures_in_order(alice: Any) -> None:
    one = references.take(alice, png_bytes(color="#102030"))
    two = references.take(alice, png_bytes(color="#405060"))
    described = services.describe(owner=alice, image=one)
    assert described.action == "describe" and references.of(described) == [one]
    imagined = services.submit(owner=alice, prompt="a fox", images=[two, one])
    assert references.of(imagined) == [two, one]
    with pytest.raises(services.SubmitError, match="Up to 5 image prompts"):
        services.submit(owner=alice, prompt="a fox", images=[one] * 6)


# --- the studio's forms -------------------------------------------------------------------


def upload(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/png")


HX = {"HTTP_HX_REQUEST": "true"}


def key() -> str:
    return str(uuid.uuid4())


@pytest.mark.django_db
def test_the_studio_blends_pictures_and_offers_a_fresh_form(alice_client: Any, alice: Any) -> None:
    files = [upload(f"p{i}.png", png_bytes(color=f"#{i:02x}8040")) for i in range(3)]
    response = alice_client.post(
        "/blend/",
        {
            "images": files,
            "dimensions": "landscape",
            "mode": "fast",
            "submit_key": "2b1c3d4e-0000-4000-8000-000000000001",
        },
        **HX,
    )
    assert response.status_code == 200
    job = Job.objects.get()
    assert (job.action, job.variant) == ("blend", "landscape")
    assert len(references.of(job)) == 3
    body = response.content.decode()
    assert f'id="job-{job.code}"' in body and 'id="blend-form"' in body
    assert "Blend 2 to 5 of your pictures" in body


@pytest.mark.django_db
def test_the_studio_refuses_a_blend_of_one_and_a_file_that_is_no_picture(
    alice_client: Any,
) -> None:
    one = alice_client.post(
        "/blend/",
        {"images": [upload("a.png", png_bytes())], "mode": "fast", "dimensions": "square"},
        **HX,
    )
    assert one.status_code == 200 and "Choose at least 2 pictures" in one.content.decode()
    assert one["HX-Retarget"] == "#blend-form"
    bad = alice_client.post(
        "/describe/",
        {"images": [upload("notes.png", b"plain words")], "mode": "fast", "submit_key": key()},
        **HX,
    )
    assert "notes.png is not a picture we can use" in bad.content.decode()
    assert bad["HX-Retarget"] == "#describe-form"
    plain = alice_client.post("/describe/", {"mode": "fast"})
    assert plain.status_code == 422 and "Choose at least 1 picture" in plain.content.decode()
    assert not Job.objects.exists() and not Reference.objects.exists()


@pytest.mark.django_db
def test_an_imagine_takes_image_prompts(alice_client: Any) -> None:
    response = alice_client.post(
        "/imagine/",
        {
            "prompt": "a fox --ar 3:2",
            "mode": "fast",
            "images": [upload("ref.png", png_bytes())],
            "submit_key": key(),
        },
        **HX,
    )
    assert response.status_code == 200
    job = Job.objects.get()
    assert job.prompt == "a fox --ar 3:2" and len(references.of(job)) == 1
    page = alice_client.get(job.get_absolute_url()).content.decode()
    reference = references.of(job)[0]
    assert f"/pictures/{reference.code}/" in page
    assert alice_client.get(f"/pictures/{reference.code}/").status_code == 200


@pytest.mark.django_db
def test_a_users_pictures_are_theirs_alone(alice: Any, bob_client: Any) -> None:
    reference = references.take(alice, png_bytes())
    assert bob_client.get(f"/pictures/{reference.code}/").status_code == 404


@pytest.mark.django_db
def test_a_finished_describe_offers_each_prompt_as_an_imagine(
    alice_client: Any, alice: Any
) -> None:
    from tests.gallery.factories import make_finished_job

    job = make_finished_job(
        alice, action="describe", prompt="", buttons=[], described=["a fox <b>in snow</b>", "two"]
    )
    body = alice_client.get(f"/jobs/{job.code}/card/", **HX).content.decode()
    assert body.count('action="/imagine/"') == 2
    assert 'value="a fox &lt;b&gt;in snow&lt;/b&gt;"' in body
    assert "Four prompts written from your picture" in body


# --- the JSON API ------------------------------------------------------------------------


@pytest.fixture
def api(alice: Any) -> Any:
    from django.test import Client

    from mjweb import tokens

    _, plain = tokens.create(alice, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {plain}")


def api_post(client: Any, path: str, body: Any) -> Any:
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def data_url(color: str) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(color=color)).decode()


@pytest.mark.django_db
def test_the_api_takes_image_prompts_blends_and_describes(api: Any, alice: Any) -> None:
    made = api_post(
        api, "/mj/submit/imagine", {"prompt": "a fox", "base64Array": [data_url("#111111")]}
    )
    assert made["code"] == 1
    assert len(references.of(Job.objects.get(code=made["result"]))) == 1
    blended = api_post(
        api,
        "/mj-relax/mj/submit/blend",
        {"base64Array": [data_url("#222222"), data_url("#333333")], "dimensions": "PORTRAIT"},
    )
    assert blended["code"] == 1
    job = Job.objects.get(code=blended["result"])
    assert (job.action, job.variant, job.mode) == ("blend", "portrait", "relax")
    bare = base64.b64encode(png_bytes(color="#444444")).decode()
    described = api_post(api, "/mj/submit/describe", {"base64": bare})
    assert described["code"] == 1
    job = Job.objects.get(code=described["result"])
    assert job.action == "describe"
    Job.objects.filter(pk=job.pk).update(status="succeeded", described=["one fox", "two foxes"])
    task = api.get(f"/mj/task/{job.code}/fetch").json()
    assert task["action"] == "DESCRIBE"
    assert task["promptEn"] == "1\ufe0f\u20e3 one fox\n\n2\ufe0f\u20e3 two foxes"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/mj/submit/blend", {"base64Array": ["data:image/png;base64,AAAA"]}, "not a picture"),
        ("/mj/submit/blend", {"base64Array": "one"}, "must be a list"),
        ("/mj/submit/blend", {"base64Array": [data_url("#101010")]}, "2 to 5 pictures"),
        ("/mj/submit/imagine", {"prompt": "x", "base64Array": ["%%%"]}, "is not base64"),
        (
            "/mj/submit/imagine",
            {"prompt": "x", "base64Array": [data_url("#000000")] * 6},
            "at most 5",
        ),
        ("/mj/submit/describe", {"link": "http://169.254.169.254/a.png"}, "not accepted"),
        ("/mj/submit/describe", {}, "base64 is required"),
        (
            "/mj/submit/blend",
            {"base64Array": [data_url("#010101"), data_url("#020202")], "dimensions": "round"},
            "square, portrait or landscape",
        ),
    ],
)
def test_the_api_refuses_bad_pictures_with_code_4(
    api: Any, path: str, body: dict[str, Any], words: str
) -> None:
    answer = api_post(api, path, body)
    assert answer["code"] == 4 and words in answer["description"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_a_body_beyond_its_limit(api: Any, settings: Any) -> None:
    settings.MJWEB_UPLOAD_MAX_BYTES = 1024
    body = json.dumps({"prompt": "x", "base64Array": ["A" * 200_000]})
    response = api.post("/mj/submit/imagine", body, content_type="application/json")
    assert response.status_code == 413
    small = api.post(
        "/mj/submit/action", json.dumps({"taskId": "x" * 70_000}), content_type="application/json"
    )
    assert small.status_code == 413
