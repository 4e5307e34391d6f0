from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from mjweb.env import database_from_url, env_bool, env_int, env_list, env_str

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("yes", True), ("OFF", False), ("", True)]
)
def test_env_bool_is_strict(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", True) is expected


def test_env_bool_refuses_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "ture")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG", False)


def test_env_int_checks_type_and_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_NUM", "12")
    assert env_int("X_NUM", 1, minimum=1) == 12
    monkeypatch.setenv("X_NUM", "twelve")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_NUM", 1, minimum=1)


def test_secrets_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("X_SECRET", raising=False)
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_str("X_SECRET") == "from-a-file"


def test_an_empty_value_is_the_default_unless_empty_means_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("X_ROOT", "  ")
    assert env_str("X_ROOT", "/data/media") == "/data/media"  # `MEDIA_ROOT=` in a .env
    assert env_str("X_ROOT", "/mj-fast", keep_empty=True) == ""  # a prefix taken away
    monkeypatch.setenv("X_ROOT", " /srv/media ")
    assert env_str("X_ROOT", "/data/media") == "/srv/media"


def test_env_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_LIST", " a.example, b.example ,,")
    assert env_list("X_LIST", []) == ["a.example", "b.example"]


def test_database_urls() -> None:
    pg = database_from_url("postgres://mj:s%40cret@db.internal:6543/mjweb?sslmode=require")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "mj", "s@cret", "db.internal", "6543", "mjweb",
    )  # fmt: skip
    assert pg["OPTIONS"] == {"sslmode": "require"}
    pooled = database_from_url("postgres://postgres@127.0.0.1/postgres", pool_max_size=8)
    assert pooled["OPTIONS"]["pool"]["max_size"] == 8  # type: ignore[index]
    assert pooled["CONN_MAX_AGE"] == 0
    assert pg["CONN_MAX_AGE"] == 60  # kept a minute: the worker, the WSGI server
    # Under ASGI each request runs in a thread of its own: nothing is kept after it.
    served = database_from_url("postgres://postgres@127.0.0.1/postgres", persistent=False)
    assert served["CONN_MAX_AGE"] == 0
    socket = database_from_url("postgres://mj@%2Fvar%2Frun%2Fpostgresql/mjweb")
    assert socket["HOST"] == "/var/run/postgresql"
    assert (socket["USER"], socket["NAME"]) == ("mj", "mjweb")
    assert database_from_url("sqlite:////var/lib/mj.db")["NAME"] == "/var/lib/mj.db"
    assert database_from_url("sqlite:///data/mj.db")["NAME"] == "data/mj.db"
    with pytest.raises(ImproperlyConfigured):
        database_from_url("mysql://x@y/z")


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "SECRET_KEY_FILE"}
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); "
            "from django.conf import settings; print(settings.SECRET_KEY)",
        ],
        env={**clean, "DJANGO_SETTINGS_MODULE": "mjweb.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_secret_key_is_required_without_debug(tmp_path: Path) -> None:
    result = load_settings({"MJWEB_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_debug_generates_and_keeps_a_local_secret(tmp_path: Path) -> None:
    first = load_settings({"DEBUG": "1", "MJWEB_DATA_DIR": str(tmp_path)})
    second = load_settings({"DEBUG": "1", "MJWEB_DATA_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def connection_settings(entry: str, **env: str) -> list[str]:
    """SERVED_BY_ASGI, CONN_MAX_AGE and the pool's size (0: none) in a fresh process whose
    first import is `entry`."""
    code = (
        f"import {entry}; django.setup(); from django.conf import settings; "
        "db = settings.DATABASES['default']; "
        "print(settings.SERVED_BY_ASGI, db['CONN_MAX_AGE'], "
        "db['OPTIONS'].get('pool', {}).get('max_size', 0))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MJWEB_A"))}
    answer = subprocess.run(
        [sys.executable, "-c", f"import django; {code}"],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "mjweb.settings",
            "SECRET_KEY": "t",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.split()


def test_the_web_server_pools_connections_and_the_worker_keeps_its_own() -> None:
    """mjweb.asgi marks the process before the settings load: the web server borrows from
    psycopg's pool (10 by default), keeping nothing itself; every other process (the worker,
    whose django-q2 cluster forks, and manage.py) keeps one persistent connection and never
    pools, whatever DATABASE_POOL_MAX_SIZE says."""
    assert connection_settings("mjweb.asgi") == ["True", "0", "10"]
    assert connection_settings("mjweb.asgi", DATABASE_POOL_MAX_SIZE="4") == ["True", "0", "4"]
    # 0 turns the pool off: a connection per request
    assert connection_settings("mjweb.asgi", DATABASE_POOL_MAX_SIZE="0") == ["True", "0", "0"]
    assert connection_settings("django", DATABASE_POOL_MAX_SIZE="4") == ["False", "60", "0"]


def test_runall_serves_the_site_with_uvicorn() -> None:
    from mjweb.management.commands.runall import web_command

    command = web_command("0.0.0.0:9000")
    assert command[1:4] == ["-m", "uvicorn", "mjweb.asgi:application"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "9000"
    assert web_command("8001")[web_command("8001").index("--host") + 1] == "127.0.0.1"


def test_the_deploy_check_passes_in_production_mode_with_the_sites_host_allowed(
    tmp_path: Path,
) -> None:
    """DEBUG off, a real key and SITE_URL: `check --deploy` has nothing to warn about (HSTS
    preloading is the operator's decision: its warning is silenced until they opt in), and
    the site's own host is allowed without ALLOWED_HOSTS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ALLOWED_HOSTS", "DEBUG"}
    }
    env.update(
        SECRET_KEY="k" * 20 + "a-long-random-production-key-0123456789",
        SITE_URL="https://studio.example.com",
        MJWEB_DATA_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:6379/0",  # the throttles' shared cache (not connected)
    )
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    code = (
        "import django; django.setup(); "
        "from django.conf import settings; print(settings.ALLOWED_HOSTS)"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "mjweb.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.strip() == "['studio.example.com']"


def run_logging(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SENTRY_DSN"}}
    return subprocess.run(
        [sys.executable, "-c", f"import django, logging; django.setup(); {code}"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "mjweb.settings", "SECRET_KEY": "t", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )


def test_log_format_json_writes_one_object_per_line() -> None:
    code = "logging.getLogger('gallery.sync').warning('poll %s slow', 'tick')"
    line = run_logging(code, LOG_FORMAT="json").stderr.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "gallery.sync"
    assert record["message"] == "poll tick slow" and "time" in record
    plain = run_logging(code).stderr.strip().splitlines()[-1]
    assert plain.endswith("WARNING gallery.sync poll tick slow")


def test_sentry_dsn_sends_logged_errors_and_nothing_without_it(receiver: Any) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    code = (
        "import sentry_sdk; logging.getLogger('gallery.ingest').error('ingest broke'); "
        "print(sentry_sdk.get_client().is_active()); sentry_sdk.flush(5)"
    )
    sent = run_logging(code, SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/7")
    assert sent.stdout.strip() == "True"
    headers, body = receiver.received[0]
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    assert b"ingest broke" in body
    assert "sentry_key=publickey" in headers.get("x-sentry-auth", "")
    assert run_logging(code).stdout.strip() == "False"
    assert len(receiver.received) == 1


def test_a_dot_env_file_fills_in_what_the_environment_does_not_set(tmp_path: Path) -> None:
    env_file = tmp_path / "studio.env"
    env_file.write_text(
        "# comments and quotes as in .env.example\nMJ_WELCOME_CREDITS=250\n"
        'DEFAULT_FROM_EMAIL="mjweb <noreply@example.com>"\nMJ_JOBS_AT_ONCE=3\n',
        encoding="utf-8",
    )
    code = (
        "print(settings.MJ_WELCOME_CREDITS, settings.MJ_JOBS_AT_ONCE, "
        "repr(settings.DEFAULT_FROM_EMAIL))"
    )
    setup = "from django.conf import settings; "
    answer = run_logging(setup + code, MJWEB_ENV_FILE=str(env_file), MJ_JOBS_AT_ONCE="7")
    assert answer.stdout.strip().split(maxsplit=2) == ["250", "7", "'mjweb <noreply@example.com>'"]
    none = run_logging(setup + code, MJWEB_ENV_FILE="", MJ_JOBS_AT_ONCE="7")
    assert none.stdout.split()[0] == "1000"
