"""What never reaches a log: the path token of our webhook URLs.

CometAPI's hook is unsigned; the token in `/hooks/<protocol>/<token>/` is its only
credential, and every delivery's path would otherwise be written by the access log (and by
Django's request log on a 4xx). `RedactHookTokens` rewrites it in every record it sees:
on our console handler (what propagates to the root) and on the access loggers of uvicorn
and gunicorn, which do not propagate (mjweb.apps adds it there). Error reports to Sentry
go through `scrub_event`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_HOOK_TOKEN = re.compile(r"(/hooks/[A-Za-z0-9_-]+/)[^/\s?#\"']+")
REDACTED = r"\1<redacted>"
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access", "django.server")


def redact(text: str) -> str:
    return _HOOK_TOKEN.sub(REDACTED, text)


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactHookTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_redacted(value) for value in record.args)
        return True


def guard_access_logs() -> None:
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactHookTokens) for f in logger.filters):
            logger.addFilter(RedactHookTokens())


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """sentry-sdk's before_send: the request's URL and the message without the token."""
    request = event.get("request")
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        request["url"] = redact(request["url"])
    for key in ("message", "transaction"):
        if isinstance(event.get(key), str):
            event[key] = redact(event[key])
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = redact(logentry[key])
        if isinstance(logentry.get("params"), list):
            logentry["params"] = [_redacted(value) for value in logentry["params"]]
    return event
