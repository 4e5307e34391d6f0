"""Languages and time zones: the switch, a user's saved choice, Accept-Language, dates in the
user's zone, and the Simplified Chinese catalogue itself (complete, and compiled)."""

from __future__ import annotations

import gettext
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from mjweb import tokens
from mjweb.models import ApiToken
from tests.gallery.factories import make_finished_job
from tests.mjweb import pofile

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
PO = LOCALE / "django.po"
MO = LOCALE / "django.mo"
# Placeholders a translation must keep: %(name)s and {name} (and a literal %%).
PLACEHOLDER = re.compile(r"%\(\w+\)[sdf]|\{\w*\}|%%")


# --- The catalogue --------------------------------------------------------------------


def _entries() -> list[pofile.Entry]:
    return [e for e in pofile.read(PO) if e.msgid and not e.obsolete]


def test_every_entry_is_translated_and_none_is_fuzzy() -> None:
    entries = _entries()
    assert len(entries) > 300
    untranslated = [e.msgid for e in entries if not e.translated]
    fuzzy = [e.msgid for e in entries if e.fuzzy]
    assert not untranslated, f"untranslated in {PO.name}: {untranslated}"
    assert not fuzzy, f"fuzzy in {PO.name} (check, then drop the flag): {fuzzy}"


def test_every_translation_keeps_the_placeholders() -> None:
    wrong = []
    for entry in _entries():
        wanted = sorted(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        for text in entry.msgstr.values():
            if sorted(PLACEHOLDER.findall(text)) != wanted and (
                # A singular form may leave out the count its plural spells ("1 credit").
                entry.msgid_plural is None or not set(PLACEHOLDER.findall(text)) <= set(wanted)
            ):
                wrong.append((entry.msgid, text))
    assert not wrong


def test_the_committed_mo_is_what_the_po_compiles_to() -> None:
    """`make messages` compiles the .mo, which is committed (CI has no gettext): one that
    is stale or edited by hand differs from the .po's own catalogue here."""
    with MO.open("rb") as handle:
        compiled: dict[Any, str] = dict(gettext.GNUTranslations(handle)._catalog)  # type: ignore[attr-defined]
    expected: dict[Any, str] = {}
    for key, text in pofile.catalogue(pofile.read(PO)).items():
        msgid, _nul, form = key.partition("\x00")
        expected[(msgid, int(form)) if form else msgid] = text
    # msgfmt leaves POT-Creation-Date out of the compiled header.
    expected[""] = re.sub(r"POT-Creation-Date: [^\n]*\n", "", expected[""])
    assert compiled == expected, "locale/: run `make messages` and commit the .mo"


def test_the_reader_sees_what_msgfmt_writes(tmp_path: Path) -> None:
    """The reader itself: contexts, plurals, fuzzy and obsolete entries, continued lines."""
    po = tmp_path / "t.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Plural-Forms: nplurals=1; plural=0;\\n"\n\n'
        '#, fuzzy\nmsgid "Old"\nmsgstr "旧"\n\n'
        'msgctxt "rate period"\nmsgid "h"\nmsgstr "小时"\n\n'
        'msgid "%(n)d second"\nmsgid_plural "%(n)d seconds"\nmsgstr[0] "%(n)d 秒"\n\n'
        'msgid ""\n"Two "\n"lines"\nmsgstr "两行"\n\n'
        'msgid "Empty"\nmsgstr ""\n\n'
        '#~ msgid "Gone"\n#~ msgstr "没了"\n',
        encoding="utf-8",
    )
    entries = pofile.read(po)
    assert [e.msgid for e in entries] == [
        "",
        "Old",
        "h",
        "%(n)d second",
        "Two lines",
        "Empty",
        "Gone",
    ]
    assert entries[1].fuzzy and entries[-1].obsolete and not entries[5].translated
    assert pofile.catalogue(entries) == {
        "": "Plural-Forms: nplurals=1; plural=0;\n",
        "rate period\x04h": "小时",
        "%(n)d second\x000": "%(n)d 秒",
        "Two lines": "两行",
    }


def test_the_studio_words_read_as_midjourney_s_chinese_users_know_them() -> None:
    from mjweb import catalogue

    with translation.override("zh-hans"):
        labels = {name: str(catalogue.action(name).label) for name in catalogue.ACTION_NAMES}
        modes = [str(mode.label) for mode in catalogue.MODES]
        zoom = catalogue.action("zoom_out")
        shown, sent = zoom.button_text(None, "2x"), zoom.button_label(None, "2x")
    assert labels["upscale"] == "放大" and labels["variation"] == "变化"
    assert labels["reroll"] == "重新生成" and labels["vary_region"] == "局部重绘"
    assert labels["pan"] == "平移" and labels["zoom_out"] == "缩小"
    assert labels["blend"] == "混图" and labels["describe"] == "图生文"
    assert modes == ["快速", "慢速", "极速"]
    # What the card shows is Chinese; what goes to the provider stays Midjourney's words.
    assert shown == "缩小 2x" and sent == "Zoom Out 2x"


