"""mjweb.logs: the webhook path token is redacted in every log record and error report."""

from __future__ import annotations

import logging

import pytest

from mjweb import logs

TOKEN = "5547877bba99dbba90af0a57ca9b18de4b4b6a39"


def formatted(msg: str, args: object) -> str:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    logs.RedactHookTokens().filter(record)
    return record.getMessage()


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        # uvicorn's access line
        (
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "POST", f"/hooks/cometapi/{TOKEN}/", "1.1", 200),
        ),
        # Django's request log on a 4xx
        ("Bad Request: %s", (f"/hooks/piapi/{TOKEN}/",)),
        (f"Bad Request: /hooks/cometapi/{TOKEN}/?x=1", ()),
        ("%(path)s", ({"path": f"http://studio.example/hooks/cometapi/{TOKEN}"},)),
    ],
)
def test_a_record_with_the_hook_path_loses_its_token(msg: str, args: object) -> None:
    line = formatted(msg, args)
    assert TOKEN not in line and "/hooks/" in line and "<redacted>" in line


def test_other_paths_are_left_as_they_are() -> None:
    assert formatted("GET %s", ("/jobs/abc/card/",)) == "GET /jobs/abc/card/"


def test_the_access_loggers_and_the_console_carry_the_filter() -> None:
    from django.conf import settings

    for name in logs.ACCESS_LOGGERS:  # added by mjweb.apps once Django has loaded
        assert any(isinstance(f, logs.RedactHookTokens) for f in logging.getLogger(name).filters)
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact"]


def test_an_error_report_loses_the_token() -> None:
    event = {
        "request": {"url": f"https://studio.example/hooks/cometapi/{TOKEN}/"},
        "logentry": {"message": "Bad Request: %s", "params": [f"/hooks/cometapi/{TOKEN}/"]},
        "transaction": f"/hooks/cometapi/{TOKEN}/",
    }
    scrubbed = logs.scrub_event(event, {})
    assert TOKEN not in repr(scrubbed)
    assert scrubbed["request"]["url"] == "https://studio.example/hooks/cometapi/<redacted>/"
