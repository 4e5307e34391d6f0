"""Normalized types every provider adapter returns, and the one error they raise.

Adapters translate each provider's wire protocol into these, so the tasks and views
never look at provider JSON. Ids are strings everywhere.
"""

from __future__ import annotations

import base64
import enum
import functools
import json
import os
import re
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

# Called after every HTTP exchange (for the audit trail): method, path, status, seconds,
# request body, response text, error text.
Recorder = Callable[[str, str, int | None, float, Any, str, str], None]


class TaskStatus(enum.StrEnum):
    PENDING = "pending"  # accepted, not started (queued, submitted, "" on a gateway)
    RUNNING = "running"
    MODAL = "modal"  # waiting for a remix prompt (/mj/submit/modal)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Button:
    """A next step the provider offers on a finished job, mapped to our action names."""

    action: str
    index: int | None
    variant: str
    label: str
    custom_id: str
    emoji: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "index": self.index,
            "variant": self.variant,
            "label": self.label,
            "custom_id": self.custom_id,
            "emoji": self.emoji,
        }


@dataclass(frozen=True)
class Submission:
    """The provider's answer to a submit: its id for the new task, and where it stands."""

    provider_job_id: str
    status: TaskStatus = TaskStatus.PENDING
    message: str = ""
    queue_position: int | None = None
    final_prompt: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputImage:
    """One of the user's pictures sent with a submit (an image prompt, a blend's input, a
    picture to describe): its bytes, for protocols that take them inline, and a link the
    provider may fetch it from, for those that take URLs ("" where the site has none)."""

    data: bytes
    content_type: str = "image/png"
    url: str = ""

    @property
    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


# Describe's four prompts, as Midjourney numbers them: "1️⃣ ...", or "1. ..." in some relays.
_DESCRIBED = re.compile(r"[1-4]\ufe0f?\u20e3\s*|(?:^|\n)\s*[1-4][.)]\s+")


def described_prompts(text: str) -> tuple[str, ...]:
    """The prompts of a Describe result's text (up to four, in order; empty ones dropped)."""
    if not text.strip():
        return ()
    parts = [part.strip() for part in _DESCRIBED.split(text)]
    prompts = [" ".join(part.split()) for part in parts if part.strip()]
    return tuple(prompts[:4])


@dataclass(frozen=True)
class TaskSnapshot:
    """One task as the provider reports it now."""

    provider_job_id: str
    status: TaskStatus
    progress: int = 0
    image_url: str = ""
    buttons: tuple[Button, ...] = ()
    fail_reason: str = ""
    final_prompt: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    # Describe: the prompts the provider wrote from the picture.
    prompts: tuple[str, ...] = ()


# How the providers say the account has run out of money: new-api's `quota_not_enough` (code 4
# or 403), "insufficient credits/quota/balance", and the Chinese 余额不足 / 额度不足.
_OUT_OF_BALANCE = re.compile(
    r"quota_not_enough|quota is not enough|insufficient[ _](credit|quota|balance|fund)"
    r"|not enough (credit|quota|balance)|余额不足|额度不足",
    re.IGNORECASE,
)