# --- Choosing the language ------------------------------------------------------------


@pytest.mark.django_db
def test_accept_language_zh_hans_gives_chinese_pages(client: Client) -> None:
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9,en;q=0.5")
    html = page.content.decode()
    assert page.status_code == 200 and '<html lang="zh-hans">' in html
    assert "忘记密码？" in html and "Forgot your password?" not in html
    assert page["Content-Language"] == "zh-hans"
    english = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.8")
    assert "Forgot your password?" in english.content.decode()


@pytest.mark.django_db
def test_the_switch_sets_the_language_for_an_anonymous_visitor(client: Client) -> None:
    back = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/accounts/login/"})
    assert back.status_code == 302 and back["Location"] == "/accounts/login/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    # The cookie wins over the browser's Accept-Language.
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "忘记密码？" in html
    # The header offers the other language, named in itself.
    assert 'name="language" value="en"' in html and ">English</button>" in html


@pytest.mark.django_db
def test_the_switch_refuses_a_language_the_site_does_not_have(client: Client) -> None:
    answer = client.post(reverse("set_language"), {"language": "fr", "next": "/accounts/login/"})
    assert answer.status_code == 400
    assert "“fr” is not a language of this site." in answer.content.decode()
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies
    assert "Forgot your password?" in client.get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_the_switch_saves_a_signed_in_user_s_choice(alice: Any, alice_client: Client) -> None:
    alice_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    alice.refresh_from_db()
    assert alice.language == "zh-hans"
    # A new browser, where nothing but the account says Chinese.
    fresh = Client()
    fresh.force_login(alice)
    html = fresh.get(reverse("billing:statement"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "积分变动" in html or "暂无积分变动" in html


@pytest.mark.django_db
def test_a_saved_language_wins_over_accept_language(alice: Any, alice_client: Client) -> None:
    alice.language = "en"
    alice.save(update_fields=["language"])
    html = alice_client.get(reverse("preferences"), HTTP_ACCEPT_LANGUAGE="zh-Hans").content.decode()
    assert "Language and time zone" in html and "语言和时区" not in html
    alice.language = "zh-hans"
    alice.save(update_fields=["language"])
    html = alice_client.get(reverse("preferences"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "语言和时区" in html


@pytest.mark.django_db
def test_no_saved_language_follows_the_browser(alice: Any, alice_client: Client) -> None:
    assert alice.language == ""
    html = alice_client.get(reverse("preferences"), HTTP_ACCEPT_LANGUAGE="zh-Hans").content.decode()
    assert "语言和时区" in html


# --- The settings page and time zones -------------------------------------------------


@pytest.mark.django_db
def test_the_settings_page_saves_language_and_time_zone(alice: Any, alice_client: Client) -> None:
    answer = alice_client.post(
        reverse("preferences"), {"language": "zh-hans", "time_zone": " Asia/Shanghai "}
    )
    assert answer.status_code == 302
    alice.refresh_from_db()
    assert (alice.language, alice.time_zone) == ("zh-hans", "Asia/Shanghai")
    assert alice_client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    html = alice_client.get(reverse("preferences")).content.decode()
    assert "语言和时区已保存。" in html and "Asia/Shanghai" in html
    # Back to the browser's choice and the server's zone.
    alice_client.post(reverse("preferences"), {"language": "", "time_zone": ""})
    alice.refresh_from_db()
    assert (alice.language, alice.time_zone) == ("", "")


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "asia/shanghai", "../etc/passwd", "x" * 80])
def test_an_invalid_time_zone_is_refused_with_a_clear_error(
    alice: Any, alice_client: Client, zone: str
) -> None:
    answer = alice_client.post(reverse("preferences"), {"language": "", "time_zone": zone})
    assert answer.status_code == 400
    html = answer.content.decode()
    assert "is not a time zone" in html or "at most 64 characters" in html
    alice.refresh_from_db()
    assert alice.time_zone == ""


@pytest.mark.django_db
def test_an_invalid_language_is_refused(alice: Any, alice_client: Client) -> None:
    answer = alice_client.post(reverse("preferences"), {"language": "klingon", "time_zone": ""})
    assert answer.status_code == 400
    assert "Select a valid choice" in answer.content.decode()


@pytest.mark.django_db
def test_the_time_zone_shifts_a_shown_date(alice: Any, alice_client: Client) -> None:
    token, _plain = tokens.create(alice, "my script")
    ApiToken.objects.filter(pk=token.pk).update(created_at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    assert "2026-03-01 22:30" in alice_client.get(reverse("api_tokens")).content.decode()
    alice.time_zone = "Asia/Shanghai"
    alice.save(update_fields=["time_zone"])
    html = alice_client.get(reverse("api_tokens")).content.decode()
    assert "2026-03-02 06:30" in html and "2026-03-01 22:30" not in html
    alice.time_zone = "America/New_York"
    alice.save(update_fields=["time_zone"])
    assert "2026-03-01 17:30" in alice_client.get(reverse("api_tokens")).content.decode()


@pytest.mark.django_db
def test_a_zone_no_longer_known_falls_back_to_the_server_s(
    alice: Any, alice_client: Client
) -> None:
    """A name saved once and later dropped from tzdata must not break every page."""
    type(alice).objects.filter(pk=alice.pk).update(time_zone="Nowhere/Gone")
    token, _plain = tokens.create(alice, "my script")
    ApiToken.objects.filter(pk=token.pk).update(created_at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    answer = alice_client.get(reverse("api_tokens"))
    assert answer.status_code == 200 and "2026-03-01 22:30" in answer.content.decode()


# --- Every page in Chinese ------------------------------------------------------------

ENGLISH_LEFT = ("Log out", "Buy credits", "Skip to content", "Studio</a>", "Your jobs", "Details")


@pytest.mark.django_db
def test_the_signed_in_pages_render_in_chinese(alice: Any) -> None:
    alice.language = "zh-hans"
    alice.save(update_fields=["language"])
    client = Client()
    client.force_login(alice)
    job = make_finished_job(alice)
    pages = {
        "home": reverse("gallery:home"),
        "job": reverse("gallery:job", args=[job.code]),
        "credits": reverse("billing:statement"),
        "tokens": reverse("api_tokens"),
        "settings": reverse("preferences"),
        "password": reverse("password_change"),
    }
    for name, url in pages.items():
        answer = client.get(url)
        html = answer.content.decode()
        assert answer.status_code == 200, name
        assert '<html lang="zh-hans">' in html and "退出登录" in html, name
        assert not [word for word in ENGLISH_LEFT if word in html], name
    credits = client.get(pages["credits"]).content.decode()
    assert "可用" in credits and "进行中任务冻结" in credits


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["login", "signup", "password_reset"])
def test_the_anonymous_pages_render_in_chinese(client: Client, name: str) -> None:
    answer = client.get(reverse(name), HTTP_ACCEPT_LANGUAGE="zh-Hans")
    html = answer.content.decode()
    assert answer.status_code == 200
    assert '<html lang="zh-hans">' in html and "登录" in html and "注册" in html
    assert "Log in</a>" not in html and "Sign up</a>" not in html


@pytest.mark.django_db
def test_a_sign_up_refusal_reads_in_chinese(client: Client, alice: Any) -> None:
    answer = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "ALICE@example.com",
            "password1": "a long passphrase 9",
            "password2": "a long passphrase 9",
        },
        HTTP_ACCEPT_LANGUAGE="zh-Hans",
    )
    assert answer.status_code == 200
    assert "该邮箱已被其他账户使用。" in answer.content.decode()


@pytest.mark.django_db
def test_the_json_api_keeps_its_paths_and_english(client: Client) -> None:
    """No language prefix anywhere: the API's routes answer where they always did."""
    answer = client.get("/api/openapi.json", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("application/json")
    assert reverse("gallery:api_openapi") == "/api/openapi.json"


@pytest.mark.django_db
def test_a_chinese_request_leaves_the_thread_and_the_operators_records_in_english(
    alice: Any, alice_client: Client
) -> None:
    """What a request in the user's language writes for operators (the hold's ledger memo)
    is English, and the thread goes back to the site's language after it: the next work it
    runs (a task run in-process, another request) does not speak Chinese."""
    from billing.models import LedgerEntry
    from gallery.models import Job

    alice.language = "zh-hans"
    alice.save(update_fields=["language"])
    translation.deactivate()
    answer = alice_client.post(
        reverse("gallery:imagine"),
        {"prompt": "a kite", "mode": "fast", "submit_key": "6a3c1a52-5a34-4a51-9d3e-0d5f1b0b6a11"},
    )
    assert answer.status_code in (200, 302), answer.content.decode()[-2000:]
    job = Job.objects.get(owner=alice, prompt="a kite")
    memo = (
        LedgerEntry.objects.filter(job__owner=alice)
        .order_by("-pk")
        .values_list("memo", flat=True)[0]
    )
    assert memo == "Held for imagine (fast)", memo
    assert translation.get_language() == settings.LANGUAGE_CODE
    assert job.mode_name == "Fast"
