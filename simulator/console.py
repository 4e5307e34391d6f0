"""CometAPI's console routes (new-api's account API) for reconciling its bill: the balance,
`GET /api/user/self`, and the task log, `GET /api/task/self`, behind a console access token
that is not the API key (docs/provider-protocols.md, section 7).

Each task is billed at submit at its model's price in new-api's quota units (500,000 to the
dollar) and refunded if it fails, as new-api does for Midjourney tasks. The prices are the
simulator's own: every action at `mj-fast-reroll`'s $0.056 in fast mode, twice that in turbo
and half in relax.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from simulator.engine import Task, phase

if TYPE_CHECKING:
    from simulator.server import SimulatorServer

QUOTA_PER_USD = 500_000
PRICES = {"FAST": 28_000, "TURBO": 56_000, "RELAX": 14_000}
ROUTES = ("/api/user/self", "/api/task/self")
NOT_LOGGED_IN = "无权进行此操作，未登录且未提供 access token"


def handles(path: str) -> bool:
    return path in ROUTES


def model_name(task: Task) -> str:
    return f"mj-{task.mode.lower()}-{task.action.lower()}"


def respond(
    sim: SimulatorServer, method: str, path: str, query: str, authorization: str
) -> tuple[int, dict[str, Any]]:
    if method not in ("GET", "HEAD"):
        return 405, {"success": False, "message": "method not allowed"}
    token = authorization.strip()
    token = token[7:].strip() if token[:7].lower() == "bearer " else token
    wanted = sim.console_token
    if not wanted or not token or not hmac.compare_digest(token.encode(), wanted.encode()):
        return 401, {"success": False, "message": NOT_LOGGED_IN}
    now = sim.engine.clock()
    rows = [_row(task, now) for task in reversed(sim.engine.tasks())]
    if path == "/api/user/self":
        used = sim.console_quota - quota_left(sim)
        data = {
            "id": 1,
            "username": "simulator",
            "quota": sim.console_quota - used,
            "used_quota": used,
            "request_count": len(rows),
        }
        return 200, {"success": True, "message": "", "data": data}
    asked = {key: values[-1] for key, values in parse_qs(query).items()}
    for field in ("task_id", "status", "action"):
        if asked.get(field):
            rows = [row for row in rows if str(row[field]) == asked[field]]
    if asked.get("platform") not in (None, "", "mj"):
        rows = []
    page = max(1, _int(asked.get("p"), 1))
    size = min(100, max(1, _int(asked.get("page_size"), 10)))
    items = rows[(page - 1) * size : page * size]
    data = {"page": page, "page_size": size, "total": len(rows), "items": items}
    return 200, {"success": True, "message": "", "data": data}


def quota_left(sim: SimulatorServer) -> int:
    """The account's quota after every task billed so far (a failed one is refunded)."""
    now = sim.engine.clock()
    return sim.console_quota - sum(_row(task, now)["quota"] for task in sim.engine.tasks())


def affords(sim: SimulatorServer, mode: str) -> bool:
    """new-api checks the quota before it relays a submit (`quota_not_enough`, code 4);
    only an account with a console token keeps a balance here."""
    return not sim.console_token or quota_left(sim) >= PRICES.get(mode, PRICES["FAST"])


def _row(task: Task, now: float) -> dict[str, Any]:
    state = phase(task, now)
    submitted = task.submit_ms // 1000
    finished = task.wall_ms(state.finished_at) // 1000 if state.finished_at is not None else 0
    return {
        "created_at": submitted,
        "platform": "mj",
        "task_id": task.id,
        "action": task.action,
        "status": state.status,
        "model_name": model_name(task),
        "progress": f"{state.progress}%",
        "quota": 0 if state.status == "FAILURE" else PRICES.get(task.mode, PRICES["FAST"]),
        "submit_time": submitted,
        "finish_time": finished,
    }


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
