"""The API's OpenAPI description (served at /api/openapi.json; README "The JSON API")."""

from __future__ import annotations

from typing import Any

_SUBMIT_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["code", "description", "result", "properties"],
    "properties": {
        "code": {
            "type": "integer",
            "enum": [1, 3, 4, 21, 22, 23],
            "description": "1 submitted; 22 waiting in line (properties.numberOfQueues); 21 "
            "waiting for the Remix prompt (continue with /mj/submit/modal); 3 unknown task; "
            "4 refused (description says why, `quota_not_enough:` first for credits); 23 too "
            "many submits. A banned prompt is not refused here (there is no word list to "
            "check it against before the provider): the task ends in FAILURE with the "
            "provider's words, as trueai's proxy does",
        },
        "description": {"type": "string"},
        "result": {"type": ["string", "null"], "description": "The new task's id"},
        "properties": {"type": "object"},
    },
}

_BUTTON = {
    "type": "object",
    "properties": {
        "customId": {"type": "string", "example": "MJ::JOB::upsample::2::<task id>"},
        "emoji": {"type": "string"},
        "label": {"type": "string"},
        "type": {"type": "integer", "example": 2},
        "style": {"type": "integer", "example": 2},
    },
}

_TASK: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "action": {
            "type": "string",
            "enum": [
                "IMAGINE", "UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN",
                "LOW_VARIATION", "HIGH_VARIATION", "INPAINT", "CUSTOM_ZOOM", "BLEND",
                "DESCRIBE",
            ],
        },
        "status": {
            "type": "string",
            "enum": [
                "NOT_START", "SUBMITTED", "MODAL", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCEL",
            ],
        },
        "prompt": {"type": "string"},
        "promptEn": {"type": "string"},
        "description": {"type": "string"},
        "state": {"type": "string", "description": "Your `state`, echoed"},
        "mode": {"type": "string", "enum": ["FAST", "RELAX", "TURBO"]},
        "submitTime": {"type": ["integer", "null"], "description": "epoch ms"},
        "startTime": {"type": ["integer", "null"]},
        "finishTime": {"type": ["integer", "null"]},
        "imageUrl": {"type": "string", "description": "A signed link that expires"},
        "progress": {"type": "string", "example": "45%"},
        "failReason": {"type": "string"},
        "buttons": {"type": "array", "items": _BUTTON},
        "properties": {
            "type": "object",
            "properties": {"finalPrompt": {"type": "string"}, "parentId": {"type": "string"}},
        },
    },
}  # fmt: skip


def _submit(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": {
                "200": {
                    "description": "Accepted or refused, by `code`",
                    "content": {"application/json": {"schema": _SUBMIT_ANSWER}},
                },
                "401": {"description": "No usable token"},
                "429": {"description": "Too many calls with this token"},
            },
        }
    }


_HOOKED = {
    "state": {"type": "string", "maxLength": 500},
    "notifyHook": {
        "type": "string",
        "format": "uri",
        "description": "POSTed the task object on each change of status, signed in "
        "X-Mjweb-Signature (t=<time>,v1=<HMAC-SHA256 of '<t>.<body>'>)",
    },
}

_PICTURES: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "example": "data:image/png;base64,iVBORw0KGgo..."},
}

SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mjweb API (midjourney-proxy protocol)",
        "version": "1",
        "description": "Paths may be prefixed by /mj-fast, /mj-relax or /mj-turbo to choose "
        "the speed mode of a submit (an imagine: fast without one; a press: its parent's).",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Task": _TASK, "SubmitAnswer": _SUBMIT_ANSWER},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/mj/submit/imagine": _submit(
            "Imagine: a new 2x2 grid",
            {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string", "maxLength": 2000},
                    "base64Array": {
                        **_PICTURES,
                        "maxItems": 5,
                        "description": "Image prompts: PNG, JPEG or WebP data URLs",
                    },
                    **_HOOKED,
                },
            },
        ),
        "/mj/submit/blend": _submit(
            "Blend: a new grid from 2-5 pictures",
            {
                "type": "object",
                "required": ["base64Array"],
                "properties": {
                    "base64Array": {**_PICTURES, "minItems": 2, "maxItems": 5},
                    "dimensions": {
                        "type": "string",
                        "enum": ["SQUARE", "PORTRAIT", "LANDSCAPE"],
                        "default": "SQUARE",
                    },
                    **_HOOKED,
                },
            },
        ),
        "/mj/submit/describe": _submit(
            "Describe: four prompts written from a picture (promptEn once it succeeds)",
            {
                "type": "object",
                "required": ["base64"],
                "properties": {
                    "base64": {
                        "type": "string",
                        "description": "A data URL; `link` is refused (send the picture)",
                    },
                    **_HOOKED,
                },
            },
        ),
        "/mj/submit/action": _submit(
            "Press a button of a finished task (U1-U4, V1-V4, reroll, vary, zoom, pan)",
            {
                "type": "object",
                "required": ["taskId", "customId"],
                "properties": {
                    "taskId": {"type": "string"},
                    "customId": {"type": "string"},
                    **_HOOKED,
                },
            },
        ),
        "/mj/submit/modal": _submit(
            "The Remix prompt of a task waiting in MODAL",
            {
                "type": "object",
                "required": ["taskId"],
                "properties": {"taskId": {"type": "string"}, "prompt": {"type": "string"}},
            },
        ),
        "/mj/task/{id}/fetch": {
            "get": {
                "summary": "One task",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The task",
                        "content": {"application/json": {"schema": _TASK}},
                    },
                    "400": {"description": "task_no_found: not a task of yours"},
                },
            }
        },
        "/mj/task/list-by-condition": {
            "post": {
                "summary": "Several tasks by id (at most 100)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "ids": {"type": "array", "items": {"type": "string"}}
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {
                        "description": "The tasks found",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": _TASK}}
                        },
                    }
                },
            }
        },
    },
}
