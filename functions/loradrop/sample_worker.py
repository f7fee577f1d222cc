"""The sample worker (StoreWeights, on the store queue): plans a job's samples before it completes, submits each
once, copies each image beside the weights, and sums the samples up on the job once every one ended.

A sample is a paid task, submitted as carefully as training: claimed (PLANNED → SUBMITTING, with its quote reserved)
before the POST; a certain refusal gives it back; an answer lost leaves it SUBMITTING for the webhook or the
reconciler to settle from WaveSpeed's records (`sample_reconciling`), never resent blindly. Nothing here changes the
job's state: a sample that fails says why on its own row, and the job stays COMPLETED.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from loradrop.budgets import BudgetChange, BudgetExhausted, month_of
from loradrop.codes import ErrorCode
from loradrop.deadline import Deadline
from loradrop.egress import DisallowedOutput, OutputPolicy
from loradrop.job import Job, s3_location
from loradrop.jobs import JobStore
from loradrop.log_context import about_job
from loradrop.messages import SampleRequest
from loradrop.model_card import card_files
from loradrop.models import JobStatus, retry_kind
from loradrop.ports import QueueSender, WaveSpeed
from loradrop.queues import Deferred, backoff_seconds, rate_limit_backoff_seconds
from loradrop.sample_table import same_lost_count
from loradrop.samples import (
    SAMPLE_MODEL,
    SAMPLES_FOLDER,
    Sample,
    SampleStatus,
    input_digest,
    render_prompt,
    request_body,
    sample_key,
    seed_for,
)
from loradrop.sampling import SampleTracker, given_back
from loradrop.settings import StoreSettings
from loradrop.wavespeed import (
    NotFound,
    OutcomeUncertain,
    RequestRejected,
    TransientError,
    WaveSpeedError,
    hinted_webhook,
    longest_submit_seconds,
)
from loradrop.weights import DownloadFailed, OutputTooLarge, open_output

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(child=True)
metrics = Metrics()

S = SampleStatus
LORA_LINK_SECONDS = 3600  # a presigned link to the stored weights lives this long: WaveSpeed fetches it at once
MAX_IMAGE_BYTES = 32 * 1024 * 1024  # a 1024x1024 PNG is a few MiB; a URL serving more is not the sample
RECORD_SECONDS = 2.0  # the write after a POST (a crash past it leaves the sample for the reconciler to settle)
GONE = {404, 410}  # WaveSpeed's CDN no longer serves the output
LATER_RECEIVES = 3  # a sample message that must wait comes back this often before the reconciler takes over
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class SampleWorker:
    def __init__(  # noqa: PLR0913 - its collaborators, injected
        self,
        *,
        jobs: JobStore,
        s3: S3Client,
        http: httpx.Client,
        sqs: QueueSender,
        wavespeed: Callable[[], WaveSpeed],
        settings: StoreSettings,
    ) -> None:
        self._jobs = jobs
        self._s3 = s3
        self._http = http
        self._wavespeed = wavespeed
        self._settings = settings
        self._policy = OutputPolicy(settings.output_hosts)
        self.tracker = SampleTracker(jobs=jobs, sqs=sqs, wavespeed=wavespeed, store_queue_url=settings.store_queue_url)

    # --- planning: before the job completes, so a crash between the two leaves rows the reconciler sees ----------

    def plan(self, job: Job) -> list[Sample]:
        prompts = list(job.params.sample_prompts or []) if job.params else []
        trigger = (job.params.trigger_word if job.params else None) or ""
        rendered = [(render_prompt(prompt, trigger), seed_for(job.job_id, i)) for i, prompt in enumerate(prompts)]
        return self._jobs.plan_samples(job, rendered) if rendered else []

    def start(self, samples: list[Sample]) -> None:
        """Queue the job's samples (it completed): the planned ones are submitted; for a job completed again after a
        retry, whose samples may have ended meanwhile, the message sums them up. A lost message is the reconciler's
        to send again."""
        for sample in samples:
            try:
                self.tracker.enqueue(sample)
            except (ClientError, BotoCoreError):
                logger.warning("sample not queued; the reconciler queues it", extra={"sample": sample.job_id})

    # --- a sample message ----------------------------------------------------------------------------------------

    def handle(self, request: SampleRequest, receive_count: int, remaining_seconds: float) -> None:
        """Do what the sample's state asks of the worker, then sum the job's samples up if all ended. Raises Deferred
        when the message is to come back."""
        about_job(request.job_id)
        sample = self._jobs.get_sample(sample_key(request.job_id, request.sample))
        if sample is None:
            logger.warning("sample request for no sample ignored", extra={"sample": request.sample})
            return
        deadline = Deadline.within(remaining_seconds - 0.5)
        try:
            if sample.status is S.PLANNED:
                self._submit(sample, receive_count, deadline)
            elif sample.status is S.STORING:
                self._copy(sample, receive_count, deadline)
            elif sample.status is S.ENDING:  # ended without an image (a webhook, the reconciler): recorded here
                self._jobs.move_sample(sample, {S.ENDING}, S.FAILED)
            self.finish(request.job_id)
        except Deferred as later:
            logger.info("sample message deferred", extra={"sample": sample.job_id, "reason": str(later)})
            raise
        except Exception as err:
            logger.warning("sample work failed; tried again", extra={"sample": sample.job_id, "reason": str(err)})
            raise Deferred(
                backoff_seconds(receive_count, base=20), scale=self._settings.retry_delay_scale, reason=str(err)
            ) from err

    def _later(self, receive_count: int, seconds: float, reason: str) -> None:
        """Not now: the message comes back after `seconds` a few times; after that it is done with (the store queue's
        receives before its dead-letter queue are for copies) and the reconciler queues the sample again once it has
        been left alone, as it does any planned sample."""
        if receive_count < LATER_RECEIVES:
            raise Deferred(seconds, scale=self._settings.retry_delay_scale, reason=reason)
        logger.info("sample left for the reconciler", extra={"reason": reason})

    # --- submitting ----------------------------------------------------------------------------------------------

    def _submit(self, sample: Sample, receive_count: int, deadline: Deadline) -> None:
        job = self._jobs.get(sample.parent_job_id)
        if job is not None and job.status is JobStatus.FAILED and retry_kind(job.error_code):
            return  # `loradrop retry` may still complete it: the reconciler looks again
        if job is None or job.status in (JobStatus.FAILED, JobStatus.REJECTED):
            why = "the job's training did not complete"
            self.tracker.fail(sample, {S.PLANNED}, ErrorCode.NOT_TRAINED, why, final=True)
            return
        if job.status is not JobStatus.COMPLETED:  # its weights are still being stored
            self._later(receive_count, 30, "the job has not completed yet")
            return
        post_seconds = longest_submit_seconds(self._settings.submit_timeout_seconds) + RECORD_SECONDS
        if deadline.remaining() < post_seconds + 0.2:
            raise Deferred(1, reason=f"{deadline.remaining():.1f} s left: a sample's POST needs {post_seconds:.0f} s")
        reads = Deadline(deadline.at - post_seconds, deadline.clock)  # the link and the price leave the POST its time
        wavespeed = self._wavespeed()
        link, source = self._lora_link(job, wavespeed, reads)
        seed = seed_for(job.job_id, sample.index, sample.lost_submissions)  # a new attempt is told from a lost one
        body = request_body(sample.prompt, seed, link)
        quote = self._quote(wavespeed, body, reads)
        if quote is None and self._settings.budgeted:  # no task starts unpriced under a limit: it waits
            self._later(receive_count, backoff_seconds(receive_count, base=30), "no price for the sample yet")
            return
        refused = self._over_limit(job, quote)
        if refused is not None:
            self.tracker.fail(sample, {S.PLANNED}, refused[0], refused[1], final=True)
            return
        sets: dict[str, Any] = {
            "seed": seed,
            "submit_started_at": self._jobs.now(),
            "submit_digest": input_digest(body),
            "lora_source": source,
            "quote_usd": quote,
        }
        reserve = None
        limit = self._settings.monthly_budget_usd
        if quote is not None and limit is not None:
            reserve = BudgetChange(month_of(sets["submit_started_at"]), committed=quote, limit=limit)
            sets |= {"budget_month": reserve.month, "reserved_usd": quote}
        try:
            if quote is not None and limit is not None and quote > limit:
                raise BudgetExhausted(month_of(sets["submit_started_at"]), None, limit)
            claimed, done = self._jobs.move_sample(
                sample,
                {S.PLANNED},
                S.SUBMITTING,
                sets=sets,
                attempts=1,
                budget=reserve,
                condition=same_lost_count(sample.lost_submissions),  # still the attempt its seed was chosen for
            )
        except BudgetExhausted as err:
            reason = f"the {err.month} budget ({err.limit} USD) has no room for this sample's {quote} USD"
            self.tracker.fail(sample, {S.PLANNED}, ErrorCode.BUDGET_EXHAUSTED, reason, final=True)
            return
        if done and claimed is not None:
            self._post(claimed, body, wavespeed, receive_count)

    def _lora_link(self, job: Job, wavespeed: WaveSpeed, deadline: Deadline) -> tuple[str, str]:
        """WaveSpeed's own output link while it lives (no egress from the bucket), else a short-lived presigned link
        to the stored copy."""
        if job.prediction_id:
            try:
                task = wavespeed.get_result(job.prediction_id, deadline)
                if task.status == "completed" and task.weights_url:
                    return task.weights_url, "wavespeed"
            except WaveSpeedError as err:
                logger.info("training output not at WaveSpeed; linking the stored copy", extra={"reason": err.message})
        bucket, key = s3_location(job.weights_uri or "")
        link = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=LORA_LINK_SECONDS
        )
        return link, "s3"

    def _quote(self, wavespeed: WaveSpeed, body: dict[str, Any], deadline: Deadline) -> Decimal | None:
        try:
            return wavespeed.quote(SAMPLE_MODEL, body, deadline)
        except WaveSpeedError as err:
            logger.info("no price for a sample", extra={"reason": err.message})
            return None

    def _over_limit(self, job: Job, quote: Decimal | None) -> tuple[ErrorCode, str] | None:
        """Why MaxJobUsd refuses the sample, if it does: the job's training and all its samples count."""
        limit = self._settings.max_job_usd
        count = len(job.params.sample_prompts or []) if job.params else 0
        if limit is not None and quote is not None and (job.quote_usd or 0) + quote * count > limit:
            total = (job.quote_usd or 0) + quote * count
            return (
                ErrorCode.OVER_BUDGET,
                f"training and {count} sample(s) would cost {total} USD, over MaxJobUsd {limit}",
            )
        return None

    def _post(self, sample: Sample, body: dict[str, Any], wavespeed: WaveSpeed, receive_count: int) -> None:
        webhook = hinted_webhook(self._settings.webhook_url, job=sample.parent_job_id, sample=sample.index)
        try:
            task = wavespeed.submit_training(SAMPLE_MODEL, body, webhook)  # any model's POST, despite the name
        except TransientError as err:  # nothing was created
            self._jobs.move_sample(
                sample,
                {S.SUBMITTING},
                S.PLANNED,
                note=f"not submitted, will retry: {err.message}",
                removes={"reserved_usd", "submit_digest"},
                attempts=-1,
                budget=given_back(sample),
            )
            self._later(receive_count, rate_limit_backoff_seconds(receive_count), err.message)
            return
        except RequestRejected as err:
            why = f"WaveSpeed refused the sample (HTTP {err.status}): {err.message}; the LoRA itself is unaffected"
            self.tracker.fail(
                sample, {S.SUBMITTING}, str(err.code or err.status), why, created_nothing=True, final=True
            )
            return
        except OutcomeUncertain as err:
            metrics.add_metric(name="SampleSubmitUncertain", unit=MetricUnit.Count, value=1)
            logger.error("sample submission uncertain; settled from WaveSpeed's records", extra={"reason": err.message})
            self._jobs.move_sample(
                sample,
                {S.SUBMITTING},
                S.SUBMITTING,
                note=f"no usable answer to the POST: {err.message}",
                sets={"error_code": ErrorCode.SUBMIT_UNCERTAIN.value, "error": err.message},
            )
            return
        logger.info("WaveSpeed created a sample task", extra={"prediction_id": task.id, "sample": sample.job_id})
        metrics.add_metric(name="SampleTasksSubmitted", unit=MetricUnit.Count, value=1)
        self.tracker.record_task(sample, task)

    # --- copying -------------------------------------------------------------------------------------------------

    def _copy(self, sample: Sample, receive_count: int, deadline: Deadline) -> None:
        assert sample.prediction_id is not None  # a sample is STORING only with its task
        try:
            task = self._wavespeed().get_result(sample.prediction_id, deadline)
            url = task.outputs[0] if task.outputs else None
            if url is None:
                self._fail_copy(sample, ErrorCode.NO_OUTPUT, f"task {task.id} lists no image")
                return
            key, data, kind = self._download(sample, url)
        except NotFound:
            self._fail_copy(sample, ErrorCode.OUTPUT_GONE, f"WaveSpeed no longer knows task {sample.prediction_id}")
            return
        except DisallowedOutput as err:
            self._fail_copy(sample, ErrorCode.OUTPUT_REFUSED, f"refused to download the image: {err}")
            return
        except OutputTooLarge as err:
            self._fail_copy(sample, ErrorCode.OUTPUT_TOO_LARGE, str(err))
            return
        except DownloadFailed as err:
            if err.status in GONE:
                self._fail_copy(sample, ErrorCode.OUTPUT_GONE, f"WaveSpeed's CDN no longer serves the image: {err}")
                return
            self._retry_copy(sample, receive_count, err)
            raise
        except (WaveSpeedError, ClientError, BotoCoreError) as err:
            self._retry_copy(sample, receive_count, err)
            raise
        self._store(sample, key, data, kind)

    def _download(self, sample: Sample, url: str) -> tuple[str, bytes, str]:
        suffix = next((s for s in _IMAGE_TYPES if urlsplit(url).path.lower().endswith(s)), ".png")
        response = open_output(self._http, url, self._policy, what="sample image")
        try:
            length = response.headers.get("content-length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > MAX_IMAGE_BYTES:
                raise OutputTooLarge(f"the image is {expected:,} bytes, over the {MAX_IMAGE_BYTES:,} allowed")
            data = bytearray()
            for chunk in response.iter_raw(1024 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise OutputTooLarge(f"the image is over the {MAX_IMAGE_BYTES:,} bytes allowed")
        except httpx.HTTPError as err:
            raise DownloadFailed(f"the sample image download broke off: {err!r}") from err
        finally:
            response.close()
        if expected is not None and len(data) != expected:
            raise DownloadFailed(f"the sample image was cut short: {len(data):,} of {expected:,} bytes")
        key = f"{self._settings.weights_prefix}{sample.parent_job_id}/{SAMPLES_FOLDER}{sample.index + 1}{suffix}"
        return key, bytes(data), _IMAGE_TYPES[suffix]

    def _store(self, sample: Sample, key: str, data: bytes, kind: str) -> None:
        digest = hashlib.sha256(data).hexdigest()
        bucket = self._settings.weights_bucket
        self._s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=kind,
            Metadata={"job-id": sample.parent_job_id, "prediction-id": str(sample.prediction_id), "sha256": digest},
        )
        bill = None
        if sample.budget_month and sample.reserved_usd is not None:
            bill = BudgetChange(sample.budget_month, billed=sample.reserved_usd)
        self._jobs.move_sample(
            sample,
            {S.STORING},
            S.DONE,
            sets={"image_uri": f"s3://{bucket}/{key}", "image_size": len(data), "image_sha256": digest},
            removes={"reserved_usd"},
            budget=bill,
        )
        metrics.add_metric(name="SamplesStored", unit=MetricUnit.Count, value=1)

    def _fail_copy(self, sample: Sample, code: ErrorCode, reason: str) -> None:
        self.tracker.fail(sample, {S.STORING}, code, f"{reason}; the LoRA itself is unaffected", final=True)

    def _retry_copy(self, sample: Sample, receive_count: int, err: Exception) -> None:
        if receive_count >= self._settings.store_max_receives:
            self._fail_copy(
                sample, ErrorCode.STORE_FAILED, f"the image could not be copied in {receive_count} tries: {err}"
            )

    # --- summing up ----------------------------------------------------------------------------------------------

    def finish(self, job_id: str) -> bool:
        """Once every sample of the job ended: the gallery in its model card and README, and the samples on the job
        (once). Any sample's last message does it; a repeat finds it done."""
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.COMPLETED or job.samples_settled_at:
            return False
        samples = self._jobs.samples_of(job)
        if not samples or any(sample is None or not sample.ended for sample in samples):
            return False
        summary = [sample.public() for sample in samples if sample is not None]
        if job.model_card_uri:
            self._write_gallery(job, summary)
        done = self._jobs.settle_samples(job, summary, self._jobs.now())
        if done:
            stored = sum(1 for sample in summary if sample.get("image_uri"))
            logger.info("samples settled", extra={"stored": stored, "of": len(summary)})
        return done

    def _write_gallery(self, job: Job, summary: list[dict[str, Any]]) -> None:
        bucket, card_key = s3_location(job.model_card_uri or "")
        card = json.loads(self._s3.get_object(Bucket=bucket, Key=card_key)["Body"].read())
        card["samples"] = summary
        prefix = card_key.rsplit("/", 1)[0] + "/"
        for name, body, kind in card_files(card):  # the same two files, now with the gallery
            self._s3.put_object(
                Bucket=bucket, Key=prefix + name, Body=body, ContentType=kind, Metadata={"job-id": job.job_id}
            )
