"""Upload → WaveSpeed task: claim the job, inspect the ZIP, validate parameters, submit once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from loradrop.archive import Archive, ArchiveLimits, ArchiveRejected, S3RangeReader, open_archive
from loradrop.budgets import BudgetExhausted
from loradrop.codes import ErrorCode
from loradrop.dataset import DatasetReport, survey
from loradrop.deadline import Deadline
from loradrop.job import HistoryEntry, Job, hours, job_id_for, parse_iso, url_digest, utc_now
from loradrop.jobs import JobStore
from loradrop.log_context import about_job, about_task
from loradrop.models import InvalidParameters, JobStatus, Task, TrainingParams, retry_kind
from loradrop.ports import WaveSpeed
from loradrop.pricing import MustWait, NoTimeToPrice, OverBudget, Pricing, exhausted_reason
from loradrop.settings import SubmitSettings
from loradrop.wavespeed import (
    OutcomeUncertain,
    RateLimited,
    RequestRejected,
    TransientError,
    hinted_webhook,
    longest_submit_seconds,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

logger = Logger(child=True)
metrics = Metrics()

# Tries and pauses for recording a task WaveSpeed created: the task is paid for, so the write is
# worth a few seconds. If every try fails, the task's webhook or the reconciler adopts it.
RECORD_TRIES = 4
RECORD_PAUSE_SECONDS = 0.25
# Kept after the longest POST for the writes that record its answer.
RECORD_SECONDS = 15.0
# Kept before the POST for asking its price and the balance (reads, each cut to what is left).
PRICE_SECONDS = 5.0

UNCERTAIN_ERROR = (
    "{reason}. WaveSpeed may or may not have created (and billed) a task, so loradrop will not send it "
    "again blindly: it settles the outcome from WaveSpeed's own records (the task's signed webhook, or its "
    "prediction history) and then carries on or submits again by itself. Nothing to do unless the job ends FAILED."
)


class RetryLater(Exception):
    """Nothing was submitted and the job is back in RECEIVED: let the queue deliver it again."""

    def __init__(self, reason: str, *, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.rate_limited = rate_limited


class _Refused(Exception):
    """The upload cannot be trained on: the job ends REJECTED with the code, the reason and what was found."""

    def __init__(self, code: ErrorCode, reason: str, found: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.found = code, reason, found


@dataclass(frozen=True)
class _Checked:
    """An upload fit to submit: its parameters, what its inspection found (as the job keeps it), its warnings."""

    params: TrainingParams
    found: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class UploadRef:
    """One S3 object version, as an ObjectCreated notification names it."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None

    @classmethod
    def from_s3_record(cls, record: dict[str, Any]) -> UploadRef:
        s3 = record["s3"]
        obj = s3["object"]
        return cls(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(obj["key"]),  # notifications encode keys: '+' is a space
            version_id=obj.get("versionId") or None,
            etag=(obj.get("eTag") or "").strip('"') or None,
            size=obj.get("size"),
        )

    @property
    def job_id(self) -> str:
        return job_id_for(self.bucket, self.key, self.version_id, self.etag)

    @property
    def is_folder_marker(self) -> bool:
        """An empty object named like a folder: the S3 console's "Create folder", not an upload."""
        return self.key.endswith("/") and not self.size


