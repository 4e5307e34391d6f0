"""Every URL of the site, fed hostile input: nothing answers 500.

Each URL the resolver knows (the studio, the accounts, the webhooks, /metrics and every
admin page) is asked by an anonymous visitor, a user and a superuser, with GET and POST:
query strings and form fields holding a NUL, invalid UTF-8, numbers too large for any
column, Infinity and NaN, oversized values; bodies of invalid UTF-8, JSON nested a hundred
thousand deep, JSON with NaN and 1e999, and a body over the upload limit. A 4xx, a redirect
or a page are all fine answers; a 500 is a defect. It runs on PostgreSQL in CI, where a NUL
or an over-long value reaches a real column type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch

from gallery import webhooks
from gallery.models import Image, Job
from tests.gallery.factories import make_finished_job

pytestmark = pytest.mark.django_db(transaction=False)

NUL = "a\x00b"
HUGE = "9" * 400  # more digits than any integer column
LONG = "x" * 100_000
HOSTILE_QUERY = (
    "?q=a%00b&page=99999999999999999999999&cursor=%ff%fe%00&status=%00&since=9999-99-99"
    "&until=1e999&next=//evil.example/&o=999&p=-1&e=1&all=%00&_changelist_filters=%ff"
    "&id__gt=%00&mode=%00&action=%00&size=NaN&index=Infinity"
)
FORM_FIELDS = (
    "prompt", "mode", "submit_key", "next", "favorite", "username", "password", "password1",
    "password2", "email", "old_password", "new_password1", "new_password2", "q", "task_id",
    "code", "index", "remix", "enabled", "amount", "reason", "post", "action",
    "_selected_action", "select_across", "credits", "balance",
)  # fmt: skip
DEEP = b"[" * 100_000 + b"]" * 100_000


def form(value: str) -> dict[str, str]:
    return dict.fromkeys(FORM_FIELDS, value)


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
NASTY_JSON = b'{"id": "1", "status": "SUCCESS", "timestamp": Infinity, "progress": NaN, "n": 1e999}'
TOO_BIG = b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)

# (description, keyword arguments for Client.post)
POSTS: list[tuple[str, dict[str, Any]]] = [
    ("form with NUL", {"data": form(NUL)}),
    ("form with huge numbers", {"data": form(HUGE)}),
    ("form with 100k characters", {"data": form(LONG)}),
    ("form with NaN", {"data": form("NaN")}),
    (
        "invalid UTF-8 form body",
        {"data": b"prompt=\xff\xfe\xfa&mode=\xc3\x28", "content_type": FORM},
    ),
    ("JSON nested 100k deep", {"data": DEEP, "content_type": JSON}),
    ("JSON with NaN, Infinity and 1e999", {"data": NASTY_JSON, "content_type": JSON}),
    (
        "JSON with a NUL id",
        {"data": b'{"id": "12\\u0000", "task_id": "1\\u0000"}', "content_type": JSON},
    ),
    ("JSON that is a list", {"data": b"[1, 2, 3]", "content_type": JSON}),
    ("JSON huge integer", {"data": b'{"id": ' + b"9" * 5000 + b"}", "content_type": JSON}),
    ("body over the upload limit", {"data": TOO_BIG, "content_type": JSON}),
]

# Long-lived responses the test client would sit on: answered elsewhere (tests/gallery).
STREAMS = {"gallery:stream"}


def _patterns(
    patterns: list[URLPattern | URLResolver], namespace: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _patterns(entry.url_patterns, inner)
        elif entry.name:
            yield f"{namespace}{entry.name}", entry


def _argument_names(entry: URLPattern) -> list[str]:
    converters = getattr(entry.pattern, "converters", None)
    if converters:
        return list(converters)
    regex = getattr(entry.pattern, "_regex", "") or ""
    return re.findall(r"\(\?P<(\w+)>", str(regex))


def _value(name: str, entry: URLPattern, code: str, admin_pk: str) -> str:
    converter = getattr(entry.pattern, "converters", {}).get(name)
    words = getattr(converter, "regex", "")
    if name in ("code", "share_code"):
        return code
    if name == "token":
        return webhooks.path_token()
    if name == "size":
        return Image.SIZES[0]
    if name == "kind":
        return Image.Kind.GRID
    if name in ("index",):
        return "1" if "|" in words or words == "[0-9]+" else "0"
    if "|" in words:
        return words.split("|")[0].replace("\\", "")
    if name == "app_label":
        return "gallery"
    if name in ("object_id", "pk", "id"):
        return admin_pk
    if name == "uidb64":
        return "MQ"
    return "1"


def urls(code: str, admin_pk: str) -> list[tuple[str, str]]:
    found = []
    for name, entry in _patterns(get_resolver().url_patterns):
        if name in STREAMS:
            continue
        kwargs = {arg: _value(arg, entry, code, admin_pk) for arg in _argument_names(entry)}
        try:
            found.append((name, reverse(name, kwargs=kwargs)))
        except NoReverseMatch:
            found.append((name, ""))
    return found


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.com", "root pass 9")


def clients(alice: Any, superuser: Any) -> dict[str, Client]:
    signed_in = Client()
    signed_in.force_login(alice)
    admin = Client()
    admin.force_login(superuser)
    return {"anonymous": Client(), "user": signed_in, "superuser": admin}


def ask(client: Client, url: str, post: dict[str, Any] | None) -> str:
    """What went wrong ("" when nothing did): a GET when `post` is None, else that POST."""
    try:
        # The PiAPI hook's secret rides along, so that its body is read too.
        secret = {"HTTP_X_WEBHOOK_SECRET": webhooks.piapi_secret()}
        answer = client.get(url) if post is None else client.post(url, **post, **secret)
    except Exception as exc:  # what the server would answer 500 with
        return f"raised {type(exc).__name__}: {str(exc)[:200]}"
    return f"answered {answer.status_code}" if answer.status_code >= 500 else ""


def test_every_url_answers_hostile_input_without_a_500(alice: Any, superuser: Any) -> None:
    settings.MJ_WEBHOOKS = False
    by_whom = clients(alice, superuser)
    job = make_finished_job(alice)
    code = str(job.code)
    # Shared under its own code, so that its public page and picture (/s/<code>/) are asked.
    Job.objects.filter(pk=job.pk).update(share_code=job.code)
    # admin pages of an object: one that may exist, and ids no column holds
    listed = urls(code, "1") + [
        (name, url)
        for pk in (NUL, HUGE)
        for name, url in urls(code, pk)
        if name.startswith("admin:") and url
    ]
    unreachable = [name for name, url in listed if not url]
    assert not unreachable, f"no URL could be built for {unreachable}"
    assert len(listed) > 200  # the admin's pages included
    failures: list[str] = []
    asked = 0
    for name, url in listed:
        # A fresh job for each URL: a POST to delete or cancel must not spoil the next one.
        if "<" not in url and "/jobs/" in url:
            url = re.sub(r"/jobs/[0-9a-f-]{36}/", f"/jobs/{make_finished_job(alice).code}/", url)
        for who, client in by_whom.items():
            if who == "anonymous" and name.startswith("admin:"):
                continue  # the login redirect, every time
            for label, kwargs in [("GET", None), *POSTS]:
                asked += 1
                failure = ask(client, url + HOSTILE_QUERY, kwargs)
                if failure:
                    failures.append(f"{who} {label} {url}: {failure}")
    assert not failures, f"{len(failures)} of {asked} requests failed:\n" + "\n".join(failures[:40])
