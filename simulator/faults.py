"""Fault injection for the provider simulator: the ways the real services fail, on demand.

Two ways in (docs/provider-protocols.md sections 1.5-1.11, 2.5, 3.2 and 4 describe each one):

- Configuration, for the whole server: a `Faults` value, set at construction or swapped on
  a running server (`srv.faults = Faults(queue_limit=1)`), or parsed from "k=v,k=v"
  (`manage.py simulator --faults`, `MJ_SIMULATOR_FAULTS`).
- Directives, for one job: words like `[sim:fail]` in its prompt, so a test or a person at
  the studio can make one job misbehave. They stay in the prompt the product stores (they
  are just words), so a reroll of such a job inherits them.

`Faults()` is the behaviour of an unconfigured server: no latency, no errors, and the
banned-word checks that every real proxy has (an ordinary prompt never trips them).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

# -- per-job directives -------------------------------------------------------------------

DIRECTIVE = re.compile(r"\[sim:([a-z0-9-]+)\]", re.IGNORECASE)
DIRECTIVES: dict[str, str] = {
    "stuck": "stays IN_PROGRESS at some progress forever (the proxy lost the Discord message)",
    "fail": "FAILURE with failReason 任务超时 (the proxy's own 5-minute timeout)",
    "fail-en": "FAILURE with failReason [Invalid parameter] Invalid value (a Midjourney embed)",
    "expire": "its image link answers 404 once the task has finished (an expired CDN link)",
    "slow": "takes ten times longer (relax hours, a busy account)",
    "429": "its submit answers HTTP 429 the first times, then goes through",
    "500": "its submit answers HTTP 500 the first times, then goes through",
    "timeout": "its submit hangs past the client's timeout the first times, creating nothing",
    "malformed": "the first fetch or list answer that carries it is cut-off JSON",
    "blank": 'stays at status "" a long time (a gateway row before its first refresh)',
}
SUBMIT_DIRECTIVES = ("429", "500", "timeout")

SLOW_FACTOR = 10.0
# Fractions of a task's duration: where a stuck task stops, when failures strike (after
# IN_PROGRESS has begun at 0.15, so the job is seen running first), how long "" lasts.
STUCK_AT = 0.5
FAIL_AT = 0.6
INVALID_AT = 0.3
LATE_BANNED_AT = 0.3
BLANK_FOR = 5.0

# failReason texts, verbatim from the sources (section 1.6 and 4)
TIMEOUT_REASON = "任务超时"
INVALID_REASON = "[Invalid parameter] Invalid value"
BANNED_REASON = (
    "[Banned prompt detected] Sorry! Our AI moderator thinks this prompt is probably against "
    "our community standards."
)
# novicezk's pre-check answer (code 24); properties carry promptEn and bannedWord
BANNED_DESCRIPTION = "可能包含敏感词"
# A full queue: novicezk's code 23 and trueai's code 9, the two a CometAPI upstream may be.
QUEUE_FULL: tuple[tuple[int, str], ...] = (
    (23, "队列已满，请稍后尝试"),
    (9, "提交失败，队列已满，请稍后重试"),
)
# PiAPI documents no bodies for these (section 3.4): worded so a reader knows what happened.
PIAPI_QUEUE_FULL = "the concurrent task limit of your plan is reached, please try again later"


def directives(prompt: str) -> tuple[str, ...]:
    """The known directives in a prompt, lower case, in order of appearance, once each."""
    found = (m.group(1).lower() for m in DIRECTIVE.finditer(prompt))
    return tuple(dict.fromkeys(d for d in found if d in DIRECTIVES))


def banned_word(words: Sequence[str], prompt: str) -> str | None:
    """The first of `words` the prompt contains as a whole word (any case), or None."""
    for word in words:
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prompt, re.IGNORECASE):
            return word
    return None


# -- configuration ------------------------------------------------------------------------

_BOOL_TEXT = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_TEXT |= {"0": False, "false": False, "no": False, "off": False, "": False}
_NONE_TEXT = ("", "none", "off")


@dataclass
class Faults:
    """What the whole simulator does wrong. Swap the value on a running server to change it;
    a new value also restarts the error RNG, so `error_rate` draws repeat from `seed`."""

    latency: float = 0.0  # seconds added to every answer (real time, not the fake clock)
    error_rate: float = 0.0  # fraction of API calls answered with a 5xx or 429
    seed: int = 0  # of the error_rate draws
    remix: bool = False  # account-level Remix: reroll / V / pan land in MODAL
    remix_code1: bool = False  # ...answered with code 1, as the new-api gateway rewrites 21
    queue_limit: int | None = None  # unfinished tasks the account holds; then submits fail
    banned_words: tuple[str, ...] = ("bloody", "gore")  # refused at submit (code 24)
    late_banned_words: tuple[str, ...] = ("forbidden",)  # accepted, then failed by Midjourney
    image_ttl: float | None = None  # clock seconds a finished task's image stays reachable
    webhook_duplicates: bool = False  # every webhook delivery sent twice
    webhook_shuffle: bool = False  # a round reversed, a stale state after the terminal one
    submit_failures: int = 2  # how often a [sim:429|500|timeout] submit fails first
    hang: float = 35.0  # how long a [sim:timeout] submit hangs (past a 30 s client timeout)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        for name in ("latency", "hang"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.image_ttl is not None and self.image_ttl < 0:
            raise ValueError("image_ttl must not be negative")
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ValueError("queue_limit must not be negative")
        if self.submit_failures < 0:
            raise ValueError("submit_failures must not be negative")
        self.banned_words = tuple(self.banned_words)
        self.late_banned_words = tuple(self.late_banned_words)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw_error(self) -> int | None:
        """The HTTP status this API call fails with under `error_rate`, or None."""
        if self.error_rate <= 0:
            return None  # no draw at all: the default consumes nothing
        with self._lock:  # server threads draw concurrently
            if self._rng.random() >= self.error_rate:
                return None
            # the statuses CometAPI's error page names as retryable (section 2.2)
            return self._rng.choice((429, 500, 502, 503, 504, 524))

    @classmethod
    def parse(cls, text: str) -> Faults:
        """Faults from "k=v,k=v". A bare name turns a flag on ("remix"); a piece without "="
        after a word list continues it ("banned_words=bloody,gore"); "|" separates words too.
        """
        known = {f.name: f for f in fields(cls) if f.init}
        raw: dict[str, list[str]] = {}
        last = ""
        for piece in (p.strip() for p in text.split(",")):
            if not piece:
                continue
            if "=" in piece:
                name, _, value = piece.partition("=")
                name = name.strip().lower().replace("-", "_")
                if name not in known:
                    raise ValueError(f"unknown fault {name!r} (known: {', '.join(known)})")
                raw[name], last = [value.strip()], name
            elif piece.lower().replace("-", "_") in _FLAGS:
                last = piece.lower().replace("-", "_")
                raw[last] = ["1"]
            elif last in _WORD_LISTS:
                raw[last].append(piece)
            else:
                raise ValueError(f"{piece!r} is not name=value")
        values: dict[str, Any] = {}
        for name, parts in raw.items():
            try:
                values[name] = _convert(name, parts)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(**values)

    def describe(self) -> str:
        """The fields that differ from `Faults()`, as "k=v,k=v" (parse() reads it back)."""
        default = Faults()
        parts = []
        for f in fields(self):
            if not f.init or getattr(self, f.name) == getattr(default, f.name):
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                text = "|".join(value)
            elif isinstance(value, bool):
                text = "1" if value else "0"
            else:
                text = "" if value is None else str(value)
            parts.append(f"{f.name}={text}")
        return ",".join(parts)


_FLAGS = ("remix", "remix_code1", "webhook_duplicates", "webhook_shuffle")
_WORD_LISTS = ("banned_words", "late_banned_words")
_FLOATS = ("latency", "error_rate", "hang")
_INTS = ("seed", "submit_failures")


def _convert(name: str, parts: list[str]) -> Any:
    if name in _WORD_LISTS:
        words = (w.strip() for part in parts for w in re.split(r"[|;]", part))
        return tuple(w for w in words if w)
    value = parts[0]
    if name in _FLAGS:
        if value.lower() not in _BOOL_TEXT:
            raise ValueError(f"{value!r} is not a yes/no value")
        return _BOOL_TEXT[value.lower()]
    if name == "queue_limit":
        return None if value.lower() in _NONE_TEXT else int(value)
    if name == "image_ttl":
        return None if value.lower() in _NONE_TEXT else float(value)
    if name in _INTS:
        return int(value)
    if name in _FLOATS:
        return float(value)
    raise ValueError("cannot be set from text")  # pragma: no cover - every field is listed


# -- runtime state of the faults ----------------------------------------------------------


class FaultState:
    """What the faults remember between requests: attempt counters and pending one-offs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, str], int] = {}
        self._malformed: set[str] = set()
        self._queue_refusals = 0

    def submit_fault(self, faults: Faults, key: str, prompt: str) -> str | None:
        """The directive this submit attempt fails with ("429", "500", "timeout"), or None.

        `key` names the request being retried (the prompt of an imagine, the parent and button
        of an action): each of its submit directives fails it `submit_failures` times, in the
        order they appear, then it goes through.
        """
        with self._lock:
            for directive in directives(prompt):
                if directive not in SUBMIT_DIRECTIVES:
                    continue
                seen = self._attempts.get((directive, key), 0)
                if seen < faults.submit_failures:
                    self._attempts[(directive, key)] = seen + 1
                    return directive
        return None

    def attempts(self, directive: str, key: str) -> int:
        """How often the submit `key` has failed with `directive` so far."""
        with self._lock:
            return self._attempts.get((directive, key), 0)

    def queue_refusal(self) -> tuple[int, str]:
        """The next queue-full answer: novicezk's code 23 and trueai's code 9 in turn."""
        with self._lock:
            answer = QUEUE_FULL[self._queue_refusals % len(QUEUE_FULL)]
            self._queue_refusals += 1
        return answer

    def mark_malformed(self, task_id: str) -> None:
        with self._lock:
            self._malformed.add(task_id)

    def take_malformed(self, task_ids: Sequence[str]) -> bool:
        """Whether an answer carrying these tasks is to be cut off (once per marked task)."""
        with self._lock:
            hit = self._malformed.intersection(task_ids)
            self._malformed -= hit
        return bool(hit)


