"""Settling an uncertain submission from WaveSpeed's own records, on an account of any size.

A POST that got no usable answer may or may not have created a (paid) task. The reconciler reads
WaveSpeed's prediction history for the job's model over the only time the task can have been created —
from the POST's start to its last possible answer, with CLOCK_SKEW either side — and checks the tasks
there, nearest the POST's start first: a task whose upload link is this attempt's is adopted; one of an
earlier attempt's is recorded as a stray; one whose upload WaveSpeed does not name keeps the outcome
open. A busy account has thousands of tasks in that window, so each run checks what its time allows and
keeps a cursor on the job for the next.

Absence is concluded only from a history WaveSpeed says is complete (an integer total equal to what was
read, or, without a total, a page shorter than the one before it), read twice at least a few minutes
apart, both times past the grace, with the same tasks in it and none of them this attempt's. Anything
else is "not known", never "absent": after the settle deadline the job ends SUBMIT_UNSETTLED with what to
look for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from urllib.parse import parse_qs, unquote, urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.codes import UNSETTLED, ErrorCode, Outcome
from loradrop.deadline import Deadline
from loradrop.job import Job, SettleProgress, hours, iso, parse_iso, url_digest
from loradrop.jobs import JobStore
from loradrop.models import TRAINER_MODELS, JobStatus, Task
from loradrop.ports import WaveSpeed
from loradrop.settings import ReconcileSettings
from loradrop.wavespeed import (
    MIN_READ_SECONDS,
    NotFound,
    WaveSpeedError,
    longest_submit_seconds,
)

logger = Logger(child=True)
metrics = Metrics()

# Lambda's clock is NTP-synchronised; WaveSpeed's `created_at` comes from its servers. Half a minute either
# side of the POST covers any sane skew between the two, and keeps a busy account's window small.
CLOCK_SKEW = timedelta(seconds=30)
# A task is created moments after its POST begins: the tasks this close to the start are read (and checked)
# first, in a listing of their own, so a busy window's own task is found before its whole history is read.
NEAR = timedelta(seconds=10)
NEAR_CHECKED_MS = 9_000  # a second inside it: tasks whose answered time is rounded stay on the right side
MAX_HISTORY_PAGES = 500  # 50,000 tasks in a window of about two minutes: beyond any tier's start rate
MAX_LOST_SUBMISSIONS = 3  # POSTs proven to have created nothing before the job gives up
UNKNOWN_IDS_KEPT = 10
# What a run that leaves the submission unsettled says (the UncertainSubmissions metric counts them).
_NO_TIME = 10**15  # the order of a task whose creation time cannot be read: after every other


class Verdict(Enum):
    OURS = "this attempt's"
    EARLIER = "an earlier attempt's"
    OTHER = "another upload's"
    UNKNOWN = "names no upload"


@dataclass
class Listing:
    """WaveSpeed's history for one window, as far as it was read."""

    tasks: list[Task] = field(default_factory=list)
    complete: bool = False
    why_incomplete: str = ""
    # Cut short (out of time, a page that failed, pages that overlap): what was read is no prefix of the window
    # in the order tasks are checked, so it is not checked (the cursor would skip what was not read).
    cut: bool = False
    out_of_time: bool = False  # the run's share of time ended first: the next run reads it again
    pages: int = 0


@dataclass(frozen=True)
class Attempt:
    """An uncertain submission: when its POST began, when its last possible answer came, and the window
    its task's `created_at` lies in."""

    started: datetime
    post_ends: datetime
    window: tuple[datetime, datetime]
    model: str

    @classmethod
    def of(cls, job: Job, submit_timeout: float) -> Attempt:
        # (never `updated_at`: the reconciler's own looks move it, and the attempt would never grow old)
        started = parse_iso(job.submit_started_at or job.entered(JobStatus.SUBMITTING) or job.created_at)
        post_ends = started + timedelta(seconds=longest_submit_seconds(submit_timeout) + min(5.0, submit_timeout))
        model = (job.params.model if job.params else None) or TRAINER_MODELS[0]
        return cls(started, post_ends, (started - CLOCK_SKEW, post_ends + CLOCK_SKEW), model)

    @property
    def near(self) -> tuple[datetime, datetime]:
        return self.started - NEAR, self.started + NEAR

    def order(self, task: Task) -> tuple[int, str]:
        """Milliseconds from the POST's start, nearest first (a task is created moments after its POST
        begins); a task without a readable creation time last."""
        try:
            return round(abs((parse_iso(task.created_at or "") - self.started).total_seconds()) * 1000), task.id
        except (ValueError, TypeError):  # not a time, or one without a zone
            return _NO_TIME, task.id


