"""Reads over many jobs, as chainable queryset methods: `Job.objects.for_user(u).in_flight()`.

Each condition here is the one home of its rule; the single-job forms of the same rules are
on `Job` (gallery.models.jobs), built from the same pieces.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.db.models.lookups import GreaterThan, LessThan
from django.utils import timezone


class JobQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def for_user(self, user: Any) -> JobQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(owner=user)

    def visible_to(self, user: Any) -> JobQuerySet:
        """The user's jobs they have not deleted."""
        return self.for_user(user).filter(deleted_at__isnull=True)

    def lineage_heads(self, candidates: JobQuerySet | None = None) -> JobQuerySet:
        """One job per lineage among these: the newest that is not a failure (in flight or
        finished), else the newest. The gallery shows lineages by these.

        A job heads its lineage when no candidate of the lineage ranks before it: for one
        that is not a failure, none newer that is not a failure either (one probe of the
        `job_root_live` index from the job's own key, which stops at the first row); for
        a failure, none that is not a failure and none newer. So a page costs the same
        however far down it is and however long its lineages. The failure's two tests are
        one probe: as two, the first would correlate by `root_id` alone, and PostgreSQL
        answers such a NOT EXISTS by hashing every job of the table once per page.

        `candidates` is the same selection without the owner condition: a lineage belongs
        to one owner, and leaving it out lets the database use the lineage's index alone.
        """
        failed = Q(status__in=(self.model.Status.FAILED, self.model.Status.CANCELLED))
        lineage = (self if candidates is None else candidates).filter(root_id=OuterRef("root_id"))
        newer = newer_than(OuterRef("created_at"), OuterRef("pk"))
        return self.filter(
            (~failed & ~Exists(lineage.filter(newer).exclude(failed)))
            | (failed & ~Exists(lineage.filter(newer | ~failed)))
        )

    def matching(self, filters: dict[str, Any]) -> JobQuerySet:
        """Jobs that pass the gallery's filters (see gallery.forms.GalleryFilterForm).

        Dates are days of the current time zone, compared as the instants that bound them:
        a range on `created_at` itself, which an index on it can serve (`created_at__date`
        casts every row first)."""
        jobs = self
        for word in str(filters.get("q", "")).split():
            jobs = jobs.filter(prompt__icontains=word)
        for name in ("status", "action", "mode"):
            if filters.get(name):
                jobs = jobs.filter(**{name: filters[name]})
        if filters.get("since"):
            jobs = jobs.filter(created_at__gte=start_of_day(filters["since"]))
        if filters.get("until") and filters["until"] < date.max:
            jobs = jobs.filter(created_at__lt=start_of_day(filters["until"] + timedelta(days=1)))
        if filters.get("favorites"):
            jobs = jobs.filter(favorite=True)
        return jobs

    def shared(self) -> JobQuerySet:
        """Jobs whose public link works (`Job.shared_q`): shared, kept, succeeded."""
        return self.filter(self.model.shared_q())

    def in_flight(self) -> JobQuerySet:
        return self.filter(status__in=self.model.IN_FLIGHT)

    def pollable(self, provider: str) -> JobQuerySet:
        """Jobs the provider knows about and whose outcome we have not seen yet.

        That includes jobs we timed out a little while ago: a late success is still
        delivered (`deadline_at` is cleared once the provider reports a real end).
        """
        late = self.model.late_success_q() & Q(
            deadline_at__isnull=False,
            finished_at__gte=timezone.now() - timedelta(seconds=settings.MJ_LATE_SUCCESS_WINDOW),
        )
        waiting = Q(
            status__in=(
                self.model.Status.SUBMITTED,
                self.model.Status.RUNNING,
                self.model.Status.MODAL,
            )
        )
        # A question waiting for the user's remix prompt is not asked about: nothing moves
        # until the user answers (or the question expires: gallery.sweep).
        awaiting_user = Q(status=self.model.Status.MODAL, remix_prompt="")
        return (
            self.filter(waiting | late, provider=provider, result_url="")
            .exclude(provider_job_id="")
            .exclude(awaiting_user)
        )

    def awaiting_ingest(self) -> JobQuerySet:
        """Results recorded whose images are not stored (`Job.awaits_ingest`)."""
        ingestible = Q(status=self.model.Status.RUNNING) | self.model.late_success_q()
        return self.filter(ingestible).exclude(result_url="")

    def remix_expired(self, now: datetime) -> JobQuerySet:
        """Remix questions the user left unanswered past MJ_REMIX_EXPIRY."""
        cutoff = now - timedelta(seconds=settings.MJ_REMIX_EXPIRY)
        asked = Q(submitted_at__lt=cutoff) | Q(submitted_at__isnull=True, created_at__lt=cutoff)
        return self.filter(asked, status=self.model.Status.MODAL, remix_prompt="")

    def counted_against_day(self, start: datetime) -> JobQuerySet:
        """Jobs that count against a daily limit since `start`: not failed, not cancelled,
        not imports (an import fetches a task that was already paid for)."""
        return (
            self.filter(created_at__gte=start)
            .exclude(status__in=[self.model.Status.FAILED, self.model.Status.CANCELLED])
            .exclude(action=self.model.Action.IMPORT)
        )

    def lease_free(self) -> JobQuerySet:
        return self.filter(self.model.lease_free_q())

    def occupying(self, provider: str) -> JobQuerySet:
        """Jobs holding one of the provider account's slots (running or in its queue).

        A task in MODAL holds none (midjourney-proxy-plus docs); a dispatch in flight does, and
        so does a submit whose answer was lost (the task may exist).
        """
        submitted = Q(
            status__in=(self.model.Status.SUBMITTED, self.model.Status.RUNNING), result_url=""
        )
        dispatching = Q(status=self.model.Status.QUEUED) & (
            ~self.model.lease_free_q() | Q(submit_sent_at__isnull=False)
        )
        return self.filter(submitted | dispatching, provider=provider)

    def dispatchable(self, provider: str) -> JobQuerySet:
        return self.filter(provider=provider, status=self.model.Status.QUEUED)

    def place_in_line(self, places: dict[int, int]) -> int:
        """Set each waiting job's place in line (`slot_position`, by pk) in one statement;
        a job no longer queued since the line was read keeps its row, as in
        `Job.update_if_status`. Every job sent moves the whole line up by one, and a burst
        waits a hundred deep: row by row, that was a hundred statements each time. Returns
        how many rows changed."""
        if not places:
            return 0
        return self.filter(pk__in=places, status=self.model.Status.QUEUED).update(
            slot_position=Case(
                *(When(pk=pk, then=Value(place)) for pk, place in places.items()),
                output_field=models.PositiveIntegerField(),
            )
        )

    def sendable(self, now: datetime) -> JobQuerySet:
        """Jobs a dispatch may send now: no dispatch holds them, and no earlier submit whose
        answer was lost is still within MJ_SUBMIT_GRACE (its task may yet be found)."""
        unknown_until = now - timedelta(seconds=settings.MJ_SUBMIT_GRACE)
        settled = Q(submit_sent_at__isnull=True) | Q(submit_sent_at__lt=unknown_until)
        return self.filter(self.model.lease_free_q(now)).filter(settled)