def malformed(body: bytes) -> bytes:
    """A JSON answer cut off half way, as a gateway that drops the connection leaves it."""
    text = body.decode("utf-8")
    return text[: max(1, len(text) // 2)].encode("utf-8")


# -- webhook deliveries -------------------------------------------------------------------


class _Delivery(Protocol):
    @property
    def task_id(self) -> str: ...

    @property
    def terminal(self) -> bool: ...


D = TypeVar("D", bound=_Delivery)


def shape(due: Sequence[D], faults: Faults, earlier: Mapping[str, D] | None = None) -> list[D]:
    """What one round of due webhook deliveries becomes under the faults.

    Shuffle: the round goes out in reverse order, and after a task's terminal delivery comes
    the state delivered before it (`earlier`), now stale: senders on a thread pool, no
    ordering (section 1.10). Duplicates: each one twice, as retries produce (section 3.2).
    """
    out = list(due)
    if faults.webhook_shuffle:
        out.reverse()
        stale = earlier or {}
        out += [stale[d.task_id] for d in due if d.terminal and d.task_id in stale]
    if faults.webhook_duplicates:
        out = [d for d in out for _ in range(2)]
    return out


@dataclass(frozen=True)
class RawBody:
    """An answer to send as these bytes, not as JSON made from a value (malformed answers)."""

    body: bytes


class NoAnswer:
    """An answer never sent: the connection is closed after a hang."""


NO_ANSWER = NoAnswer()