def read_history(wavespeed: WaveSpeed, model: str, window: tuple[datetime, datetime], deadline: Deadline) -> Listing:
    """Every page of the window's history, and whether WaveSpeed's answers show it is all of it."""
    listing = Listing()
    totals: set[int] = set()
    read = unreadable = 0
    previous: int | None = None
    shorter = False
    ids: set[str] = set()
    while listing.pages < MAX_HISTORY_PAGES:
        if deadline.remaining() < MIN_READ_SECONDS:
            listing.why_incomplete = "its history could not be read in full in one run"
            listing.cut = listing.out_of_time = True
            return listing
        try:
            page = wavespeed.list_predictions(
                model=model,
                created_after=iso(window[0]),
                created_before=iso(window[1]),
                page=listing.pages + 1,
                deadline=deadline,
            )
        except WaveSpeedError as err:
            listing.why_incomplete, listing.cut = f"its history could not be read in full: {err.message}", True
            return listing
        listing.pages += 1
        if ids & {task.id for task in page.items}:  # pages that overlap: a listing that moved, or a proxy's
            listing.why_incomplete, listing.cut = "its history pages repeat tasks", True
            return listing
        ids |= {task.id for task in page.items}
        listing.tasks += page.items
        read += page.size
        unreadable += page.size - len(page.items)
        if page.total is not None:
            totals.add(page.total)
        # Without a total, only a page shorter than the one before (an empty one too) ends the listing: a
        # server that serves fewer entries than asked for cannot pass a partial listing off as whole.
        shorter = page.size == 0 or (previous is not None and page.size < previous)
        if page.size == 0 or (page.total is not None and read >= page.total) or (page.total is None and shorter):
            break
        previous = page.size
    if unreadable:
        listing.why_incomplete = f"{unreadable} history entries without a task id"
    elif len(totals) > 1 or (totals and read != next(iter(totals))):
        listing.why_incomplete = f"the history's totals ({sorted(totals)}) disagree with the {read} entries read"
    elif not totals and not shorter:
        listing.why_incomplete = "the history gave no total and never a last page"
    else:
        listing.complete = True
    return listing


def _ids_digest(tasks: list[Task]) -> str:
    return hashlib.sha256("\n".join(task.id for task in tasks).encode()).hexdigest()


