"""Recording every provider exchange (ProviderCall), with secrets redacted and bodies capped."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from gallery.models import Job, ProviderCall

logger = logging.getLogger(__name__)

MAX_BODY = 10_000
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"secret|token|api[_-]?key|password|authorization", re.IGNORECASE)
# Webhook URLs carry an unguessable path token: keep the host, hide the token.
_HOOK_TOKEN = re.compile(r"(/hooks/[a-z]+/)[^/?#\"]+", re.IGNORECASE)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.search(str(key)) and value[key] else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        if value.startswith("data:") and len(value) > 200:
            # A picture sent inline (image prompts, a blend, a mask): its size, not its bytes.
            kind = value[5:].partition(",")[0][:60]
            return f"data:{kind},[{len(value)} characters]"
        return _HOOK_TOKEN.sub(rf"\g<1>{REDACTED}", value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return _HOOK_TOKEN.sub(rf"\g<1>{REDACTED}", value)[:MAX_BODY]
    return json.dumps(redact(value), ensure_ascii=False)[:MAX_BODY]


def recorder(provider: str, job: Job | None = None):  # type: ignore[no-untyped-def]
    """A callback for the adapters' `recorder=` seam that writes one ProviderCall per exchange."""

    def record(
        method: str,
        path: str,
        status: int | None,
        seconds: float,
        body: Any,
        response: str,
        error: str,
    ) -> None:
        try:
            ProviderCall.objects.create(
                job=job,
                provider=provider,
                method=method,
                path=_HOOK_TOKEN.sub(rf"\g<1>{REDACTED}", path)[:500],
                status_code=status,
                latency_ms=max(0, round(seconds * 1000)),
                request_body=_text(body),
                response_body=_text(response),
                error=error[:2000],
            )
        except Exception:
            # The audit must never turn a provider answer into a lost job.
            logger.exception("could not record a provider call to %s", path)

    return record
