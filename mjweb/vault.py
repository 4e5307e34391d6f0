"""Secrets kept in the database (provider API keys, console tokens), sealed at rest.

Fernet (AES-128-CBC with an HMAC-SHA256 tag) from `cryptography`, with the keys of
MJWEB_ENCRYPTION_KEYS: the first seals, every one opens, so a key is rotated by putting the new
one first and running `manage.py provider_account reseal`. Without that setting the key is
derived from SECRET_KEY (changing SECRET_KEY then makes the stored secrets unreadable: they
must be entered again).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class Unreadable(Exception):
    """A sealed value none of the configured keys opens."""


def _keys() -> list[Fernet]:
    configured = list(settings.MJWEB_ENCRYPTION_KEYS)
    if not configured:
        digest = hashlib.sha256(b"mjweb.vault:" + settings.SECRET_KEY.encode()).digest()
        configured = [base64.urlsafe_b64encode(digest).decode()]
    return [Fernet(key.encode() if isinstance(key, str) else key) for key in configured]


def seal(plain: str) -> str:
    """The sealed text of `plain` ("" stays "")."""
    if not plain:
        return ""
    return MultiFernet(_keys()).encrypt(plain.encode()).decode()


def unseal(sealed: str) -> str:
    if not sealed:
        return ""
    try:
        return MultiFernet(_keys()).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise Unreadable(
            "A stored secret cannot be decrypted with MJWEB_ENCRYPTION_KEYS (or SECRET_KEY): "
            "enter it again."
        ) from None


def reseal(sealed: str) -> str:
    """The same secret sealed with the first key (after a rotation)."""
    if not sealed:
        return ""
    try:
        return MultiFernet(_keys()).rotate(sealed.encode()).decode()
    except InvalidToken:
        raise Unreadable("A stored secret cannot be decrypted with any configured key.") from None


def hint(plain: str) -> str:
    """What the admin may show of a secret: that it is set, and its last four characters."""
    if not plain:
        return "not set"
    return f"set, ending …{plain[-4:]}" if len(plain) >= 12 else "set"
