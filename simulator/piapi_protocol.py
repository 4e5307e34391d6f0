"""PiAPI's vocabulary for the simulator: routes, task types, modes and statuses of both
dialects, error messages and envelope, the mapping between PiAPI actions and the engine's
customIds, and the `Record` of one PiAPI task. simulator.piapi answers the requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Reply = tuple[int, Any, dict[str, str]]  # payload: JSON-able, faults.RawBody or NO_ANSWER

_CREATE = "/api/v1/task"
_GET = re.compile(r"^/api/v1/task/([^/]+)$")
_LEGACY = re.compile(
    r"^/mj/v2/(imagine|reroll|upscale|variation|outpaint|pan|blend|describe|inpaint|fetch)$"
)
_TASK_TYPES = (
    *("imagine", "reroll", "upscale", "variation", "outpaint", "pan"),
    *("blend", "describe", "inpaint"),
)
_ORIGINLESS = ("imagine", "blend", "describe")  # the task types that press no button
# UNCONFIRMED (docs section 3.1 names these task types but not their fields): blend takes
# input {image_urls: [2-5 links], dimension: square|portrait|landscape, process_mode}, on
# the legacy /mj/v2/blend the same fields at the top level.
_BLEND_DIMENSIONS = {"square": 1.0, "portrait": 2 / 3, "landscape": 3 / 2}
_INDEXES = ("1", "2", "3", "4")
_MODES = {"fast": "FAST", "relax": "RELAX", "turbo": "TURBO", "mixed": "FAST"}
# engine (gateway) status -> PiAPI status, per dialect
_UNIFIED_STATUS = {"IN_PROGRESS": "processing", "SUCCESS": "completed", "FAILURE": "failed"}
_LEGACY_STATUS = {"IN_PROGRESS": "processing", "SUCCESS": "finished", "FAILURE": "failed"}
_TERMINAL = ("SUCCESS", "FAILURE")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # what PiAPI's Go backend shows for a time not yet set
# PiAPI's words for injected HTTP errors (its bodies for these are undocumented)
_BUSY = {
    429: "too many requests, please try again later",
    500: "internal server error",
    502: "bad gateway",
    503: "service temporarily unavailable",
    504: "gateway timeout",
    524: "a timeout occurred",
}
_ENGLISH = {
    "关联任务不存在或已失效": "origin task not found",
    "关联任务状态错误": "origin task is not completed",
    "prompt不能为空": "prompt is required",
}


def handles(path: str) -> bool:
    """Whether a request path belongs to PiAPI's surface rather than midjourney-proxy's."""
    return path == _CREATE or path.startswith(_CREATE + "/") or path.startswith("/mj/v2/")


def piapi_action(custom_id: str) -> str | None:
    """The PiAPI action string for one of the engine's midjourney-proxy customIds."""
    parts = custom_id.split("::")
    # UNCONFIRMED action names for Vary (Region) and Custom Zoom (the doc lists none)
    if parts[:2] == ["MJ", "CustomZoom"]:
        return "outpaint_custom"
    if len(parts) < 4 or parts[0] != "MJ":
        return None
    if parts[1] == "Outpaint":
        return {"50": "outpaint_2x", "75": "outpaint_1.5x"}.get(parts[2])
    if parts[1] == "Inpaint":
        return "inpaint"
    verb, index = parts[2], parts[3]
    if verb in ("upsample", "variation"):
        return f"{'upscale' if verb == 'upsample' else 'variation'}{index}"
    if verb.endswith(("_subtle", "_creative")):
        return "upscale_" + verb.rsplit("_", 1)[1]
    if verb in ("reroll", "low_variation", "high_variation") or verb.startswith("pan_"):
        return verb
    return None


def wanted_action(task_type: str, params: dict[str, Any]) -> str | None:
    """The PiAPI action a create request asks for, or None when its fields make no sense."""
    index = str(params.get("index") or "")
    if task_type == "reroll":
        return "reroll"
    if task_type == "upscale":
        named = {"subtle": "upscale_subtle", "creative": "upscale_creative"}
        return f"upscale{index}" if index in _INDEXES else named.get(index)
    if task_type == "variation":
        if index in ("low_variation", "high_variation"):
            return index
        return f"variation{index}" if index in _INDEXES else None
    if task_type == "inpaint":
        return "inpaint"
    if task_type == "outpaint":
        if str(params.get("zoom_ratio") or "").lower() == "custom":  # UNCONFIRMED: --zoom N
            return "outpaint_custom"
        try:
            ratio = float(params.get("zoom_ratio") or 0)
        except (TypeError, ValueError):
            return None
        return {2.0: "outpaint_2x", 1.5: "outpaint_1.5x"}.get(ratio)
    direction = params.get("direction")
    if task_type == "pan" and direction in ("left", "right", "up", "down"):
        return f"pan_{direction}"
    return None


def _iso(ms: int | None) -> str:
    if ms is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _error(status: int, message: str) -> Reply:
    return status, {"code": status, "data": {}, "message": message}, {}


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Injected(Exception):
    """A create that a fault answers, whichever dialect asked."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply[0])
        self.reply = reply


@dataclass
class Record:
    """One PiAPI task: the engine task behind it and what PiAPI echoes back about it."""

    task_id: str  # PiAPI's UUID
    engine_id: str
    api: str  # "unified" or "legacy": which shape its webhook carries
    task_type: str
    input: dict[str, Any]
    process_mode: str
    origin_task_id: str = ""
    endpoint: str = ""
    secret: str = ""
    delivered: bool = False  # its terminal webhook went out (fault injection may resend)
