"""The SQLite backend gathers the planner's statistics as a connection closes, hourly."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler

from mjweb.env import sqlite_database
from mjweb.sqlite import base


def statistics(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if not tables.fetchall():
            return []
        return db.execute("SELECT tbl, idx FROM sqlite_stat1 ORDER BY idx").fetchall()


def connect(path: Path) -> Any:
    return ConnectionHandler({"default": sqlite_database(path)})["default"]


def test_closing_a_connection_analyzes_at_most_once_an_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any
) -> None:
    path = tmp_path / "db.sqlite3"
    clock = [10_000.0]
    monkeypatch.setattr(base.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(base, "_analyzed_at", {})
    with django_db_blocker.unblock():
        connection = connect(path)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE job (id integer PRIMARY KEY, owner integer)")
            cursor.execute("CREATE INDEX job_owner ON job (owner)")
            cursor.executemany(
                "INSERT INTO job (owner) VALUES (%s)", [(n % 7,) for n in range(500)]
            )
        connection.close()
        assert statistics(path) == [("job", "job_owner")]

        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM sqlite_stat1")
        clock[0] += base.ANALYZE_EVERY - 1
        connection = connect(path)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM job WHERE owner = 3")
        connection.close()
        assert statistics(path) == []  # within the hour: nothing

        clock[0] += 1
        connection = connect(path)
        connection.ensure_connection()
        connection.close()
        assert statistics(path) == [("job", "job_owner")]
