"""Provider answers fitted to our columns before anything of them is written.

A provider's answer is untrusted input: a URL longer than its column, a NUL character
(PostgreSQL refuses it in text and in jsonb), a label of a megabyte. Written as it came, one
such answer raises a database error at its job on every poll tick. So every field is checked
and fitted here first; what cannot be kept is dropped, and the reason is said.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gallery.models import Job
from gallery.providers.base import Button, Submission, TaskSnapshot

URL_MAX = Job._meta.get_field("result_url").max_length or 1000
TASK_ID_MAX = Job._meta.get_field("provider_job_id").max_length or 64
FAIL_REASON_MAX = 4000
PROMPT_MAX = 10_000
LABEL_MAX = 200
# Strings inside the provider's raw task object (kept for audit) are cut at this length.
RAW_TEXT_MAX = 10_000


def text(value: str, limit: int) -> str:
    return value.replace("\x00", "")[:limit]


def raw(value: Any) -> Any:
    """The provider's JSON with NUL characters removed and long strings cut."""
    if isinstance(value, dict):
        return {text(str(key), LABEL_MAX): raw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [raw(item) for item in value]
    if isinstance(value, str):
        return text(value, RAW_TEXT_MAX)
    return value


def url(value: str) -> tuple[str, str]:
    """(the URL, "") when it fits a URL column, else ("", why it was dropped)."""
    if not value:
        return "", ""
    if "\x00" in value or any(ch.isspace() for ch in value):
        return "", "the provider's image URL has characters a URL cannot hold"
    if len(value) > URL_MAX:
        return "", f"the provider's image URL is {len(value)} characters long (at most {URL_MAX})"
    if not value.lower().startswith(("https://", "http://")):
        return "", "the provider's image URL is not an http(s) URL"
    return value, ""


def _button(button: Button) -> Button:
    return replace(
        button,
        label=text(button.label, LABEL_MAX),
        custom_id=text(button.custom_id, 500),
        emoji=text(button.emoji, 32),
    )


def snapshot(report: TaskSnapshot) -> tuple[TaskSnapshot, list[str]]:
    """The report with every field fitted, and what had to be dropped (empty: nothing)."""
    image_url, image_problem = url(report.image_url)
    fitted = replace(
        report,
        progress=max(0, min(100, int(report.progress))),
        image_url=image_url,
        buttons=tuple(_button(button) for button in report.buttons),
        fail_reason=text(report.fail_reason, FAIL_REASON_MAX),
        final_prompt=text(report.final_prompt, PROMPT_MAX),
        raw=raw(report.raw),
        prompts=tuple(text(prompt, PROMPT_MAX) for prompt in report.prompts[:4]),
    )
    return fitted, [image_problem] if image_problem else []


def task_id(value: str) -> str:
    """Why the provider's task id cannot be kept in our column ("" when it can)."""
    if not value or len(value) > TASK_ID_MAX or "\x00" in value:
        return f"The provider answered with a task id we cannot keep ({value[:80]!r})."
    return ""


def submission(answer: Submission) -> tuple[Submission, str]:
    """A submit's answer fitted, or why its task id cannot be kept ("" when it can)."""
    problem = task_id(answer.provider_job_id)
    fitted = replace(
        answer, final_prompt=text(answer.final_prompt, PROMPT_MAX), raw=raw(answer.raw)
    )
    return fitted, problem