class Settler:
    def __init__(  # noqa: PLR0913 - its collaborators, injected
        self,
        *,
        jobs: JobStore,
        wavespeed: Callable[[], WaveSpeed],
        settings: ReconcileSettings,
        adopt: Callable[[Job, Task, str], Outcome],
        record_stray: Callable[[Job, Task, str], Outcome],
        resubmit: Callable[[Job], None],
    ) -> None:
        self._jobs = jobs
        self._wavespeed = wavespeed
        self._settings = settings
        self._adopt = adopt
        self._record_stray = record_stray
        self._resubmit = resubmit

    def settle(self, job: Job, now: datetime, deadline: Deadline) -> Outcome:
        attempt = Attempt.of(job, self._settings.submit_timeout_seconds)
        if now < attempt.post_ends:
            return Outcome.SUBMITTING  # the POST may still be waiting for its answer
        if not job.submit_url_sha256:  # nothing to tell this attempt's task by: never concluded "absent"
            return self._undecided(job, attempt, now, "the attempt's link was not recorded")
        progress = job.settle_progress().model_copy(deep=True)
        outcome = Outcome.ERROR
        try:
            outcome = self._settle(job, attempt, now, progress, deadline)
            return outcome
        finally:  # what this run found is kept for the next while the job settles (also when it broke off)
            if outcome in UNSETTLED or outcome is Outcome.ERROR:
                self._save(job, progress)

    def _settle(  # noqa: PLR0911 - one return per finding
        self, job: Job, attempt: Attempt, now: datetime, progress: SettleProgress, deadline: Deadline
    ) -> Outcome:
        wavespeed = self._wavespeed()
        if progress.cursor is None or _key(progress)[0] < NEAR_CHECKED_MS:
            # The seconds around the POST's start first: in a busy window its task is found here, cheaply. Only
            # the tasks surely first in the whole window's order are checked (the listing filters on WaveSpeed's
            # own times, the order reads the text it answers), so the cursor stays valid for the whole window.
            near = read_history(wavespeed, attempt.model, attempt.near, deadline)
            progress.requests += near.pages
            first = [task for task in sorted(near.tasks, key=attempt.order) if attempt.order(task)[0] < NEAR_CHECKED_MS]
            found = near.cut or self._check(job, first, attempt, progress, deadline)
            if isinstance(found, Outcome):  # this attempt's task, adopted
                return found
        listing = read_history(wavespeed, attempt.model, attempt.window, deadline)
        progress.requests += listing.pages
        tasks = sorted(listing.tasks, key=attempt.order)
        checked_all = not listing.cut and self._check(job, tasks, attempt, progress, deadline)
        if isinstance(checked_all, Outcome):
            return checked_all
        if listing.out_of_time or (not checked_all and not listing.cut):  # nothing says "not known": go on
            why = f"{len(tasks) - progress.checked} of {len(tasks)} tasks in the window still to check"
            return self._undecided(job, attempt, now, listing.why_incomplete or why, outcome=Outcome.CHECKING)
        if not listing.complete:
            return self._undecided(job, attempt, now, listing.why_incomplete)
        if progress.unknown:
            why = f"tasks whose upload WaveSpeed does not name: {', '.join(progress.unknown_ids)}"
            return self._undecided(job, attempt, now, why)
        if now < attempt.started + timedelta(seconds=self._settings.uncertain_grace_seconds):
            # WaveSpeed's history may lag behind its tasks
            return self._undecided(job, attempt, now, "within the grace", outcome=Outcome.WAITING_FOR_HISTORY)
        everything = _ids_digest(tasks)
        if progress.absent_since is None or progress.absent_digest != everything:
            progress.absent_since, progress.absent_digest = iso(now), everything
        if now - parse_iso(progress.absent_since) < timedelta(seconds=self._settings.absence_confirm_seconds):
            why = "its history showed no task of it once; a second read must agree"
            return self._undecided(job, attempt, now, why, outcome=Outcome.ABSENT_ONCE)
        return self._not_created(job, attempt, progress)

    def _check(
        self, job: Job, tasks: list[Task], attempt: Attempt, progress: SettleProgress, deadline: Deadline
    ) -> bool | Outcome:
        """Check the tasks after the cursor, in order, as time allows; True when all are checked, the
        adoption's outcome when this attempt's task is found."""
        behind = [task for task in tasks if progress.cursor is not None and attempt.order(task) <= _key(progress)]
        if progress.cursor is not None and _ids_digest(behind) != progress.checked_digest:
            # A task turned up behind the cursor (the history lagged): check the window again from the start.
            progress.cursor = progress.checked_digest = progress.absent_since = progress.absent_digest = None
            progress.checked = progress.unknown = 0
            progress.unknown_ids = []
            behind = []
        own = job.task_ids()
        for task in tasks[len(behind) :]:
            if deadline.remaining() < MIN_READ_SECONDS:
                return False
            verdict, confirmed = (Verdict.OTHER, task) if task.id in own else self._whose(job, task, progress, deadline)
            if verdict is None:
                return False  # WaveSpeed did not answer: the rest waits for the next run
            if verdict is Verdict.OURS:
                evidence = f"found in WaveSpeed's prediction history ({progress.requests} WaveSpeed requests)"
                return self._adopt(job, confirmed, evidence)
            if verdict is Verdict.EARLIER:
                self._record_stray(job, confirmed, "found in WaveSpeed's prediction history")
            if verdict is Verdict.UNKNOWN:
                progress.unknown += 1
                progress.unknown_ids = [*progress.unknown_ids, task.id][:UNKNOWN_IDS_KEPT]
            behind.append(task)
            progress.cursor = " ".join(map(str, attempt.order(task)))
            progress.checked_digest = _ids_digest(behind)
            progress.checked = len(behind)
        return True

    def _whose(self, job: Job, task: Task, progress: SettleProgress, deadline: Deadline) -> tuple[Verdict | None, Task]:
        """Whose upload a task trained on: from the history entry's input where it has one, else from
        WaveSpeed's GET (tasks other jobs own are known without asking). A match is always confirmed by the
        GET, WaveSpeed's authoritative answer."""
        if task.data_url is not None and _verdict(job, task.data_url) is Verdict.OTHER:
            return Verdict.OTHER, task
        if task.data_url is None and self._jobs.find_by_prediction(task.id) is not None:
            return Verdict.OTHER, task  # another job's task (this job's are known without a lookup)
        progress.requests += 1
        try:
            confirmed = self._wavespeed().get_result(task.id, deadline)
        except NotFound:
            return Verdict.UNKNOWN, task  # listed, yet WaveSpeed no longer knows it: whose it was is lost
        except WaveSpeedError as err:
            logger.info("a task in the window could not be checked yet", extra={"task": task.id, "reason": err.message})
            return None, task
        if confirmed.data_url is None and task.data_url is not None:  # the GET may leave `input` out
            confirmed = confirmed.model_copy(update={"input": task.input})
        data_url = confirmed.data_url
        return (Verdict.UNKNOWN if data_url is None else _verdict(job, data_url)), confirmed

    def _save(self, job: Job, progress: SettleProgress) -> None:
        """What this run found, for the next (a write guarded by the attempt; a job that moved is left alone)."""
        if progress != job.settle_progress():
            self._jobs.save_settling(job, progress)

    def _not_created(self, job: Job, attempt: Attempt, progress: SettleProgress) -> Outcome:
        proof = (
            f"WaveSpeed's complete history, read at {progress.absent_since} and again later, shows no task from "
            f"this upload created between {iso(attempt.window[0])} and {iso(attempt.window[1])}"
        )
        if job.lost_submissions + 1 >= MAX_LOST_SUBMISSIONS:
            return self._fail(
                job,
                ErrorCode.SUBMIT_FAILED,
                f"{proof}, and {MAX_LOST_SUBMISSIONS} submissions went unanswered: check WaveSpeed's status and "
                f"this account's network, then `loradrop retry {job.job_id}` (no task was billed)",
                created_nothing=True,
            )
        moved = self._jobs.submission_lost(job, f"{proof} ({progress.requests} WaveSpeed requests): submitting again")
        if not moved.done or moved.job is None:
            return Outcome.UNCHANGED
        self._resubmit(moved.job)
        metrics.add_metric(name="SubmissionsProvenLost", unit=MetricUnit.Count, value=1)
        return Outcome.PROVEN_LOST

    def _undecided(
        self, job: Job, attempt: Attempt, now: datetime, reason: str, *, outcome: Outcome = Outcome.AMBIGUOUS
    ) -> Outcome:
        """Not settled this run: the job waits — until the settle deadline, when it ends FAILED with what a
        person can look for in WaveSpeed's dashboard."""
        deadline = timedelta(seconds=self._settings.settle_deadline_seconds)
        if now - attempt.started < deadline:
            return outcome
        return self._fail(
            job,
            ErrorCode.SUBMIT_UNSETTLED,
            f"loradrop could not tell whether WaveSpeed created a task for this upload: the submission at "
            f"{iso(attempt.started)} got no usable answer, and for {hours(deadline)} WaveSpeed's records stayed "
            f"ambiguous ({reason}). In your WaveSpeed dashboard, look for {attempt.model} tasks created between "
            f"{iso(attempt.window[0])} and {iso(attempt.window[1])}: if one trained on "
            f"s3://{job.source_bucket}/{job.source_key}, download its weights there; if there is none, upload the "
            "ZIP again.",
        )

    def _fail(self, job: Job, code: ErrorCode, reason: str, *, created_nothing: bool = False) -> Outcome:
        ended = self._jobs.fail_submission(job, code, reason, created_nothing=created_nothing)
        return Outcome.FAILED if ended.done else Outcome.UNCHANGED