def lineage_size() -> models.Subquery:
    """For annotating jobs: how many visible jobs their lineage has."""
    from gallery.models.jobs import Job

    return models.Subquery(
        Job.objects.filter(root_id=models.OuterRef("root_id"), deleted_at__isnull=True)
        .order_by()
        .values("root_id")
        .annotate(size=models.Count("pk"))
        .values("size")[:1]
    )


def start_of_day(day: date) -> datetime:
    """The first instant of a day in the current time zone (as `created_at__date` reads
    days)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class Row(models.Func):
    """A row value, `(a, b)`. Rows compare column by column, so `(created_at, id) < (t, n)`
    is "older than job n made at t" in the gallery's order, as one condition that an index
    on (created_at, id) can start its scan from. The OR of single comparisons it replaces
    (`created_at < t OR (created_at = t AND id < n)`) is one no index can start from: the
    database reads the newest rows and drops them until it reaches the cursor. PostgreSQL
    and SQLite (3.15 and later) both take row values; Django 5.2's own `Tuple` lookups
    write the OR on SQLite and take no outer references."""

    function = ""
    output_field = models.Field()


def _key(created: Any, pk: Any) -> Row:
    return Row(
        created
        if hasattr(created, "resolve_expression")
        else models.Value(created, output_field=models.DateTimeField()),
        pk
        if hasattr(pk, "resolve_expression")
        else models.Value(pk, output_field=models.BigIntegerField()),
    )


def older_than(created: Any, pk: Any) -> LessThan:
    """Jobs after (created, pk) in the gallery's order, newest first. Either may be an
    expression (`OuterRef("created_at")`)."""
    return LessThan(Row(F("created_at"), F("id")), _key(created, pk))


def newer_than(created: Any, pk: Any) -> GreaterThan:
    """Jobs before (created, pk) in the gallery's order, newest first."""
    return GreaterThan(Row(F("created_at"), F("id")), _key(created, pk))