class Submitter:
    def __init__(
        self,
        *,
        jobs: JobStore,
        s3: S3Client,
        wavespeed: Callable[[], WaveSpeed],
        settings: SubmitSettings,
    ) -> None:
        self._jobs = jobs
        self._s3 = s3
        self._wavespeed = wavespeed
        self._settings = settings
        self._limits = ArchiveLimits(
            max_archive_bytes=settings.max_archive_bytes,
            max_entries=settings.max_entries,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
        )
        self._defaults = TrainingParams.build(settings.training_defaults())

    def accept_upload(self, upload: UploadRef, deadline: Deadline | None = None) -> Job:
        """Claim the upload's job (once per object version) and submit it if nothing else has. `deadline`
        is when the invocation ends: a POST that could not be answered before it is not sent."""
        now = utc_now()
        job, created = self._jobs.claim(
            Job(
                job_id=upload.job_id,
                status=JobStatus.RECEIVED,
                source_bucket=upload.bucket,
                source_key=upload.key,
                source_version=upload.version_id,
                source_etag=upload.etag,
                source_size=upload.size,
                created_at=now,
                updated_at=now,
                history=[HistoryEntry(status=JobStatus.RECEIVED.value, at=now)],
            )
        )
        about_job(job.job_id, job.prediction_id)
        if not created and job.status is not JobStatus.RECEIVED:
            logger.info("repeated delivery ignored", extra={"status": job.status.value})
            return job
        return self.submit(job, deadline)

    def resubmit(self, job_id: str, deadline: Deadline | None = None) -> Job | None:
        """A job sent back to RECEIVED by a retryable WaveSpeed failure."""
        about_job(job_id)
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.RECEIVED:
            logger.info("resubmit request ignored", extra={"status": job.status.value if job else None})
            return job
        return self.submit(job, deadline)

    def retry(self, job_id: str, deadline: Deadline | None = None) -> Job | None:
        """A person's retry (`loradrop retry`) of a job that failed for a reason worth retrying. A retry message
        that finds the job back in RECEIVED (its first try met a 429, or crashed after reopening it) carries on."""
        about_job(job_id)
        job = self._jobs.get(job_id)
        if job is not None and job.status is JobStatus.RECEIVED:
            return self.submit(job, deadline)
        if job is None or job.status is not JobStatus.FAILED or retry_kind(job.error_code) != "submit":
            logger.info("retry request ignored", extra={"status": job.status.value if job else None})
            return job
        reopened = self._jobs.reopen(job, JobStatus.RECEIVED, f"retried by request after [{job.error_code}]")
        return self.submit(reopened.job, deadline) if reopened.done and reopened.job else reopened.job

    def submit(self, job: Job, deadline: Deadline | None = None) -> Job:
        target: dict[str, Any] = {"Bucket": job.source_bucket, "Key": job.source_key} | (
            {"VersionId": job.source_version} if job.source_version else {}
        )
        try:
            checked = self._check_upload(job, target)
        except _Refused as refused:
            return self._reject(job, refused.code, refused.reason, refused.found)
        params, found = checked.params, checked.found
        wavespeed = self._client()
        data_url = self._s3.generate_presigned_url(
            "get_object", Params=target, ExpiresIn=self._settings.presign_expiry_seconds
        )
        self._check_time(deadline, PRICE_SECONDS)  # the price is asked only with time left for the POST after it
        try:
            quote, price_warnings = self._price(params, params.to_wavespeed(data_url), wavespeed, deadline)
        except OverBudget as over:
            return self._over_limit(job, ErrorCode.OVER_BUDGET, over.reason, found | {"quote_usd": over.quote})
        except MustWait as wait:
            return self._wait(job, wait)
        except NoTimeToPrice as late:
            raise RetryLater(f"no time left in this invocation to ask WaveSpeed the price ({late})") from late
        self._check_time(deadline)
        # From here on a WaveSpeed task may exist: count it now, so a crash anywhere after the POST
        # still leaves attempts == tasks that may exist; a certain refusal takes it back.
        try:
            submitting = self._jobs.begin_submission(
                job.job_id,
                found=found,
                params=params.model_dump(),
                warnings=checked.warnings + price_warnings,
                link=url_digest(data_url),
                at=utc_now(),
                quote=quote,
                monthly_limit=self._settings.monthly_budget_usd,
            )
        except BudgetExhausted as err:
            reason = exhausted_reason(err, quote)
            return self._over_limit(job, ErrorCode.BUDGET_EXHAUSTED, reason, found | {"quote_usd": quote})
        if not submitting.done or submitting.job is None:  # another delivery got there first
            return submitting.job or job
        return self._post(submitting.job, params, data_url, wavespeed)

    def _check_upload(self, job: Job, target: dict[str, Any]) -> _Checked:
        """The upload as it is to be trained on: its parameters, what its inspection found and the warnings; or
        _Refused. Parameters are parsed before the survey, which checks the captions for the trigger word; an
        invalid set is still refused for its dataset first, and for its parameters only after."""
        head = self._head(job, target)
        metadata = head.get("Metadata", {})
        try:
            params, unknown_keys = TrainingParams.from_metadata(metadata, self._defaults)
            invalid = None
        except InvalidParameters as err:
            params, unknown_keys, invalid = self._defaults, [], err
        # The captions are held to the trigger word the upload asked for; the stack's default is no one's choice
        asked = "trigger-word" in {key.lower() for key in metadata}
        archive, dataset, found = self._inspect(job, head, params.trigger_word if asked and not invalid else None)
        fatal = dataset.fatal()
        if fatal and self._settings.dataset_policy == "strict":
            raise _Refused(
                ErrorCode.INVALID_DATASET,
                f"the dataset is not fit to train on: {'; '.join(fatal)}. Fix the dataset and upload again (this "
                "stack's DatasetPolicy is strict; with warn it would have trained anyway)",
                found | {"warnings": archive.report.warnings + dataset.warnings()},  # the rest of the findings
            )
        if invalid:
            raise _Refused(ErrorCode.INVALID_PARAMETERS, f"invalid training parameters: {invalid}", found)
        return _Checked(params, found, archive.report.warnings + fatal + dataset.warnings() + unknown_keys)

    def _head(self, job: Job, target: dict[str, Any]) -> HeadObjectOutputTypeDef:
        """The upload's HEAD: its size and metadata, if it is still the object the notification named."""
        try:
            head = self._s3.head_object(**target)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NoSuchVersion"):
                raise _Refused(
                    ErrorCode.INVALID_UPLOAD, "the upload was deleted before it could be read: upload it again"
                ) from err
            if code in ("403", "AccessDenied"):
                # S3 answers 403 for a missing key to a caller without s3:ListBucket, as this role is.
                raise _Refused(
                    ErrorCode.INVALID_UPLOAD,
                    "the upload could not be read (403: deleted, or outside uploads/ where SubmitTraining may "
                    "read): upload it again under uploads/",
                ) from err
            raise
        if not job.source_version and job.source_etag and head.get("ETag", "").strip('"') != job.source_etag:
            raise _Refused(
                ErrorCode.INVALID_UPLOAD, "the object was overwritten by a newer upload, which is its own job"
            )
        return head

    def _inspect(
        self, job: Job, head: HeadObjectOutputTypeDef, trigger_word: str | None
    ) -> tuple[Archive, DatasetReport, dict[str, Any]]:
        """The archive checked by range reads, its images and captions surveyed (the captions for the trigger
        word); what was found, as the job keeps it."""
        reader = S3RangeReader(self._s3, job.source_bucket, job.source_key, head["ContentLength"], job.source_version)
        try:
            archive = open_archive(reader, self._limits)
        except ArchiveRejected as err:
            raise _Refused(ErrorCode.INVALID_UPLOAD, str(err) or "invalid archive") from err
        finally:
            logger.info("archive inspected", extra={"bytes_read": reader.bytes_read, "range_reads": reader.requests})
        dataset = survey(archive, trigger_word=trigger_word)
        logger.info(
            "dataset surveyed",
            extra=dataset.read_stats()
            | {"surveyed": len(dataset.facts), "seconds": round(dataset.seconds, 3), "range_reads": reader.requests},
        )
        found = {
            "archive": archive.report.as_dict()
            | dataset.read_stats()
            | {"bytes_read": reader.bytes_read, "range_reads": reader.requests},
            "dataset": dataset.as_dict(),
        }
        return archive, dataset, found

    def _client(self) -> WaveSpeed:
        """Everything that can fail before a POST fails before it, while nothing is in flight and the job stays
        RECEIVED: here the API key read (Secrets Manager, a malformed secret)."""
        try:
            return self._wavespeed()
        except Exception as err:
            metrics.add_metric(name="SubmitDeferred", unit=MetricUnit.Count, value=1)
            logger.exception("the WaveSpeed API key could not be read; the upload waits and tries again")
            raise RetryLater(f"the WaveSpeed API key could not be read: {type(err).__name__}") from err

    def _post_seconds(self) -> float:
        """The POST's longest answer and the writes after it."""
        return longest_submit_seconds(self._settings.submit_timeout_seconds) + RECORD_SECONDS

    def _check_time(self, deadline: Deadline | None, before: float = 0.0) -> None:
        """The time for the POST (and for reads `before` it): past this point a failure would leave the outcome
        uncertain."""
        needed = self._post_seconds() + before
        if deadline is not None and deadline.remaining() < needed:
            raise RetryLater(
                f"{deadline.remaining():.0f} s left in this invocation: a POST needs {needed:.0f} s"
                + (f" (its price {before:.0f} s of it)" if before else "")
            )

    def _price(
        self, params: TrainingParams, body: dict[str, Any], wavespeed: WaveSpeed, deadline: Deadline | None
    ) -> tuple[Decimal | None, list[str]]:
        """The quote for exactly `body`, checked against the spending limits and the balance (`pricing`)."""
        reads = Deadline(deadline.at - self._post_seconds(), deadline.clock) if deadline else None
        return Pricing(self._settings, wavespeed, reads).check(params, body)

    def _wait(self, job: Job, wait: MustWait) -> Job:
        """Nothing can be paid for yet: the job waits in RECEIVED with the reason, until the settle deadline
        (counted from when the job entered RECEIVED), when it ends FAILED with the wait's code. Its message is
        done with: a wait may last hours (a balance to top up), longer than a message's receives before its
        dead-letter queue, so the reconciler queues the job again, as it does any RECEIVED job left alone."""
        limit = timedelta(seconds=self._settings.settle_deadline_seconds)
        if datetime.now(UTC) - parse_iso(job.entered(JobStatus.RECEIVED) or job.created_at) > limit:
            reason = f"{wait.reason}. Gave up after {hours(limit)}: `loradrop retry {job.job_id}` once that is mended"
            ended = self._jobs.end(job.job_id, {JobStatus.RECEIVED}, JobStatus.FAILED, wait.code, reason)
            return ended.job or job
        logger.warning("the upload waits before its POST", extra={"error_code": wait.code.value})
        waited = self._jobs.waiting(job, wait.code, wait.reason)
        return waited.job or job

    def _post(self, job: Job, params: TrainingParams, data_url: str, wavespeed: WaveSpeed) -> Job:
        try:
            task = wavespeed.submit_training(
                params.model, params.to_wavespeed(data_url), hinted_webhook(self._settings.webhook_url, job=job.job_id)
            )
        except TransientError as err:  # a 429, or no connection: nothing was created
            self._jobs.submission_deferred(job, f"not submitted, will retry: {err.message}")
            metrics.add_metric(name="SubmitDeferred", unit=MetricUnit.Count, value=1)
            raise RetryLater(err.message, rate_limited=isinstance(err, RateLimited)) from err
        except RequestRejected as err:  # WaveSpeed's own refusal: nothing was created
            refused = f"WaveSpeed refused the task (HTTP {err.status}): {err.message}"
            ended = self._jobs.fail_submission(job, str(err.code or err.status), refused, created_nothing=True)
            return ended.job or job
        except OutcomeUncertain as err:
            metrics.add_metric(name="SubmitUncertain", unit=MetricUnit.Count, value=1)
            logger.error(
                "submission outcome uncertain; settling it from WaveSpeed's records", extra={"reason": err.message}
            )
            uncertain = self._jobs.mark_uncertain(job.job_id, UNCERTAIN_ERROR.format(reason=err.message))
            return uncertain.job if uncertain.done and uncertain.job else job
        # Logged before any write: if every write below fails, this line still names the paid task.
        about_task(task.id)
        logger.info("WaveSpeed created a task", extra={"prediction_id": task.id, "job_id": job.job_id})
        metrics.add_metric(name="TasksSubmitted", unit=MetricUnit.Count, value=1)
        return self._record_task(job, task)

    def _record_task(self, job: Job, task: Task) -> Job:
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                submitted = self._jobs.record_task(job.job_id, task)
            except (ClientError, BotoCoreError) as err:
                logger.warning("recording the task failed", extra={"try": attempt, "reason": str(err)[:300]})
                if attempt == RECORD_TRIES:
                    metrics.add_metric(name="TaskNotRecorded", unit=MetricUnit.Count, value=1)
                    logger.error(
                        "task created but not recorded; its webhook or the reconciler will adopt it",
                        extra={"prediction_id": task.id},
                    )
                    raise
                time.sleep(RECORD_PAUSE_SECONDS * attempt)
                continue
            # Refused: adopted already (its webhook came first), or moved on; either way the job knows.
            return submitted.job or job
        raise AssertionError("unreachable")  # pragma: no cover

    def _over_limit(self, job: Job, code: ErrorCode, reason: str, fields: dict[str, Any]) -> Job:
        """A spending limit refuses the job's next task. REJECTED says nothing was ever sent to WaveSpeed: true of
        a first attempt only. A job with earlier tasks (a retry, a resubmission) ends FAILED, retryable once the
        limit is raised."""
        if job.attempts == 0:
            return self._reject(job, code, f"{reason}, then upload again. Nothing was paid", fields)
        ended = self._jobs.end(
            job.job_id,
            {JobStatus.RECEIVED},
            JobStatus.FAILED,
            code,
            f"{reason}, then `loradrop retry {job.job_id}`. No new task was started ({job.attempts} earlier "
            "task(s) were paid for)",
            found=fields,
        )
        return ended.job or job

    def _reject(self, job: Job, code: ErrorCode, reason: str, fields: dict[str, Any] | None = None) -> Job:
        ended = self._jobs.end(job.job_id, {JobStatus.RECEIVED}, JobStatus.REJECTED, code, reason, found=fields)
        return ended.job or job