class ProviderError(Exception):
    """Anything that went wrong talking to a provider.

    `permanent` decides what the job does next: a permanent error fails it (and releases
    its credits); a transient one (timeouts, 5xx, 429, a full queue) is retried with backoff.
    `message` is the provider's own text when it gave one, kept verbatim.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        fail_kind: str = "provider_error",
        status_code: int | None = None,
        code: int | str | None = None,
        busy: bool = False,
        words: str = "",
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        # The provider's own words in `message`, verbatim ("" when it gave none): what the
        # user is shown as "Provider said:". The rest of `message` is ours, for the operator.
        self.words = words
        # The request may have reached the provider and been acted on (the answer was lost on
        # the way back): a submit's outcome is then unknown, and sending it again could make a
        # second task.
        self.maybe_sent = maybe_sent
        self.permanent = permanent
        # The provider is up but has no room now (HTTP 429, a full queue): worth retrying for
        # as long as the job may still wait, not just a few times.
        self.busy = busy
        self.fail_kind = fail_kind
        self.status_code = status_code
        self.code = code

    @property
    def refused_account(self) -> bool:
        """The provider refused the account itself (its key), not this one request."""
        return self.status_code in (401, 403) and not self.out_of_balance

    @property
    def out_of_balance(self) -> bool:
        """The account has no money left at the provider (new-api's `quota_not_enough`,
        HTTP 402, or the words for it)."""
        text = f"{self.words} {self.message}"
        return self.status_code == 402 or bool(_OUT_OF_BALANCE.search(text))

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return (
            f"ProviderError({self.message!r}, {kind}, status={self.status_code}, code={self.code})"
        )


@dataclass(frozen=True)
class Hooks:
    """Where a provider may call us back ("" for none), handed in by the product."""

    cometapi: str = ""
    piapi: str = ""
    piapi_secret: str = ""


class Provider(ABC):
    """What the tasks need from a provider. One instance per unit of work; close() it."""

    name: str
    # Remix asks for the prompt before the press (the protocol takes it with the press),
    # rather than after it, when the provider parks the new task in MODAL.
    REMIX_ASKS_FIRST = False

    @abstractmethod
    def imagine(
        self, *, prompt: str, mode: str, state: str, images: tuple[InputImage, ...] = ()
    ) -> Submission:
        """A new grid from the prompt; `images` are image prompts (reference pictures)."""

    def blend(
        self, *, images: tuple[InputImage, ...], dimensions: str, mode: str, state: str
    ) -> Submission:
        """A grid blending 2-5 pictures; `dimensions` "square", "portrait" or "landscape"."""
        raise ProviderError("This provider does not offer Blend.", permanent=True)

    def describe(self, *, image: InputImage, mode: str, state: str) -> Submission:
        """Four prompts written from a picture (TaskSnapshot.prompts once it succeeds)."""
        raise ProviderError("This provider does not offer Describe.", permanent=True)

    @abstractmethod
    def action(
        self,
        *,
        parent_job_id: str,
        button: Button,
        mode: str,
        state: str,
        prompt: str = "",
        remix: bool = False,
        mask: InputImage | None = None,
    ) -> Submission:
        """Press a button of a finished task. `prompt` is an edited prompt where the provider
        takes one with the press (PiAPI reroll/variation, Vary (Region), Custom Zoom's
        --zoom); "" keeps the parent's. `remix` asks the provider to wait for a prompt (MODAL)
        where it supports that. `mask`: Vary (Region)'s region (white repaints), for a
        provider that takes it with the press; midjourney-proxy asks for it in MODAL."""

    @abstractmethod
    def modal(
        self, *, provider_job_id: str, prompt: str, mode: str, mask: InputImage | None = None
    ) -> Submission:
        """Answer a task waiting in MODAL (Remix, Vary (Region), Custom Zoom) with its prompt
        and, for Vary (Region), its mask, in the job's speed mode. The returned id is the task
        to follow from now on: the same one or a new one, depending on the service."""

    @abstractmethod
    def fetch(self, provider_job_id: str) -> TaskSnapshot | None:
        """The task, or None when the provider does not know this id."""

    @abstractmethod
    def fetch_many(self, provider_job_ids: Iterable[str]) -> dict[str, TaskSnapshot]:
        """Every known task among the ids, in one call where the provider allows it."""

    def fetch_each(self, provider_job_ids: Iterable[str]) -> Iterator[tuple[str, TaskSnapshot]]:
        """Every known task among the ids, each as soon as it is read, so the caller can apply
        it at once. With a batch read they all come together."""
        yield from self.fetch_many(provider_job_ids).items()

    def find_task(self, state: str) -> TaskSnapshot | None:
        """The task whose `state` is this one, from the provider's own task list, or None when
        it lists no such task. Only where `lists_tasks` says the provider offers a list."""
        return None

    # Whether `find_task` can look (the operator says the provider answers a task list).
    lists_tasks = False

    @abstractmethod
    def image_hosts(self) -> set[str]:
        """Host names whose image URLs this provider hands out and we may download."""

    def close(self) -> None:  # pragma: no cover - trivial default
        return None

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Failure texts seen from Midjourney, the proxies and PiAPI, English and Chinese, mapped to
# our fail kinds. Order matters: "Request cancelled due to image filters" is a rejection.
_FAILURE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "rejected_prompt",
        (
            "banned",
            "敏感词",
            "违规",
            "image denied",
            "request cancelled due to",
            "filters",
            "moderation",
            "invalid prompt",
            "prompt check",
        ),
    ),
    ("timeout", ("超时", "timeout", "timed out")),
    ("cancelled", ("取消任务", "cancelled by", "canceled by")),
)


def _finite(text: str) -> float:
    number = float(text)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"a number too large for JSON: {text[:20]}")
    return number


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: str | bytes) -> Any:
    """JSON from a provider (an answer, a webhook), strictly: ValueError for anything else,
    including bytes that are not UTF-8, NaN and Infinity (not JSON, though Python's parser
    takes them), numbers that overflow a float, and nesting too deep to parse."""
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError("the body is not UTF-8 text") from exc


def classify_failure(reason: str) -> str:
    """Our fail kind for a provider's failure text (kept verbatim beside it)."""
    lowered = reason.lower()
    for kind, markers in _FAILURE_MARKERS:
        if any(marker in lowered for marker in markers):
            return kind
    return "provider_error"


def looks_banned(reason: str) -> bool:
    return classify_failure(reason) == "rejected_prompt"


@functools.cache
def ssl_context(verify: bool = True) -> ssl.SSLContext:
    """One SSL context per process, for every provider client and image download (loading
    the CA bundle costs more than a small request); contexts are safe to share between
    threads. SSL_CERT_FILE and SSL_CERT_DIR are honoured."""
    return httpx.create_ssl_context(verify=verify, trust_env=True)


