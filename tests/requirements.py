"""Skips that CI must not accept: with MJWEB_REQUIRE_POSTGRES / MJWEB_REQUIRE_BROWSER set
(as .ci/run sets them), a missing PostgreSQL or browser fails the test instead."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from django.db import connection

CHROMIUM = Path("/usr/bin/chromium")


def _skip_or_fail(flag: str, reason: str) -> None:
    if os.environ.get(flag):
        pytest.fail(f"{reason} ({flag} is set, so this may not be skipped)")
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        _skip_or_fail("MJWEB_REQUIRE_POSTGRES", "needs PostgreSQL: set DATABASE_URL=postgres://...")


def require_browser() -> None:
    if importlib.util.find_spec("playwright") is None:
        _skip_or_fail("MJWEB_REQUIRE_BROWSER", "needs the playwright package")
    if not CHROMIUM.exists():
        _skip_or_fail("MJWEB_REQUIRE_BROWSER", "needs Chromium at /usr/bin/chromium")
