from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.requirements import require_browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {seconds}s")


@dataclass
class Stack:
    url: str
    simulator_url: str
    log: Path


@contextmanager
def running_stack(root: Path, **extra_env: str) -> Iterator[Stack]:
    """The real thing: web server, qcluster worker and simulator, as `make run` starts them."""
    require_browser()
    web, sim = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DEBUG="1",
        MJWEB_DATA_DIR=str(root),
        SITE_URL=f"http://127.0.0.1:{web}",
        MJ_PROVIDER="simulator",
        MJ_SIMULATOR_PORT=str(sim),
        MJ_SIMULATOR_DURATION="5",
        MJ_POLL_INTERVAL="0.5",
        MJ_WELCOME_CREDITS="10000",
        MJWEB_WORKERS="2",
        # Every test signs a new user up from 127.0.0.1 (tests/mjweb/test_throttle.py
        # covers the rates themselves).
        MJWEB_SIGNUP_RATE="1000/h",
        MJWEB_SUBMIT_RATE="1000/m",
        MJWEB_SUBMIT_RATE_IP="1000/m",
        MJWEB_STAFF_2FA="0",
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input"], env=env, check=True, capture_output=True)
    log = root / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*manage, "runall", "--addrport", f"127.0.0.1:{web}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(f"http://127.0.0.1:{web}/accounts/login/")
            wait_for(f"http://127.0.0.1:{sim}/mj/task/0/fetch")
            yield Stack(f"http://127.0.0.1:{web}", f"http://127.0.0.1:{sim}", log)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="session", params=["unified", "legacy"])
def piapi_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp(f"piapi-{request.param}")
    with running_stack(root, MJ_SIMULATOR_PROTOCOL="piapi", PIAPI_API=request.param) as running:
        yield running


@pytest.fixture
def browser_page() -> Iterator[object]:
    require_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []

        def on_console(msg: Any) -> None:
            if msg.type == "error":
                # A failed resource names itself only through its location.
                where = (msg.location or {}).get("url", "")
                errors.append(f"{msg.text} [{where}]" if where else msg.text)

        page.on("console", on_console)
        page.errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            browser.close()