def _new_client(
    base_url: str, headers: dict[str, str], timeout: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        verify=ssl_context(),
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        follow_redirects=False,
    )


_CLIENTS: dict[tuple[Any, ...], httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()
# Accounts whose clients are kept open at once, per process; the oldest is closed past it.
CLIENTS_KEPT = 16


def shared_client(base_url: str, headers: dict[str, str], timeout: float) -> httpx.Client:
    """The process's open client for this base URL, credentials and timeout (httpx clients
    are safe to share between threads). Keyed by the process id too: a forked worker opens
    its own rather than sharing its parent's sockets."""
    key = (os.getpid(), base_url, tuple(sorted(headers.items())), timeout)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None or client.is_closed:
            client = _CLIENTS[key] = _new_client(base_url, headers, timeout, None)
            while len(_CLIENTS) > CLIENTS_KEPT:
                oldest = next(iter(_CLIENTS))
                del _CLIENTS[oldest]  # not closed: another thread may be using it
        return client


class HTTPClient:
    """The HTTP plumbing every adapter (and the console client) shares: one httpx.Client
    (no redirects, explicit timeouts, a `transport=` seam for tests), each exchange timed and
    recorded, transport failures and the HTTP statuses every provider means the same way
    mapped to ProviderError.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        transport: httpx.BaseTransport | None,
        recorder: Recorder | None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder
        headers = {**headers, "Accept": "application/json"}
        # Tests hand in a transport: their client is this adapter's own. Otherwise one client
        # per account and process is kept open, so calls reuse its connections and its SSL
        # context instead of paying for new ones each time.
        self._own_client = transport is not None
        if self._own_client:
            self.client = _new_client(self.base_url, headers, timeout, transport)
        else:
            self.client = shared_client(self.base_url, headers, timeout)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exchange(self, method: str, path: str, body: Any) -> httpx.Response:
        started = time.monotonic()
        status: int | None = None
        text = ""
        error = ""
        try:
            response = self.client.request(method, path, json=body)
            status = response.status_code
            text = response.text
        except httpx.TimeoutException as exc:
            error = f"timeout: {exc.__class__.__name__}"
            raise ProviderError(
                "The provider did not answer in time.",
                permanent=False,
                maybe_sent=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from exc
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            raise ProviderError(
                f"Could not reach the provider ({exc}).",
                permanent=False,
                maybe_sent=not isinstance(exc, httpx.ConnectError),
            ) from exc
        finally:
            if self.recorder is not None:
                self.recorder(method, path, status, time.monotonic() - started, body, text, error)
        return response

    @staticmethod
    def _raise_for_common_status(code: int, detail: str) -> None:
        """Statuses that mean the same with every provider: bad credentials, busy, failing."""
        if code in (401, 403):
            raise ProviderError(
                f"The provider refused our credentials (HTTP {code}): {detail}",
                permanent=True,
                status_code=code,
                words=detail,
            )
        if code == 429 or code >= 500:
            raise ProviderError(
                f"The provider is busy or failing (HTTP {code}): {detail}",
                permanent=False,
                status_code=code,
                busy=code == 429,
                words=detail,
            )

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            return loads(response.content)
        except ValueError as exc:
            raise ProviderError(
                f"The provider's answer was not JSON: {response.text[:200]!r}",
                permanent=False,
                status_code=response.status_code,
            ) from exc


class HTTPProvider(HTTPClient, Provider):
    """A provider adapter spoken over HTTP."""

    @classmethod
    def from_settings(
        cls,
        *,
        name: str,
        base_url: str,
        api_key: str,
        hooks: Hooks,
        transport: httpx.BaseTransport | None,
        recorder: Recorder | None,
        overrides: dict[str, Any] | None = None,
    ) -> Provider:
        """An adapter for one account, its protocol options read from settings now, save
        those the account sets itself (`overrides`)."""
        return cls(  # type: ignore[call-arg]
            name=name,
            base_url=base_url,
            api_key=api_key,
            timeout=settings.MJ_HTTP_TIMEOUT,
            transport=transport,
            recorder=recorder,
            **{**cls.options(hooks), **(overrides or {})},
        )

    @classmethod
    def options(cls, hooks: Hooks) -> dict[str, Any]:
        """The protocol's own constructor arguments, from settings and our hooks."""
        return {}


def error_text(response: httpx.Response, words: Callable[[dict[str, Any]], Iterable[Any]]) -> str:
    """The provider's own words from an error answer: the first non-empty text among what
    `words` picks out of its JSON object, else the body itself (capped)."""
    try:
        data = loads(response.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for word in words(data):
            plain = isinstance(word, str | int | float) and not isinstance(word, bool)
            if plain and (text := str(word).strip()):
                return text
    return response.text.strip()[:500]


def button_from_dict(data: dict[str, Any]) -> Button:
    return Button(
        action=str(data["action"]),
        index=data.get("index"),
        variant=str(data.get("variant", "")),
        label=str(data.get("label", "")),
        custom_id=str(data.get("custom_id", "")),
        emoji=str(data.get("emoji", "")),
    )
