"""Registers every ModelAdmin with the admin site (Django's autodiscover imports this)."""

from backoffice import (  # noqa: F401
    accounts,
    credits,
    duplicates,
    invites,
    jobs,
    purchases,
    tokens,
    users,
)
