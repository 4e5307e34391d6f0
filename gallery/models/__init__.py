"""Jobs, their lineage, the images we keep of them, and what the providers told us.

See gallery.models.jobs for the invariants of a job's life.
"""

from gallery.models.accounts import (
    Connection,
    Finding,
    Protocol,
    ProviderAccount,
    ProviderCost,
    ProviderTask,
)
from gallery.models.images import Image, ImageKind, image_path
from gallery.models.jobs import (
    Job,
    JobAction,
    JobCharge,
    JobFailKind,
    JobMode,
    JobStatus,
)
from gallery.models.queries import JobQuerySet, lineage_size, newer_than, older_than
from gallery.models.records import PollLease, ProviderCall, SuspectedDuplicate, WebhookEvent
from gallery.models.references import JobInput, Reference, reference_path

__all__ = [
    "Connection",
    "Finding",
    "Image",
    "ImageKind",
    "Job",
    "JobAction",
    "JobCharge",
    "JobFailKind",
    "JobInput",
    "JobMode",
    "JobQuerySet",
    "JobStatus",
    "PollLease",
    "Protocol",
    "ProviderAccount",
    "ProviderCall",
    "ProviderCost",
    "ProviderTask",
    "Reference",
    "SuspectedDuplicate",
    "WebhookEvent",
    "image_path",
    "lineage_size",
    "newer_than",
    "older_than",
    "reference_path",
]
