"""Small strict readers for settings that come from the environment.

Every deploy-specific value goes through one of these, so a typo such as
``DEBUG=ture`` fails loudly at start-up instead of silently meaning False.
Secrets may also come from ``NAME_FILE`` (a path), the usual container convention.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is not None:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return None


def env_str(name: str, default: str = "", *, keep_empty: bool = False) -> str:
    """The variable, stripped; unset or empty gives `default` (`MEDIA_ROOT=` in a .env must
    not store pictures in the working directory), unless `keep_empty` says an empty value
    means something of its own."""
    value = _raw(name)
    if value is None or (not value.strip() and not keep_empty):
        return default
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}"
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value.strip() == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def database_from_url(
    url: str, *, pool_max_size: int = 0, persistent: bool = True
) -> dict[str, object]:
    """DATABASES['default'] from ``postgres://user:pass@host:5432/name`` (the socket form
    ``postgres://user@%2Fvar%2Frun%2Fpostgresql/name`` too) or ``sqlite:///path``, parsed by
    dj-database-url.

    `persistent` keeps a connection for 60 s after a request; off under ASGI, where every
    request runs in a thread of its own and a kept connection would never be used again."""
    try:
        parsed = dj_database_url.parse(url)
    except ValueError as exc:  # an unknown scheme, a malformed URL
        raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from exc
    engine = parsed["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return sqlite_database(Path(str(parsed["NAME"])))
    if engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_URL must be PostgreSQL or SQLite; got {engine}")
    options: dict[str, object] = dict(parsed.get("OPTIONS") or {})
    if pool_max_size > 0:
        options["pool"] = {"min_size": 1, "max_size": pool_max_size, "timeout": 20}
    return {
        "ENGINE": engine,
        "NAME": parsed["NAME"] or "postgres",
        "USER": parsed["USER"],
        "PASSWORD": parsed["PASSWORD"],
        "HOST": parsed["HOST"],
        "PORT": str(parsed["PORT"] or ""),
        # The pool keeps connections; Django's own persistence must stay off with it.
        "CONN_MAX_AGE": 60 if persistent and pool_max_size <= 0 else 0,
        "CONN_HEALTH_CHECKS": pool_max_size <= 0,
        "OPTIONS": options,
    }


def sqlite_database(path: Path) -> dict[str, object]:
    return {
        # Django's backend, keeping the planner's statistics current (mjweb.sqlite.base).
        "ENGINE": "mjweb.sqlite",
        "NAME": str(path),
        "OPTIONS": {
            # The web server and the worker write at the same time: WAL lets readers go on
            # while one writes, and IMMEDIATE takes the write lock up front so two writers
            # queue on busy_timeout instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