def _key(progress: SettleProgress) -> tuple[int, str]:
    distance, _, task_id = (progress.cursor or "").partition(" ")
    return int(distance), task_id


def _verdict(job: Job, data_url: str) -> Verdict:
    """Whose a task's ZIP link is: this attempt's, an earlier one's (by the digests the job keeps), or — a link
    the job never sent that still names its S3 object (re-encoded, say) — not known; any other upload's."""
    link = url_digest(data_url)
    if link == job.submit_url_sha256:
        return Verdict.OURS
    if link in job.attempt_links():
        return Verdict.EARLIER
    return Verdict.UNKNOWN if names_object(data_url, job.source_bucket, job.source_key) else Verdict.OTHER


def link_object(url: str) -> tuple[str, str, str | None] | None:
    """The S3 object (bucket, key, version) a presigned link names: virtual-hosted (bucket.s3….amazonaws.com/key)
    or path-style (host/bucket/key); None for a link that names none."""
    parts = urlsplit(url)
    host, path = parts.hostname or "", unquote(parts.path).lstrip("/")
    bucket, key = (host.split(".s3", 1)[0], path) if ".s3" in host else path.partition("/")[::2]
    version = parse_qs(parts.query).get("versionId", [None])[0]
    return (bucket, key, version) if bucket and key else None


def names_object(url: str, bucket: str, key: str) -> bool:
    found = link_object(url)
    return found is not None and found[:2] == (bucket, key)
