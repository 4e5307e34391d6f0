"""The worker's process group: one django-q2 cluster per task queue, living and dying
together (mjweb.processes, `manage.py worker`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mjweb import processes

ROOT = Path(__file__).resolve().parents[2]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_when_one_child_dies_the_others_are_stopped_and_its_code_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "STOP_GRACE", 5.0)
    marker = tmp_path / "stopped"
    survivor = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').close(), "
        "sys.exit(0)))\n"
        "time.sleep(60)\n"
    )
    said: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    code = processes.run_group(
        {
            "long": processes.Child(python(survivor)),
            "short": processes.Child(python("import time, sys; time.sleep(0.5); sys.exit(3)")),
        },
        said.append,
    )
    assert code == 3
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handlers are back
    assert marker.exists()  # asked to stop, and it did
    assert "short exited with code 3; stopping." in said


def test_a_child_gets_its_environment_and_niceness(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    code = (
        f"import os; open({str(out)!r}, 'w')"
        ".write(os.environ['Q_CLUSTER_NAME'] + ' ' + str(os.nice(0)))"
    )
    child = processes.Child(python(code), extra_env={"Q_CLUSTER_NAME": "mjweb-ingest"}, nice=5)
    assert child.start().wait(timeout=30) == 0
    queue, niceness = out.read_text().split()
    assert queue == "mjweb-ingest" and int(niceness) == os.nice(0) + 5


def test_the_worker_runs_a_cluster_for_each_queue_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "Q_CLUSTER_NAME"}},
        "MJWEB_DATA_DIR": str(tmp_path),
        "MJWEB_WORKERS": "1",
        "MJWEB_INGEST_WORKERS": "1",
        "MJWEB_TASK_LOG_LEVEL": "INFO",
        "REDIS_URL": "redis://127.0.0.1:6379/15",  # production mode wants a shared cache
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input"], env=env, check=True, capture_output=True)
    worker = subprocess.Popen(
        [*manage, "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        wanted = {"[mjweb] running", "[mjweb-ingest] running", "[mjweb-previews] running"}
        while time.monotonic() < deadline and not all(
            any(w in line for line in lines) for w in wanted
        ):
            assert worker.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert all(any(w in line for line in lines) for w in wanted), "".join(lines)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
