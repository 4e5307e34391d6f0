"""The audit log of admin actions: `record` writes one AuditEntry, in the change's transaction.

Call it inside the same `transaction.atomic()` as the change it describes, after the change:
if the change fails nothing is recorded, and if the record fails the change is rolled back.
`snapshot` and `changes` turn model instances into the JSON that `before`/`after` keep.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import uuid
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from mjweb.models import AuditEntry

# Never copied into the log: password hashes, and what changes on every login.
SECRET_FIELDS = frozenset({"password", "last_login"})
MAX_REASON = 2000


def record(
    *,
    actor: Any,
    verb: str,
    obj: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEntry:
    """Write one audit entry about `obj`; refuses to run outside a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change")
    if verb not in AuditEntry.Verb.values:
        raise ValueError(f"unknown audit verb {verb!r}")
    identity: dict[str, Any] = {}
    if obj is not None:
        identity = {
            "content_type": ContentType.objects.get_for_model(obj, for_concrete_model=False),
            "object_id": str(obj.pk),
            "object_repr": str(obj)[:200],
        }
    return AuditEntry.objects.create(
        actor=actor,
        verb=verb,
        before=_json(before),
        after=_json(after),
        reason=reason.strip()[:MAX_REASON],
        **identity,
    )


def snapshot(obj: models.Model, *, exclude: frozenset[str] = SECRET_FIELDS) -> dict[str, Any]:
    """The object's stored values: concrete fields by name (relations by primary key),
    many-to-many fields as the sorted names of what they point at. A sealed secret
    (a `*_sealed` field, mjweb.vault) is shown only as a fingerprint of its sealed text, so
    the log says it changed without holding it."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in exclude:
            continue
        value = field.value_from_object(obj)
        if field.name.endswith("_sealed"):
            digest = hashlib.sha256(str(value).encode()).hexdigest()[:8]
            data[field.name] = f"[sealed {digest}]" if value else ""
            continue
        data[field.name] = _plain(value)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            if field.name in exclude:
                continue
            data[field.name] = sorted(str(item) for item in getattr(obj, field.name).all())
    return data


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ, from each side."""
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else {str(key): _plain(item) for key, item in value.items()}
